// ConntrackTupleTests.cs - matches on the connection's words after ct(table=N): ct_label and the
// original direction's tuple (ct_nw_src/dst, ct_ipv6_src/dst, ct_nw_proto, ct_tp_src/dst), on
// in-memory ports. What they must show: the words are the connection's, not the packet's (a reply,
// a DNATed packet, a related ICMP error, an uncommitted first packet), cached verdicts are keyed on
// them (two connections whose packets look the same are told apart), the syntax reads and writes
// them as ovs-ofctl does and refuses a match without Open vSwitch's prerequisites, and the PMD still
// allocates nothing.
using VSwitch.Conntrack;
using VSwitch.FlowText;
using Xunit;
using static VSwitch.Tests.ConntrackTests;
using static VSwitch.Tests.PipelineTests;

namespace VSwitch.Tests;

public sealed class ConntrackTupleTests
{
    [Fact]
    public void Replies_under_snat_match_the_original_tuple_and_label_not_their_own_headers()
    {
        // Replies come back un-NATed; table 1 sends those of TCP connections to port 80 opened by
        // 198.51.100.2 (label 0x2a set at commit) to port 1 and every other reply to port 3.
        using var rig = NewRig("""
            table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=1,nat)
            table=1,priority=100,ip,in_port=1,ct_state=+trk+new,actions=ct(commit,zone=1,nat(src=203.0.113.1),exec(set_field:0x2a->ct_label)),output:2
            table=1,priority=100,ip,in_port=1,ct_state=+trk+est,actions=output:2
            table=1,priority=200,ip,in_port=2,ct_state=+trk+est,ct_label=0x2a/0xff,ct_nw_src=198.51.100.2,ct_nw_dst=203.0.113.2,ct_nw_proto=6,ct_tp_dst=80,actions=output:1
            table=1,priority=100,ip,in_port=2,ct_state=+trk+est,actions=output:3
            table=1,priority=1,actions=drop
            """);
        Assert.True(rig.Shared.Current.MatchesCtTuple);
        rig.Send(1, [Tcp(Inside, Outside, 40000, 80, 0x02, 1000, 0), Tcp("198.51.100.3", Outside, 40001, 80, 0x02, 1000, 0), Udp(Inside, Outside, 5353, 80)]);
        var out2 = rig.Out(2);
        Assert.Equal(3, out2.Count);
        rig.Send(2, [Tcp(Outside, Public, 80, SportOf(out2[0]), 0x12, 7000, 1001), Tcp(Outside, Public, 80, SportOf(out2[1]), 0x12, 7000, 1001), Udp(Outside, Public, 80, SportOf(out2[2]))]);
        var one = Assert.Single(rig.Out(1)); // only the reply of 198.51.100.2's TCP connection
        Assert.Equal(FrameBuilder.Ip(Inside), System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(one.AsSpan(30)));
        Assert.Equal(2, rig.Out(3).Count); // the other host's, and the UDP one (ct_nw_proto=17)
    }

    [Fact]
    public void Cached_verdicts_tell_apart_two_connections_whose_packets_look_the_same()
    {
        // The same 5-tuple is committed once from port 1 (label 1) and, after a flush, from port 4
        // (label 2); the replies are byte for byte the same packet on the same port. Only the label
        // can send the first to port 1 and the second to port 4: a cache keyed on the packet alone
        // would send both to port 1.
        using var rig = NewRig("""
            table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=1)
            table=1,priority=100,ip,in_port=1,ct_state=+trk+new,actions=ct(commit,zone=1,exec(set_field:0x1->ct_label)),output:2
            table=1,priority=100,ip,in_port=4,ct_state=+trk+new,actions=ct(commit,zone=1,exec(set_field:0x2->ct_label)),output:2
            table=1,priority=100,ip,in_port=2,ct_state=+trk+est,ct_label=0x1,actions=output:1
            table=1,priority=100,ip,in_port=2,ct_state=+trk+est,ct_label=0x2,actions=output:4
            table=1,priority=1,actions=drop
            """);
        var reply = Udp(Outside, Inside, 53, 5353);
        rig.Send(1, [Udp(Inside, Outside, 5353, 53)]);
        Assert.Single(rig.Out(2));
        for (int i = 0; i < 3; i++)
        {
            rig.Send(2, [reply, reply]);
            Assert.Equal(2, rig.Out(1).Count);
        }

        Assert.Equal(1, rig.Shared.Conns!.Sweep(rig.Ports.Clock, () => 1, _ => true, _ => true)); // flush
        rig.Send(4, [Udp(Inside, Outside, 5353, 53)]);
        Assert.Single(rig.Out(2));
        for (int i = 0; i < 3; i++)
        {
            rig.Send(2, [reply, reply]);
            Assert.Equal(2, rig.Out(4).Count);
            Assert.Empty(rig.Out(1));
        }
    }

