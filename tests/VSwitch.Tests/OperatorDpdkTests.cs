// OperatorDpdkTests.cs - the everyday inspection commands over the control socket of a running
// pipeline switch, through the real vswitchctl: fdb-show / fdb-flush, flush-megaflows (also under
// traffic), dump-flows with a match, dump-aggregate, dump-ports --xstats, and add-port naming a
// missing pcap file.
using System.Globalization;
using System.Text.Json.Nodes;
using Xunit;
using static VSwitch.Tests.ControlClient;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class OperatorDpdkTests : IDisposable
{
    private const string Rules = """
        table=0,priority=10,udp,actions=normal
        table=0,priority=20,tcp,tp_dst=23,actions=drop
        table=0,priority=5,ip,nw_dst=192.0.2.0/24,actions=drop
        table=1,priority=1,actions=drop
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-ops-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private string Ctl => P("ctl.sock");

    private (int Exit, string Out, string Err) Vswitchctl(params string[] args) => ControlClient.Vswitchctl(Ctl, args);

    private JsonNode Json(params string[] args)
    {
        var r = Vswitchctl(["--json", .. args]);
        Assert.True(r.Exit == 0, $"{string.Join(' ', args)}: exit {r.Exit}\n{r.Out}{r.Err}");
        return JsonNode.Parse(r.Out)!;
    }

    private static byte[] Frame(int i) =>
        FrameBuilder.Build(new FrameSpec { Src = 0x02000000000A, Dst = 0x02000000000B, Proto = 17, NwDst = 0xC6336400u + (uint)(i % 4), Payload = new byte[18] });

    [Fact]
    public void Fdb_megaflow_flush_filtered_dumps_aggregates_and_xstats_answer_over_the_socket()
    {
        var frames = Enumerable.Range(0, 16).Select(Frame).ToList();
        Pcap.Write(P("in.pcap"), frames);
        File.WriteAllText(P("flows.txt"), Rules);
        using var sw = new RunningSwitch(["--mode", "pipeline", "--flows", P("flows.txt"), "--stats-interval", "0", "--control", Ctl,
            "--port", $"a=net_pcap0,rx_pcap={P("in.pcap")}", "--port", "b=net_null1,no-rx=1", "--port", "c=net_null2,no-rx=1"]);
        sw.WaitFor("vswitchd: forwarding");
        Eventually(() => PortTx(Ctl, "c") == 16, "the 16 frames flooded to c");

        // fdb-show: the one source NORMAL learned, on port a (OpenFlow 1), VLAN 0.
        JsonArray Fdb() => Json("fdb-show")["fdb"]!.AsArray();
        Eventually(() => Fdb().Count == 1, "one MAC learned");
        var row = Fdb()[0]!;
        Assert.Equal((1, "a", 0, "02:00:00:00:00:0a"), ((int)row["port"]!, (string)row["name"]!, (int)row["vlan"]!, (string)row["mac"]!));
        Assert.InRange((long)row["age"]!, 0, 60);
        var human = Vswitchctl("fdb-show").Out;
        Assert.Contains("port", human, StringComparison.Ordinal);
        Assert.Contains("02:00:00:00:00:0a", human, StringComparison.Ordinal);

        // flush-megaflows: every cached verdict is gone once the command returns.
        Assert.NotEmpty(Json("dump-megaflows")["megaflows"]!.AsArray());
        var flushed = Json("flush-megaflows");
        Assert.True((int)flushed["flushed"]! >= 1, flushed.ToJsonString());
        Assert.Empty(Json("dump-megaflows")["megaflows"]!.AsArray());
        Assert.Equal(0, (int)Json("pmd-stats-show")["pmds"]![0]!["megaflows"]!);

        // fdb-flush: the binding is forgotten (no traffic and no megaflow re-posts it).
        Assert.Equal(1, (int)Json("fdb-flush")["flushed"]!);
        Assert.Empty(Fdb());

        // dump-flows MATCH: rules at least as specific as the match, as del-flows selects them.
        List<string> Dump(params string[] a) => Json(["dump-flows", .. a])["flows"]!.AsArray().Select(l => (string)l!).ToList();
        Assert.Equal(4, Dump().Count);
        Assert.Contains("actions=NORMAL", Assert.Single(Dump("udp")), StringComparison.OrdinalIgnoreCase);
        Assert.Equal(3, Dump("ip").Count); // udp, tcp and the ip,nw_dst rules
        Assert.Contains("table=1", Assert.Single(Dump("table=1")), StringComparison.Ordinal);
        Assert.Contains("table=1", Assert.Single(Dump("1")), StringComparison.Ordinal); // dump-flows TABLE as before
        Assert.Contains("tp_dst=23", Assert.Single(Dump("--strict", "priority=20,tcp,tp_dst=23")), StringComparison.Ordinal);
        Assert.Empty(Dump("--strict", "tcp,tp_dst=23")); // strict: the priority (default 32768) must match too
        Assert.Empty(Dump("tcp,tp_dst=22"));
        var bad = Vswitchctl("dump-flows", "tcp,tp_dts=23");
        Assert.True(bad.Exit == 1, bad.Out + bad.Err);

        // dump-aggregate: counters of the selected rules summed.
        var all = Json("dump-aggregate");
        Assert.Equal((16L, 16L * frames[0].Length, 4L), ((long)all["packet_count"]!, (long)all["byte_count"]!, (long)all["flow_count"]!));
        var udp = Json("dump-aggregate", "udp");
        Assert.Equal((16L, 1L), ((long)udp["packet_count"]!, (long)udp["flow_count"]!));
        var tcp = Json("dump-aggregate", "tcp");
        Assert.Equal((0L, 0L, 1L), ((long)tcp["packet_count"]!, (long)tcp["byte_count"]!, (long)tcp["flow_count"]!));
        Assert.Contains("flow_count: 1", Vswitchctl("dump-aggregate", "tcp").Out, StringComparison.Ordinal);

        // dump-ports --xstats: the devices' extended counters, per queue where the driver keeps them.
        Assert.Null(Json("dump-ports")["xstats"]);
        var xstats = Json("dump-ports", "--xstats")["xstats"]!.AsArray();
        ulong X(string port, string name) => (ulong)xstats.Single(x => (string)x!["port"]! == port && (string)x!["name"]! == name)!["value"]!;
        Assert.Equal(16UL, X("a", "rx_good_packets"));
        Assert.Equal(16UL, X("c", "tx_good_packets"));
        Assert.Contains("rx_good_packets", Vswitchctl("dump-ports", "--xstats").Out, StringComparison.Ordinal);

        // add-port names a missing rx_pcap file rather than DPDK's "Operation not permitted".
        var add = Vswitchctl("add-port", "z", $"net_pcap5,rx_pcap={P("nope.pcap")}");
        Assert.True(add.Exit == 1, add.Out + add.Err);
        Assert.Contains($"port 'z': rx_pcap file '{P("nope.pcap")}' does not exist", add.Err, StringComparison.Ordinal);

        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
    }

    [Fact]
    public void Flushing_the_megaflows_under_traffic_loses_no_packet()
    {
        Pcap.Write(P("udp.pcap"), Enumerable.Range(0, 64).Select(Frame));
        File.WriteAllText(P("flows.txt"), "priority=10,udp,actions=output:2\n");
        using var sw = new RunningSwitch(["--mode", "pipeline", "--flows", P("flows.txt"), "--stats-interval", "0", "--control", Ctl,
            "--port", $"a=net_pcap0,rx_pcap={P("udp.pcap")},infinite_rx=1", "--port", "b=net_null1,no-rx=1"]);
        sw.WaitFor("vswitchd: forwarding");
        Eventually(() => PortTx(Ctl, "b") > 100_000, "traffic on b");
        ulong upcalls0 = (ulong)Json("pmd-stats-show")["pmds"]![0]!["upcalls"]!;
        for (int i = 0; i < 5; i++)
        {
            Json("flush-megaflows");
            Thread.Sleep(50);
        }

        ulong upcalls1 = (ulong)Json("pmd-stats-show")["pmds"]![0]!["upcalls"]!;
        Assert.True(upcalls1 >= upcalls0 + 5, $"upcalls {upcalls0} -> {upcalls1}: each flush makes the next packet miss");
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        long F(string line, string key) => long.Parse(r.Field(line, key), CultureInfo.InvariantCulture);
        Assert.Equal(F("final: port a ", "rx"), F("final: port b ", "tx") + F("final: port b ", "tx_drops"));
        Assert.Equal(0, F("final: pmd 0", "fwd_drops"));
        Assert.Equal(0, F("final: pmd 0", "translation_errors"));
        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
        Assert.Equal("0", r.Field("final: pmd 0", "alloc_bytes"));
    }
}
