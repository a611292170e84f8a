// ExecutorTests.cs - the action executor's ownership of mbufs: a packet an action drops leaves its
// group cleanly (no hole a later copy or edit touches), long action lists are stored out of line,
// and every mbuf is either sent or freed.
using VSwitch.FlowText;
using VSwitch.Interop;
using VSwitch.Pipeline;
using Xunit;
using static VSwitch.Tests.PipelineTests;

namespace VSwitch.Tests;

public sealed unsafe class ExecutorTests
{
    private static byte[] Udp(int id, byte ttl)
    {
        var s = new FrameSpec { Proto = 17, Ttl = ttl, Payload = new byte[18] };
        BitConverter.GetBytes(id).CopyTo(s.Payload, 0);
        return FrameBuilder.Build(s);
    }

    private static int Id(byte[] f) => BitConverter.ToInt32(f, f.Length - 18);

    [Fact]
    public void A_ttl_that_expires_before_two_outputs_sends_nothing_and_the_others_leave_both_ports()
    {
        // The reported crash: dec_ttl dropped TTL-1 packets in the executor, then output:2 copied the
        // group with the hole. dec_ttl is now decided at translation (Open vSwitch's semantics): the
        // TTL-0/1 packets get their own verdict, with no output, and the group never has a hole.
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=10,ip,actions=dec_ttl,output:2,output:3", "test"));
        byte[] ttls = [1, 5, 1, 5, 0, 2, 1];
        rig.Send(1, ttls.Select((t, i) => Udp(i, t)));

        var two = rig.Out(2);
        var three = rig.Out(3);
        int[] live = [1, 3, 5];
        Assert.Equal(live, two.Select(Id));
        Assert.Equal(live, three.Select(Id));
        foreach (var f in two.Concat(three))
        {
            Assert.Equal(ttls[Id(f)] - 1, f[14 + 8]);
            Assert.Empty(FrameBuilder.VerifyChecksums(f));
        }

        Assert.Equal(4UL, rig.Counters.NoOutputDrops);
        Assert.Equal(0UL, rig.Counters.ActionDrops);
        Assert.Equal(rig.Mbufs.Allocated, rig.Mbufs.Freed + 6);
    }

