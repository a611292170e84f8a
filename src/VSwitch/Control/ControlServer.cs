// ControlServer.cs - the control socket: a Unix domain socket (mode 0660) speaking newline-
// delimited JSON, served off the PMD cores (the threads that serve it inherit the main thread's
// affinity, which the EAL pinned to the main lcore).
//
// Protocol v1 (docs/CONTROL.md): request {"v":1,"id":<any>,"cmd":"<name>","args":{...}}; response
// {"v":1,"id":<same>,"ok":true,"result":{...}} or {"v":1,"id":<same>,"ok":false,"error":"<text>"}.
// Every client is read with System.IO.Pipelines; a request line longer than MaxRequestBytes, invalid
// UTF-8 or JSON, or an unknown command gets an error response (and an oversized one closes the
// connection); a client that sends nothing for IdleTimeout is disconnected. One slow or hostile
// client never blocks another: each has its own task, and commands run one at a time.
using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

using VSwitch.Datapath;

namespace VSwitch.Control;

public sealed class ControlServer : IAsyncDisposable
{
    public const int MaxRequestBytes = 1 << 20;
    public const int ProtocolVersion = 1;
    private static readonly UTF8Encoding s_strictUtf8 = new(false, throwOnInvalidBytes: true);
    private readonly Socket _listener;
    private readonly Func<string, JsonObject, ControlSession, JsonNode?> _execute;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private readonly Task _acceptLoop;

    /// <param name="path">Socket path; its directory is created (0750) if needed.</param>
    /// <param name="execute">Runs one command for a connection's session; throws <see cref="VSwitchException"/> for a refused request.</param>
    public ControlServer(string path, Func<string, JsonObject, ControlSession, JsonNode?> execute)
    {
        Path = path;
        _execute = execute;
        Notice = Interop.UnixSocketFile.PrepareToServe(null, "control socket", path);
        _listener = Interop.UnixSocketFile.CreateWithMode(path, enforce: true, () =>
        {
            var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            s.Bind(new UnixDomainSocketEndPoint(path));
            return s;
        });
        _listener.Listen(64);
        _acceptLoop = Task.Run(AcceptLoop);
    }

    public string Path { get; }

