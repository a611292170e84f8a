// LossyHitlessDpdkTests.cs - "no packet lost while tables are replaced", measured at a source that
// can lose packets: a UDP sender in one network namespace (198.51.100.1) at a fixed rate through a
// veth into vswitchd's net_af_packet port, and a receiver in another (198.51.100.2) counting sequence
// numbers. A stalled PMD shows as a full af_packet ring (dropped by the kernel, counted by the
// driver as imissed) and as missing sequence numbers at the receiver; both must be 0 while 10 000-
// rule tables are replaced under the traffic.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Xunit;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class LossyHitlessDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-lossy-").FullName;
    private readonly string _tag = $"vl{Environment.ProcessId % 10000}";

    public LossyHitlessDpdkTests() => Cleanup();

    public void Dispose()
    {
        Cleanup();
        Directory.Delete(_dir, recursive: true);
    }

    private string P(string name) => Path.Combine(_dir, name);

    private void Cleanup()
    {
        foreach (var ns in new[] { $"{_tag}a", $"{_tag}b" })
        {
            Sh($"ip netns del {ns}", check: false);
        }

        foreach (var dev in new[] { $"{_tag}a", $"{_tag}b" })
        {
            Sh($"ip link del {dev}", check: false);
        }
    }

    private static string Sh(string cmd, bool check = true)
    {
        var psi = new ProcessStartInfo("bash", ["-c", cmd]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string o = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(30_000), $"hung: {cmd}");
        if (check)
        {
            Assert.True(p.ExitCode == 0, $"{cmd}: {o}");
        }

        return o;
    }

    private static string Rules(int n, int outPort)
    {
        var sb = new StringBuilder("table=0,priority=10,in_port=1,actions=output:2\ntable=0,priority=10,in_port=2,actions=output:1\n");
        for (int i = 0; i < n; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"table=0,priority=100,ip,nw_dst=10.{i >> 8 & 255}.{i & 255}.1,actions=output:{outPort}\n");
        }

        return sb.ToString();
    }

    [Fact]
    public void Replacing_10000_rule_tables_under_traffic_loses_no_packet_at_a_source_that_can_lose_them()
    {
        // Two namespaces, each behind a veth whose outer end is an af_packet port of the switch.
        var mac = new Dictionary<string, string>();
        foreach (var (side, ip) in new[] { ("a", "198.51.100.1"), ("b", "198.51.100.2") })
        {
            string ns = _tag + side, dev = _tag + side;
            Sh($"ip netns add {ns} && ip link add {dev} type veth peer name {dev}p && ip link set {dev}p netns {ns}"
                + $" && ip -n {ns} addr add {ip}/24 dev {dev}p && ip -n {ns} link set {dev}p up && ip -n {ns} link set lo up && ip link set {dev} up");
            mac[side] = Sh($"ip -n {ns} -o link show {dev}p").Split("link/ether ")[1].Split(' ')[0];
        }

        Sh($"ip -n {_tag}a neigh add 198.51.100.2 lladdr {mac["b"]} dev {_tag}ap nud permanent");
        Sh($"ip -n {_tag}b neigh add 198.51.100.1 lladdr {mac["a"]} dev {_tag}bp nud permanent");
        File.WriteAllText(P("v1.txt"), Rules(10_000, 1));
        File.WriteAllText(P("v2.txt"), Rules(10_000, 2));
        using var sw = new RunningSwitch(["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"), "--flows", P("v1.txt"),
            "--port", $"a=net_af_packet0,iface={_tag}a,qdisc_bypass=1,framecnt=2048", "--port", $"b=net_af_packet1,iface={_tag}b,qdisc_bypass=1,framecnt=2048"]);
        sw.WaitFor("port b link up");

        // The receiver counts distinct sequence numbers; the sender paces 20 000 datagrams a second
        // for 6 s and counts what the kernel refused to take (ENOBUFS).
        File.WriteAllText(P("rx.py"), """
            import socket, struct, sys, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            s.bind(("198.51.100.2", 9999)); s.settimeout(3.0)
            seen = set()
            print("ready", flush=True)
            try:
                while True:
                    d, _ = s.recvfrom(64); seen.add(struct.unpack("!Q", d[:8])[0])
            except socket.timeout:
                pass
            print("received %d max %d" % (len(seen), max(seen) if seen else -1), flush=True)
            """.Replace("\n            ", "\n", StringComparison.Ordinal));
        File.WriteAllText(P("tx.py"), """
            import socket, struct, time, errno
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, 11, 1)  # SO_NO_CHECK: no UDP checksum, so no veth checksum offload left undone
            rate, secs, batch = 20000, 6.0, 50
            n, refused, t0 = int(rate * secs), 0, time.monotonic()
            for i in range(n):
                if i % batch == 0:
                    due = t0 + i / rate
                    d = due - time.monotonic()
                    if d > 0: time.sleep(d)
                try: s.sendto(struct.pack("!Q", i) + bytes(24), ("198.51.100.2", 9999))
                except OSError as e: refused += 1
            print("sent %d refused %d" % (n, refused), flush=True)
            """.Replace("\n            ", "\n", StringComparison.Ordinal));
        var rx = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", _tag + "b", "python3", P("rx.py")]) { RedirectStandardOutput = true })!;
        Assert.Equal("ready", rx.StandardOutput.ReadLine());
        var tx = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", _tag + "a", "python3", P("tx.py")]) { RedirectStandardOutput = true })!;

        // Replace the 10 000-rule table back and forth while the traffic runs.
        int replaces = 0;
        Thread.Sleep(1000);
        while (!tx.HasExited && replaces < 8)
        {
            var r = ControlClient.Vswitchctl(P("ctl.sock"), "replace-flows", P(replaces % 2 == 0 ? "v2.txt" : "v1.txt"));
            Assert.True(r.Exit == 0, r.Err);
            replaces++;
            Thread.Sleep(300);
        }

        Assert.True(tx.WaitForExit(60_000), "sender hung");
        string sent = tx.StandardOutput.ReadToEnd().Trim();
        Assert.True(rx.WaitForExit(60_000), "receiver hung");
        string got = rx.StandardOutput.ReadToEnd().Trim();
        var res = sw.Stop();
        Assert.True(res.ExitCode == 0, res.ToString());
        Assert.True(replaces >= 4, $"only {replaces} replaces happened during the traffic");
        Assert.Equal("sent 120000 refused 0", sent);
        Assert.True(got == "received 120000 max 119999", $"{got} (sender: {sent}); {replaces} replaces\n{res}");
        Assert.Equal("0", res.Field("final: port a ", "hw_imissed"));
        Assert.Equal("0", res.Field("final: mbufs", "leaked"));
    }
}
