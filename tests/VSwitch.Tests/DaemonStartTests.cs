// DaemonStartTests.cs - vswitchd's start-up refusals that come before EAL and the ports: command-line
// mistakes, a missing pcap file, a control socket another switch serves. They run the real binary
// but start no DPDK (each fails first), so they are not tagged Dpdk.
using System.Net.Sockets;
using Xunit;

namespace VSwitch.Tests;

public sealed class DaemonStartTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-start-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [Theory]
    [InlineData(new[] { "--bogus" }, "unknown option '--bogus'")]
    [InlineData(new[] { "--rxq" }, "option '--rxq' needs a value")]
    [InlineData(new[] { "--mode", "fast" }, "--mode: unknown forwarding mode 'fast' (known: l2fwd, pipeline)")]
    [InlineData(new[] { "--port", "a" }, "--port 'a': expected two parts separated by '='")]
    [InlineData(new[] { "--port", "a=net_null0", "--port-vlan", "a=access:5000" }, "--port-vlan")]
    [InlineData(new[] { "--stats-interval", "4000" }, "--stats-interval '4000': expected a number from 0 to 3600")]
    [InlineData(new[] { "--duration", "Infinity" }, "--duration 'Infinity': expected a number from 0 to 1000000000")]
    [InlineData(new[] { "--control" }, "option '--control' needs a value")]
    [InlineData(new[] { "--rxq", "ghost=2" }, "--rxq names unknown port 'ghost'")]
    [InlineData(new[] { "stray" }, "unexpected argument 'stray'")]
    public void A_command_line_mistake_is_one_error_line_and_exit_code_2(string[] args, string expected)
    {
        var r = Vswitchd.Run(["--control", "none", "--duration", "1", .. args], timeoutSeconds: 30);
        Assert.True(r.ExitCode == 2, r.ToString());
        var line = Assert.Single(Lines(r.Stderr));
        Assert.StartsWith("vswitchd: error: ", line, StringComparison.Ordinal);
        Assert.Contains(expected, line, StringComparison.Ordinal);
        Assert.EndsWith("(try 'vswitchd --help')", line, StringComparison.Ordinal);
        Assert.Equal("", r.Stdout.Trim());
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    public void Help_prints_the_manual_and_exits_0_whatever_else_is_given(string help)
    {
        var r = Vswitchd.Run(["--bogus", help], timeoutSeconds: 30);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.StartsWith("NAME\n       vswitchd - ", r.Stdout.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.Equal(VSwitch.Daemon.ManPage.Text(), r.Stdout);
        Assert.Equal("", r.Stderr);
    }

    [Fact]
    public void A_missing_rx_pcap_file_is_named_before_any_device_is_probed()
    {
        string missing = Path.Combine(_dir, "in.pcap");
        var r = Vswitchd.Run(["--control", "none", "--duration", "1", "--stats-interval", "0",
            "--port", $"a=net_pcap0,rx_pcap={missing},tx_pcap={Path.Combine(_dir, "a.pcap")}", "--port", "b=net_null1,no-rx=1"], timeoutSeconds: 30);
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Equal($"vswitchd: error: port 'a': rx_pcap file '{missing}' does not exist", Assert.Single(Lines(r.Stderr)));
        Assert.DoesNotContain("EAL", r.Stdout, StringComparison.Ordinal); // refused before DPDK started

        var noDir = Vswitchd.Run(["--control", "none", "--duration", "1", "--port", "a=net_null0",
            "--port", $"b=net_pcap1,tx_pcap={Path.Combine(_dir, "nowhere", "b.pcap")}"], timeoutSeconds: 30);
        Assert.True(noDir.ExitCode == 1, noDir.ToString());
        Assert.Contains($"port 'b': tx_pcap file '{Path.Combine(_dir, "nowhere", "b.pcap")}': directory '{Path.Combine(_dir, "nowhere")}' does not exist",
            noDir.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_second_switch_on_a_live_control_socket_fails_before_it_starts_anything_naming_the_path_once()
    {
        // Stands in for a running vswitchd: something accepts connections on the socket.
        string ctl = Path.Combine(_dir, "ctl.sock");
        using var live = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        live.Bind(new UnixDomainSocketEndPoint(ctl));
        live.Listen(4);

        var r = Vswitchd.Run(["--control", ctl, "--duration", "5", "--stats-interval", "0",
            "--port", "a=net_null0,no-rx=1", "--port", "b=net_null1,no-rx=1"], timeoutSeconds: 30);
        Assert.True(r.ExitCode == 1, r.ToString());
        var line = Assert.Single(Lines(r.Stderr));
        Assert.StartsWith($"vswitchd: error: control socket '{ctl}' is in use by another process", line, StringComparison.Ordinal);
        Assert.Equal(1, line.Split(ctl).Length - 1); // the path once
        Assert.DoesNotContain("vswitchd: port", r.Stdout, StringComparison.Ordinal); // no port was set up
        Assert.DoesNotContain("EAL", r.Stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(ctl), "the live socket is left alone");
    }
}
