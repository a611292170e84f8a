// SystemdTests.cs - vswitchd under systemd: the unit file systemd-analyze accepts, and the
// sd_notify readiness protocol (READY=1 only once forwarding runs, STOPPING=1 at exit), checked
// by a test that plays systemd's part with its own NOTIFY_SOCKET.
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace VSwitch.Tests;

public sealed class SystemdUnitTests
{
    [Fact]
    public void The_rendered_unit_passes_systemd_analyze_verify()
    {
        string root = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../.."));
        string unit = Path.Combine(Path.GetTempPath(), $"vswitchd-{Environment.ProcessId}.service");
        try
        {
            using (var r = Process.Start("bash", [Path.Combine(root, "scripts/install-service"), "--render-only", unit])!)
            {
                Assert.True(r.WaitForExit(30_000));
                Assert.Equal(0, r.ExitCode);
            }

            string text = File.ReadAllText(unit);
            Assert.Contains("Type=notify", text, StringComparison.Ordinal);
            Assert.Contains($"ExecStart={root}/out/vswitchd/vswitchd --config /etc/vswitch/vswitchd.json", text, StringComparison.Ordinal);
            Assert.DoesNotContain("@ROOT@", text, StringComparison.Ordinal);

            var psi = new ProcessStartInfo("systemd-analyze", ["verify", unit]) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            using var p = Process.Start(psi)!;
            string err = p.StandardError.ReadToEnd() + p.StandardOutput.ReadToEnd();
            Assert.True(p.WaitForExit(60_000));
            // systemd-analyze exits 0 on ignored lines too: any complaint about the unit counts.
            Assert.True(p.ExitCode == 0 && !err.Contains(Path.GetFileName(unit), StringComparison.Ordinal), err);
        }
        finally
        {
            File.Delete(unit);
        }
    }
}

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class SystemdNotifyDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-notify-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Readiness_is_sent_once_forwarding_runs_and_stopping_at_exit()
    {
        string path = Path.Combine(_dir, "notify");
        using var listen = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { ReceiveTimeout = 60_000 };
        listen.Bind(new UnixDomainSocketEndPoint(path));
        using var sw = new RunningSwitch(["--stats-interval", "0", "--control", Path.Combine(_dir, "vsw.sock"),
            "--port", "a=net_null0,no-rx=1", "--port", "b=net_null1,no-rx=1"], new Dictionary<string, string> { ["NOTIFY_SOCKET"] = path });
        var buf = new byte[4096];
        int n = listen.Receive(buf);
        string ready = Encoding.UTF8.GetString(buf, 0, n);
        // systemd would now call the service started: the switch must already serve its socket (no
        // retry here) with its PMD running, and have printed its start-up lines.
        var show = ControlClient.Request(Path.Combine(_dir, "vsw.sock"), "show", []);
        Assert.True(show["ok"]!.GetValue<bool>(), show.ToJsonString());
        Assert.Equal(2, show["result"]!["ports"]!.AsArray().Count);
        Assert.Single(show["result"]!["pmds"]!.AsArray());
        sw.WaitFor("vswitchd: forwarding in l2fwd mode", seconds: 5);
        Assert.Contains("READY=1\n", ready, StringComparison.Ordinal);
        Assert.Contains($"MAINPID={sw.Pid}", ready, StringComparison.Ordinal);
        Assert.Contains("STATUS=forwarding in l2fwd mode, 2 ports, 1 PMDs", ready, StringComparison.Ordinal);

        var stopTask = Task.Run(() => sw.Stop("TERM"));
        n = listen.Receive(buf);
        Assert.StartsWith("STOPPING=1", Encoding.UTF8.GetString(buf, 0, n), StringComparison.Ordinal);
        var r = await stopTask;
        Assert.True(r.ExitCode == 0, r.ToString());
    }
}