    [Fact]
    public void A_dnat_packet_matches_the_public_address_it_was_sent_to_and_a_first_packet_its_own_headers()
    {
        // A port forward: 203.0.113.1:8080 to 198.51.100.2:80. Table 1 checks the original tuple:
        // the first packet (ct without commit: its own headers) and the later ones (DNATed, so their
        // headers say 198.51.100.2:80 while the tuple still says 203.0.113.1:8080).
        using var rig = NewRig("""
            table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=1,nat)
            table=1,priority=100,tcp,in_port=2,ct_state=+trk+new,ct_nw_dst=203.0.113.1,ct_nw_proto=6,ct_tp_dst=8080,tp_dst=8080,actions=ct(commit,zone=1,nat(dst=198.51.100.2:80)),output:1
            table=1,priority=100,tcp,in_port=2,ct_state=+trk+est,ct_nw_dst=203.0.113.1,ct_nw_proto=6,ct_tp_dst=8080,nw_dst=198.51.100.2,tp_dst=80,actions=output:1
            table=1,priority=90,tcp,in_port=2,ct_state=+trk+est,actions=output:3
            table=1,priority=100,tcp,in_port=1,ct_state=+trk+est+rpl,ct_nw_src=203.0.113.2,ct_tp_src=41000,ct_nw_proto=6,actions=output:2
            table=1,priority=1,actions=drop
            """);
        rig.Send(2, [Tcp(Outside, Public, 41000, 8080, 0x02, 1, 0)]);
        var syn = Assert.Single(rig.Out(1));
        Assert.Equal(FrameBuilder.Ip(Inside), System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(syn.AsSpan(30)));
        rig.Send(1, [Tcp(Inside, Outside, 80, 41000, 0x12, 500, 2)]);
        var synAck = Assert.Single(rig.Out(2)); // the reply: +rpl, its tuple the client's
        Assert.Equal(FrameBuilder.Ip(Public), System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(synAck.AsSpan(26)));
        rig.Send(2, [Tcp(Outside, Public, 41000, 8080, 0x10, 2, 501)]);
        Assert.Single(rig.Out(1)); // DNATed to 198.51.100.2:80, matched by the tuple's 203.0.113.1:8080
        Assert.Empty(rig.Out(3));
    }

