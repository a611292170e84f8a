// The real-VM test: two QEMU guests (TCG; KVM guests hang in this nested VM) with vhost-user NICs
// on memfd shared memory, attached to vswitchd's vhost-user server ports, ping each other and move
// 256 KiB over TCP with busybox nc; the receiver's md5 must equal the sender's. The guests are a
// Debian cloud kernel and busybox, unpacked from packages by tests/vm/build-guest.sh.
// About a minute; tagged Slow (and Dpdk) so it can be filtered: --filter "Category!=Slow".
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
[Trait("Category", "Slow")]
public sealed class VmTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-vm-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Process Run(string file, IEnumerable<string> args, string? stdoutFile = null)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data != null && stdoutFile != null) { lock (p) { File.AppendAllText(stdoutFile, e.Data + "\n"); } } };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null && stdoutFile != null) { lock (p) { File.AppendAllText(stdoutFile, e.Data + "\n"); } } };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private Process Guest(string guestDir, string name, string sock, string mac, string role, string ip, string peer) =>
        Run("taskset", ["-c", "0", "timeout", "-k", "5", "240", "qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-smp", "1",
            "-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none",
            "-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-numa", "node,memdev=mem",
            "-kernel", Path.Combine(guestDir, "vmlinuz"), "-initrd", Path.Combine(guestDir, "initrd.img"),
            "-append", $"console=ttyS0 panic=-1 vsw_role={role} vsw_ip={ip} vsw_peer={peer}",
            "-chardev", $"socket,id=c0,path={sock}", "-netdev", "type=vhost-user,id=n0,chardev=c0",
            "-device", $"virtio-net-pci,netdev=n0,mac={mac},vectors=0",
            "-serial", $"file:{Path.Combine(_dir, name + ".console")}"], Path.Combine(_dir, name + ".qemu"));

    [Fact]
    public void Two_qemu_guests_ping_each_other_and_move_a_file_byte_exact_through_the_switch()
    {
        var guestDir = Path.Combine(Repo.Root, "build", "guest");
        using (var build = Run("bash", [Path.Combine(Repo.Root, "tests", "vm", "build-guest.sh"), guestDir], Path.Combine(_dir, "build.log")))
        {
            Assert.True(build.WaitForExit(300_000) && build.ExitCode == 0, "guest build failed: " + SafeRead(Path.Combine(_dir, "build.log")));
        }

        string s0 = Path.Combine(_dir, "vhu0.sock"), s1 = Path.Combine(_dir, "vhu1.sock");
        using var sw = new RunningSwitch(["--stats-interval", "0", "--no-mac-rewrite", "--control", "none",
            "--port", $"vhu0=net_vhost0,iface={s0}", "--port", $"vhu1=net_vhost1,iface={s1}"]);
        sw.WaitFor("vswitchd: forwarding");
        using var receiver = Guest(guestDir, "b", s1, "52:54:00:00:00:02", "receiver", "192.0.2.2", "192.0.2.1");
        using var sender = Guest(guestDir, "a", s0, "52:54:00:00:00:01", "sender", "192.0.2.1", "192.0.2.2");
        bool done = sender.WaitForExit(240_000) & receiver.WaitForExit(240_000);
        var a = SafeRead(Path.Combine(_dir, "a.console"));
        var b = SafeRead(Path.Combine(_dir, "b.console"));
        var diag = $"\n--- sender console\n{a}\n--- receiver console\n{b}\n--- qemu\n{SafeRead(Path.Combine(_dir, "a.qemu"))}{SafeRead(Path.Combine(_dir, "b.qemu"))}\n--- switch\n{sw.Output}";
        Assert.True(done, "guests did not finish within 240 s" + diag);
        Assert.Contains("VSWTEST ping ok=1", a, StringComparison.Ordinal);
        Assert.Matches(@"VSWTEST ping 3 packets transmitted, 3 (packets )?received", a);
        var sent = Regex.Match(a, @"VSWTEST sent bytes=(\d+) md5=([0-9a-f]{32})");
        var got = Regex.Match(b, @"VSWTEST received bytes=(\d+) md5=([0-9a-f]{32})");
        Assert.True(sent.Success && got.Success, "transfer lines missing" + diag);
        Assert.Equal("262144", sent.Groups[1].Value);
        Assert.Equal(sent.Groups[1].Value, got.Groups[1].Value);
        Assert.Equal(sent.Groups[2].Value, got.Groups[2].Value);
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
        Assert.True(long.Parse(r.Field("final: port vhu1 ", "tx"), System.Globalization.CultureInfo.InvariantCulture) > 100, r.ToString());
    }

    private static string SafeRead(string path) => File.Exists(path) ? File.ReadAllText(path) : "";
}
