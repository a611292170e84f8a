// Vswitchd.cs - runs the real vswitchd binary (built next to the tests) with a hard timeout.
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace VSwitch.Tests;

internal sealed record RunResult(int ExitCode, string Stdout, string Stderr, bool TimedOut)
{
    /// <summary>The value of key=value on the first stdout line starting with <paramref name="linePrefix"/>.</summary>
    public string Field(string linePrefix, string key)
    {
        var line = Stdout.Split('\n').FirstOrDefault(l => l.StartsWith(linePrefix, StringComparison.Ordinal))
            ?? throw new Xunit.Sdk.XunitException($"no line starting '{linePrefix}' in:\n{this}");
        var m = Regex.Match(line, $@"(?:^|\s){Regex.Escape(key)}=(\S+)");
        return m.Success ? m.Groups[1].Value : throw new Xunit.Sdk.XunitException($"no {key}= in '{line}'");
    }

    public override string ToString() => $"exit={ExitCode} timedOut={TimedOut}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

internal static class Vswitchd
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "vswitchd.dll");

    /// <summary>Starts vswitchd; inside network namespace <paramref name="netns"/> when given (`ip netns exec`
    /// execs dotnet in place, so the process is still the one to signal).</summary>
    public static Process Start(IEnumerable<string> args, Dictionary<string, string>? env = null, string? netns = null)
    {
        var psi = new ProcessStartInfo(netns == null ? "dotnet" : "ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (netns != null)
        {
            foreach (var a in new[] { "netns", "exec", netns, "dotnet" })
            {
                psi.ArgumentList.Add(a);
            }
        }

        psi.ArgumentList.Add(Dll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in env ?? [])
        {
            psi.Environment[k] = v;
        }

        return Process.Start(psi)!;
    }

    public static RunResult Run(IEnumerable<string> args, int timeoutSeconds = 60, Dictionary<string, string>? env = null)
    {
        using var p = Start(args, env);
        return Collect(p, timeoutSeconds);
    }

    public static RunResult Collect(Process p, int timeoutSeconds)
    {
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data != null) { lock (stdout) { stdout.AppendLine(e.Data); } } };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) { lock (stderr) { stderr.AppendLine(e.Data); } } };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        bool done = p.WaitForExit(timeoutSeconds * 1000);
        if (!done)
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }

        p.WaitForExit(); // drain async readers
        return new RunResult(done ? p.ExitCode : -1, stdout.ToString(), stderr.ToString(), !done);
    }

    /// <summary>Sends a POSIX signal to a process we started.</summary>
    public static void Signal(Process p, string signal)
    {
        using var k = Process.Start("kill", ["-" + signal, p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        k.WaitForExit();
    }
}

/// <summary>A vswitchd running in the background whose output the test can wait on.</summary>
internal sealed class RunningSwitch : IDisposable
{
    private readonly Process _p;
    private readonly StringBuilder _out = new();
    private readonly StringBuilder _err = new();

    public RunningSwitch(IEnumerable<string> args, Dictionary<string, string>? env = null, string? netns = null)
    {
        _p = Vswitchd.Start(args, env, netns);
        _p.OutputDataReceived += (_, e) => { if (e.Data != null) { lock (_out) { _out.AppendLine(e.Data); } } };
        _p.ErrorDataReceived += (_, e) => { if (e.Data != null) { lock (_err) { _err.AppendLine(e.Data); } } };
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
    }

    public string Output { get { lock (_out) { return _out.ToString(); } } }

    public int Pid => _p.Id;

    /// <summary>Waits until stdout matches <paramref name="pattern"/> <paramref name="count"/> times.</summary>
    public void WaitFor(string pattern, int count = 1, int seconds = 30)
    {
        var end = DateTime.UtcNow.AddSeconds(seconds);
        while (Regex.Matches(Output, pattern).Count < count)
        {
            if (_p.HasExited || DateTime.UtcNow > end)
            {
                throw new Xunit.Sdk.XunitException($"vswitchd: no {count} x '{pattern}' within {seconds} s\n{Output}\n{_err}");
            }

            Thread.Sleep(50);
        }
    }

    /// <summary>SIGINT (or <paramref name="signal"/>), wait, and return the whole run.</summary>
    public RunResult Stop(string signal = "INT")
    {
        Vswitchd.Signal(_p, signal);
        bool done = _p.WaitForExit(30_000);
        if (!done)
        {
            _p.Kill(entireProcessTree: true);
        }

        _p.WaitForExit();
        return new RunResult(done ? _p.ExitCode : -1, Output, _err.ToString(), !done);
    }

    public void Dispose()
    {
        if (!_p.HasExited)
        {
            _p.Kill(entireProcessTree: true);
            _p.WaitForExit();
        }

        _p.Dispose();
    }
}

/// <summary>DPDK tests start real DPDK processes; run them one at a time (they share the PMD core).</summary>
[CollectionDefinition("dpdk", DisableParallelization = true)]
public sealed class DpdkCollection;

/// <summary>Talks to a running vswitchd's control socket: through the real vswitchctl, or raw JSON lines.</summary>
internal static class ControlClient
{
    /// <summary>Runs vswitchctl against <paramref name="socket"/>; returns its exit code and output.</summary>
    public static (int Exit, string Out, string Err) Vswitchctl(string socket, params string[] args) => VswitchctlWithStdin(socket, null, args);

    private static readonly Lazy<string> s_shipped = new(FindShipped);

    /// <summary>
    /// The vswitchctl that operators run: the native (ahead-of-time compiled) program scripts/setup
    /// publishes to out/vswitchctl. Every test goes through it, so the whole suite checks that the
    /// native compile kept what the client needs. It must not be older than the IL build of the same
    /// sources beside the tests (a `dotnet build` without scripts/setup): that fails, naming the fix.
    /// </summary>
    private static string FindShipped()
    {
        string exe = Path.Combine(Differential.PrivateOvs.RepoRoot(), "out", "vswitchctl", "vswitchctl");
        if (!File.Exists(exe))
        {
            throw new InvalidOperationException($"{exe} is missing: run scripts/setup (it publishes the native vswitchctl)");
        }

        string il = Path.Combine(AppContext.BaseDirectory, "vswitchctl.dll");
        if (File.Exists(il) && File.GetLastWriteTimeUtc(il) > File.GetLastWriteTimeUtc(exe).AddSeconds(5))
        {
            throw new InvalidOperationException($"{exe} is older than {il}: run scripts/setup to publish the native vswitchctl again");
        }

        return exe;
    }

    /// <summary>As <see cref="Vswitchctl(string, string[])"/> with <paramref name="stdin"/> as its standard input.</summary>
    public static (int Exit, string Out, string Err) VswitchctlWithStdin(string socket, string? stdin, params string[] args)
    {
        var psi = new ProcessStartInfo(s_shipped.Value) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin != null, UseShellExecute = false };
        psi.ArgumentList.Add("--socket");
        psi.ArgumentList.Add(socket);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        if (stdin != null)
        {
            try
            {
                p.StandardInput.Write(stdin);
                p.StandardInput.Close();
            }
            catch (IOException)
            {
                // vswitchctl stopped reading (a refused chunk ends the transfer)
            }
        }

        Xunit.Assert.True(p.WaitForExit(60_000), "vswitchctl hung");
        return (p.ExitCode, o.Result, e.Result);
    }

    public static Socket Connect(string socket)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 60_000 };
        s.Connect(new UnixDomainSocketEndPoint(socket));
        return s;
    }

    /// <summary>Sends <paramref name="bytes"/> (may be empty) and reads one response line.</summary>
    public static JsonObject Raw(Socket s, byte[] bytes)
    {
        if (bytes.Length > 0)
        {
            s.Send(bytes);
        }

        var buf = new byte[1 << 16];
        var ms = new MemoryStream();
        while (Array.IndexOf(ms.GetBuffer(), (byte)'\n', 0, (int)ms.Length) < 0)
        {
            int n = s.Receive(buf);
            if (n == 0)
            {
                break;
            }

            ms.Write(buf, 0, n);
        }

        var line = Encoding.UTF8.GetString(ms.GetBuffer(), 0, (int)ms.Length).Split('\n')[0];
        return JsonNode.Parse(line)!.AsObject();
    }

    /// <summary>Polls <paramref name="cond"/> (a reading over the socket, say) until it holds; fails after 10 s naming <paramref name="what"/>.</summary>
    public static void Eventually(Func<bool> cond, string what)
    {
        var end = DateTime.UtcNow.AddSeconds(10);
        while (!cond())
        {
            Xunit.Assert.True(DateTime.UtcNow < end, $"timed out waiting for: {what}");
            Thread.Sleep(50);
        }
    }

    /// <summary>A port's tx_packets from dump-ports.</summary>
    public static ulong PortTx(string socket, string port) =>
        Request(socket, "dump-ports", [])["result"]!["ports"]!.AsArray().Single(p => (string)p!["name"]! == port)!["tx_packets"]!.GetValue<ulong>();

    /// <summary>One request on a new connection: {"v":1,"id":1,"cmd":...,"args":...}.</summary>
    public static JsonObject Request(string socket, string cmd, JsonObject args)
    {
        using var s = Connect(socket);
        return Raw(s, Encoding.UTF8.GetBytes(new JsonObject { ["v"] = 1, ["id"] = 1, ["cmd"] = cmd, ["args"] = args }.ToJsonString() + "\n"));
    }
}