    [Fact]
    public void Icmp_puts_type_and_code_in_the_tuple_ports_and_a_related_error_carries_its_connection_s_tuple()
    {
        using var rig = NewRig("""
            table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=1)
            table=1,priority=100,ip,in_port=1,ct_state=+trk+new,actions=ct(commit,zone=1),output:2
            table=1,priority=100,ip,in_port=2,ct_state=+trk+est+rpl,ct_nw_proto=1,ct_tp_src=8,ct_tp_dst=0,actions=output:1
            table=1,priority=100,ip,in_port=2,ct_state=+trk+rel,ct_nw_proto=17,ct_nw_src=198.51.100.2,ct_tp_dst=53,actions=output:4
            table=1,priority=1,actions=drop
            """);
        byte[] Echo(string s, string d, byte type) => FrameBuilder.Build(new FrameSpec { Proto = 1, IcmpType = type, IcmpId = 77, NwSrc = FrameBuilder.Ip(s), NwDst = FrameBuilder.Ip(d) });
        rig.Send(1, [Echo(Inside, Outside, 8), Udp(Inside, Outside, 5353, 53)]);
        var sent = rig.Out(2);
        Assert.Equal(2, sent.Count);
        rig.Send(2, [Echo(Outside, Inside, 0)]);
        Assert.Single(rig.Out(1)); // the echo reply: its connection's tuple is the request's (type 8, code 0)
        var err = FrameBuilder.Build(new FrameSpec
        {
            Proto = 1, IcmpType = 3, IcmpCode = 3, NwSrc = FrameBuilder.Ip(Outside), NwDst = FrameBuilder.Ip(Inside),
            Payload = sent[1].AsSpan(14, 28).ToArray(),
        });
        rig.Send(2, [err]);
        Assert.Single(rig.Out(4)); // ICMP, but +rel to the UDP connection: ct_nw_proto=17, ct_tp_dst=53
    }

    [Fact]
    public void Ipv6_connections_match_ct_ipv6_src_and_dst_by_prefix()
    {
        using var rig = NewRig("""
            table=0,priority=100,ipv6,ct_state=-trk,actions=ct(table=1,zone=1)
            table=1,priority=100,ipv6,in_port=1,ct_state=+trk+new,actions=ct(commit,zone=1),output:2
            table=1,priority=100,ipv6,in_port=2,ct_state=+trk+est,ct_ipv6_src=2001:db8::/64,ct_ipv6_dst=2001:db8::2,actions=output:1
            table=1,priority=90,ipv6,in_port=2,ct_state=+trk+est,actions=output:3
            """);
        var spec = new FrameSpec { EthType = 0x86DD, Proto = 17, SrcPort = 5000, DstPort = 53, Payload = new byte[18] };
        rig.Send(1, [FrameBuilder.Build(spec)]);
        Assert.Single(rig.Out(2));
        var reply = new FrameSpec { EthType = 0x86DD, Proto = 17, SrcPort = 53, DstPort = 5000, Payload = new byte[18], V6Src = spec.V6Dst, V6Dst = spec.V6Src };
        rig.Send(2, [FrameBuilder.Build(reply)]);
        Assert.Single(rig.Out(1));
        Assert.Empty(rig.Out(3));
    }

    [Fact]
    public void Ct_clear_zeroes_the_tuple_words_and_tables_without_tuple_matches_leave_them_out()
    {
        using var plain = NewRig("""
            table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=1)
            table=1,priority=1,ip,actions=ct(commit,zone=1),output:2
            """);
        Assert.False(plain.Shared.Current.MatchesCtTuple);
        using var rig = NewRig("""
            table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=1)
            table=1,priority=100,ip,ct_state=+trk+new,actions=ct_clear,move:NXM_NX_CT_NW_SRC[]->NXM_NX_REG0[],resubmit(,2)
            table=2,priority=100,reg0=0,actions=output:2
            table=2,priority=1,actions=output:3
            """);
        Assert.True(rig.Shared.Current.MatchesCtTuple);
        rig.Send(1, [Udp(Inside, Outside, 1, 2)]);
        Assert.Single(rig.Out(2)); // after ct_clear the tuple reads 0
        Assert.Empty(rig.Out(3));
    }

    [Fact]
    public void Moving_a_ct_tuple_field_counts_as_matching_it()
    {
        using var rig = NewRig("""
            table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=1)
            table=1,priority=100,ip,ct_state=+trk+new,actions=move:NXM_NX_CT_NW_SRC[]->NXM_NX_REG0[],resubmit(,2)
            table=2,priority=100,reg0=0xc6336402,actions=output:2
            table=2,priority=1,actions=output:3
            """);
        Assert.True(rig.Shared.Current.MatchesCtTuple);
        rig.Send(1, [Udp(Inside, Outside, 1, 2), Udp("198.51.100.3", Outside, 1, 2)]);
        Assert.Single(rig.Out(2)); // reg0 = ct_nw_src = 198.51.100.2
        Assert.Single(rig.Out(3));
    }

