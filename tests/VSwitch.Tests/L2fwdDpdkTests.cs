// End-to-end tests of vswitchd in l2fwd mode over real DPDK ports (net_pcap, net_null, net_ring),
// and of its start-up errors and shutdown. They need the DPDK packages and, for speed, hugepages
// (scripts/test sets both up); vswitchd falls back to --no-huge for these virtual devices.
namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class L2fwdDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly int[] s_burstSizes = [1, 3, 4, 5, 31, 32, 33, 257];

    private static List<byte[]> MixedFrames(int count, int salt)
    {
        var frames = new List<byte[]>();
        int[] sizes = [60, 64, 128, 511, 1514];
        for (int i = 0; i < count; i++)
        {
            var f = Frames.Udp(salt * 100000 + i, sizes[(i + salt) % sizes.Length]);
            if (i % 5 == 3)
            {
                f[12] = 0x08;
                f[13] = 0x06; // an ARP ethertype with IPv4-shaped bytes: l2fwd must not care
            }

            frames.Add(f);
        }

        return frames;
    }

    [Fact]
    public void Pcap_in_pcap_out_every_packet_arrives_in_order_with_only_the_macs_rewritten()
    {
        // One vswitchd, one port pair per burst size: pair k reads in_k.pcap on port a_k and writes
        // what it forwards to b_k's tx pcap.
        var args = new List<string> { "--duration", "4", "--stats-interval", "0" };
        var empty = Path.Combine(_dir, "empty.pcap");
        Pcap.Write(empty, []);
        var inputs = new List<List<byte[]>>();
        for (int k = 0; k < s_burstSizes.Length; k++)
        {
            var frames = MixedFrames(s_burstSizes[k], k);
            inputs.Add(frames);
            var input = Path.Combine(_dir, $"in_{k}.pcap");
            Pcap.Write(input, frames);
            args.AddRange(["--port", $"a{k}=net_pcap{2 * k},rx_pcap={input},tx_pcap={Path.Combine(_dir, $"back_{k}.pcap")}"]);
            args.AddRange(["--port", $"b{k}=net_pcap{2 * k + 1},rx_pcap={empty},tx_pcap={Path.Combine(_dir, $"out_{k}.pcap")}"]);
        }

        var r = Vswitchd.Run(args);
        Assert.True(r.ExitCode == 0, r.ToString());
        for (int k = 0; k < s_burstSizes.Length; k++)
        {
            var got = Pcap.Read(Path.Combine(_dir, $"out_{k}.pcap"));
            Assert.True(inputs[k].Count == got.Count, $"pair {k}: sent {inputs[k].Count}, got {got.Count}\n{r}");
            var macLine = r.Stdout.Split('\n').Single(l => l.StartsWith($"vswitchd: port b{k} ", StringComparison.Ordinal));
            var bMac = Convert.FromHexString(r.Field($"vswitchd: port b{k} ", "mac").Replace(":", "", StringComparison.Ordinal));
            int bIndex = 2 * k + 1; // datapath port number of b_k
            for (int i = 0; i < got.Count; i++)
            {
                var expected = (byte[])inputs[k][i].Clone();
                byte[] dst = [0x02, 0, 0, 0, 0, (byte)bIndex];
                dst.CopyTo(expected, 0);
                bMac.CopyTo(expected, 6);
                Assert.True(expected.AsSpan().SequenceEqual(got[i]), $"pair {k} packet {i} differs ({macLine})");
            }

            Assert.Empty(Pcap.Read(Path.Combine(_dir, $"back_{k}.pcap")));
        }

        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
        Assert.Equal(s_burstSizes.Sum().ToString(System.Globalization.CultureInfo.InvariantCulture), r.Field("final: seconds", "tx_packets"));
    }

    [Fact]
    public void Without_mac_rewrite_bytes_are_unchanged()
    {
        var frames = MixedFrames(100, 7);
        var input = Path.Combine(_dir, "in.pcap");
        var empty = Path.Combine(_dir, "empty.pcap");
        var output = Path.Combine(_dir, "out.pcap");
        Pcap.Write(input, frames);
        Pcap.Write(empty, []);
        var r = Vswitchd.Run(["--duration", "3", "--stats-interval", "0", "--no-mac-rewrite",
            "--port", $"a=net_pcap0,rx_pcap={input},tx_pcap={Path.Combine(_dir, "back.pcap")}",
            "--port", $"b=net_pcap1,rx_pcap={empty},tx_pcap={output}"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var got = Pcap.Read(output);
        Assert.Equal(frames.Count, got.Count);
        for (int i = 0; i < frames.Count; i++)
        {
            Assert.Equal(frames[i], got[i]);
        }
    }

    [Fact]
    public void The_pmd_allocates_nothing_while_forwarding_millions_of_packets()
    {
        var r = Vswitchd.Run(["--duration", "4", "--stats-interval", "1",
            "--port", "a=net_null0,size=64", "--port", "b=net_null1,size=64"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        long rx = long.Parse(r.Field("final: pmd 0", "rx"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(rx > 10_000_000, $"only {rx} packets forwarded\n{r}");
        Assert.Equal("0", r.Field("final: pmd 0", "alloc_bytes"));
        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
    }

    [Theory]
    [InlineData("INT")]
    [InlineData("TERM")]
    public void A_signal_stops_the_switch_cleanly_with_final_stats_and_no_leaked_mbufs(string signal)
    {
        using var p = Vswitchd.Start(["--stats-interval", "0", "--port", "a=net_ring0", "--port", "b=net_null0,size=64"]);
        var line = "";
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!line.StartsWith("vswitchd: forwarding", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            line = p.StandardOutput.ReadLine() ?? throw new Xunit.Sdk.XunitException("vswitchd exited early: " + p.StandardError.ReadToEnd());
        }

        Thread.Sleep(1000);
        Vswitchd.Signal(p, signal);
        Assert.True(p.WaitForExit(30_000), "vswitchd did not stop within 30 s of SIG" + signal);
        var rest = p.StandardOutput.ReadToEnd();
        Assert.Equal(0, p.ExitCode);
        Assert.Contains("final: mbufs", rest, StringComparison.Ordinal);
        Assert.Matches(@"leaked=0\b", rest);
        Assert.Matches(@"final: port b rx=[1-9]", rest); // net_null kept sending until the end
    }

    private static void AssertOneErrorLine(RunResult r, string expectedFragment)
    {
        Assert.False(r.TimedOut, r.ToString());
        Assert.Equal(1, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one error line\n{r}");
        Assert.StartsWith("vswitchd: error: ", lines[0], StringComparison.Ordinal);
        Assert.Contains(expectedFragment, lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", r.Stdout + r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_devargs_give_one_clear_error_line() =>
        AssertOneErrorLine(Vswitchd.Run(["--port", "a=net_bogus0,x=1", "--port", "b=net_null0"], 30),
            "port 'a': cannot probe device 'net_bogus0,x=1'");

    [Fact]
    public void A_hugepage_directory_that_is_not_mounted_gives_one_clear_error_line()
    {
        var notMounted = Directory.CreateDirectory(Path.Combine(_dir, "huge")).FullName;
        AssertOneErrorLine(Vswitchd.Run(["--eal", $"--huge-dir {notMounted}", "--duration", "1"], 30),
            $"hugepage directory '{notMounted}' (--huge-dir) is not a hugetlbfs mount");
    }

    [Fact]
    public void An_unknown_core_gives_one_clear_error_line() =>
        AssertOneErrorLine(Vswitchd.Run(["--pmd-cores", "999", "--duration", "1"], 30),
            "PMD core 999 does not exist: this machine has cores 0 to");

    [Fact]
    public void A_mbuf_layout_mismatch_gives_one_clear_error_line() =>
        AssertOneErrorLine(Vswitchd.Run(["--duration", "1"], 30, new() { ["VSW_TEST_LAYOUT_SKEW"] = "1" }),
            "rte_mbuf layout differs from the one this switch was compiled for (DPDK 22.11): pkt_len is 40, expected 36");

    [Fact]
    public void A_bad_config_file_gives_one_clear_error_line()
    {
        var cfg = Path.Combine(_dir, "bad.json");
        File.WriteAllText(cfg, """{ "ports": [ { "name": "a", "devargs": "net_null0", "rxq": 0 } ] }""");
        AssertOneErrorLine(Vswitchd.Run(["--config", cfg], 30), $"{cfg}: $.ports[0].rxq: expected an integer from 1 to 128");
    }

    [Fact]
    public void A_json_config_runs_the_switch()
    {
        var cfg = Path.Combine(_dir, "ok.json");
        File.WriteAllText(cfg, """
            {
              // comments are allowed
              "ports": [ { "name": "x", "devargs": "net_null0,size=64" }, { "name": "y", "devargs": "net_null1,size=64" } ],
              "pmd_cores": [ 1 ],
              "mac_rewrite": false,
              "duration_s": 2,
              "stats_interval_s": 0
            }
            """);
        var r = Vswitchd.Run(["--config", cfg], 30);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("vswitchd: pmd 0 core=1", r.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("with MAC rewrite", r.Stdout, StringComparison.Ordinal);
    }
}
