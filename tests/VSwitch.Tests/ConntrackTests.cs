// ConntrackTests.cs - ct(...) through the pipeline on in-memory ports: the stateful firewall (TCP
// handshake, replies in, nothing else), SNAT with checksums checked by an independent computation,
// zone limits, expiry by the sweeper, ICMP errors as +rel, the syntax and its refusals, and zero
// allocation on the PMD with conntrack on.
using VSwitch.Conntrack;
using VSwitch.FlowText;
using Xunit;
using static VSwitch.Tests.PipelineTests;

namespace VSwitch.Tests;

public sealed class ConntrackTests
{
    internal const string Inside = "198.51.100.2", Outside = "203.0.113.2", Public = "203.0.113.1";

    private const string Firewall = """
        table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=1)
        table=1,priority=100,ip,in_port=1,ct_state=+trk+new,actions=ct(commit,zone=1),output:2
        table=1,priority=100,ip,in_port=1,ct_state=+trk+est,actions=output:2
        table=1,priority=100,ip,in_port=2,ct_state=+trk+est,actions=output:1
        table=1,priority=100,ip,in_port=2,ct_state=+trk+rel,actions=output:1
        table=1,priority=1,actions=drop
        """;

    private const string Snat = """
        table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=1,nat)
        table=1,priority=100,ip,in_port=1,ct_state=+trk+new,actions=ct(commit,zone=1,nat(src=203.0.113.1)),output:2
        table=1,priority=100,ip,in_port=1,ct_state=+trk+est,actions=output:2
        table=1,priority=100,ip,in_port=2,ct_state=+trk+est,actions=output:1
        table=1,priority=100,ip,in_port=2,ct_state=+trk+rel,actions=output:1
        table=1,priority=1,actions=drop
        """;

    internal static Rig NewRig(string rules, int capacity = 1024)
    {
        var rig = new Rig();
        rig.Shared.ConntrackCapacity = capacity;
        rig.Load(FlowParser.ParseRules(rules, "test"));
        return rig;
    }

    internal static byte[] Tcp(string src, string dst, ushort sport, ushort dport, byte flags, uint seq, uint ack, int payload = 0) => FrameBuilder.Build(new FrameSpec
    {
        Proto = 6, NwSrc = FrameBuilder.Ip(src), NwDst = FrameBuilder.Ip(dst), SrcPort = sport, DstPort = dport,
        TcpFlags = flags, TcpSeq = seq, TcpAck = ack, Payload = new byte[payload],
    });

    internal static byte[] Udp(string src, string dst, ushort sport, ushort dport) => FrameBuilder.Build(new FrameSpec
    {
        Proto = 17, NwSrc = FrameBuilder.Ip(src), NwDst = FrameBuilder.Ip(dst), SrcPort = sport, DstPort = dport, Payload = new byte[18],
    });

    private const byte Syn = 0x02, Ack = 0x10, SynAck = 0x12, Fin = 0x01;