    [Fact]
    public void An_expiring_ttl_ends_the_rules_actions_after_the_outputs_before_it()
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=10,ip,actions=output:4,dec_ttl,output:2,output:3", "test"));
        rig.Send(1, [Udp(0, 1), Udp(1, 1), Udp(2, 0)]);
        Assert.Equal(3, rig.Out(4).Count); // the output before dec_ttl still leaves (the packet itself)
        Assert.Empty(rig.Out(2));
        Assert.Empty(rig.Out(3));
        Assert.Equal(0UL, rig.Counters.ActionDrops);
        Assert.Equal(0UL, rig.Counters.Clones);
        Assert.Equal(rig.Mbufs.Allocated, rig.Mbufs.Freed + 3);
    }

    [Fact]
    public void A_failed_push_vlan_drops_only_that_packet()
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=10,ip,actions=push_vlan:0x8100,mod_vlan_vid:9,output:2,output:3", "test"));
        var frames = Enumerable.Range(0, 5).Select(i => Udp(i, 64)).ToList();
        foreach (var (f, i) in frames.Select((f, i) => (f, i)))
        {
            nint m = rig.Mbufs.Create(f, 0);
            if (i % 2 == 1)
            {
                // no headroom left for a tag: the frame sits at the start of the buffer
                byte* buf = *(byte**)m;
                Buffer.MemoryCopy(Mbuf.Data(m), buf + 2, f.Length, f.Length);
                *(ushort*)(m + Mbuf.DataOffOffset) = 2;
            }

            rig.Ports.Inject(0, m);
        }

        while (rig.Loop.Poll() != 0)
        {
        }

        int[] live = [0, 2, 4];
        var two = rig.Out(2);
        Assert.Equal(live, two.Select(Id));
        Assert.Equal(live, rig.Out(3).Select(Id));
        Assert.All(two, f => Assert.Equal(0x8100, (f[12] << 8) | f[13]));
        Assert.Equal(2UL, rig.Counters.ActionDrops);
        Assert.Equal(rig.Mbufs.Allocated, rig.Mbufs.Freed + 6);
    }

    [Theory]
    [InlineData("flood")]
    [InlineData("normal")]
    public void A_broadcast_floods_to_all_of_40_ports(string action)
    {
        // More datapath actions than fit in a megaflow entry: stored out of line, not dropped.
        const int ports = 40;
        using var rig = new Rig(ports: ports);
        rig.Load(FlowParser.ParseRules($"table=0,priority=0,actions={action}", "test"));
        var bcast = new FrameSpec { Dst = 0xFFFFFFFFFFFF, Proto = 17, Payload = new byte[18] };
        int sent = 0;
        for (int round = 0; round < 3; round++) // the upcall, then cached hits
        {
            rig.Send(1, [FrameBuilder.Build(bcast), FrameBuilder.Build(bcast)]);
            Assert.Empty(rig.Out(1));
            for (int p = 2; p <= ports; p++)
            {
                var got = rig.Out(p);
                Assert.Equal(2, got.Count);
                sent += got.Count;
            }
        }

        Assert.Equal(0UL, rig.Counters.ActionDrops);
        Assert.Equal(1UL, rig.Counters.Upcalls);
        Assert.True(rig.Flow.Megaflows.ActionBlocks >= 1);
        Assert.Equal(rig.Mbufs.Allocated, rig.Mbufs.Freed + sent); // every copy and original sent or freed
    }

    [Fact]
    public void Out_of_line_actions_are_reused_after_revalidation_and_removal()
    {
        const int ports = 40;
        using var rig = new Rig(ports: ports);
        var bcast = FrameBuilder.Build(new FrameSpec { Dst = 0xFFFFFFFFFFFF, Proto = 17, Payload = new byte[18] });
        for (int i = 0; i < 20; i++)
        {
            // alternate a long and a short verdict for the same megaflow
            rig.Load(FlowParser.ParseRules(i % 2 == 0 ? "actions=flood" : "actions=output:7", "test"));
            rig.Send(1, [bcast]);
            Assert.Single(rig.Out(7));
            for (int p = 2; p <= ports; p++)
            {
                rig.Out(p);
            }
        }

        Assert.Equal(1, rig.Flow.Megaflows.ActionBlocks); // one block, returned and rented again
    }

    [Fact]
    public void A_translation_that_throws_is_a_counted_drop_and_the_pmd_keeps_forwarding()
    {
        using var rig = new Rig();
        // A rule no parser would build (set_field without a field): its translation throws.
        rig.Load([
            Rule(0, 100, m => m.Ip().Set(Fields.NwProto, 17), new FlowAction(ActionKind.SetField, Value: 1)),
            Rule(0, 10, _ => { }, Out(2)),
        ]);
        rig.Send(1, [Udp(0, 64), Udp(1, 64)]);
        Assert.Empty(rig.Out(2));
        Assert.Equal(2UL, rig.Counters.TranslationErrors);
        Assert.Contains("NullReferenceException", rig.Flow.LastTranslationError, StringComparison.Ordinal);

        var tcp = FrameBuilder.Build(new FrameSpec { Payload = new byte[18] });
        rig.Send(1, [tcp, tcp]);
        Assert.Equal(2, rig.Out(2).Count);
        Assert.Equal(rig.Mbufs.Allocated, rig.Mbufs.Freed + 2);
    }

    [Theory]
    [InlineData("ipv6_src", 58)]
    [InlineData("ipv6_dst", 58)]
    [InlineData("ipv6_dst", 17)]
    [InlineData("ipv6_src", 6)]
    public void An_ipv6_address_rewrite_keeps_the_l4_checksum_right_including_icmpv6(string field, byte proto)
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules($"table=0,priority=10,ipv6,actions=set_field:2001:db8::99->{field},output:2", "test"));
        UInt128 a = UInt128.Parse("42540766411282592856903984951653826561"), b = UInt128.Parse("42540766411282592856903984951653826562");
        UInt128 to = UInt128.Parse("42540766411282592856903984951653826713"); // 2001:db8::99
        FrameSpec Spec(UInt128 src, UInt128 dst) => new() { EthType = 0x86DD, Proto = proto, V6Src = src, V6Dst = dst, Payload = new byte[18] };
        var input = FrameBuilder.Build(Spec(a, b));
        rig.Send(1, [input, input]); // the upcall, then a cached hit
        var want = FrameBuilder.Build(field == "ipv6_src" ? Spec(to, b) : Spec(a, to));
        var got = rig.Out(2);
        Assert.Equal(2, got.Count);
        foreach (var f in got)
        {
            Assert.Empty(FrameBuilder.VerifyChecksums(f));
            Assert.Equal(Convert.ToHexString(want), Convert.ToHexString(f));
        }
    }

    [Theory]
    [InlineData(17, 60)]
    [InlineData(6, 100)]
    [InlineData(17, 1400)]
    public void A_jumbo_frame_in_a_chain_of_mbufs_is_parsed_rewritten_and_forwarded_not_counted_malformed(byte proto, int firstSegment)
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules($"table=0,priority=10,{(proto == 6 ? "tcp" : "udp")},nw_dst=198.51.100.2,actions=mod_nw_dst:203.0.113.5,mod_tp_dst:4242,dec_ttl,push_vlan:0x8100,mod_vlan_vid:7,output:2", "test"));
        FrameSpec Spec() => new() { Proto = proto, Payload = Enumerable.Range(0, 8900).Select(i => (byte)i).ToArray() };
        var input = FrameBuilder.Build(Spec());
        var s = Spec();
        s.NwDst = FrameBuilder.Ip("203.0.113.5");
        s.DstPort = 4242;
        s.Ttl = 63;
        s.Tags = [(0x8100, 7)];
        var want = FrameBuilder.Build(s);

        rig.Ports.Inject(0, rig.Mbufs.CreateChain(input, firstSegment));
        while (rig.Loop.Poll() != 0)
        {
        }

        Assert.Equal(0UL, rig.Counters.Malformed);
        nint sent = Assert.Single(rig.Ports.Sent(1));
        Assert.Equal((uint)want.Length, Mbuf.PktLen(sent));
        var got = FakeMbufs.ChainBytes(sent);
        Assert.Empty(FrameBuilder.VerifyChecksums(got)); // incremental checksums over the whole chain's payload
        Assert.Equal(Convert.ToHexString(want), Convert.ToHexString(got));
    }

    [Theory]
    [InlineData(false, 64, 9)]
    [InlineData(false, 1, 200)]
    [InlineData(true, 64, 0)]
    public void Mod_nw_ttl_sets_the_ttl_or_hop_limit_and_keeps_the_checksums_right(bool v6, byte ttl, byte set)
    {
        // A later dec_ttl sees the new TTL: at 0 or 1 it ends the rule's actions (so output:3 only
        // when the set TTL is above 1).
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules($"table=0,priority=10,{(v6 ? "udp6" : "udp")},actions=mod_nw_ttl:{set},output:2,dec_ttl,output:3", "test"));
        FrameSpec Spec(byte t) => new() { Proto = 17, Ttl = t, EthType = (ushort)(v6 ? 0x86DD : 0x0800), Payload = new byte[18] };
        rig.Send(1, [FrameBuilder.Build(Spec(ttl))]);
        var two = Assert.Single(rig.Out(2));
        Assert.Equal(Convert.ToHexString(FrameBuilder.Build(Spec(set))), Convert.ToHexString(two));
        Assert.Empty(FrameBuilder.VerifyChecksums(two));
        if (set > 1)
        {
            var three = Assert.Single(rig.Out(3));
            Assert.Equal(Convert.ToHexString(FrameBuilder.Build(Spec((byte)(set - 1)))), Convert.ToHexString(three));
        }
        else
        {
            Assert.Empty(rig.Out(3));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Mod_nw_tos_and_mod_nw_ecn_set_their_bits_and_keep_the_checksums_right(bool v6)
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules($"table=0,priority=10,{(v6 ? "tcp6" : "tcp")},actions=mod_nw_tos:184,output:2,mod_nw_ecn:1,output:3", "test"));
        FrameSpec Spec(byte tos) => new() { Proto = 6, Tos = tos, EthType = (ushort)(v6 ? 0x86DD : 0x0800), Payload = new byte[18] };
        rig.Send(1, [FrameBuilder.Build(Spec(0x02))]); // DSCP 0, ECN 2
        var two = Assert.Single(rig.Out(2));
        Assert.Equal(Convert.ToHexString(FrameBuilder.Build(Spec(0xBA))), Convert.ToHexString(two)); // DSCP 46, ECN kept
        Assert.Empty(FrameBuilder.VerifyChecksums(two));
        var three = Assert.Single(rig.Out(3));
        Assert.Equal(Convert.ToHexString(FrameBuilder.Build(Spec(0xB9))), Convert.ToHexString(three));
        Assert.Empty(FrameBuilder.VerifyChecksums(three));
    }

    [Fact]
    public void A_chain_whose_first_segment_ends_inside_a_header_is_counted_malformed()
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=0,actions=output:2", "test"));
        var input = FrameBuilder.Build(new FrameSpec { Proto = 6, Payload = new byte[3000] });
        rig.Ports.Inject(0, rig.Mbufs.CreateChain(input, 40)); // the TCP header starts at 34 and is 20 long
        while (rig.Loop.Poll() != 0)
        {
        }

        Assert.Equal(1UL, rig.Counters.Malformed);
        Assert.Empty(rig.Ports.Sent(1));
    }

    [Fact]
    public void Recirc_sends_the_rewritten_packet_back_through_the_caches_with_its_recirc_id()
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("""
            table=0,priority=100,recirc_id=0,udp,nw_dst=198.51.100.7,actions=mod_nw_dst:203.0.113.9,dec_ttl,recirc(1)
            table=0,priority=100,recirc_id=1,udp,nw_dst=203.0.113.9,nw_ttl=63,actions=output:3
            table=0,priority=90,recirc_id=1,actions=output:2
            table=0,priority=50,udp,nw_dst=203.0.113.9,actions=output:4
            """, "test"));
        FrameSpec Spec(string dst, byte ttl = 64) => new() { Proto = 17, NwDst = FrameBuilder.Ip(dst), Ttl = ttl, Payload = new byte[18] };
        var toSeven = FrameBuilder.Build(Spec("198.51.100.7"));
        var direct = FrameBuilder.Build(Spec("203.0.113.9"));
        var rewritten = FrameBuilder.Build(Spec("203.0.113.9", 63));
        for (int round = 0; round < 3; round++) // first passes and recirculated passes from the caches too
        {
            rig.Send(1, [toSeven, direct, toSeven]);
            var three = rig.Out(3);
            Assert.Equal(2, three.Count); // the second pass saw the rewritten address and TTL
            Assert.All(three, f => Assert.Equal(Convert.ToHexString(rewritten), Convert.ToHexString(f)));
            Assert.Equal(Convert.ToHexString(direct), Convert.ToHexString(Assert.Single(rig.Out(4)))); // recirc_id 0 only
            Assert.Empty(rig.Out(2));
        }

        Assert.Equal(6UL, rig.Counters.Recirculations);
        Assert.Equal(3UL, rig.Counters.Upcalls); // two first-pass flows and one second-pass flow, all cached after round 1
        Assert.Equal(rig.Mbufs.Allocated, rig.Mbufs.Freed + 9);
    }

    [Fact]
    public void A_recirculation_loop_is_cut_at_the_depth_limit_and_counted()
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=10,udp,actions=recirc(1)", "test"));
        rig.Send(1, [Udp(0, 64), Udp(1, 64), Udp(2, 64)]);
        for (int p = 1; p <= 4; p++)
        {
            Assert.Empty(rig.Out(p));
        }

        Assert.Equal(3UL, rig.Counters.RecircDrops);
        Assert.Equal((ulong)(3 * (VSwitch.Forwarding.FlowPmd.MaxRecircDepth - 1)), rig.Counters.Recirculations);
        Assert.Equal(rig.Mbufs.Allocated, rig.Mbufs.Freed);
    }
}
