// End-to-end tests of vhost-user ports: dpdk-testpmd processes with virtio-user ports stand in
// for VMs. Both "VMs" and the switch's control thread share core 0; the PMD runs on core 1.
using System.Globalization;
using System.Net.Sockets;
using VSwitch.Ports;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class VhostDpdkTests : IDisposable
{
    // virtio rings hold 256 descriptors by default: at most that many packets can be in flight on a
    // ring when a peer stops, so end-to-end counts may differ by up to a ring per hop.
    private const long RingSlack = 2 * 256;
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-vhost-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Sock(string name) => Path.Combine(_dir, name + ".sock");

    private static long Field(RunResult r, string port, string key) =>
        long.Parse(r.Field($"final: port {port} ", key), CultureInfo.InvariantCulture);

    [Fact]
    public void Two_vms_exchange_traffic_both_ways_and_the_counts_match_end_to_end()
    {
        using var sw = new RunningSwitch(["--stats-interval", "0", "--no-mac-rewrite",
            "--port", $"vhu0=net_vhost0,iface={Sock("vhu0")}", "--port", $"vhu1=net_vhost1,iface={Sock("vhu1")}"]);
        sw.WaitFor("vswitchd: forwarding");
        Assert.Equal(VSwitch.Interop.UnixSocketFile.Mode, File.GetUnixFileMode(Sock("vhu0")) & (UnixFileMode)0x1FF);
        // the shim's direct vhost path serves both queues of each port (not net_vhost's rx/tx)
        Assert.Contains("vswitchd: port vhu0 dpdk_port=0 driver=net_vhost", sw.Output, StringComparison.Ordinal);
        Assert.Matches(@"port vhu0 .* direct_queues=2 ", sw.Output);
        Assert.Matches(@"port vhu1 .* direct_queues=2 ", sw.Output);

        using var vmA = new Testpmd([$"net_virtio_user0,path={Sock("vhu0")}"]);
        using var vmB = new Testpmd([$"net_virtio_user0,path={Sock("vhu1")}"]);
        vmA.WaitForwarding();
        vmB.WaitForwarding();
        sw.WaitFor("port vhu0 link up");
        sw.WaitFor("port vhu1 link up");
        Thread.Sleep(3000);
        var a = vmA.Stop()[0];
        var b = vmB.Stop()[0];
        sw.WaitFor("port vhu0 link down");
        sw.WaitFor("port vhu1 link down");
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());

        Assert.True(a.Tx > 10_000 && b.Tx > 10_000, $"too little traffic: A tx {a.Tx}, B tx {b.Tx}");
        Assert.True(a.Rx > 1_000 && b.Rx > 1_000, $"a direction carried nothing: A rx {a.Rx}, B rx {b.Rx}");
        // A -> vhu0 -> switch -> vhu1 -> B, and back.
        Assert.InRange(Field(r, "vhu0", "rx"), a.Tx - RingSlack, a.Tx);
        Assert.InRange(Field(r, "vhu1", "rx"), b.Tx - RingSlack, b.Tx);
        Assert.Equal(Field(r, "vhu0", "rx"), Field(r, "vhu1", "tx") + Field(r, "vhu1", "tx_drops"));
        Assert.Equal(Field(r, "vhu1", "rx"), Field(r, "vhu0", "tx") + Field(r, "vhu0", "tx_drops"));
        Assert.InRange(b.Rx, Field(r, "vhu1", "tx") - RingSlack, Field(r, "vhu1", "tx"));
        Assert.InRange(a.Rx, Field(r, "vhu0", "tx") - RingSlack, Field(r, "vhu0", "tx"));
        // the device's own counters (kept by the direct path in net_vhost's queue stats) agree
        foreach (var port in new[] { "vhu0", "vhu1" })
        {
            Assert.Equal(Field(r, port, "rx"), Field(r, port, "hw_ipackets"));
            Assert.Equal(Field(r, port, "tx"), Field(r, port, "hw_opackets"));
        }

        Assert.Equal("0", r.Field("final: pmd 0", "alloc_bytes"));
        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
    }

    [Fact]
    public void Server_mode_a_vm_that_crashes_and_restarts_gets_traffic_again_without_restarting_the_switch()
    {
        using var sw = new RunningSwitch(["--stats-interval", "0",
            "--port", $"vhu0=net_vhost0,iface={Sock("vhu0")}", "--port", $"vhu1=net_vhost1,iface={Sock("vhu1")}"]);
        sw.WaitFor("vswitchd: forwarding");
        using var vmB = new Testpmd([$"net_virtio_user0,path={Sock("vhu1")}"]);
        using (var vmA1 = new Testpmd([$"net_virtio_user0,path={Sock("vhu0")}"]))
        {
            vmA1.WaitForwarding();
            vmB.WaitForwarding();
            sw.WaitFor("port vhu0 link up");
            Thread.Sleep(1500);
            vmA1.Kill(); // mid-traffic
        }

        sw.WaitFor("port vhu0 link down");
        Thread.Sleep(500); // the switch keeps running with one VM gone
        using var vmA2 = new Testpmd([$"net_virtio_user0,path={Sock("vhu0")}"]);
        vmA2.WaitForwarding();
        sw.WaitFor("port vhu0 link up", count: 2);
        Thread.Sleep(2000);
        var a2 = vmA2.Stop()[0];
        vmB.Stop();
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.True(a2.Rx > 1_000, $"the restarted VM received {a2.Rx} packets");
        Assert.True(a2.Tx > 1_000, $"the restarted VM sent {a2.Tx} packets");
        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
    }

    [Fact]
    public void Client_mode_the_switch_reconnects_by_itself_when_the_vm_comes_back()
    {
        // The VMs own the sockets (QEMU server=on); testpmd waits for the switch to connect.
        using var vmA1 = new Testpmd([$"net_virtio_user0,path={Sock("vm0")},server=1"]);
        using var vmB = new Testpmd([$"net_virtio_user0,path={Sock("vm1")},server=1"]);
        WaitForSocket(Sock("vm0"));
        WaitForSocket(Sock("vm1"));
        using var sw = new RunningSwitch(["--stats-interval", "0",
            "--port", $"vhu0=net_vhost0,iface={Sock("vm0")},client=1", "--port", $"vhu1=net_vhost1,iface={Sock("vm1")},client=1"]);
        vmA1.WaitForwarding();
        vmB.WaitForwarding();
        sw.WaitFor("port vhu0 link up");
        Thread.Sleep(1500);
        vmA1.Kill();
        sw.WaitFor("port vhu0 link down");
        File.Delete(Sock("vm0")); // QEMU would recreate it too
        using var vmA2 = new Testpmd([$"net_virtio_user0,path={Sock("vm0")},server=1"]);
        sw.WaitFor("port vhu0 link up", count: 2, seconds: 60);
        vmA2.WaitForwarding();
        Thread.Sleep(2000);
        var a2 = vmA2.Stop()[0];
        vmB.Stop();
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.True(a2.Rx > 1_000 && a2.Tx > 1_000, $"after reconnecting: rx {a2.Rx}, tx {a2.Tx}");
        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
    }

    [Fact]
    public void Multi_queue_every_queue_the_guest_enables_carries_traffic()
    {
        using var sw = new RunningSwitch(["--stats-interval", "0", "--control", "none", "--no-mac-rewrite",
            "--port", $"vhu0=net_vhost0,iface={Sock("mq0")},queues=2", "--rxq", "vhu0=2",
            "--port", $"vhu1=net_vhost1,iface={Sock("mq1")},queues=2", "--rxq", "vhu1=2"]);
        sw.WaitFor("vswitchd: forwarding");
        Assert.Contains("rxqs=vhu0:0,vhu0:1,vhu1:0,vhu1:1", sw.Output, StringComparison.Ordinal);
        var q = System.Text.RegularExpressions.Regex.Match(sw.Output, @"port vhu0 .* rxq=2 txq=(\d+) direct_queues=(\d+) ");
        Assert.True(q.Success, sw.Output);
        Assert.Equal(2 + int.Parse(q.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(q.Groups[2].Value, CultureInfo.InvariantCulture));
        using var vm = new Testpmd([$"net_virtio_user0,path={Sock("mq0")},queues=2", $"net_virtio_user1,path={Sock("mq1")},queues=2"], queues: 2);
        vm.WaitForwarding();
        sw.WaitFor("port vhu1 link up");
        Thread.Sleep(2000);
        var counts = vm.Stop();
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.True(counts[0].Rx > 1_000 && counts[1].Rx > 1_000, $"VM rx {counts[0].Rx} / {counts[1].Rx}");
        // Both queue pairs of each port are assigned to the PMD (checked above) and traffic crossed both
        // ports. (Per-queue counters are not exported yet, so which queue carried what is not checked.)
        foreach (var port in new[] { "vhu0", "vhu1" })
        {
            Assert.Matches($@"final: port {port} rx=[1-9]", r.Stdout);
        }

        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
    }

    private static void WaitForSocket(string path)
    {
        var end = DateTime.UtcNow.AddSeconds(30);
        while (!File.Exists(path))
        {
            Assert.True(DateTime.UtcNow < end, $"{path} did not appear");
            Thread.Sleep(50);
        }
    }

    [Fact]
    public void A_stale_socket_file_is_removed_with_a_notice()
    {
        var path = Sock("stale");
        // A process that binds, listens and dies leaves the file behind (.NET would unlink it on dispose).
        using (var py = System.Diagnostics.Process.Start("python3",
                   ["-c", $"import socket; s = socket.socket(socket.AF_UNIX); s.bind('{path}'); s.listen()"])!)
        {
            py.WaitForExit();
        }

        Assert.True(File.Exists(path));
        var notice = VhostUser.PrepareServerSocket("vhu0", path);
        Assert.Contains("removed stale vhost-user socket", notice, StringComparison.Ordinal);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void A_live_socket_or_a_regular_file_is_refused()
    {
        var path = Sock("live");
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.Bind(new UnixDomainSocketEndPoint(path));
        s.Listen();
        Assert.Contains("is in use by another process",
            Assert.Throws<VSwitchException>(() => VhostUser.PrepareServerSocket("vhu0", path)).Message, StringComparison.Ordinal);

        var file = Path.Combine(_dir, "file");
        File.WriteAllText(file, "x");
        Assert.Contains("exists and is not a socket",
            Assert.Throws<VSwitchException>(() => VhostUser.PrepareServerSocket("vhu0", file)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Queue_needs_beyond_the_devices_queues_are_refused_clearly()
    {
        var r = Vswitchd.Run(["--duration", "1", "--port", $"vhu0=net_vhost0,iface={Sock("q")}", "--rxq", "vhu0=2",
            "--port", "b=net_null0"], 30);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("but the device has queues=1; add queues=N to its devargs", r.Stderr, StringComparison.Ordinal);
    }
}