    [Fact]
    public void An_invalid_segment_of_a_known_connection_keeps_its_label_and_tuple()
    {
        // As Open vSwitch: +inv because of the TCP window, but the connection is known, so its mark,
        // label and original tuple come with the packet (a packet of no connection reads 0).
        using var rig = NewRig("""
            table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=1)
            table=1,priority=100,ip,in_port=1,ct_state=+trk+new,actions=ct(commit,zone=1,exec(set_field:0x7->ct_label)),output:2
            table=1,priority=100,ip,in_port=2,ct_state=+trk+est,actions=output:1
            table=1,priority=100,ip,in_port=2,ct_state=+trk+inv,ct_label=0x7,actions=output:4
            table=1,priority=90,ip,in_port=2,ct_state=+trk+inv,actions=output:3
            """);
        rig.Send(1, [Tcp(Inside, Outside, 40000, 80, 0x02, 1000, 0)]);
        Assert.Single(rig.Out(2));
        rig.Send(2, [Tcp(Outside, Inside, 80, 40000, 0x12, 5000, 1001)]);
        Assert.Single(rig.Out(1));
        rig.Send(2, [Tcp(Outside, Inside, 80, 40000, 0x10, 900_000_000, 1001, payload: 100)]); // data far out of window
        Assert.Single(rig.Out(4));
        rig.Send(2, [Tcp(Outside, Inside, 81, 40001, 0x10, 1, 1)]); // no connection: mid-stream ACK
        Assert.Single(rig.Out(3));
    }

    [Fact]
    public void A_select_group_hashing_on_a_ct_tuple_field_switches_the_words_on()
    {
        var g = Assert.Single(GroupText.ParseGroups("group_id=1,type=select,selection_method=hash,fields(ct_nw_src),bucket=output:2,bucket=output:3", "t"));
        Assert.True(new VSwitch.Pipeline.FlowTables(1, [], [], new Dictionary<uint, VSwitch.Pipeline.FlowGroup> { [1] = g }).MatchesCtTuple);
        var plain = Assert.Single(GroupText.ParseGroups("group_id=1,type=select,selection_method=hash,fields(nw_src),bucket=output:2,bucket=output:3", "t"));
        Assert.False(new VSwitch.Pipeline.FlowTables(1, [], [], new Dictionary<uint, VSwitch.Pipeline.FlowGroup> { [1] = plain }).MatchesCtTuple);
    }

    [Fact]
    public void The_match_fields_read_and_write_as_ovs_ofctl_does()
    {
        var r = Assert.Single(FlowParser.ParseRules(
            "table=1,ip,ct_state=+est,ct_tp_dst=22,ct_tp_src=5,ct_nw_proto=6,ct_nw_dst=10.0.0.2,ct_nw_src=10.0.0.0/8,ct_label=0x3,ct_mark=1,ct_zone=3,actions=drop", "t"));
        var text = FlowFormatter.Format(r, withCounters: false);
        Assert.True(text.Contains("ct_state=+est,ct_zone=3,ct_mark=0x1,ct_label=0x3,ct_nw_src=10.0.0.0/8,ct_nw_dst=10.0.0.2,ct_nw_proto=6,ct_tp_src=5,ct_tp_dst=22,ip", StringComparison.Ordinal), text);
        Assert.Equal(text, FlowFormatter.Format(Assert.Single(FlowParser.ParseRules(text, "t")), withCounters: false));

        var v6 = Assert.Single(FlowParser.ParseRules("table=1,ipv6,ct_state=+new,ct_ipv6_dst=2001:db8::2,ct_ipv6_src=2001:db8::/64,ct_nw_proto=58,ct_label=0xf0/0xf0,actions=drop", "t"));
        Assert.Contains("ct_state=+new,ct_label=0xf0/0xf0,ct_ipv6_src=2001:db8::/64,ct_ipv6_dst=2001:db8::2,ct_nw_proto=58,ipv6", FlowFormatter.Format(v6, withCounters: false), StringComparison.Ordinal);
        Assert.Equal((UInt128)0xf0, v6.Match.Value.CtLabel);

        // +trk-inv is a valid state too; ct_label needs nothing.
        Assert.Single(FlowParser.ParseRules("table=1,ip,ct_state=+trk-inv,ct_nw_src=10.0.0.1,actions=drop", "t"));
        Assert.Single(FlowParser.ParseRules("table=1,ct_label=0x1000000000000000000000001,actions=drop", "t"));
    }