    /// <summary>
    /// Sends a few harmless requests to this server over its own socket, as a client would (show,
    /// a dump-flows that selects nothing, pmd-stats-show, and a flow transaction that is aborted), so the socket, JSON and
    /// command code is compiled before the first operator's request: vswitchd runs without tiered
    /// compilation, and the first request after a start otherwise waited about 50 ms for the JIT.
    /// Changes nothing but the transaction counter. Returns null, or what went wrong (not fatal).
    /// </summary>
    public string? WarmUp()
    {
        try
        {
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 10_000, SendTimeout = 10_000 };
            s.Connect(new UnixDomainSocketEndPoint(Path));
            using var stream = new NetworkStream(s);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            JsonNode? Ask(string cmd, JsonObject? args = null)
            {
                var req = new JsonObject { ["v"] = ProtocolVersion, ["id"] = "warm-up", ["cmd"] = cmd, ["args"] = args ?? [] };
                stream.Write(Encoding.UTF8.GetBytes(req.ToJsonString() + "\n"));
                return JsonNode.Parse(reader.ReadLine() ?? throw new IOException("the server closed the connection"));
            }

            Ask("show");
            Ask("dump-flows", new JsonObject { ["match"] = "table=254,cookie=0x5157a2f9e0d4c1b3/-1" }); // selects nothing: a restored 200 000-rule table is not formatted
            Ask("pmd-stats-show");
            var begin = Ask("flows-begin", new JsonObject { ["op"] = "add", ["origin"] = "warm-up" });
            if (begin?["result"]?["txn"] is JsonValue txn && txn.TryGetValue(out long id)) // pipeline mode only
            {
                Ask("flows-chunk", new JsonObject { ["txn"] = id, ["line"] = 1, ["flow"] = "table=0,priority=1,ip,nw_dst=10.0.0.1,actions=drop\n" });
                Ask("flows-abort", new JsonObject { ["txn"] = id });
            }

            return null;
        }
        catch (Exception e)
        {
            return e.Message; // best effort: the switch serves without it, only the first request is slower
        }
    }

    /// <summary>A stale socket file was removed at start-up (or null).</summary>
    public string? Notice { get; }

    public static TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(Socket client)
    {
        using var _ = client;
        var session = new ControlSession(); // dropped with the connection (an open flow transaction with it)
        await using var stream = new NetworkStream(client, ownsSocket: false);
        var reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024));
        try
        {
            while (true)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                idle.CancelAfter(IdleTimeout);
                ReadResult read;
                try
                {
                    read = await reader.ReadAsync(idle.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return; // idle or shutting down
                }

                var buffer = read.Buffer;
                while (TryReadLine(ref buffer, out var line))
                {
                    if (line.Length > MaxRequestBytes)
                    {
                        await Send(stream, Error(null, $"request of {line.Length} bytes is over the limit of {MaxRequestBytes}")).ConfigureAwait(false);
                        return;
                    }

                    var response = await Handle(line.ToArray(), session).ConfigureAwait(false);
                    await Send(stream, response).ConfigureAwait(false);
                }

                if (buffer.Length > MaxRequestBytes)
                {
                    await Send(stream, Error(null, $"request over the limit of {MaxRequestBytes} bytes (no newline)")).ConfigureAwait(false);
                    return;
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
                if (read.IsCompleted)
                {
                    if (buffer.Length > 0)
                    {
                        await Send(stream, Error(null, "truncated request: the connection closed before the newline")).ConfigureAwait(false);
                    }

                    return;
                }
            }
        }
        catch (IOException)
        {
            // client went away
        }
        finally
        {
            session.Close();
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private static bool TryReadLine(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> line)
    {
        var pos = buffer.PositionOf((byte)'\n');
        if (pos == null)
        {
            line = default;
            return false;
        }

        line = buffer.Slice(0, pos.Value);
        buffer = buffer.Slice(buffer.GetPosition(1, pos.Value));
        return true;
    }

    private async Task<JsonObject> Handle(byte[] bytes, ControlSession session)
    {
        using var quiet = GcQuiet.Enter(); // a request may build a large table: short collections while it runs
        string text;
        try
        {
            text = s_strictUtf8.GetString(bytes).TrimEnd('\r');
        }
        catch (DecoderFallbackException)
        {
            return Error(null, "request is not valid UTF-8");
        }

        JsonObject req;
        try
        {
            req = JsonNode.Parse(text) as JsonObject ?? throw new JsonException("expected a JSON object");
        }
        catch (JsonException e)
        {
            return Error(null, $"request is not valid JSON: {e.Message.Split(". ")[0]}");
        }

        var id = req["id"]?.DeepClone();
        if (req["v"] is not JsonValue v || !v.TryGetValue(out int version) || version != ProtocolVersion)
        {
            return Error(id, $"unsupported or missing protocol version \"v\" (this switch speaks {ProtocolVersion})");
        }

        if (req["cmd"] is not JsonValue c || !c.TryGetValue(out string? cmd) || string.IsNullOrEmpty(cmd))
        {
            return Error(id, "missing \"cmd\"");
        }

        var args = req["args"] as JsonObject ?? [];
        await _oneAtATime.WaitAsync().ConfigureAwait(false);
        try
        {
            var result = _execute(cmd, args, session);
            return new JsonObject { ["v"] = ProtocolVersion, ["id"] = id, ["ok"] = true, ["result"] = result };
        }
        catch (VSwitchException e)
        {
            return Error(id, e.Message);
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    private static JsonObject Error(JsonNode? id, string message) =>
        new() { ["v"] = ProtocolVersion, ["id"] = id, ["ok"] = false, ["error"] = message };

    private static async Task Send(Stream stream, JsonObject response)
    {
        var bytes = Encoding.UTF8.GetBytes(response.ToJsonString() + "\n");
        await stream.WriteAsync(bytes).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        try
        {
            await _acceptLoop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        File.Delete(Path);
        _stop.Dispose();
        _oneAtATime.Dispose();
    }
}
