// End-to-end tests of vswitchd's /metrics over real DPDK ports: the scraped counters equal a known
// pcap's traffic, promtool accepts the text, the HTTP threads stay off the PMD core, and without
// --metrics the process listens on no TCP port at all.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class MetricsDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-metrics-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    /// <summary>EAL arguments of our own, so no two DPDK processes of the test run share runtime files.</summary>
    private static string Eal(string tag) => $"--in-memory --file-prefix vswmetrics{Environment.ProcessId}{tag}";

    [Theory]
    [InlineData("l2fwd")]
    [InlineData("pipeline")]
    public async Task Scraped_port_counters_equal_the_pcap_traffic_and_promtool_accepts_the_text(string mode)
    {
        // 257 frames of mixed sizes into port a; l2fwd pairs a with b, the pipeline has one rule a -> b.
        int[] sizes = [60, 64, 128, 511, 1514];
        var frames = Enumerable.Range(0, 257).Select(i => Frames.Udp(i, sizes[i % sizes.Length])).ToList();
        long bytes = frames.Sum(f => (long)f.Length);
        Pcap.Write(P("in.pcap"), frames);
        Pcap.Write(P("empty.pcap"), []);
        int port = FreeTcpPort();
        var args = new List<string> { "--mode", mode, "--stats-interval", "0", "--control", "none", "--eal", Eal(mode),
            "--metrics", $"127.0.0.1:{port}",
            "--port", $"a=net_pcap0,rx_pcap={P("in.pcap")},tx_pcap={P("back.pcap")}",
            "--port", $"b=net_pcap1,rx_pcap={P("empty.pcap")},tx_pcap={P("out.pcap")}" };
        if (mode == "pipeline")
        {
            File.WriteAllText(P("flows.txt"), "table=0,priority=1,in_port=1,actions=output:2\n");
            args.AddRange(["--flows", P("flows.txt")]);
        }

        using var sw = new RunningSwitch(args);
        sw.WaitFor("vswitchd: forwarding");
        Assert.Contains($"vswitchd: metrics http://127.0.0.1:{port}/metrics", sw.Output, StringComparison.Ordinal);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var url = $"http://127.0.0.1:{port}/metrics";
        string text = "";
        Dictionary<string, double> m = [];
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            text = await http.GetStringAsync(url);
            m = Parse(text);
            if (m.GetValueOrDefault("vswitch_port_tx_packets_total{port=\"b\"}") >= frames.Count)
            {
                break;
            }

            await Task.Delay(100);
        }

        string Why() => $"scrape:\n{text}\nvswitchd:\n{sw.Output}";
        void Expect(double expected, string series) =>
            Assert.True(m.TryGetValue(series, out double v) && v == expected, $"{series} = {(m.TryGetValue(series, out double x) ? x : double.NaN)}, expected {expected}\n{Why()}");

        Expect(frames.Count, "vswitch_port_rx_packets_total{port=\"a\"}");
        Expect(frames.Count, "vswitch_port_tx_packets_total{port=\"b\"}");
        Expect(0, "vswitch_port_tx_packets_total{port=\"a\"}");
        Expect(0, "vswitch_port_rx_packets_total{port=\"b\"}");
        Expect(0, "vswitch_port_tx_drops_total{port=\"b\"}");
        Expect(bytes, "vswitch_port_rx_bytes_total{port=\"a\"}");
        Expect(bytes, "vswitch_port_tx_bytes_total{port=\"b\"}");
        Expect(frames.Count, "vswitch_port_device_rx_packets_total{port=\"a\"}");
        Expect(frames.Count, "vswitch_port_xstats_total{port=\"a\",name=\"rx_good_packets\"}");
        Expect(bytes, "vswitch_port_xstats_total{port=\"b\",name=\"tx_good_bytes\"}");
        Expect(frames.Count, "vswitch_pmd_rx_packets_total{pmd=\"0\"}");
        Expect(frames.Count, "vswitch_pmd_tx_packets_total{pmd=\"0\"}");
        Expect(0, "vswitch_pmd_fwd_drops_total{pmd=\"0\"}");
        Expect(1, "vswitch_port_info{port=\"b\",ofport=\"2\",driver=\"net_pcap\"}");
        Expect(1, $"vswitch_info{{mode=\"{mode}\"}}");
        Assert.True(m["vswitch_pmd_round_gap_seconds_count{pmd=\"0\"}"] > 0, Why());
        Assert.True(m["vswitch_pmd_round_gap_seconds_count{pmd=\"0\"}"] == m["vswitch_pmd_round_gap_seconds_bucket{pmd=\"0\",le=\"+Inf\"}"], Why());
        Assert.True(m["vswitch_pmd_busy_cycles_total{pmd=\"0\"}"] > 0, Why());
        Assert.True(m.ContainsKey("vswitch_gc_collections_total{generation=\"0\"}"), Why());
        if (mode == "pipeline")
        {
            Expect(1, "vswitch_flow_rules");
            double lookups = m["vswitch_pmd_emc_hits_total{pmd=\"0\"}"] + m["vswitch_pmd_megaflow_hits_total{pmd=\"0\"}"] + m["vswitch_pmd_upcalls_total{pmd=\"0\"}"];
            Assert.True(lookups == frames.Count, $"emc + megaflow hits + upcalls = {lookups}\n{Why()}");
            Assert.True(m["vswitch_pmd_upcalls_total{pmd=\"0\"}"] >= 1, Why());
            Expect(1, "vswitch_pmd_megaflows{pmd=\"0\"}");
            Expect(0, "vswitch_pmd_fwd_drop_reasons_total{pmd=\"0\",reason=\"no_output\"}");
        }
        else
        {
            Assert.DoesNotContain("vswitch_pmd_emc_hits_total", text, StringComparison.Ordinal);
        }

        // Scrapers that name the host "localhost" are answered too; other paths are not found.
        static int Families(string t) => t.Split('\n').Count(l => l.StartsWith("# TYPE", StringComparison.Ordinal));
        Assert.Equal(Families(text), Families(await http.GetStringAsync($"http://localhost:{port}/metrics")));
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"http://127.0.0.1:{port}/")).StatusCode);

        // The server listens where it was told, and only there; its threads stay off the PMD core.
        Assert.Equal([$"127.0.0.1:{port}"], ListeningTcp(sw.Pid));
        AssertNoThreadButThePmdMayRunOnItsCore(sw.Pid, sw.Output, Why);

        var (exit, output) = Promtool(text);
        Assert.True(exit == 0 && output.Length == 0, $"promtool check metrics: exit {exit}\n{output}\n{Why()}");

        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(frames.Count, Pcap.Read(P("out.pcap")).Count);
    }

    [Fact]
    public void Without_the_option_nothing_listens_on_tcp()
    {
        using var sw = new RunningSwitch(["--stats-interval", "0", "--control", P("ctl.sock"), "--eal", Eal("off"),
            "--port", "a=net_null0,size=64", "--port", "b=net_null1,size=64"]);
        sw.WaitFor("vswitchd: forwarding");
        Thread.Sleep(300);
        Assert.Empty(ListeningTcp(sw.Pid));
        Assert.DoesNotContain("vswitchd: metrics", sw.Output, StringComparison.Ordinal);
        Assert.Equal(0, sw.Stop().ExitCode);
    }

    [Fact]
    public void A_port_in_use_gives_one_clear_error_line()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var r = Vswitchd.Run(["--stats-interval", "0", "--control", "none", "--eal", Eal("busy"), "--duration", "5",
            "--metrics", port.ToString(CultureInfo.InvariantCulture), "--port", "a=net_null0,size=64", "--port", "b=net_null1,size=64"], 30);
        Assert.False(r.TimedOut, r.ToString());
        Assert.Equal(1, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one error line\n{r}");
        Assert.Equal($"vswitchd: error: metrics 127.0.0.1:{port}: Address already in use", lines[0]);
        Assert.DoesNotContain("vswitchd: EAL", r.Stdout, StringComparison.Ordinal); // refused before DPDK started
        Assert.DoesNotContain("Exception", r.Stdout + r.Stderr, StringComparison.Ordinal);
    }

    /// <summary>A TCP port that was free a moment ago on 127.0.0.1.</summary>
    private static int FreeTcpPort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>The samples of a Prometheus text scrape: "name{labels}" -> value.</summary>
    private static Dictionary<string, double> Parse(string text)
    {
        var m = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            int sp = line.LastIndexOf(' ');
            m[line[..sp]] = double.Parse(line[(sp + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture);
        }

        return m;
    }

    private static (int Exit, string Output) Promtool(string text)
    {
        var psi = new ProcessStartInfo("promtool", ["check", "metrics"])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new Xunit.Sdk.XunitException($"promtool is missing ({e.Message}); scripts/setup installs it (Debian package prometheus)");
        }

        using (p)
        {
            var o = p.StandardOutput.ReadToEndAsync();
            var e = p.StandardError.ReadToEndAsync();
            p.StandardInput.Write(text);
            p.StandardInput.Close();
            Assert.True(p.WaitForExit(30_000), "promtool hung");
            return (p.ExitCode, (o.Result + e.Result).Trim());
        }
    }

    /// <summary>"address:port" of every listening TCP socket the process holds (IPv4 in dotted form, IPv6 as hex).</summary>
    private static List<string> ListeningTcp(int pid)
    {
        var inodes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var fd in Directory.EnumerateFiles($"/proc/{pid}/fd"))
        {
            var target = new FileInfo(fd).LinkTarget;
            if (target != null && target.StartsWith("socket:[", StringComparison.Ordinal))
            {
                inodes.Add(target[8..^1]);
            }
        }

        var found = new List<string>();
        foreach (var table in new[] { "tcp", "tcp6" })
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/net/{table}").Skip(1))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f[3] != "0A" || !inodes.Contains(f[9]))
                {
                    continue; // not listening, or not this process's
                }

                var (addr, port) = (f[1].Split(':')[0], int.Parse(f[1].Split(':')[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                found.Add((addr.Length == 8 ? new IPAddress(uint.Parse(addr, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToString() : addr)
                    + ":" + port.ToString(CultureInfo.InvariantCulture));
            }
        }

        return found;
    }

    /// <summary>
    /// Each PMD core (from vswitchd's "pmd N core=C" lines) may be used by one thread only, pinned to
    /// it alone: the PMD (an EAL worker lcore or a registered managed thread). Every other thread,
    /// the HTTP server's among them, must be barred from it.
    /// </summary>
    private static void AssertNoThreadButThePmdMayRunOnItsCore(int pid, string output, Func<string> why)
    {
        var pmdCores = Regex.Matches(output, @"vswitchd: pmd \d+ core=(\d+)").Select(x => int.Parse(x.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
        Assert.NotEmpty(pmdCores);
        var threads = Directory.EnumerateDirectories($"/proc/{pid}/task").Select(t =>
        {
            string allowed = File.ReadLines(Path.Combine(t, "status")).Single(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
                .Split(':')[1].Trim();
            var cores = allowed.Split(',').SelectMany(r =>
            {
                var ends = r.Split('-').Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray();
                return Enumerable.Range(ends[0], ends[^1] - ends[0] + 1);
            }).ToHashSet();
            return (Name: $"{Path.GetFileName(t)} '{File.ReadAllText(Path.Combine(t, "comm")).Trim()}'", Allowed: allowed, Cores: cores);
        }).ToList();
        foreach (int core in pmdCores)
        {
            var on = threads.Where(t => t.Cores.Contains(core)).ToList();
            Assert.True(on.Count == 1 && on[0].Cores.SetEquals([core]),
                $"threads that may run on PMD core {core}: {string.Join(", ", on.Select(t => $"{t.Name} ({t.Allowed})"))}\n{why()}");
        }
    }
}
