// ConntrackDpdkTests.cs - conntrack end to end over real DPDK ports (net_pcap): a stateful firewall with
// SNAT loaded into a running vswitchd; the inside's packets leave through the public address, then the
// outside port is replaced by one whose capture holds the replies (and strays), and only the replies
// come back in, translated to the inside host, with checksums checked by an independent computation
// (replies are let in by the connection's original tuple, ct_nw_src/ct_nw_dst, not their own headers).
// The operator commands (dump-conntrack, ct-stats-show, flush-conntrack, limits, timeouts, trace
// through ct) and the state file are checked on the same switch.
using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Xunit;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class ConntrackDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-ct-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private (int Exit, string Out, string Err) Ctl(params string[] args) => ControlClient.Vswitchctl(P("ctl.sock"), args);

    private JsonObject CtlJson(params string[] args)
    {
        var r = Ctl(["--json", .. args]);
        Assert.True(r.Exit == 0, $"vswitchctl {string.Join(' ', args)}: {r.Err}{r.Out}");
        return JsonNode.Parse(r.Out)!.AsObject();
    }

    private const string Rules = """
        table=0,priority=10,arp,actions=drop
        table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=7,nat)
        table=1,priority=100,ip,in_port=1,ct_state=+trk+new,actions=ct(commit,zone=7,nat(src=203.0.113.1),exec(set_field:0x2a->ct_mark)),output:2
        table=1,priority=100,ip,in_port=1,ct_state=+trk+est,actions=output:2
        table=1,priority=100,ip,in_port=2,ct_state=+trk+est,ct_nw_src=198.51.100.0/24,ct_nw_dst=203.0.113.2,actions=output:1
        table=1,priority=100,ip,in_port=2,ct_state=+trk+rel,actions=output:1
        table=1,priority=1,actions=drop
        """;

    private static byte[] Tcp(string src, string dst, ushort sport, ushort dport, byte flags, uint seq, uint ack) => FrameBuilder.Build(new FrameSpec
    {
        Proto = 6, NwSrc = FrameBuilder.Ip(src), NwDst = FrameBuilder.Ip(dst), SrcPort = sport, DstPort = dport, TcpFlags = flags, TcpSeq = seq, TcpAck = ack, Payload = [],
    });

    private static byte[] Udp(string src, string dst, ushort sport, ushort dport) => FrameBuilder.Build(new FrameSpec
    {
        Proto = 17, NwSrc = FrameBuilder.Ip(src), NwDst = FrameBuilder.Ip(dst), SrcPort = sport, DstPort = dport, Payload = new byte[18],
    });

    private void WaitRx(ulong want)
    {
        for (int i = 0; i < 200; i++)
        {
            ulong rx = (ulong)CtlJson("pmd-stats-show")["pmds"]!.AsArray().Sum(p => (long)p!["rx_packets"]!.GetValue<ulong>());
            if (rx >= want)
            {
                return;
            }

            Thread.Sleep(50);
        }

        Assert.Fail($"the switch did not receive {want} packets in 10 s");
    }

    [Fact]
    public void Snat_and_the_stateful_firewall_work_over_pcap_ports_and_the_operator_sees_the_connections()
    {
        File.WriteAllText(P("ct.flows"), Rules);
        const string In1 = "198.51.100.2", In2 = "198.51.100.3", Server = "203.0.113.2", Pub = "203.0.113.1";
        // Inside: two hosts open TCP to the server from the same source port, one UDP flow.
        Pcap.Write(P("inside.pcap"), [Tcp(In1, Server, 40000, 80, 0x02, 1000, 0), Tcp(In2, Server, 40000, 80, 0x02, 2000, 0), Udp(In1, Server, 5353, 53)]);
        Pcap.Write(P("empty.pcap"), []);
        string[] args = ["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"), "--state", P("state.json"), "--flows", P("ct.flows"),
            "--conntrack-size", "4096", "--eal", "--in-memory --file-prefix vsw-ct-e2e",
            "--port", $"in=net_pcap0,rx_pcap={P("inside.pcap")},tx_pcap={P("to-inside.pcap")}",
            "--port", $"out=net_pcap1,rx_pcap={P("empty.pcap")},tx_pcap={P("to-outside.pcap")}"];
        using (var sw = new RunningSwitch(args))
        {
            sw.WaitFor("port out link up");
            WaitRx(3);
            Assert.Equal(0, Ctl("del-port", "out").Exit); // closes to-outside.pcap
            var leaving = Pcap.Read(P("to-outside.pcap"));
            Assert.Equal(3, leaving.Count);
            foreach (var f in leaving)
            {
                Assert.Equal(FrameBuilder.Ip(Pub), BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(26)));
                Assert.Empty(FrameBuilder.VerifyChecksums(f));
            }

            var tcpPorts = leaving.Where(f => f[23] == 6).Select(f => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(34))).ToList();
            Assert.Equal(2, tcpPorts.Distinct().Count()); // two inside hosts, one public address: two public ports

            var ct = CtlJson("dump-conntrack", "zone=7")["conntrack"]!.AsArray().Select(l => (string)l!).ToList();
            Assert.Equal(3, ct.Count);
            Assert.All(ct, c => Assert.Contains(",zone=7,mark=42,", c, StringComparison.Ordinal));
            Assert.Matches(@"^udp,orig=\(src=198\.51\.100\.2,dst=203\.0\.113\.2,sport=5353,dport=53,packets=1,bytes=\d+\),reply=\(src=203\.0\.113\.2,dst=203\.0\.113\.1,sport=53,dport=5353,packets=0,bytes=0\),zone=7,mark=42,timeout=\d+,nat=snat,state=UNREPLIED$",
                Assert.Single(ct, c => c.StartsWith("udp", StringComparison.Ordinal)));
            Assert.Equal(2, ct.Count(c => c.StartsWith("tcp,", StringComparison.Ordinal) && c.EndsWith("protoinfo=(state=SYN_SENT)", StringComparison.Ordinal)));
            var stats = CtlJson("ct-stats-show");
            Assert.Equal(3, (int)stats["connections"]!);
            Assert.Equal(2, (int)stats["by_protocol"]!["tcp"]!);
            Assert.Equal(1, (int)stats["by_state"]!["udp:UNREPLIED"]!);

            // The outside answers (SYN/ACKs and a DNS reply to the public ports), plus strays: a SYN
            // from outside and a packet to a public port nobody uses.
            Pcap.Write(P("outside.pcap"), [
                Tcp(Server, Pub, 80, tcpPorts[0], 0x12, 7000, 1001), Tcp(Server, Pub, 80, tcpPorts[1], 0x12, 9000, 2001),
                Udp(Server, Pub, 53, BinaryPrimitives.ReadUInt16BigEndian(leaving.First(f => f[23] == 17).AsSpan(34))),
                Tcp("203.0.113.9", Pub, 5555, 22, 0x02, 1, 0), Udp(Server, Pub, 53, 999)]);
            Assert.Equal(0, Ctl("add-port", "out", $"net_pcap2,rx_pcap={P("outside.pcap")},tx_pcap={P("to-outside2.pcap")}", "--ofport", "2").Exit);
            WaitRx(8);

            Assert.Contains("udp:REPLIED", CtlJson("ct-stats-show")["by_state"]!.AsObject().Select(kv => kv.Key));
            var trace = CtlJson("trace", "--ct-next", "trk,est,rpl", $"in_port=2,tcp,nw_src={Server},nw_dst={Pub},tp_src=80,tp_dst={tcpPorts[0]}");
            var lines = string.Join("\n", trace["trace"]!.AsArray().Select(l => (string)l!));
            Assert.Contains("recirculates with recirc_id=", lines, StringComparison.Ordinal);
            Assert.Contains("resumes in table 1", lines, StringComparison.Ordinal);
            Assert.EndsWith("output:1", (string)trace["passes"]!.AsArray()[1]!["datapath_actions"]!, StringComparison.Ordinal);

            Assert.Equal(0, Ctl("ct-set-limits", "default=1000", "zone=7,limit=50").Exit);
            Assert.Equal(0, Ctl("ct-set-timeouts", "tcp_established=600").Exit);
            Assert.NotEqual(0, Ctl("ct-set-timeouts", "tcp_forever=1").Exit);
            Assert.Equal(0, Ctl("ct-set-timeouts", "zone=7", "udp_stream=5", "icmp=9").Exit); // zone 7's own policy
            Assert.Equal(5, (int)CtlJson("ct-get-timeouts", "zone=7")["timeouts"]!["udp_stream"]!);
            Assert.Equal(120, (int)CtlJson("ct-get-timeouts")["timeouts"]!["udp_stream"]!);
            Assert.Equal(0, Ctl("ct-set-timeouts", "zone=8", "other=60").Exit);
            Assert.Equal(0, Ctl("ct-del-timeouts", "zone=8").Exit);
            Assert.NotEqual(0, Ctl("ct-del-timeouts", "zone=8").Exit); // it has none any more
            var udp = Assert.Single(CtlJson("dump-conntrack", "zone=7")["conntrack"]!.AsArray().Select(l => (string)l!), l => l.StartsWith("udp", StringComparison.Ordinal));
            Assert.Matches(@",timeout=[0-5],.*state=REPLIED$", udp); // the replied UDP flow now has at most zone 7's 5 s left
            Assert.Equal(1, (int)CtlJson("flush-conntrack", "zone=7", $"ct_nw_src={In2},ct_nw_proto=6")["flushed"]!);
            Assert.Equal(2, CtlJson("dump-conntrack")["conntrack"]!.AsArray().Count);
            var stop = sw.Stop("TERM");
            Assert.Equal(0, stop.ExitCode);
            Assert.Equal("0", stop.Field("final: mbufs", "leaked"));
        }

        // Only the replies came in, translated back to each inside host.
        var back = Pcap.Read(P("to-inside.pcap"));
        Assert.Equal(3, back.Count);
        Assert.Equal([FrameBuilder.Ip(In1), FrameBuilder.Ip(In2), FrameBuilder.Ip(In1)], back.Select(f => BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(30))));
        Assert.All(back, f => Assert.Equal(FrameBuilder.Ip(Server), BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(26))));
        Assert.All(back.Take(2), f => Assert.Equal(40000, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(36))));
        Assert.All(back, f => Assert.Empty(FrameBuilder.VerifyChecksums(f)));

        // The limits and timeouts are in the state file and in force after a restart.
        var state = JsonNode.Parse(File.ReadAllText(P("state.json")))!;
        Assert.Equal(50, (int)state["conntrack"]!["zone_limits"]!["7"]!);
        string[] again = ["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"), "--state", P("state.json"),
            "--eal", "--in-memory --file-prefix vsw-ct-e2e2", "--port", "in=net_null0,no-rx=1"];
        using (var sw = new RunningSwitch(again))
        {
            sw.WaitFor("port in link up");
            var limits = CtlJson("ct-get-limits");
            Assert.Equal(1000, (int)limits["default_limit"]!);
            Assert.Equal(50, (int)limits["limits"]![0]!["limit"]!);
            Assert.Equal(600, (int)CtlJson("ct-get-timeouts")["timeouts"]!["tcp_established"]!);
            var zone7 = CtlJson("ct-get-timeouts", "zone=7");
            Assert.Equal((5, 9, 600), ((int)zone7["timeouts"]!["udp_stream"]!, (int)zone7["timeouts"]!["icmp"]!, (int)zone7["timeouts"]!["tcp_established"]!));
            Assert.Equal("7", Assert.Single(CtlJson("ct-get-timeouts")["zone_policies"]!.AsObject()).Key);
        }
    }

    [Fact]
    public void A_running_switch_reclaims_recirculation_ids_nothing_uses_and_keeps_forwarding_new_states()
    {
        // Each UDP source port is its own frozen state (kept in reg0 across ct(table=1), written back
        // into the destination port). 120 sources take 120 of the 128 ids; once traffic stops the
        // housekeeping thread reclaims them, and 120 new sources through a second port all pass
        // (without reclaiming, 8 would).
        File.WriteAllText(P("frozen.flows"), """
            table=0,priority=100,udp,ct_state=-trk,actions=move:NXM_OF_UDP_SRC[]->NXM_NX_REG0[0..15],ct(table=1,zone=3)
            table=1,priority=100,udp,actions=move:NXM_NX_REG0[0..15]->NXM_OF_UDP_DST[],output:3
            table=0,priority=1,actions=drop
            """);
        Pcap.Write(P("first.pcap"), [.. Enumerable.Range(10000, 120).Select(p => Udp("198.51.100.2", "203.0.113.2", (ushort)p, 53))]);
        Pcap.Write(P("second.pcap"), [.. Enumerable.Range(20000, 120).Select(p => Udp("198.51.100.2", "203.0.113.2", (ushort)p, 53))]);
        Pcap.Write(P("empty.pcap"), []);
        string[] args = ["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"), "--flows", P("frozen.flows"),
            "--eal", "--in-memory --file-prefix vsw-ct-frozen",
            "--port", $"a=net_pcap0,rx_pcap={P("first.pcap")},tx_pcap={P("a-out.pcap")}",
            "--port", $"sink=net_pcap1,rx_pcap={P("empty.pcap")},tx_pcap={P("sink.pcap")}", "--ofport", "sink=3"];
        using (var sw = new RunningSwitch(args))
        {
            sw.WaitFor("port sink link up");
            WaitRx(120);
            Assert.Equal(120, (int)CtlJson("ct-stats-show")["frozen_states"]!);
            JsonObject stats = CtlJson("ct-stats-show");
            for (int i = 0; i < 100 && (int)stats["frozen_states_reclaimed"]! != 120; i++)
            {
                Thread.Sleep(100);
                stats = CtlJson("ct-stats-show");
            }

            Assert.Equal(0, (int)stats["frozen_states"]!);
            Assert.Equal(120, (int)stats["frozen_states_reclaimed"]!);
            Assert.Equal(0, Ctl("add-port", "b", $"net_pcap2,rx_pcap={P("second.pcap")},tx_pcap={P("b-out.pcap")}").Exit);
            WaitRx(240);
            Assert.Equal(120, (int)CtlJson("ct-stats-show")["frozen_states"]!);
            Assert.Equal(0, Ctl("del-port", "sink").Exit); // closes sink.pcap
            var stop = sw.Stop("TERM");
            Assert.Equal(0, stop.ExitCode);
        }

        var sunk = Pcap.Read(P("sink.pcap"));
        Assert.Equal(240, sunk.Count);
        Assert.Equal(Enumerable.Range(10000, 120).Concat(Enumerable.Range(20000, 120)),
            sunk.Select(f => (int)BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(36))).Order());
    }
}
