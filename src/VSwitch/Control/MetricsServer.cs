// MetricsServer.cs - serves GET /metrics (Prometheus text format) over HTTP for --metrics.
//
// prometheus-net's own MetricServer takes one host name for its HttpListener prefix, and the
// listener answers only requests whose Host header names a registered prefix: on 127.0.0.1 a
// scrape of http://localhost:PORT/metrics would get 404. This is the same loop with the prefixes a
// loopback endpoint needs (127.0.0.1 and localhost; both bind 127.0.0.1 only). An explicit address
// binds that address (requests must name it); 0.0.0.0 registers '+', every address, any Host.
//
// Binding and serving are two steps: vswitchd binds before the EAL and the ports start (a port in
// use fails at once, not after devices were probed) and serves once the datapath runs. Threads: the
// listener's socket threads exist from the bind and are moved off the PMD cores with every other
// thread when SwitchDatapath.Start confines them; the accept loop and the requests (one at a time)
// run on thread-pool threads created after that, which inherit their creator's affinity. So no HTTP
// thread runs on a PMD core (the end-to-end test checks every thread's affinity while it scrapes).
using System.Net;
using Prometheus;
using VSwitch.Config;

namespace VSwitch.Control;

public sealed class MetricsServer : IDisposable
{
    /// <summary>The only path served.</summary>
    public const string Path = "/metrics";

    private readonly HttpListener _listener = new();
    private CollectorRegistry? _registry;
    private Task? _loop;

    /// <summary>The response body, reused (requests are answered one at a time): a scrape then allocates its metric values, not a growing buffer.</summary>
    private readonly MemoryStream _body = new();

    /// <summary>Binds <paramref name="endpoint"/> (connections wait until <see cref="Serve"/>); throws <see cref="VSwitchException"/> with the reason when it cannot bind.</summary>
    public MetricsServer(MetricsEndpoint endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        Endpoint = endpoint;
        string port = endpoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (endpoint.IsAny)
        {
            _listener.Prefixes.Add($"http://+:{port}/");
        }
        else
        {
            _listener.Prefixes.Add($"http://{endpoint.Address}:{port}/");
            if (endpoint.Address.Equals(IPAddress.Loopback))
            {
                _listener.Prefixes.Add($"http://localhost:{port}/");
            }
        }

        try
        {
            _listener.Start();
        }
        catch (HttpListenerException e)
        {
            _listener.Close();
            throw new VSwitchException($"metrics {endpoint}: {e.Message}");
        }
    }

    public MetricsEndpoint Endpoint { get; }

    /// <summary>The address to scrape.</summary>
    public string Url => $"http://{Endpoint}{Path}";

    /// <summary>Starts answering scrapes with <paramref name="registry"/>'s metrics.</summary>
    public void Serve(CollectorRegistry registry)
    {
        _registry = registry ?? throw new ArgumentNullException(nameof(registry));
        _loop = Task.Run(ServeAsync);
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // stopped
            }

            // One request at a time: scrapes are rare, the body is written from memory, and a flood
            // of connections then costs one collection at a time, not one per connection at once.
            await RespondAsync(context).ConfigureAwait(false);
        }
    }

    private async Task RespondAsync(HttpListenerContext context)
    {
        var response = context.Response;
        try
        {
            var request = context.Request;
            if (request.Url?.AbsolutePath != Path)
            {
                response.StatusCode = 404;
            }
            else if (request.HttpMethod is not ("GET" or "HEAD"))
            {
                response.StatusCode = 405;
                response.AddHeader("Allow", "GET, HEAD");
            }
            else
            {
                // Collect into memory first: a failure then becomes a 500, not a cut-off 200.
                _body.SetLength(0);
                await _registry!.CollectAndExportAsTextAsync(_body).ConfigureAwait(false);
                response.StatusCode = 200;
                response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                response.ContentLength64 = _body.Length;
                if (request.HttpMethod == "GET")
                {
                    await response.OutputStream.WriteAsync(_body.GetBuffer().AsMemory(0, (int)_body.Length)).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A scrape must never take the switch down: answer 500 if the headers are not out yet.
            try
            {
                response.StatusCode = 500;
            }
            catch (InvalidOperationException)
            {
            }

            Console.Error.WriteLine($"vswitchd: metrics: {e.GetType().Name}: {e.Message}");
        }
        finally
        {
            try
            {
                response.Close();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or IOException)
            {
                // the client went away
            }
        }
    }

    /// <summary>Stops listening and waits (up to 5 s) for a request being answered, so no scrape reads a stopped datapath.</summary>
    public void Dispose()
    {
        _listener.Close();
        try
        {
            _loop?.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }

        _body.Dispose();
    }
}
