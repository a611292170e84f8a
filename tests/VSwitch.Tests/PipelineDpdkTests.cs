// PipelineDpdkTests.cs - the flow pipeline end to end over real DPDK ports: pcap in, pcap out,
// compared byte for byte with frames built independently (FrameBuilder computes every checksum
// from scratch), and flow tables programmed over the control socket while traffic runs.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Xunit;
using static VSwitch.Tests.ControlClient;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class PipelineDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-pipe-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private static FrameSpec Spec(int id, Action<FrameSpec>? edit = null)
    {
        var s = new FrameSpec { Payload = new byte[18] };
        BitConverter.GetBytes(id).CopyTo(s.Payload, 0);
        edit?.Invoke(s);
        return s;
    }

    private static byte[] Frame(int id, Action<FrameSpec>? edit = null) => FrameBuilder.Build(Spec(id, edit));

    [Fact]
    public void Vlan_set_field_acl_and_goto_chains_produce_the_expected_pcaps_byte_for_byte()
    {
        File.WriteAllText(P("flows.txt"), """
            # ACL in table 0: telnet is dropped whatever else matches
            table=0,priority=300,tcp,tp_dst=23,actions=drop
            table=0,priority=200,in_port=1,tcp,actions=goto_table:1
            table=0,priority=200,in_port=1,udp,actions=goto_table:2
            table=0,priority=100,in_port=1,ipv6,actions=mod_vlan_vid:100,output:4
            table=0,priority=250,in_port=1,dl_vlan=7,actions=pop_vlan,output:3
            table=1,priority=10,tcp,nw_dst=198.51.100.0/24,actions=mod_nw_src:203.0.113.7,mod_tp_dst:8080,dec_ttl,output:2
            table=1,priority=5,tcp,actions=output:3
            table=2,priority=10,udp,actions=mod_dl_dst:02:00:00:00:00:aa,push_vlan:0x8100,mod_vlan_vid:42,output:4
            """);
        var inputs = new List<byte[]>();
        var want = new Dictionary<int, List<byte[]>> { [2] = [], [3] = [], [4] = [] };
        for (int i = 0; i < 40; i++)
        {
            switch (i % 5)
            {
                case 0: // tcp to 198.51.100.0/24: NAT-like rewrite with checksums, TTL 64 -> 63
                    inputs.Add(Frame(i));
                    want[2].Add(Frame(i, s => { s.NwSrc = FrameBuilder.Ip("203.0.113.7"); s.DstPort = 8080; s.Ttl = 63; }));
                    break;
                case 1: // tcp elsewhere: plain output
                    inputs.Add(Frame(i, s => s.NwDst = FrameBuilder.Ip("192.0.2.99")));
                    want[3].Add(inputs[^1]);
                    break;
                case 2: // telnet: dropped by the ACL
                    inputs.Add(Frame(i, s => s.DstPort = 23));
                    break;
                case 3: // udp: new dst MAC and a pushed tag with VID 42
                    inputs.Add(Frame(i, s => s.Proto = 17));
                    want[4].Add(Frame(i, s => { s.Proto = 17; s.Dst = 0x0200000000AA; s.Tags = [(0x8100, 42)]; }));
                    break;
                default: // ipv6 gets tagged 100; a VLAN-7 tagged tcp frame is untagged
                    inputs.Add(Frame(i, s => { s.EthType = 0x86DD; s.Proto = 17; }));
                    want[4].Add(Frame(i, s => { s.EthType = 0x86DD; s.Proto = 17; s.Tags = [(0x8100, 100)]; }));
                    inputs.Add(Frame(1000 + i, s => { s.Tags = [(0x8100, 7)]; s.Proto = 17; }));
                    want[3].Add(Frame(1000 + i, s => s.Proto = 17));
                    break;
            }
        }

        Pcap.Write(P("in.pcap"), inputs);
        var r = Vswitchd.Run(["--mode", "pipeline", "--flows", P("flows.txt"), "--duration", "3", "--stats-interval", "0", "--control", "none",
            .. Pcap.PortArgs(_dir, 4)]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Empty(Pcap.Read(P("out1.pcap")));
        static int Id(byte[] f) => BitConverter.ToInt32(f, f.Length - 18);
        foreach (var (port, wantFrames) in want)
        {
            // Packets of different megaflows may leave in a different order than they came (actions
            // run per megaflow group); within one flow the order is kept.
            var raw = Pcap.Read(P($"out{port}.pcap"));
            foreach (var cls in raw.GroupBy(f => (Id(f) % 5, Id(f) >= 1000)))
            {
                var ids = cls.Select(Id).ToList();
                Assert.Equal(ids.Order(), ids);
            }

            var got = raw.OrderBy(Id).ToList();
            var frames = wantFrames.OrderBy(Id).ToList();
            Assert.True(frames.Count == got.Count, $"port {port}: expected {frames.Count} frames, got {got.Count}\n{r}");
            for (int i = 0; i < got.Count; i++)
            {
                Assert.Empty(FrameBuilder.VerifyChecksums(got[i]));
                Assert.True(frames[i].AsSpan().SequenceEqual(got[i]), $"port {port} frame {i}:\n want {Convert.ToHexString(frames[i])}\n got  {Convert.ToHexString(got[i])}");
            }
        }

        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
        Assert.Equal("8", r.Field("final: seconds", "drops")); // the telnet frames
    }

    [Fact]
    public void Normal_floods_within_the_vlan_tagging_for_trunks_and_untagging_for_access_ports()
    {
        File.WriteAllText(P("flows.txt"), "priority=0,actions=normal\n");
        var fromA = Enumerable.Range(0, 33).Select(i => Frame(i, s => { s.Src = 0x02000000000A; s.Dst = 0xFFFFFFFFFFFF; })).ToList();
        Pcap.Write(P("a.pcap"), fromA);
        Pcap.Write(P("empty.pcap"), []);
        var r = Vswitchd.Run([
            "--mode", "pipeline", "--flows", P("flows.txt"), "--duration", "3", "--stats-interval", "0", "--control", "none",
            "--port", $"a=net_pcap0,rx_pcap={P("a.pcap")},tx_pcap={P("out_a.pcap")}",
            "--port", $"t=net_pcap1,rx_pcap={P("empty.pcap")},tx_pcap={P("out_t.pcap")}",
            "--port", $"b=net_pcap2,rx_pcap={P("empty.pcap")},tx_pcap={P("out_b.pcap")}",
            "--port", $"c=net_pcap3,rx_pcap={P("empty.pcap")},tx_pcap={P("out_c.pcap")}",
            "--port-vlan", "a=access:10", "--port-vlan", "t=trunk:10,20", "--port-vlan", "b=access:10", "--port-vlan", "c=access:20",
        ]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Empty(Pcap.Read(P("out_a.pcap")));
        Assert.Empty(Pcap.Read(P("out_c.pcap"))); // another VLAN
        Assert.Equal(fromA, Pcap.Read(P("out_b.pcap")));
        var tagged = fromA.Select((f, i) => Frame(i, s => { s.Src = 0x02000000000A; s.Dst = 0xFFFFFFFFFFFF; s.Tags = [(0x8100, 10)]; })).ToList();
        Assert.Equal(tagged, Pcap.Read(P("out_t.pcap")));
        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
    }

    [Fact]
    public void Malformed_packets_are_counted_and_dropped_and_the_rest_forwarded()
    {
        var good = Frame(1);
        var frames = new List<byte[]>();
        for (int len = 1; len < good.Length; len++)
        {
            frames.Add(good[..len]); // every truncation
        }

        var bigLength = (byte[])good.Clone();
        bigLength[16] = 0x7F; // IPv4 total length beyond the frame
        frames.Add(bigLength);
        frames.Add(good);
        var r = RunPcap("priority=0,actions=output:2\n", frames, 2);
        Assert.Equal(good, Assert.Single(Out(2)));
        Assert.Equal(frames.Count - 1, int.Parse(r.Field("final: pmd 0", "malformed"), CultureInfo.InvariantCulture));
    }

    [Fact]
    public void A_ttl_1_packet_before_two_outputs_is_a_counted_drop_not_a_crash()
    {
        // Reported crash (SIGSEGV): dec_ttl dropped the TTL-1 packet and left a NULL in the group
        // that the copy for output:2 handed to the shim. dec_ttl is now decided at translation (as
        // Open vSwitch): the TTL-1 packets take a verdict with no output.
        var frames = Enumerable.Range(0, 6).Select(i => Frame(i, s => { s.Proto = 17; s.Ttl = (byte)(i % 3 == 0 ? 1 : 9); })).ToList();
        var r = RunPcap("table=0,priority=10,ip,actions=dec_ttl,output:2,output:3\n", frames, 3);
        var want = frames.Select((_, i) => i).Where(i => i % 3 != 0).Select(i => Frame(i, s => { s.Proto = 17; s.Ttl = 8; })).ToList();
        Assert.Equal(want, Out(2));
        Assert.Equal(want, Out(3));
        Assert.Equal("2", r.Field("final: pmd 0", "no_output_drops"));
        Assert.Equal("0", r.Field("final: pmd 0", "action_drops"));
        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
    }

    [Fact]
    public void A_resubmit_to_a_port_that_does_not_exist_before_normal_neither_kills_the_switch_at_start_nor_live()
    {
        // Reported crash (SIGABRT): NORMAL indexed the port table with in_port 1000. Since resubmit
        // follows Open vSwitch (port 1000 is used for table 1's lookup only; NORMAL sees the real
        // in_port, a), NORMAL floods the 16 packets to b.
        const string rules = "table=0,priority=10,ip,actions=resubmit(1000,1)\ntable=1,priority=1,actions=normal\n";
        File.WriteAllText(P("flows.txt"), rules);
        Pcap.Write(P("udp.pcap"), Enumerable.Range(0, 16).Select(i => Frame(i, s => s.Proto = 17)));
        var atStart = Vswitchd.Run([
            "--mode", "pipeline", "--flows", P("flows.txt"), "--duration", "1", "--stats-interval", "0", "--control", "none",
            "--port", $"a=net_pcap0,rx_pcap={P("udp.pcap")}", "--port", "b=net_null1,no-rx=1"]);
        Assert.True(atStart.ExitCode == 0, atStart.ToString());
        Assert.Equal("0", atStart.Field("final: pmd 0", "fwd_drops"));
        Assert.Equal("16", atStart.Field("final: port b ", "tx"));

        // Loaded live into a running switch under traffic: it keeps forwarding what it can.
        using var sw = new RunningSwitch(["--mode", "pipeline", "--stats-interval", "0", "--control", Ctl,
            "--port", $"a=net_pcap0,rx_pcap={P("udp.pcap")},infinite_rx=1", "--port", "b=net_null1,no-rx=1"]);
        sw.WaitFor("port b link up");
        Assert.Equal(0, Vswitchctl("add-flow", "table=0,priority=10,ip,actions=resubmit(1000,1)").Exit);
        Assert.Equal(0, Vswitchctl("add-flow", "table=1,priority=1,actions=normal").Exit);
        Thread.Sleep(300);
        Assert.Equal(0, Vswitchctl("add-flow", "table=0,priority=20,udp,actions=output:2").Exit);
        ulong b0 = PortTx("b");
        Eventually(() => PortTx("b") > b0 + 100_000, "traffic on b after the fix-up rule");
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("0", r.Field("final: pmd 0", "translation_errors"));
    }

    [Fact]
    public void Rules_name_ports_over_the_control_socket_and_keep_their_numbers()
    {
        Pcap.Write(P("udp.pcap"), Enumerable.Range(0, 16).Select(i => Frame(i, s => s.Proto = 17)));
        using var sw = new RunningSwitch(["--mode", "pipeline", "--stats-interval", "0", "--control", Ctl,
            "--port", $"a=net_pcap0,rx_pcap={P("udp.pcap")},infinite_rx=1", "--port", "b=net_null1,no-rx=1"]);
        sw.WaitFor("port b link up");
        Assert.Equal(0, Vswitchctl("add-flow", "table=0,priority=10,in_port=a,udp,actions=resubmit(,1)").Exit);
        Assert.Equal(0, Vswitchctl("add-flow", "table=1,priority=10,actions=output:b").Exit);
        ulong b0 = PortTx("b");
        Eventually(() => PortTx("b") > b0 + 10_000, "traffic on b through the named rules");
        var dump = Vswitchctl("dump-flows");
        Assert.Contains("udp,in_port=1,actions=resubmit(,1)", dump.Out, StringComparison.Ordinal); // names become numbers
        Assert.Contains("actions=output:2", dump.Out, StringComparison.Ordinal);
        Assert.Contains("output:2", Vswitchctl("trace", "in_port=a,udp").Out, StringComparison.Ordinal);
        var bad = Vswitchctl("add-flow", "table=0,priority=5,actions=output:c");
        Assert.NotEqual(0, bad.Exit);
        Assert.Contains("or a port name (a, b)", bad.Err, StringComparison.Ordinal);
        Assert.Equal(0, Vswitchctl("del-flows", "in_port=a").Exit);
        Assert.DoesNotContain("in_port=1", Vswitchctl("dump-flows").Out, StringComparison.Ordinal);
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
    }

    [Fact]
    public void A_recirculated_packet_is_looked_up_again_after_its_rewrite_over_dpdk_ports()
    {
        var frames = Enumerable.Range(0, 40).Select(i => Frame(i, s => { s.Proto = 17; s.NwDst = FrameBuilder.Ip(i % 2 == 0 ? "198.51.100.7" : "198.51.100.8"); })).ToList();
        var r = RunPcap("""
            table=0,priority=100,recirc_id=0,udp,nw_dst=198.51.100.7,actions=mod_nw_dst:203.0.113.9,recirc(1)
            table=0,priority=100,recirc_id=1,udp,nw_dst=203.0.113.9,actions=output:2
            table=0,priority=50,actions=output:3
            """, frames, 3);
        var want2 = Enumerable.Range(0, 40).Where(i => i % 2 == 0).Select(i => Frame(i, s => { s.Proto = 17; s.NwDst = FrameBuilder.Ip("203.0.113.9"); })).ToList();
        Assert.Equal(want2, Out(2));
        Assert.Equal(frames.Where((_, i) => i % 2 == 1).ToList(), Out(3));
        Assert.Equal("20", r.Field("final: pmd 0", "recirculations"));
        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
    }

    [Fact]
    public void Jumbo_frames_arriving_as_mbuf_chains_are_rewritten_and_forwarded_byte_for_byte()
    {
        // net_pcap reads a 9000-byte frame into a chain of 2 KB mbufs: the pipeline must parse it
        // (not count it malformed), rewrite its headers with correct checksums, and send the chain.
        FrameSpec Spec(int id) => new() { Proto = 17, Payload = Enumerable.Range(0, 8900).Select(i => (byte)(i + id)).ToArray() };
        var frames = Enumerable.Range(0, 8).Select(i => FrameBuilder.Build(Spec(i))).ToList();
        var want = Enumerable.Range(0, 8).Select(i => { var s = Spec(i); s.NwDst = FrameBuilder.Ip("203.0.113.5"); s.Ttl = 63; return FrameBuilder.Build(s); }).ToList();
        var r = RunPcap("table=0,priority=10,udp,nw_dst=198.51.100.2,actions=mod_nw_dst:203.0.113.5,dec_ttl,output:2\n", frames, 2,
            "--port-mtu", "p1=9000", "--port-mtu", "p2=9000");
        Assert.Equal("0", r.Field("final: pmd 0", "malformed"));
        var got = Out(2);
        Assert.Equal(want.Count, got.Count);
        for (int i = 0; i < got.Count; i++)
        {
            Assert.Empty(FrameBuilder.VerifyChecksums(got[i]));
            Assert.True(want[i].AsSpan().SequenceEqual(got[i]), $"frame {i} differs (length {got[i].Length})");
        }

        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
    }

    [Fact]
    public void Sctp_port_rewrites_leave_with_a_crc32c_tshark_accepts_also_in_mbuf_chains()
    {
        // IPv4 and IPv6, small and jumbo (a chain of 2 KB mbufs), and one whose CRC32c came wrong
        // (it must stay wrong, as from Open vSwitch). tshark checks the CRC32c with its own code.
        FrameSpec Spec(int id, bool v6, int payload, ushort src = 5000, ushort dst = 36412) => new()
        {
            Proto = 132, EthType = (ushort)(v6 ? 0x86DD : 0x0800), SrcPort = src, DstPort = dst,
            Payload = Enumerable.Range(0, payload).Select(i => (byte)(i + id)).ToArray(),
        };
        var specs = Enumerable.Range(0, 12).Select(i => (Id: i, V6: i % 2 == 1, Len: i % 3 == 0 ? 8900 : 20 + (i * 37))).ToList();
        var frames = specs.Select(x => FrameBuilder.Build(Spec(x.Id, x.V6, x.Len))).ToList();
        frames[4][34 + 8] ^= 0xFF; // frame 4 (IPv4): a wrong CRC32c
        var r = RunPcap("""
            table=0,priority=10,sctp,actions=mod_tp_src:7,set_field:9->sctp_dst,output:2
            table=0,priority=10,sctp6,actions=load:11->OXM_OF_SCTP_SRC[],output:2
            """, frames, 2, "--port-mtu", "p1=9000", "--port-mtu", "p2=9000");
        var want = specs.Select(x => FrameBuilder.Build(x.V6 ? Spec(x.Id, true, x.Len, src: 11) : Spec(x.Id, false, x.Len, 7, 9))).ToList();
        want[4][34 + 8] ^= 0xFF;
        // A burst's packets leave grouped by flow (megaflow), each flow in order: IPv4's, IPv6's.
        static bool V6(byte[] f) => f[12] == 0x86;
        var got = Out(2);
        Assert.Equal(want.Count, got.Count);
        foreach (bool v6 in new[] { false, true })
        {
            Assert.Equal(want.Where(f => V6(f) == v6).Select(Convert.ToHexString), got.Where(f => V6(f) == v6).Select(Convert.ToHexString));
        }

        var seen = CaptureDpdkTests.Tshark(P("out2.pcap"), ["-o", "sctp.checksum:CRC 32c"], "sctp.srcport", "sctp.dstport", "sctp.checksum.status");
        Assert.Equal(12, seen.Count);
        for (int i = 0; i < seen.Count; i++)
        {
            Assert.Equal(V6(got[i]) ? ["11", "36412"] : ["7", "9"], seen[i][..2]);
            bool corrupt = got[i].AsSpan().SequenceEqual(want[4]);
            Assert.Equal(corrupt ? "0" : "1", seen[i][2]); // 1: good, 0: bad (Wireshark's checksum status)
        }

        Assert.Equal("0", r.Field("final: pmd 0", "malformed"));
        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
    }

    [Fact]
    public void Output_with_max_len_truncates_only_its_copy_also_of_mbuf_chains_and_leaks_no_segment()
    {
        // output(port=2,max_len=60) and (port=3,max_len=3000): copies cut; output:4 (the last) whole.
        // Frames of 64 to 9000 bytes, the long ones chains of 2 KB mbufs cut in their first,
        // second or a later segment; the segments cut off go back to the pool.
        var frames = new[] { 64, 100, 1500, 2100, 4500, 9000 }
            .Select((len, i) => Frame(i, s => { s.Proto = 17; s.Payload = Enumerable.Range(0, len - 42).Select(b => (byte)(b + i)).ToArray(); })).ToList();
        var r = RunPcap("table=0,priority=10,udp,actions=output(port=2,max_len=60),output(port=3,max_len=3000),output:4\n", frames, 4,
            "--port-mtu", "p1=9000", "--port-mtu", "p2=9000", "--port-mtu", "p3=9000", "--port-mtu", "p4=9000");
        Assert.Equal(frames.Select(f => f[..Math.Min(60, f.Length)]).ToList(), Out(2));
        Assert.Equal(frames.Select(f => f[..Math.Min(3000, f.Length)]).ToList(), Out(3));
        Assert.Equal(frames, Out(4));
        var lengths = CaptureDpdkTests.Tshark(P("out3.pcap"), [], "frame.len").Select(x => int.Parse(x[0], CultureInfo.InvariantCulture));
        Assert.Equal(frames.Select(f => Math.Min(3000, f.Length)), lengths);
        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
    }

    /// <summary>
    /// Runs vswitchd in pipeline mode for 2 s on <paramref name="flows"/>: port p1 replays
    /// <paramref name="input"/> once, ports p2..p<paramref name="ports"/> write what they send to
    /// out2.pcap.. (read them with <see cref="Out"/>).
    /// </summary>
    private RunResult RunPcap(string flows, IEnumerable<byte[]> input, int ports, params string[] extra)
    {
        File.WriteAllText(P("flows.txt"), flows);
        Pcap.Write(P("in.pcap"), input);
        Pcap.Write(P("empty.pcap"), []);
        var args = new List<string> { "--mode", "pipeline", "--flows", P("flows.txt"), "--duration", "2", "--stats-interval", "0", "--control", "none",
            "--port", $"p1=net_pcap0,rx_pcap={P("in.pcap")}" };
        for (int p = 2; p <= ports; p++)
        {
            args.AddRange(["--port", $"p{p}=net_pcap{p - 1},rx_pcap={P("empty.pcap")},tx_pcap={P($"out{p}.pcap")}"]);
        }

        var r = Vswitchd.Run([.. args, .. extra]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r;
    }

    private List<byte[]> Out(int port) => Pcap.Read(P($"out{port}.pcap"));

    private string Ctl => P("ctl.sock");

    private (int Exit, string Out, string Err) Vswitchctl(params string[] args) => ControlClient.Vswitchctl(Ctl, args);

    private JsonObject Json(params string[] args)
    {
        var (exit, o, e) = Vswitchctl(["--json", .. args]);
        Assert.True(exit == 0, $"vswitchctl {string.Join(' ', args)}: exit {exit}: {e}");
        return JsonNode.Parse(o)!.AsObject();
    }

    private ulong PortTx(string name) => ControlClient.PortTx(Ctl, name);

    /// <summary>Waits until <paramref name="cond"/> holds (polling), failing after 10 s.</summary>
    [Fact]
    public void Tables_loaded_replaced_and_deleted_over_the_socket_steer_live_traffic_and_trace_agrees()
    {
        Pcap.Write(P("udp.pcap"), Enumerable.Range(0, 64).Select(i => Frame(i, s => { s.Proto = 17; s.DstPort = (ushort)(i % 2 == 0 ? 53 : 80); })));
        using var sw = new RunningSwitch(["--mode", "pipeline", "--stats-interval", "0", "--control", Ctl,
            "--port", $"a=net_pcap0,rx_pcap={P("udp.pcap")},infinite_rx=1", "--port", "b=net_null1", "--port", "c=net_null2"]);
        sw.WaitFor("port c link up");

        // Empty tables: everything is dropped.
        Assert.Empty(Json("dump-flows")["flows"]!.AsArray());
        Assert.Equal(0UL, PortTx("b"));

        Assert.Equal(0, Vswitchctl("add-flow", "in_port=1,udp,tp_dst=53,actions=output:2").Exit);
        File.WriteAllText(P("more.txt"), "in_port=1,udp,tp_dst=80,actions=output:2\n");
        Assert.Equal(0, Vswitchctl("add-flows", P("more.txt")).Exit);
        ulong b0 = PortTx("b");
        Eventually(() => PortTx("b") > b0 + 1_000_000, "traffic on b");
        Assert.Equal(0UL, PortTx("c"));
        var trace = Json("trace", "in_port=1,udp,nw_src=192.0.2.1,nw_dst=198.51.100.2,tp_dst=53");
        Assert.Equal("output:2", (string)trace["datapath_actions"]!);

        // Replace: port 53 moves to c; port 80 stays on b with its counter kept.
        var before = Json("dump-flows")["flows"]!.AsArray().Select(f => (string)f!).Single(f => f.Contains("tp_dst=80", StringComparison.Ordinal));
        long n80 = long.Parse(before.Split("n_packets=")[1].Split(',')[0], CultureInfo.InvariantCulture);
        File.WriteAllText(P("replace.txt"), "in_port=1,udp,tp_dst=53,actions=output:3\nin_port=1,udp,tp_dst=80,actions=output:2\n");
        var rep = Json("replace-flows", P("replace.txt"));
        Assert.Equal(1, rep["changed"]!.GetValue<int>());
        Assert.Equal(1, rep["kept"]!.GetValue<int>());
        ulong c0 = PortTx("c");
        Eventually(() => PortTx("c") > c0 + 1_000_000, "traffic on c after replace-flows");
        var after = Json("dump-flows")["flows"]!.AsArray().Select(f => (string)f!).Single(f => f.Contains("tp_dst=80", StringComparison.Ordinal));
        Assert.True(long.Parse(after.Split("n_packets=")[1].Split(',')[0], CultureInfo.InvariantCulture) >= n80, "the unchanged rule kept its counter");
        Assert.Equal("output:3", (string)Json("trace", "in_port=1,udp,tp_dst=53")["datapath_actions"]!);
        Assert.Contains("tp_dst", Vswitchctl("dump-megaflows").Out, StringComparison.Ordinal);

        // A bad batch names line and column and changes nothing.
        File.WriteAllText(P("bad.txt"), "in_port=1,udp,tp_dst=53,actions=output:2\nin_port=1,ip,nw_dst=198.51.100.300,actions=output:2\n");
        var bad = Vswitchctl("replace-flows", P("bad.txt"));
        Assert.Equal(1, bad.Exit);
        Assert.Contains("line 2, column", bad.Err, StringComparison.Ordinal);
        Assert.Equal("output:3", (string)Json("trace", "in_port=1,udp,tp_dst=53")["datapath_actions"]!);

        // mod-flows and del-flows.
        Assert.Equal(1, Json("mod-flows", "udp,tp_dst=80,actions=output:3")["modified"]!.GetValue<int>());
        ulong b1 = PortTx("b");
        Thread.Sleep(300);
        Assert.True(PortTx("b") - b1 < 64, "nothing goes to b after mod-flows moved port 80 to c");
        Assert.Equal(2, Json("del-flows")["deleted"]!.GetValue<int>());
        ulong c1 = PortTx("c");
        Thread.Sleep(300);
        Assert.True(PortTx("c") - c1 < 64, "nothing forwarded once the tables are empty");

        var pmd = Json("pmd-stats-show")["pmds"]!.AsArray()[0]!;
        Assert.True(pmd["emc_hits"]!.GetValue<ulong>() + pmd["megaflow_hits"]!.GetValue<ulong>() > 1_000_000);
        Assert.True(pmd["revalidations"]!.GetValue<ulong>() >= 1);
        double gapMax = pmd["gap_max_us"]!.GetValue<double>(), p999 = pmd["gap_p999_us"]!.GetValue<double>();
        Assert.True(gapMax > 0 && p999 > 0 && p999 <= gapMax * 1.25, $"gap max {gapMax} us, p99.9 {p999} us");
        var gc = Json("pmd-stats-show")["gc"]!;
        Assert.True(gc["collections"]!.GetValue<long>() >= 0 && gc["heap_mb"]!.GetValue<double>() > 0, gc.ToJsonString());
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.True(r.Field("final: pmd 0", "alloc_bytes") == "0", r.ToString());
    }
}

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class StateStoreDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-state-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private (int Exit, string Out, string Err) Ctl(params string[] args) => ControlClient.Vswitchctl(P("ctl.sock"), args);

    [Fact]
    public void Ports_and_flows_come_back_after_a_restart_and_a_corrupt_store_is_refused_and_kept()
    {
        string[] baseArgs = ["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"), "--state", P("state.json"), "--port", "a=net_null0"];
        using (var sw = new RunningSwitch(baseArgs))
        {
            sw.WaitFor("port a link up");
            Assert.Equal(0, Ctl("add-port", "b", "net_null1").Exit);
            File.WriteAllText(P("f.txt"), "table=0,priority=7,in_port=1,udp,tp_dst=53,actions=output:2\ntable=1,priority=1,actions=drop\n");
            Assert.Equal(0, Ctl("add-flows", P("f.txt")).Exit);
            var r = sw.Stop();
            Assert.True(r.ExitCode == 0, r.ToString());
        }

        var stored = File.ReadAllText(P("state.json"));
        Assert.Contains("tp_dst=53", stored, StringComparison.Ordinal);
        using (var sw = new RunningSwitch(baseArgs))
        {
            sw.WaitFor("port b link up");
            var flows = Ctl("dump-flows").Out;
            Assert.Contains("priority=7,udp,in_port=1,tp_dst=53,actions=output:2", flows.Replace("priority=7,in_port=1,udp", "priority=7,udp,in_port=1", StringComparison.Ordinal), StringComparison.Ordinal);
            Assert.Contains("table=1", flows, StringComparison.Ordinal);
            Assert.Equal("output:2", JsonNode.Parse(Ctl("--json", "trace", "in_port=1,udp,tp_dst=53").Out)!["datapath_actions"]!.ToString());
            Assert.True(sw.Stop().ExitCode == 0);
        }

        // A store damaged by hand is refused with a message naming it, and left as it was.
        File.WriteAllText(P("state.json"), stored.Replace("tp_dst=53", "tp_dst=99999", StringComparison.Ordinal));
        var damaged = File.ReadAllText(P("state.json"));
        var bad = Vswitchd.Run([.. baseArgs, "--duration", "1"]);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("state file", bad.Stderr, StringComparison.Ordinal);
        Assert.Contains("line 1, column", bad.Stderr, StringComparison.Ordinal);
        Assert.Equal(damaged, File.ReadAllText(P("state.json")));
        File.WriteAllText(P("state.json"), "{\"format\": 1, \"ports\": [");
        bad = Vswitchd.Run([.. baseArgs, "--duration", "1"]);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("is corrupt (invalid JSON", bad.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_restart_from_the_store_alone_after_port_changes_brings_back_exactly_the_stored_ports()
    {
        // Without --port the embedded default (null0=net_null0, null1=net_null1) used to be added
        // next to the stored ports, so the stored b=net_null1 probed the default's live device,
        // failed to reconfigure it, and removed it while a PMD polled it.
        string[] common = ["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"), "--state", P("S")];
        using (var sw = new RunningSwitch([.. common, "--port", "a=net_null0,no-rx=1", "--port", "b=net_null1,no-rx=1"]))
        {
            sw.WaitFor("port b link up");
            Assert.Equal(0, Ctl("del-port", "a").Exit);
            var add = Ctl("add-port", "d", "net_null3,no-rx=1");
            Assert.True(add.Exit == 0, add.Err);
            var r = sw.Stop("TERM");
            Assert.True(r.ExitCode == 0, r.ToString());
        }

        using (var sw = new RunningSwitch(common))
        {
            sw.WaitFor("vswitchd: forwarding");
            var names = JsonNode.Parse(Ctl("--json", "show").Out)!["ports"]!.AsArray().Select(p => (string)p!["name"]!).Order().ToList();
            Assert.Equal(["b", "d"], names);
            var r = sw.Stop("TERM");
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.DoesNotContain("not ready port", r.Stderr, StringComparison.Ordinal);
        }
    }

    private string Trace(string packet) => (string)JsonNode.Parse(Ctl("--json", "trace", packet).Out)!["datapath_actions"]!;

    private Dictionary<string, int> OfPorts() =>
        JsonNode.Parse(Ctl("--json", "dump-ports").Out)!["ports"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => p!["ofport"]!.GetValue<int>());

    [Fact]
    public void OpenFlow_port_numbers_are_never_reused_can_be_requested_and_survive_a_restart()
    {
        string[] common = ["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"), "--state", P("S")];
        using (var sw = new RunningSwitch([.. common, "--port", "a=net_null0,no-rx=1", "--port", "b=net_null1,no-rx=1", "--port", "c=net_null2,no-rx=1"]))
        {
            sw.WaitFor("port c link up");
            Assert.Equal(new Dictionary<string, int> { ["a"] = 1, ["b"] = 2, ["c"] = 3 }, OfPorts());
            Assert.Equal(0, Ctl("add-flow", "table=0,priority=5,udp,actions=output:2").Exit);
            Assert.Equal(0, Ctl("add-flow", "table=0,priority=6,tcp,actions=output:3").Exit);

            // b goes; a new port must not inherit b's number (and so the rule that names it).
            Assert.Equal(0, Ctl("del-port", "b").Exit);
            Assert.Equal(0, Ctl("add-port", "d", "net_null3,no-rx=1").Exit);
            Assert.Equal(4, OfPorts()["d"]);
            Assert.Equal("drop", Trace("in_port=1,udp"));

            // Requested numbers: a free one is granted, a taken or out-of-range one refused.
            var e = Ctl("--json", "add-port", "e", "net_null4,no-rx=1", "--ofport", "2");
            Assert.True(e.Exit == 0, e.Err);
            Assert.Equal(2, JsonNode.Parse(e.Out)!["ofport"]!.GetValue<int>());
            Assert.Equal("output:2", Trace("in_port=1,udp"));
            var taken = Ctl("add-port", "f", "net_null5,no-rx=1", "--ofport", "4");
            Assert.Equal(1, taken.Exit);
            Assert.Contains("OpenFlow port 4 is taken by port 'd'", taken.Err, StringComparison.Ordinal);
            var range = Ctl("add-port", "f", "net_null5,no-rx=1", "--ofport", "70000"); // vswitchctl refuses it itself...
            Assert.Equal(2, range.Exit);
            Assert.Contains("--ofport needs a number from 1 to 65280", range.Err, StringComparison.Ordinal);
            var raw = ControlClient.Request(P("ctl.sock"), "add-port", new JsonObject { ["name"] = "f", ["devargs"] = "net_null5,no-rx=1", ["ofport"] = 70000 });
            Assert.False(raw["ok"]!.GetValue<bool>()); // ... and so does the switch
            Assert.Contains("65280", (string)raw["error"]!, StringComparison.Ordinal);
            Assert.Equal(0, Ctl("del-port", "a").Exit);
            Assert.True(sw.Stop("TERM").ExitCode == 0);
        }

        Assert.Contains("\"ofport\": 4", File.ReadAllText(P("S")), StringComparison.Ordinal);
        using (var sw = new RunningSwitch(common))
        {
            sw.WaitFor("vswitchd: forwarding");
            Assert.Equal(new Dictionary<string, int> { ["c"] = 3, ["d"] = 4, ["e"] = 2 }, OfPorts());
            Assert.Equal("output:3", Trace("in_port=4,tcp"));
            Assert.Equal("output:2", Trace("in_port=4,udp"));

            // Sparse numbers in the datapath: packets from g (number 5, not a's 1) reach c (number 3).
            var g = Ctl("--json", "add-port", "g", "net_null6,size=64");
            Assert.True(g.Exit == 0, g.Err);
            Assert.Equal(5, JsonNode.Parse(g.Out)!["ofport"]!.GetValue<int>());
            Assert.Equal(0, Ctl("add-flow", "table=0,priority=9,in_port=5,actions=output:3").Exit);
            Thread.Sleep(300);
            var tx = JsonNode.Parse(Ctl("--json", "dump-ports").Out)!["ports"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => p!["tx_packets"]!.GetValue<ulong>());
            Assert.True(tx["c"] > 1000, $"c sent {tx["c"]}");
            Assert.Equal(0UL, tx["d"] + tx["e"] + tx["g"]);
            Assert.Contains("in_port=5", Ctl("dump-megaflows").Out, StringComparison.Ordinal);
            var r = sw.Stop();
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.True(r.Field("final: pmd 0", "alloc_bytes") == "0", r.ToString());
        }
    }

    [Fact]
    public void Adding_a_port_on_a_device_another_port_uses_is_refused_and_leaves_that_port_running()
    {
        using var sw = new RunningSwitch(["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"),
            "--port", "a=net_null0,no-rx=1", "--port", "b=net_null1,size=64"]);
        sw.WaitFor("port b link up");
        var before = Ctl("--json", "show").Out;
        var add = Ctl("add-port", "z", "net_null1,no-rx=1");
        Assert.Equal(1, add.Exit);
        Assert.Contains("device 'net_null1' is already in use by port 'b'", add.Err, StringComparison.Ordinal);
        Assert.Equal(before, Ctl("--json", "show").Out);
        ulong Rx() => JsonNode.Parse(Ctl("--json", "dump-ports").Out)!["ports"]!.AsArray().Single(p => (string)p!["name"]! == "b")!["rx_packets"]!.GetValue<ulong>();
        ulong rx0 = Rx();
        Thread.Sleep(200);
        Assert.True(Rx() > rx0, "port b still receives");
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.DoesNotContain("not ready port", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Invalid port_id", r.Stderr, StringComparison.Ordinal);

        // Two configured ports on one device are refused before anything starts.
        var dup = Vswitchd.Run(["--stats-interval", "0", "--control", "none", "--duration", "1", "--port", "x=net_null4", "--port", "y=net_null4,size=64"]);
        Assert.Equal(1, dup.ExitCode);
        Assert.Contains("ports 'x' and 'y' both use device 'net_null4'", dup.Stderr, StringComparison.Ordinal);
    }
}

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class FlowUpdateDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-hitless-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private JsonObject Request(string cmd, JsonObject args) => ControlClient.Request(P("ctl.sock"), cmd, args);

    private (ulong Rx, ulong Fwd, ulong TxDrops, Dictionary<string, ulong> Tx) Counters()
    {
        var pmd = Request("pmd-stats-show", [])["result"]!["pmds"]!.AsArray()[0]!;
        var tx = Request("dump-ports", [])["result"]!["ports"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => p!["tx_packets"]!.GetValue<ulong>());
        return (pmd["rx_packets"]!.GetValue<ulong>(), pmd["fwd_drops"]!.GetValue<ulong>(), pmd["tx_drops"]!.GetValue<ulong>(), tx);
    }

    private static string Rules(int n, Func<int, int> outPort)
    {
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < n; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"table=0,priority=100,in_port=1,udp,nw_dst=198.51.{100 + (i >> 8)}.{i & 0xFF},actions=output:{outPort(i)}\n");
        }

        return sb.ToString();
    }

    [Fact]
    public void Replacing_a_10000_rule_table_under_traffic_loses_no_packet_of_an_unchanged_flow()
    {
        // 256 flows of steady traffic (net_pcap replaying forever), all covered by a 10 000-rule table.
        var frames = Enumerable.Range(0, 256).Select(i => FrameBuilder.Build(new FrameSpec { Proto = 17, NwDst = FrameBuilder.Ip("198.51.100.0") + (uint)i })).ToList();
        Pcap.Write(P("t.pcap"), frames);
        File.WriteAllText(P("v1.txt"), Rules(10_000, _ => 2));
        File.WriteAllText(P("v2.txt"), Rules(10_000, i => i % 64 == 5 ? 3 : 2)); // 4 of the 256 live flows move to port 3
        using var sw = new RunningSwitch(["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"), "--flows", P("v1.txt"),
            "--port", $"src=net_pcap0,rx_pcap={P("t.pcap")},infinite_rx=1", "--port", "b=net_null1,no-rx=1", "--port", "c=net_null2,no-rx=1"]);
        sw.WaitFor("port c link up");
        Thread.Sleep(500);
        var before = Counters();
        Assert.Equal(0UL, before.Fwd);
        var rep = ControlClient.Vswitchctl(P("ctl.sock"), "--json", "replace-flows", P("v2.txt"));
        Assert.True(rep.Exit == 0, rep.Err);
        Assert.Equal(157, JsonNode.Parse(rep.Out)!["changed"]!.GetValue<int>()); // the rules with i % 64 == 5 below 10 000
        Thread.Sleep(500);
        var after = Counters();
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());

        // Nothing was dropped by the pipeline or the ports across the replace, and every received
        // packet left by port b or c: no packet was lost to a missing or stale verdict.
        Assert.Equal(0UL, after.Fwd);
        Assert.Equal(0UL, after.TxDrops);
        ulong rx = ulong.Parse(r.Field("final: pmd 0", "rx"), CultureInfo.InvariantCulture);
        ulong txB = ulong.Parse(r.Stdout.Split('\n').Single(l => l.StartsWith("final: port b ", StringComparison.Ordinal)).Split(" tx=")[1].Split(' ')[0], CultureInfo.InvariantCulture);
        ulong txC = ulong.Parse(r.Stdout.Split('\n').Single(l => l.StartsWith("final: port c ", StringComparison.Ordinal)).Split(" tx=")[1].Split(' ')[0], CultureInfo.InvariantCulture);
        Assert.Equal(rx, txB + txC);
        Assert.Equal(0UL, before.Tx["c"]);
        Assert.True(after.Tx["c"] > 0, "the changed flows moved to port c");
        ulong bGain = after.Tx["b"] - before.Tx["b"], cGain = after.Tx["c"] - before.Tx["c"];
        double share = (double)cGain / (bGain + cGain);
        Assert.True(share > 0.005 && share < 0.03, $"port c's share {share:P2} should be about 4/256 (changed flows only)");
    }

    [Fact]
    public void Fuzzed_flow_commands_are_refused_or_applied_and_never_crash_the_switch()
    {
        using var sw = new RunningSwitch(["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"),
            "--port", "a=net_null0,no-rx=1", "--port", "b=net_null1,no-rx=1"]);
        sw.WaitFor("port b link up");
        Assert.True((bool)Request("add-flow", new JsonObject { ["flow"] = "table=0,priority=5,ip,nw_dst=192.0.2.0/24,actions=output:2" })["ok"]!);
        string Dump() => System.Text.RegularExpressions.Regex.Replace(Request("dump-flows", [])["result"]!["flows"]!.ToJsonString(), "duration=[0-9.]+s, ", "");
        var rnd = new Random(11);
        string[] valid =
        [
            "table=0,priority=100,in_port=1,tcp,nw_src=198.51.100.0/24,tp_dst=80,actions=mod_dl_dst:02:00:00:00:00:02,output:2",
            "table=1,ipv6,ipv6_dst=2001:db8::/32,actions=dec_ttl,resubmit(,2)",
            "udp,tp_src=0x1000/0xf000,actions=push_vlan:0x8100,mod_vlan_vid:7,output:1",
        ];
        const string alphabet = "=,:/()->.0123456789abcdefxyz_ \t\"\\";
        int refused = 0;
        for (int i = 0; i < 300; i++)
        {
            var chars = valid[rnd.Next(valid.Length)].ToCharArray().ToList();
            for (int k = 0; k < 1 + rnd.Next(3); k++)
            {
                int at = rnd.Next(chars.Count);
                switch (rnd.Next(3))
                {
                    case 0: chars[at] = alphabet[rnd.Next(alphabet.Length)]; break;
                    case 1: chars.RemoveAt(at); break;
                    default: chars.Insert(at, alphabet[rnd.Next(alphabet.Length)]); break;
                }
            }

            string cmd = new[] { "add-flow", "replace-flows", "del-flows", "mod-flows", "trace" }[rnd.Next(5)];
            var args = cmd switch
            {
                "del-flows" => new JsonObject { ["match"] = new string([.. chars]).Split("actions=")[0].TrimEnd(','), ["strict"] = true },
                "trace" => new JsonObject { ["packet"] = new string([.. chars]).Split(",actions=")[0] },
                "replace-flows" => new JsonObject { ["flow"] = "table=0,priority=5,ip,nw_dst=192.0.2.0/24,actions=output:2\n" + new string([.. chars]) },
                _ => new JsonObject { ["flow"] = new string([.. chars]) },
            };
            string before = Dump();
            var resp = Request(cmd, args);
            Assert.NotNull(resp["ok"]);
            if (!(bool)resp["ok"]!)
            {
                refused++;
                Assert.False(string.IsNullOrWhiteSpace((string?)resp["error"]));
                Assert.Equal(before, Dump()); // a refused command changes nothing
            }
        }

        Assert.True(refused > 50, $"only {refused} of 300 mutated commands were refused");
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
    }
}

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class FlowFileDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-flowfile-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private RunningSwitch Start()
    {
        var sw = new RunningSwitch(["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"),
            "--port", "a=net_null0,no-rx=1", "--port", "b=net_null1,no-rx=1"]);
        sw.WaitFor("port b link up");
        return sw;
    }

    private JsonObject Show() => JsonNode.Parse(ControlClient.Vswitchctl(P("ctl.sock"), "--json", "show").Out)!.AsObject();

    [Fact]
    public void The_switch_opens_no_file_a_client_names_and_quotes_none_back()
    {
        File.WriteAllText(P("secret"), "root:SECRET-HASH-1234:19000:0:99999:7:::\n");
        using var sw = Start();
        foreach (var cmd in new[] { "add-flows", "replace-flows", "add-flow", "del-flows", "mod-flows", "show" })
        {
            var resp = ControlClient.Request(P("ctl.sock"), cmd, new JsonObject { ["file"] = P("secret") });
            Assert.False((bool)resp["ok"]!, $"{cmd}: {resp.ToJsonString()}");
            var error = (string)resp["error"]!;
            Assert.Contains("argument \"file\" is refused", error, StringComparison.Ordinal);
            Assert.DoesNotContain("SECRET", error, StringComparison.Ordinal);
        }

        // vswitchctl reads the file itself, so the error names the client's file and line.
        var ctl = ControlClient.Vswitchctl(P("ctl.sock"), "add-flows", P("secret"));
        Assert.Equal(1, ctl.Exit);
        Assert.Contains($"{P("secret")}: line 1, column", ctl.Err, StringComparison.Ordinal);
        Assert.Equal(0, Show()["rules"]!.GetValue<int>());
        Assert.Equal(0, sw.Stop().ExitCode);
    }

    private static string Rules(int n, int port, int from = 0)
    {
        var sb = new System.Text.StringBuilder();
        for (int i = from; i < from + n; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"table=0,priority=100,udp,nw_dst=10.{(i >> 16) & 0xFF}.{(i >> 8) & 0xFF}.{i & 0xFF},tp_dst={i % 50000},actions=output:{port}\n");
        }

        return sb.ToString();
    }

    [Fact]
    public void Two_hundred_thousand_rules_load_in_chunks_and_a_bad_line_deep_in_a_replace_changes_nothing()
    {
        File.WriteAllText(P("big.txt"), "# 200 000 rules\n" + Rules(200_000, 2));
        using var sw = Start();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var add = ControlClient.Vswitchctl(P("ctl.sock"), "--json", "add-flows", P("big.txt"));
        double seconds = clock.Elapsed.TotalSeconds;
        Assert.True(add.Exit == 0, add.Err);
        Assert.Equal(200_000, JsonNode.Parse(add.Out)!["rules"]!.GetValue<int>());
        Assert.True(seconds < 20, $"200 000 rules took {seconds:F1} s");
        long version = Show()["flow_version"]!.GetValue<long>();

        // replace-flows from stdin: a bad rule on file line 150 002 refuses the whole replace.
        var lines = Rules(200_000, 1).Split('\n').ToList();
        lines[150_001] = "table=0,priority=100,udp,nw_dst=10.2.73.300,actions=output:1";
        var bad = ControlClient.VswitchctlWithStdin(P("ctl.sock"), string.Join('\n', lines), "replace-flows", "-");
        Assert.Equal(1, bad.Exit);
        Assert.Contains("stdin: line 150002, column", bad.Err, StringComparison.Ordinal);
        var show = Show();
        Assert.Equal(200_000, show["rules"]!.GetValue<int>());
        Assert.Equal(version, show["flow_version"]!.GetValue<long>());
        Assert.Equal("output:2", (string)JsonNode.Parse(ControlClient.Vswitchctl(P("ctl.sock"), "--json", "trace", "in_port=1,udp,nw_dst=10.0.0.7,tp_dst=7").Out)!["datapath_actions"]!);

        // The good replace applies in one version.
        File.WriteAllText(P("small.txt"), Rules(1000, 1, from: 5));
        var rep = ControlClient.Vswitchctl(P("ctl.sock"), "--json", "replace-flows", P("small.txt"));
        Assert.True(rep.Exit == 0, rep.Err);
        var r = JsonNode.Parse(rep.Out)!;
        Assert.Equal(1000, r["rules"]!.GetValue<int>());
        Assert.Equal(version + 1, r["version"]!.GetValue<long>());
        Assert.Equal(0, sw.Stop().ExitCode);
    }
}