    [Theory]
    [InlineData("table=1,ip,ct_state=+trk,ct_nw_src=10.0.0.1,actions=drop", "missing prerequisite for 'ct_nw_src'")]
    [InlineData("table=1,ct_state=+est,ct_nw_dst=10.0.0.1,actions=drop", "missing prerequisite for 'ct_nw_dst': expected 'ip'")]
    [InlineData("table=1,ipv6,ct_state=+est,ct_nw_src=10.0.0.1,actions=drop", "missing prerequisite for 'ct_nw_src'")]
    [InlineData("table=1,ip,ct_state=+est,ct_ipv6_src=2001:db8::1,actions=drop", "missing prerequisite for 'ct_ipv6_src': expected 'ipv6'")]
    [InlineData("table=1,ip,ct_state=+est,ct_tp_dst=80,actions=drop", "missing prerequisite for 'ct_tp_dst': expected ct_nw_proto=N")]
    [InlineData("table=1,ct_state=+trk,ct_nw_proto=6,actions=drop", "a ct_state that implies a connection")]
    [InlineData("table=1,ip,ct_state=+est,ct_nw_proto=6/0xf,actions=drop", "ct_nw_proto")]
    [InlineData("table=1,ip,actions=set_field:0x1->ct_label", "ct_label")]
    [InlineData("table=1,ip,actions=load:1->NXM_NX_CT_NW_SRC[]", "NXM_NX_CT_NW_SRC")]
    public void Tuple_matches_without_their_prerequisites_are_refused(string line, string why)
    {
        var ex = Assert.Throws<FlowSyntaxException>(() => FlowParser.ParseRules(line, "t"));
        Assert.Contains(why, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_pipeline_matching_the_ct_tuple_allocates_nothing()
    {
        using var rig = NewRig("""
            table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=1,nat)
            table=1,priority=100,ip,in_port=1,ct_state=+trk+new,actions=ct(commit,zone=1,nat(src=203.0.113.1),exec(set_field:0x5->ct_label)),output:2
            table=1,priority=100,ip,in_port=1,ct_state=+trk+est,ct_label=0x5,actions=output:2
            table=1,priority=100,ip,in_port=2,ct_state=+trk+est,ct_nw_src=198.51.100.2,ct_nw_proto=17,ct_tp_dst=53,actions=output:1
            table=1,priority=1,actions=drop
            """, capacity: 1 << 16);
        var outFrames = Enumerable.Range(0, 16).Select(i => Udp(Inside, Outside, (ushort)(2000 + i), 53)).ToList();
        rig.Send(1, outFrames);
        var pub = rig.Out(2).Select(SportOf).ToList();
        Assert.Equal(16, pub.Count);
        var inFrames = pub.Select(p => Udp(Outside, Public, 53, p)).ToList();
        var (sent1, sent2) = ConntrackTests.ForwardBothWaysAllocatingNothing(rig, outFrames, inFrames);
        Assert.True(sent1 > 1000 && sent1 == sent2, $"{sent1} replies, {sent2} requests forwarded"); // both ways, by the tuple and label rules
        Assert.Equal(16UL, rig.Counters.CtCommits);
    }
}