    private static uint SrcOf(byte[] f) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(26));

    private static uint DstOf(byte[] f) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(30));

    internal static ushort SportOf(byte[] f) => System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(34));

    [Fact]
    public void The_stateful_firewall_lets_an_inside_connection_and_its_replies_through_and_nothing_from_outside()
    {
        using var rig = NewRig(Firewall);
        rig.Send(1, [Tcp(Inside, Outside, 40000, 80, Syn, 1000, 0)]);
        Assert.Single(rig.Out(2));
        rig.Send(2, [Tcp(Outside, Inside, 80, 40000, SynAck, 5000, 1001)]);
        Assert.Single(rig.Out(1)); // the reply of a committed connection: +est
        rig.Send(1, [Tcp(Inside, Outside, 40000, 80, Ack, 1001, 5001)]);
        Assert.Single(rig.Out(2));
        Assert.Equal(1L, rig.Shared.Conns!.Count);
        var c = Assert.Single(rig.Shared.Conns.Dump(0));
        Assert.Equal("tcp", c.Protocol);
        Assert.Equal("ESTABLISHED", c.State);
        Assert.Equal((2UL, 1UL), (c.PacketsOrig, c.PacketsReply));

        // From outside: a new SYN is not let in (new from port 2), a mid-stream ACK is +inv, an
        // out-of-window segment of the real connection is +inv.
        rig.Send(2, [Tcp("203.0.113.3", Inside, 5555, 22, Syn, 1, 0)]);
        Assert.Empty(rig.Out(1));
        rig.Send(2, [Tcp("203.0.113.3", Inside, 5556, 22, Ack, 1, 1)]);
        Assert.Empty(rig.Out(1));
        rig.Send(2, [Tcp(Outside, Inside, 80, 40000, Ack, 900_000_000, 5001, payload: 100)]);
        Assert.Empty(rig.Out(1));
        Assert.Equal(2UL, rig.Counters.CtInvalid);
        Assert.Equal(1L, rig.Shared.Conns.Count); // nothing was committed for them
        rig.Send(2, [Tcp(Outside, Inside, 80, 40000, Ack, 5001, 1001, payload: 100)]);
        Assert.Single(rig.Out(1)); // in window: delivered
        Assert.Equal(1UL, rig.Counters.CtCommits);
    }

    [Fact]
    public void Snat_rewrites_the_source_to_the_public_address_and_replies_back_with_valid_checksums()
    {
        using var rig = NewRig(Snat);
        rig.Send(1, [Tcp(Inside, Outside, 40000, 80, Syn, 1000, 0), Udp(Inside, Outside, 5353, 53)]);
        var out2 = rig.Out(2);
        Assert.Equal(2, out2.Count);
        foreach (var f in out2)
        {
            Assert.Equal(FrameBuilder.Ip(Public), SrcOf(f));
            Assert.Equal(FrameBuilder.Ip(Outside), DstOf(f));
            Assert.Empty(FrameBuilder.VerifyChecksums(f));
        }

        ushort pubTcp = SportOf(out2[0]), pubUdp = SportOf(out2[1]);
        rig.Send(2, [Tcp(Outside, Public, 80, pubTcp, SynAck, 7000, 1001), Udp(Outside, Public, 53, pubUdp)]);
        var out1 = rig.Out(1);
        Assert.Equal(2, out1.Count);
        Assert.Equal((FrameBuilder.Ip(Inside), (ushort)80), (DstOf(out1[0]), SportOf(out1[0])));
        Assert.Equal(40000, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(out1[0].AsSpan(36)));
        Assert.Equal(5353, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(out1[1].AsSpan(36)));
        Assert.All(out1, f => Assert.Empty(FrameBuilder.VerifyChecksums(f)));

        // A packet to the public address that belongs to no connection goes nowhere.
        rig.Send(2, [Udp(Outside, Public, 53, 9999)]);
        Assert.Empty(rig.Out(1));
    }

    [Fact]
    public void Snat_gives_two_inside_hosts_with_the_same_source_port_two_public_ports()
    {
        using var rig = NewRig(Snat);
        rig.Send(1, [Tcp(Inside, Outside, 40000, 80, Syn, 1000, 0), Tcp("198.51.100.3", Outside, 40000, 80, Syn, 1000, 0)]);
        var out2 = rig.Out(2);
        Assert.Equal(2, out2.Count);
        Assert.NotEqual(SportOf(out2[0]), SportOf(out2[1]));
        Assert.Equal(40000, SportOf(out2[0])); // the first keeps its port
        rig.Send(2, [Tcp(Outside, Public, 80, SportOf(out2[1]), SynAck, 1, 1001)]);
        var back = Assert.Single(rig.Out(1));
        Assert.Equal(FrameBuilder.Ip("198.51.100.3"), DstOf(back));
    }

    [Fact]
    public void A_zone_limit_refuses_new_connections_and_keeps_the_established_ones()
    {
        using var rig = NewRig(Firewall);
        rig.Shared.Conns!.SetZoneLimit(1, 2);
        rig.Send(1, [Udp(Inside, Outside, 1, 53), Udp(Inside, Outside, 2, 53), Udp(Inside, Outside, 3, 53)]);
        Assert.Equal(3, rig.Out(2).Count); // ct(commit),output:2 outputs whether or not the commit took (as Open vSwitch)
        Assert.Equal(1UL, rig.Counters.CtFull);
        Assert.Equal(2, rig.Shared.Conns.ZoneCount(1));
        rig.Send(2, [Udp(Outside, Inside, 53, 1), Udp(Outside, Inside, 53, 2), Udp(Outside, Inside, 53, 3)]);
        Assert.Equal(2, rig.Out(1).Count); // the two committed ones are answered; the refused one is not a connection
    }

    [Fact]
    public void The_sweeper_expires_connections_by_their_timeouts_and_frees_them_after_the_epoch()
    {
        using var rig = NewRig(Firewall);
        var conns = rig.Shared.Conns!;
        rig.Send(1, [Udp(Inside, Outside, 1, 53), Tcp(Inside, Outside, 40000, 80, Syn, 1000, 0)]);
        Assert.Equal(2L, conns.Count);
        ulong hz = rig.Shared.ClockHz;
        ulong now = rig.Ports.Clock;
        bool passed = false;
        Assert.Equal(0, conns.Sweep(now + (29 * hz), () => 7, _ => passed));
        Assert.Equal(1, conns.Sweep(now + (31 * hz), () => 7, _ => passed)); // UDP unreplied: 30 s
        Assert.Equal(1L, conns.Count);
        Assert.Equal(1, conns.RetiredCount); // unlinked, not reusable until every PMD passed epoch 7
        passed = true;
        Assert.Equal(1, conns.Sweep(now + (121 * hz), () => 8, e => passed)); // TCP syn_sent: 120 s
        Assert.Equal(0L, conns.Count);
        conns.ReleaseRetired(_ => true);
        Assert.Equal(0, conns.RetiredCount);
        rig.Ports.Clock = now + (122 * hz);
        rig.Send(2, [Tcp(Outside, Inside, 80, 40000, SynAck, 5000, 1001)]);
        Assert.Empty(rig.Out(1)); // the connection is gone: the SYN/ACK is +inv
    }

    [Fact]
    public unsafe void Packets_left_queued_for_recirculation_by_an_aborted_pass_are_dropped_at_the_next_round()
    {
        // A pass that threw (the PMD loop restarts) leaves its recirculation queue behind; their ids
        // may name frozen states reclaimed meanwhile, so the next round boundary drops and counts them.
        using var rig = NewRig(Firewall);
        nint m = rig.Mbufs.Create(Udp(Inside, Outside, 1, 53));
        rig.Flow.RecircPkts[0] = m;
        rig.Flow.RecircIds[0] = 200;
        rig.Flow.RecircCount = 1;
        rig.Loop.Poll();
        Assert.Equal(0, rig.Flow.RecircCount);
        Assert.Equal(1UL, rig.Counters.RecircDrops);
        Assert.Empty(rig.Out(1));
        Assert.Empty(rig.Out(2));
    }

    [Fact]
    public void A_zone_timeout_policy_expires_that_zone_s_connections_by_its_own_timeouts()
    {
        // Zone 2's policy shortens udp_first to 5 s; zone 1 keeps the default 30 s, and zone 2's TCP
        // (not named by the policy) keeps the default too.
        using var rig = NewRig("""
            table=0,priority=100,ip,in_port=1,ct_state=-trk,actions=ct(commit,zone=1),output:2
            table=0,priority=100,ip,in_port=3,ct_state=-trk,actions=ct(commit,zone=2),output:2
            """);
        var settings = new CtSettings();
        settings.ZoneTimeouts[2] = new SortedDictionary<string, int>(StringComparer.Ordinal) { ["udp_first"] = 5 };
        settings.ApplyTo(rig.Shared.Conns!);
        Assert.Equal(5, settings.TimeoutsOf(2)[CtSettings.TimeoutIndex("udp_first")]);
        Assert.Equal(30, settings.TimeoutsOf(1)[CtSettings.TimeoutIndex("udp_first")]);
        var conns = rig.Shared.Conns!;
        rig.Send(1, [Udp(Inside, Outside, 1, 53)]);
        rig.Send(3, [Udp(Inside, Outside, 2, 53), Tcp(Inside, Outside, 40000, 80, Syn, 1000, 0)]);
        Assert.Equal(3L, conns.Count);
        ulong now = rig.Ports.Clock, hz = rig.Shared.ClockHz;
        Assert.Equal(0, conns.Sweep(now + (4 * hz), () => 1, _ => true));
        Assert.Equal(1, conns.Sweep(now + (6 * hz), () => 2, _ => true)); // zone 2's UDP: 5 s
        Assert.Single(conns.Dump(2), c => c.Protocol == "tcp");
        Assert.Equal(0, conns.Sweep(now + (29 * hz), () => 3, _ => true));
        Assert.Equal(1, conns.Sweep(now + (31 * hz), () => 4, _ => true)); // zone 1's UDP: the default 30 s
        Assert.Equal(1, conns.Sweep(now + (121 * hz), () => 5, _ => true)); // zone 2's TCP syn_sent: the default 120 s

        // The settings round-trip through the state file's JSON; a bad name there is refused.
        var back = CtSettings.FromJson(settings.ToJson());
        Assert.Equal(5, back.TimeoutsOf(2)[CtSettings.TimeoutIndex("udp_first")]);
        Assert.Throws<FormatException>(() => CtSettings.FromJson(System.Text.Json.Nodes.JsonNode.Parse("""{"zone_timeouts":{"2":{"udp_forever":5}}}""")!));
    }

    [Fact]
    public void Recirculation_ids_no_cached_verdict_uses_are_reclaimed_and_live_ones_keep_their_state()
    {
        // Table 0 keeps the UDP source port in reg0 before ct(table=1): every source port is its own
        // frozen state (table 1 writes reg0 into the destination port, so a wrong state shows). 100
        // are taken; a reclaim while 10 of them carry traffic frees the other 90, and 100 new ones fit.
        using var rig = NewRig("""
            table=0,priority=100,udp,ct_state=-trk,actions=move:NXM_OF_UDP_SRC[]->NXM_NX_REG0[0..15],ct(table=1,zone=1)
            table=1,priority=100,udp,actions=move:NXM_NX_REG0[0..15]->NXM_OF_UDP_DST[],output:2
            """);
        var frozen = rig.Shared.Frozen;
        List<byte[]> Flows(int first, int n) => [.. Enumerable.Range(first, n).Select(p => Udp(Inside, Outside, (ushort)p, 53))];
        void AssertForwarded(int first, int n)
        {
            var got = rig.Out(2);
            Assert.Equal(n, got.Count);
            Assert.Equal(Enumerable.Range(first, n), got.Select(f => (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(36))).Order());
        }

        rig.Send(1, Flows(1000, 100));
        AssertForwarded(1000, 100);
        Assert.Equal(100, frozen.Count);

        long epoch = 0;
        bool polled = false;
        int Tick() => frozen.Reclaim(rig.Shared.RequestCacheFlush, () => { polled = false; return ++epoch; }, _ => polled);
        Assert.Equal(0, Tick()); // starts: a new generation, every cache flushed
        rig.Send(1, Flows(1000, 10)); // the round boundary flushes the caches; these 10 are translated again
        AssertForwarded(1000, 10);
        polled = true;
        Assert.Equal(0, Tick()); // marks the 90 nothing touched since
        rig.Loop.Poll();
        polled = true;
        Assert.Equal(90, Tick());
        Assert.Equal(10, frozen.Count);

        rig.Send(1, Flows(2000, 100));
        AssertForwarded(2000, 100);
        rig.Send(1, Flows(1000, 10));
        AssertForwarded(1000, 10);
        Assert.Equal(110, frozen.Count);
        Assert.Equal(0UL, rig.Counters.TranslationErrors);

        // Without a reclaim the 128 ids still run out: past them a new state is a counted drop.
        rig.Send(1, Flows(3000, 20));
        Assert.Equal(18, rig.Out(2).Count);
        Assert.Equal(2UL, rig.Counters.TranslationErrors);
    }

    [Fact]
    public void An_icmp_port_unreachable_for_an_inside_udp_flow_is_related_and_translated_back_under_snat()
    {
        using var rig = NewRig(Snat);
        rig.Send(1, [Udp(Inside, Outside, 5353, 53)]);
        var sent = Assert.Single(rig.Out(2));
        var err = FrameBuilder.Build(new FrameSpec
        {
            Proto = 1, IcmpType = 3, IcmpCode = 3, NwSrc = FrameBuilder.Ip(Outside), NwDst = FrameBuilder.Ip(Public),
            Payload = sent.AsSpan(14, 28).ToArray(), // the quoted IP header and UDP header as the server got them
        });
        rig.Send(2, [err]);
        var got = Assert.Single(rig.Out(1));
        Assert.Equal(FrameBuilder.Ip(Inside), DstOf(got));
        Assert.Equal(FrameBuilder.Ip(Inside), System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(got.AsSpan(14 + 20 + 8 + 12))); // quoted source
        Assert.Empty(FrameBuilder.VerifyChecksums(got));
        var quoted = got.AsSpan(14 + 20 + 8, 20).ToArray();
        Assert.Equal(0, FrameBuilder.Checksum(quoted, 0)); // the quoted IP header's checksum verifies

        // An error about a flow nobody opened is +inv.
        var stray = FrameBuilder.Build(new FrameSpec
        {
            Proto = 1, IcmpType = 3, IcmpCode = 3, NwSrc = FrameBuilder.Ip(Outside), NwDst = FrameBuilder.Ip(Public),
            Payload = Udp(Public, Outside, 7777, 53).AsSpan(14, 28).ToArray(),
        });
        rig.Send(2, [stray]);
        Assert.Empty(rig.Out(1));
    }

    [Fact]
    public void Echo_requests_open_icmp_connections_and_replies_come_back_unsolicited_ones_do_not()
    {
        using var rig = NewRig(Firewall);
        byte[] Echo(string s, string d, byte type) => FrameBuilder.Build(new FrameSpec { Proto = 1, IcmpType = type, IcmpId = 77, NwSrc = FrameBuilder.Ip(s), NwDst = FrameBuilder.Ip(d) });
        rig.Send(2, [Echo(Outside, Inside, 8)]); // ping in: new from outside
        Assert.Empty(rig.Out(1));
        rig.Send(1, [Echo(Inside, Outside, 8)]);
        Assert.Single(rig.Out(2));
        rig.Send(2, [Echo(Outside, Inside, 0)]);
        Assert.Single(rig.Out(1));
    }

    [Fact]
    public void A_closed_tcp_connection_takes_a_new_syn_on_the_same_ports_as_a_new_connection()
    {
        using var rig = NewRig(Firewall);
        rig.Send(1, [Tcp(Inside, Outside, 40000, 80, Syn, 1000, 0)]);
        rig.Send(2, [Tcp(Outside, Inside, 80, 40000, SynAck, 5000, 1001)]);
        rig.Send(1, [Tcp(Inside, Outside, 40000, 80, Ack, 1001, 5001), Tcp(Inside, Outside, 40000, 80, (byte)(Fin | Ack), 1001, 5001)]);
        rig.Send(2, [Tcp(Outside, Inside, 80, 40000, (byte)(Fin | Ack), 5001, 1002)]);
        rig.Send(1, [Tcp(Inside, Outside, 40000, 80, Ack, 1002, 5002)]);
        Assert.Equal("TIME_WAIT", Assert.Single(rig.Shared.Conns!.Dump(0)).State);
        rig.Out(1);
        rig.Out(2);
        rig.Send(1, [Tcp(Inside, Outside, 40000, 80, Syn, 90000, 0)]);
        Assert.Single(rig.Out(2));
        Assert.Equal("SYN_SENT", Assert.Single(rig.Shared.Conns.Dump(0)).State);
    }

    [Fact]
    public void Later_fragments_follow_their_first_through_snat_and_one_without_its_first_is_invalid()
    {
        using var rig = NewRig(Snat);
        byte[] Fragment(string src, ushort fragField) => FrameBuilder.Build(new FrameSpec
        {
            Proto = 17, NwSrc = FrameBuilder.Ip(src), NwDst = FrameBuilder.Ip(Outside), SrcPort = 5353, DstPort = 53, FragField = fragField, Payload = new byte[16],
        });
        rig.Send(1, [Fragment(Inside, 0x2000), Fragment(Inside, 0x0003)]); // offset 0 with MF, then offset 24
        var out2 = rig.Out(2);
        Assert.Equal(2, out2.Count);
        foreach (var f in out2)
        {
            Assert.Equal(FrameBuilder.Ip(Public), SrcOf(f)); // both fragments leave with the public address
            Assert.Equal(0, FrameBuilder.Checksum(f.AsSpan(14, 20), 0)); // and a valid IP header checksum
        }

        Assert.Equal((ushort)0x2000, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(out2[0].AsSpan(20)));
        Assert.Equal((ushort)0x0003, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(out2[1].AsSpan(20)));
        Assert.Single(rig.Shared.Conns!.Dump(0)); // the datagram's connection, from its first fragment

        ulong inv = rig.Counters.CtInvalid;
        rig.Send(1, [Fragment("198.51.100.9", 0x0003)]); // a later fragment whose first never came
        Assert.Empty(rig.Out(2));
        Assert.Equal(inv + 1, rig.Counters.CtInvalid);
    }

    [Theory]
    [InlineData(17, 2000)]
    [InlineData(6, 2000)]
    [InlineData(17, 60)]
    public void Jumbo_frames_in_chains_of_mbufs_are_tracked_and_natted_like_any_other(byte proto, int firstSegment)
    {
        // 8900 bytes of UDP payload (TCP: 4000, within the peer's 8192-byte window) in segments of
        // 2 KB: the IP length reaches past the first segment, the headers do not. Both directions
        // through SNAT, checksums over the whole chain.
        using var rig = NewRig(Snat);
        int size = proto == 6 ? 4000 : 8900;
        byte[] Jumbo(string src, string dst, ushort sport, ushort dport, byte flags, uint seq, uint ack) => FrameBuilder.Build(new FrameSpec
        {
            Proto = proto, NwSrc = FrameBuilder.Ip(src), NwDst = FrameBuilder.Ip(dst), SrcPort = sport, DstPort = dport,
            TcpFlags = flags, TcpSeq = seq, TcpAck = ack, Payload = Enumerable.Range(0, size).Select(i => (byte)i).ToArray(),
        });
        List<byte[]> Sent(int ofPort)
        {
            var list = rig.Ports.Sent(ofPort - 1).Select(FakeMbufs.ChainBytes).ToList();
            rig.Ports.TxCount[ofPort - 1] = 0;
            return list;
        }

        ushort pub;
        if (proto == 6)
        {
            rig.Send(1, [Tcp(Inside, Outside, 40000, 80, Syn, 1000, 0)]);
            pub = SportOf(Assert.Single(rig.Out(2)));
            rig.Send(2, [Tcp(Outside, Public, 80, pub, SynAck, 5000, 1001)]);
            Assert.Single(rig.Out(1));
        }

        rig.Ports.Inject(0, rig.Mbufs.CreateChain(Jumbo(Inside, Outside, 40000, 80, Ack, 1001, 5001), firstSegment));
        rig.Loop.Poll();
        var leaving = Assert.Single(Sent(2));
        Assert.Equal(size + 14 + 20 + (proto == 6 ? 20 : 8), leaving.Length);
        Assert.Equal(FrameBuilder.Ip(Public), SrcOf(leaving));
        Assert.Empty(FrameBuilder.VerifyChecksums(leaving));
        pub = SportOf(leaving);

        rig.Ports.Inject(1, rig.Mbufs.CreateChain(Jumbo(Outside, Public, 80, pub, Ack, 5001, (uint)(1001 + size)), firstSegment, 1));
        rig.Loop.Poll();
        var back = Assert.Single(Sent(1)); // the reply: +est, un-NATed
        Assert.Equal(FrameBuilder.Ip(Inside), DstOf(back));
        Assert.Empty(FrameBuilder.VerifyChecksums(back));
        Assert.Equal(0UL, rig.Counters.CtInvalid);
        Assert.Equal(proto == 6 ? "ESTABLISHED" : "REPLIED", Assert.Single(rig.Shared.Conns!.Dump(0)).State);
    }

    [Fact]
    public void Snat_to_a_whole_ipv6_64_picks_an_address_in_it()
    {
        using var rig = NewRig("""
            table=0,priority=100,ipv6,ct_state=-trk,actions=ct(table=1,zone=1,nat)
            table=1,priority=100,ipv6,in_port=1,ct_state=+trk+new,actions=ct(commit,zone=1,nat(src=[2001:db8:9::]-[2001:db8:9::ffff:ffff:ffff:ffff])),output:2
            """);
        rig.Send(1, [FrameBuilder.Build(new FrameSpec { EthType = 0x86DD, Proto = 17, SrcPort = 5000, DstPort = 53, Payload = new byte[18] })]);
        var f = Assert.Single(rig.Out(2));
        Assert.Equal(0x20010DB8_00090000UL, System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(f.AsSpan(22))); // the source's /64
        Assert.Empty(FrameBuilder.VerifyChecksums(f));
    }

    [Fact]
    public void Force_recommits_a_connection_met_in_its_reply_direction_the_other_way()
    {
        using var rig = NewRig("""
            table=0,priority=100,udp,in_port=1,actions=ct(commit,zone=1),output:2
            table=0,priority=100,udp,in_port=2,actions=ct(commit,force,zone=1),output:1
            """);
        rig.Send(1, [Udp(Inside, Outside, 1000, 53)]);
        Assert.StartsWith("src=198.51.100.2,", Assert.Single(rig.Shared.Conns!.Dump(0)).Orig.ToString(), StringComparison.Ordinal);
        rig.Send(2, [Udp(Outside, Inside, 53, 1000)]); // the reply direction, with force: ended, and started from here
        Assert.Single(rig.Out(1));
        rig.Shared.Conns.Sweep(rig.Ports.Clock, () => 1, _ => true); // unlink the ended one
        Assert.StartsWith("src=203.0.113.2,", Assert.Single(rig.Shared.Conns.Dump(0)).Orig.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ct(commit,zone=5,table=2,exec(set_field:0x7->ct_mark),nat(src=203.0.113.1-203.0.113.3:1024-2000,random))")]
    [InlineData("ct(table=1,zone=1,nat)")]
    [InlineData("ct(commit,nat(dst=198.51.100.2:80))")]
    [InlineData("ct(commit,exec(set_field:0x1/0x3->ct_mark,set_field:0x10->ct_label))")]
    public void Ct_actions_round_trip_through_the_formatter(string action)
    {
        var r = Assert.Single(FlowParser.ParseRules($"table=0,ip,actions={action}", "t"));
        var text = FlowFormatter.Format(r, withCounters: false);
        var again = Assert.Single(FlowParser.ParseRules(text, "t"));
        Assert.Equal(r.Actions[0].Ct, again.Actions[0].Ct);
        Assert.Equal(text, FlowFormatter.Format(again, withCounters: false));
    }

    [Fact]
    public void Ipv6_nat_ranges_parse_within_one_64()
    {
        var r = Assert.Single(FlowParser.ParseRules("table=0,ipv6,actions=ct(commit,nat(src=[2001:db8::1]-[2001:db8::9]:4000-4100))", "t"));
        var spec = r.Actions[0].Ct!;
        Assert.True(spec.V6);
        Assert.Equal((4000, 4100), ((int)spec.PortMin, (int)spec.PortMax));
    }

    [Theory]
    [InlineData("table=0,actions=ct(commit)", "needs ip or ipv6 in the match")]
    [InlineData("table=0,ip,actions=ct(nat(src=203.0.113.1))", "needs commit")]
    [InlineData("table=0,ip,actions=ct(exec(set_field:1->ct_mark))", "needs commit")]
    [InlineData("table=0,ip,actions=ct(table=1),output:2", "expected nothing after ct(...,table=N)")]
    [InlineData("table=0,ip,actions=ct(zone=70000)", "expected a zone number from 0 to 65535")]
    [InlineData("table=0,ip,actions=ct(zone=NXM_NX_REG0[0..15])", "a zone taken from a field is not supported")]
    [InlineData("table=0,ip,actions=ct(commit,alg=ftp)", "alg= (application-level gateways")]
    [InlineData("table=0,ip,actions=ct(commit,nat(src=203.0.113.9-203.0.113.1))", "ends before it starts")]
    [InlineData("table=0,ip,actions=ct(commit,nat(src=203.0.113.1:0-10))", "expected a port or port range from 1 to 65535")]
    [InlineData("table=0,ip,actions=ct(commit,nat(src=[2001:db8::1]))", "ct nat range is IPv6 but the match is ip")]
    [InlineData("table=0,ip,actions=ct(commit,nat(src=203.0.113.1,sticky))", "expected a nat flag")]
    [InlineData("table=0,ip,actions=ct(commit,exec(set_field:1->reg0))", "in ct exec(...)")]
    [InlineData("table=0,ip,actions=ct(bogus)", "expected a ct argument")]
    public void Bad_ct_actions_are_refused_with_the_reason(string line, string why)
    {
        var ex = Assert.Throws<FlowSyntaxException>(() => FlowParser.ParseRules(line, "t"));
        Assert.Contains(why, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_pipeline_with_conntrack_and_snat_allocates_nothing()
    {
        using var rig = NewRig(Snat, capacity: 1 << 16);
        rig.Shared.Conns!.PrefetchAbove = 0; // the batched prefetch of a large table runs too
        // Established UDP flows both ways: the first packets commit, later ones take +est (and NAT).
        var outFrames = Enumerable.Range(0, 16).Select(i => Udp(Inside, Outside, (ushort)(2000 + i), 53)).ToList();
        rig.Send(1, outFrames);
        var pub = rig.Out(2).Select(SportOf).ToList();
        var inFrames = pub.Select(p => Udp(Outside, Public, 53, p)).ToList();
        ForwardBothWaysAllocatingNothing(rig, outFrames, inFrames);
        Assert.Equal(16L, rig.Shared.Conns!.Count); // a NATed packet's second ct (table 1's commit) finds its connection again
        Assert.True(rig.Counters.CtLookups > 10_000);
        Assert.Equal(16UL, rig.Counters.CtCommits);
    }

    /// <summary>
    /// Sends <paramref name="outFrames"/> in on port 1 and <paramref name="inFrames"/> on port 2, round
    /// after round (the originals restored each time: NAT rewrites them), and asserts that the PMD
    /// allocates nothing doing it; returns the packets sent out of ports 1 and 2.
    /// </summary>
    internal static (ulong ToPort1, ulong ToPort2) ForwardBothWaysAllocatingNothing(Rig rig, IReadOnlyList<byte[]> outFrames, IReadOnlyList<byte[]> inFrames)
    {
        var mOut = outFrames.Select(f => rig.Mbufs.Create(f)).ToArray();
        var mIn = inFrames.Select(f => rig.Mbufs.Create(f, 1)).ToArray();
        var pristineOut = outFrames.Select(f => (byte[])f.Clone()).ToArray();
        var pristineIn = inFrames.Select(f => (byte[])f.Clone()).ToArray();
        unsafe void Reset(nint[] ms, byte[][] frames)
        {
            for (int i = 0; i < ms.Length; i++)
            {
                fixed (byte* p = frames[i])
                {
                    Buffer.MemoryCopy(p, VSwitch.Interop.Mbuf.Data(ms[i]), frames[i].Length, frames[i].Length);
                }
            }
        }

        ulong sent1 = 0, sent2 = 0;
        void Run(int rounds)
        {
            for (int r = 0; r < rounds; r++)
            {
                Reset(mOut, pristineOut);
                Reset(mIn, pristineIn);
                foreach (var m in mOut)
                {
                    rig.Ports.Inject(0, m);
                }

                foreach (var m in mIn)
                {
                    rig.Ports.Inject(1, m);
                }

                rig.Loop.Poll();
                rig.Loop.Poll();
                sent1 += (ulong)rig.Ports.TxCount[0];
                sent2 += (ulong)rig.Ports.TxCount[1];
                rig.Ports.RxHead[0] = rig.Ports.RxTail[0] = 0;
                rig.Ports.RxHead[1] = rig.Ports.RxTail[1] = 0;
                rig.Ports.TxCount[0] = rig.Ports.TxCount[1] = 0;
            }
        }

        AssertAllocatesNothing(Run);
        return (sent1, sent2);
    }
}
