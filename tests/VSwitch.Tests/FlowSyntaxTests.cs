// Unit tests of the ovs-ofctl flow syntax: parsing to FlowMatch/FlowAction bits, error locations,
// formatting and round trips, trace packets, and a large batch (no DPDK needed).
using System.Net;
using System.Text;
using VSwitch.FlowText;
using VSwitch.Packets;
using VSwitch.Pipeline;

namespace VSwitch.Tests;

public sealed class FlowSyntaxTests
{
    private static FlowRule Rule(string text) => FlowParser.ParseRule(text, "t.flows", 1);

    private static FlowMatch Match(string text) => Rule(text + ",actions=drop").Match;

    private static UInt128 V6(string s)
    {
        var b = IPAddress.Parse(s).GetAddressBytes();
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(b);
    }

    private static FlowSyntaxException Error(string text, int lineNo = 1) =>
        Assert.Throws<FlowSyntaxException>(() => FlowParser.ParseRule(text, "t.flows", lineNo));

    // ---------------------------------------------------------------------------------------------
    // Fields

    [Theory]
    [InlineData("in_port=3", "in_port", 3UL, 0xFFFFUL)]
    [InlineData("dl_type=0x88cc", "dl_type", 0x88CCUL, 0xFFFFUL)]
    [InlineData("eth_type=0x0800", "dl_type", 0x0800UL, 0xFFFFUL)]
    [InlineData("vlan_tci=0x1005/0x1fff", "vlan_tci", 0x1005UL, 0x1FFFUL)]
    [InlineData("vlan_tci=0x0000", "vlan_tci", 0UL, 0xFFFFUL)]
    [InlineData("vlan2_tci=0x1007/0x1fff", "vlan2_tci", 0x1007UL, 0x1FFFUL)]
    [InlineData("ip,nw_proto=47", "nw_proto", 47UL, 0xFFUL)]
    [InlineData("ipv6,ip_proto=58", "nw_proto", 58UL, 0xFFUL)]
    [InlineData("arp,arp_op=2", "arp_op", 2UL, 0xFFUL)]
    [InlineData("ip,nw_tos=0x10/0xfc", "nw_tos", 0x10UL, 0xFCUL)]
    [InlineData("ipv6,nw_ttl=1", "nw_ttl", 1UL, 0xFFUL)]
    [InlineData("tcp,tp_src=1024/0xfc00", "tp_src", 1024UL, 0xFC00UL)]
    [InlineData("udp,tp_dst=53", "tp_dst", 53UL, 0xFFFFUL)]
    [InlineData("tcp6,tcp_dst=443", "tp_dst", 443UL, 0xFFFFUL)]
    [InlineData("udp6,udp_src=0x35", "tp_src", 0x35UL, 0xFFFFUL)]
    [InlineData("icmp,icmp_type=8", "icmp_type", 8UL, 0xFFFFUL)]
    [InlineData("icmp6,icmpv6_code=4", "icmp_code", 4UL, 0xFFFFUL)]
    [InlineData("tcp,tcp_flags=0x012/0x0ff", "tcp_flags", 0x12UL, 0xFFUL)]
    [InlineData("metadata=0x123456789abcdef0/0xffffffff00000000", "metadata", 0x1234567800000000UL, 0xFFFFFFFF00000000UL)]
    [InlineData("metadata=18446744073709551615", "metadata", ulong.MaxValue, ulong.MaxValue)]
    [InlineData("reg0=0xdeadbeef", "reg0", 0xDEADBEEFUL, 0xFFFFFFFFUL)]
    [InlineData("reg1=5/0xf", "reg1", 5UL, 0xFUL)]
    [InlineData("ct_state=0x21/0x21", "ct_state", 0x21UL, 0x21UL)]
    [InlineData("ct_zone=7", "ct_zone", 7UL, 0xFFFFUL)]
    [InlineData("ct_mark=0x10/0xf0", "ct_mark", 0x10UL, 0xF0UL)]
    public void Integer_fields_set_their_bits(string text, string field, ulong value, ulong mask)
    {
        var m = Match(text);
        var f = Fields.Find(field)!;
        Assert.Equal(mask, m.GetMask(f));
        Assert.Equal(value, m.GetValue(f));
    }

    [Fact]
    public unsafe void Field_bits_land_in_the_documented_words()
    {
        var m = Match("in_port=2,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.0/8,tp_dst=80,dl_src=00:11:22:33:44:55,reg1=9");
        Assert.Equal(2, m.Value.InPort);
        Assert.Equal(0x0800, m.Value.DlType);
        Assert.Equal(6, m.Value.NwProto);
        Assert.Equal(0x0A000001u, m.Value.NwSrc);
        Assert.Equal(0x0A000000u, m.Value.NwDst);
        Assert.Equal(0xFF000000u, m.Mask.NwDst);
        Assert.Equal(80, m.Value.TpDst);
        Assert.Equal(0, m.Mask.TpSrc);
        Assert.Equal(0x001122334455UL, m.Value.DlSrc);
        Assert.Equal(9u, m.Value.Reg1);
        Assert.Equal(0xFFFF_FFFFUL, m.Mask.W[FlowKey.RegWord(1)]); // reg1: the low half (xreg0 = reg0:reg1)
        Assert.Equal(0xFFFFUL | (0xFFFFUL << 16), m.Mask.W[0]);
        Assert.Equal(0xFFUL << 48, m.Mask.W[1]);
        Assert.Equal(0xFFFFUL << 16, m.Mask.W[3]);
        Assert.Equal(ulong.MaxValue, m.Mask.W[4] | (0xFFFFFFUL << 32));
        for (int i = 5; i < FlowKey.Words; i++)
        {
            if (i != FlowKey.RegWord(1))
            {
                Assert.Equal(0UL, m.Mask.W[i]);
            }
        }
    }

    [Theory]
    [InlineData("ip", 0x0800, -1)]
    [InlineData("ipv6", 0x86DD, -1)]
    [InlineData("arp", 0x0806, -1)]
    [InlineData("tcp", 0x0800, 6)]
    [InlineData("udp", 0x0800, 17)]
    [InlineData("icmp", 0x0800, 1)]
    [InlineData("tcp6", 0x86DD, 6)]
    [InlineData("udp6", 0x86DD, 17)]
    [InlineData("icmp6", 0x86DD, 58)]
    public void Protocol_shorthands_set_dl_type_and_nw_proto_exactly(string text, int dlType, int proto)
    {
        var m = Match(text);
        Assert.Equal((ushort)dlType, m.Value.DlType);
        Assert.Equal((ushort)0xFFFF, m.Mask.DlType);
        Assert.Equal(proto < 0 ? 0 : 0xFF, m.Mask.NwProto);
        Assert.Equal(proto < 0 ? 0 : proto, m.Value.NwProto);
    }

    [Theory]
    [InlineData("ip,nw_dst=192.0.2.0/24", 0xC0000200u, 0xFFFFFF00u)]
    [InlineData("ip,nw_dst=192.0.2.77/24", 0xC0000200u, 0xFFFFFF00u)]
    [InlineData("ip,nw_dst=192.0.2.1", 0xC0000201u, 0xFFFFFFFFu)]
    [InlineData("ip,nw_dst=192.0.2.1/32", 0xC0000201u, 0xFFFFFFFFu)]
    [InlineData("ip,nw_dst=0.0.0.0/0", 0u, 0u)]
    [InlineData("ip,nw_dst=192.0.2.0/255.255.255.0", 0xC0000200u, 0xFFFFFF00u)]
    [InlineData("ip,nw_dst=10.20.30.40/255.0.255.0", 0x0A001E00u, 0xFF00FF00u)]
    [InlineData("ip,ip_dst=198.51.100.0/25", 0xC6336400u, 0xFFFFFF80u)]
    [InlineData("ip,ipv4_dst=203.0.113.9", 0xCB007109u, 0xFFFFFFFFu)]
    public void Ipv4_addresses_take_cidr_and_dotted_masks(string text, uint value, uint mask)
    {
        var m = Match(text);
        Assert.Equal(value, m.Value.NwDst);
        Assert.Equal(mask, m.Mask.NwDst);
    }

    [Fact]
    public void Arp_addresses_and_opcode()
    {
        var m = Match("arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/24,arp_op=1");
        Assert.Equal(0x0A000001u, m.Value.NwSrc);
        Assert.Equal(0xFFFFFFFFu, m.Mask.NwSrc);
        Assert.Equal(0x0A000000u, m.Value.NwDst);
        Assert.Equal(0xFFFFFF00u, m.Mask.NwDst);
        Assert.Equal(1, m.Value.NwProto);
    }

    [Fact]
    public void Mac_addresses_take_masks()
    {
        var m = Match("dl_dst=aa:bb:cc:dd:ee:ff,eth_src=01:00:5e:00:00:00/ff:ff:ff:80:00:00");
        Assert.Equal(0xAABBCCDDEEFFUL, m.Value.DlDst);
        Assert.Equal(FlowKey.Mac48, m.Mask.DlDst);
        Assert.Equal(0x01005E000000UL, m.Value.DlSrc);
        Assert.Equal(0xFFFFFF800000UL, m.Mask.DlSrc);
    }

    [Fact]
    public void Ipv6_addresses_take_prefixes_and_masks()
    {
        var m = Match("ipv6,ipv6_src=2001:db8:1:2::/64,ipv6_dst=2001:db8::1");
        Assert.Equal(V6("2001:db8:1:2::"), m.Value.Ipv6Src);
        Assert.Equal(UInt128.MaxValue << 64, m.Mask.Ipv6Src);
        Assert.Equal(V6("2001:db8::1"), m.Value.Ipv6Dst);
        Assert.Equal(UInt128.MaxValue, m.Mask.Ipv6Dst);

        m = Match("ipv6,ipv6_dst=2001:db8::ff/::ffff");
        Assert.Equal(V6("::ff"), m.Value.Ipv6Dst);
        Assert.Equal((UInt128)0xFFFF, m.Mask.Ipv6Dst);
    }

    [Theory]
    [InlineData("dl_vlan=10", 0x100A, 0x1FFF)]
    [InlineData("dl_vlan=0", 0x1000, 0x1FFF)]
    [InlineData("vlan_vid=4095", 0x1FFF, 0x1FFF)]
    [InlineData("dl_vlan=0xffff", 0x0000, 0x1000)]
    [InlineData("dl_vlan_pcp=5", 0xB000, 0xF000)]
    [InlineData("dl_vlan=100,dl_vlan_pcp=7", 0xF064, 0xFFFF)]
    [InlineData("vlan_pcp=1,vlan_vid=2", 0x3002, 0xFFFF)]
    [InlineData("vlan_tci=0x1000/0x1000", 0x1000, 0x1000)]
    [InlineData("vlan_vid=0x1005", 0x1005, 0x1FFF)]
    public void Vlan_fields_set_the_tag_present_bit(string text, int value, int mask)
    {
        var m = Match(text);
        Assert.Equal((ushort)value, m.Value.VlanTci);
        Assert.Equal((ushort)mask, m.Mask.VlanTci);
    }

    [Theory]
    [InlineData("no", 0, 1)]
    [InlineData("yes", 1, 1)]
    [InlineData("first", 1, 3)]
    [InlineData("later", 3, 3)]
    [InlineData("not_later", 0, 2)]
    public void Ip_frag_names_map_to_value_and_mask(string name, int value, int mask)
    {
        var m = Match("ip,ip_frag=" + name);
        Assert.Equal(value, m.Value.NwFrag);
        Assert.Equal(mask, m.Mask.NwFrag);
    }

    [Theory]
    [InlineData("+syn", 0x002, 0x002)]
    [InlineData("+syn-ack", 0x002, 0x012)]
    [InlineData("-rst+ack+fin", 0x011, 0x015)]
    [InlineData("+psh+urg-ece-cwr+ns", 0x128, 0x1E8)]
    [InlineData("0x02", 0x002, 0xFFF)] // tcp_flags is 12 bits, as in Open vSwitch
    [InlineData("0x12/0x12", 0x012, 0x012)]
    public void Tcp_flags_take_numbers_or_flag_lists(string flags, int value, int mask)
    {
        var m = Match("tcp,tcp_flags=" + flags);
        Assert.Equal(value, m.Value.TcpFlags);
        Assert.Equal(mask, m.Mask.TcpFlags);
    }

    [Fact]
    public void Ct_fields()
    {
        var m = Match("ct_state=+trk+est-new,ct_zone=5,ct_mark=0x1/0x3");
        Assert.Equal(0x22, m.Value.CtState);
        Assert.Equal(0x23, m.Mask.CtState);
        Assert.Equal(5, m.Value.CtZone);
        Assert.Equal(0xFFFF, m.Mask.CtZone);
        Assert.Equal(1u, m.Value.CtMark);
        Assert.Equal(3u, m.Mask.CtMark);
    }

    [Fact]
    public void Field_order_does_not_matter_for_prerequisites()
    {
        Assert.Equal(Match("ip,nw_dst=10.0.0.1,tcp_dst=22,tcp"), Match("tcp,nw_dst=10.0.0.1,tp_dst=22"));
        Assert.Equal(Match("dl_type=0x0800,nw_proto=6,tp_dst=22"), Match("tcp,tp_dst=22"));
    }

    [Fact]
    public void Whitespace_separates_like_a_comma()
    {
        var a = Rule("table=1 priority=5  ip, nw_dst=10.0.0.1\tactions=output:1 output:2");
        var b = Rule("table=1,priority=5,ip,nw_dst=10.0.0.1,actions=output:1,output:2");
        Assert.True(a.SameIdentity(b));
        Assert.True(a.SameActions(b));
    }

    // ---------------------------------------------------------------------------------------------
    // Rule keywords

    [Fact]
    public void Rule_keywords_and_defaults()
    {
        var r = Rule("actions=drop");
        Assert.Equal(0, r.Table);
        Assert.Equal(32768, r.Priority);
        Assert.Equal(0UL, r.Cookie);
        Assert.Equal(0, r.IdleTimeout);
        Assert.Equal(0, r.HardTimeout);
        Assert.Equal(default, r.Match);
        Assert.Equal("t.flows:1", r.Origin);

        r = FlowParser.ParseRule("table=254,priority=0,cookie=0xabc,idle_timeout=10,hard_timeout=300,actions=normal", "f", 7);
        Assert.Equal(254, r.Table);
        Assert.Equal(0, r.Priority);
        Assert.Equal(0xABCUL, r.Cookie);
        Assert.Equal(10, r.IdleTimeout);
        Assert.Equal(300, r.HardTimeout);
        Assert.Equal("f:7", r.Origin);
    }

    [Fact]
    public void Empty_actions_and_drop_both_drop()
    {
        Assert.Equal([new FlowAction(ActionKind.Drop)], Rule("ip,actions=").Actions);
        Assert.Equal([new FlowAction(ActionKind.Drop)], Rule("ip,actions=drop").Actions);
    }

    // ---------------------------------------------------------------------------------------------
    // Actions

    public static TheoryData<string, FlowAction> ActionCases => new()
    {
        { "output:2", new FlowAction(ActionKind.Output, Port: 2) },
        { "output=7", new FlowAction(ActionKind.Output, Port: 7) },
        { "12", new FlowAction(ActionKind.Output, Port: 12) },
        { "in_port", new FlowAction(ActionKind.InPort) },
        { "output:in_port", new FlowAction(ActionKind.InPort) },
        { "flood", new FlowAction(ActionKind.Flood) },
        { "FLOOD", new FlowAction(ActionKind.Flood) },
        { "normal", new FlowAction(ActionKind.Normal) },
        { "controller", new FlowAction(ActionKind.Controller) },
        { "controller:128", new FlowAction(ActionKind.Controller) },
        { "push_vlan:0x8100", new FlowAction(ActionKind.PushVlan, Value: 0x8100) },
        { "push_vlan:0x88a8", new FlowAction(ActionKind.PushVlan, Value: 0x88A8) },
        { "pop_vlan", new FlowAction(ActionKind.PopVlan) },
        { "strip_vlan", new FlowAction(ActionKind.PopVlan) },
        { "mod_vlan_vid:42", new FlowAction(ActionKind.SetVlanVid, Value: 42) },
        { "mod_vlan_pcp:6", new FlowAction(ActionKind.SetVlanPcp, Value: 6) },
        { "mod_dl_src:02:00:00:00:00:01", new FlowAction(ActionKind.SetField, Field: Fields.DlSrc, Value: 0x020000000001) },
        { "mod_dl_dst:ff:ff:ff:ff:ff:fe", new FlowAction(ActionKind.SetField, Field: Fields.DlDst, Value: 0xFFFFFFFFFFFE) },
        { "mod_nw_src:192.0.2.1", new FlowAction(ActionKind.SetField, Field: Fields.NwSrc, Value: 0xC0000201) },
        { "mod_nw_dst:192.0.2.2", new FlowAction(ActionKind.SetField, Field: Fields.NwDst, Value: 0xC0000202) },
        { "mod_tp_src:1000", new FlowAction(ActionKind.SetField, Field: Fields.TpSrc, Value: 1000) },
        { "mod_tp_dst:0x50", new FlowAction(ActionKind.SetField, Field: Fields.TpDst, Value: 80) },
        { "mod_nw_ttl:9", new FlowAction(ActionKind.SetField, Field: Fields.NwTtl, Value: 9) },
        { "mod_nw_tos:184", new FlowAction(ActionKind.SetField, Field: Fields.IpDscp, Value: 46) },
        { "mod_nw_ecn:3", new FlowAction(ActionKind.SetField, Field: Fields.NwEcn, Value: 3) },
        { "set_field:10->ip_dscp", new FlowAction(ActionKind.SetField, Field: Fields.IpDscp, Value: 10) },
        { "set_field:0->nw_ttl", new FlowAction(ActionKind.SetField, Field: Fields.NwTtl, Value: 0) },
        { "set_field:10.1.1.1->nw_dst", new FlowAction(ActionKind.SetField, Field: Fields.NwDst, Value: 0x0A010101) },
        { "set_field:0a:00:00:00:00:01->eth_dst", new FlowAction(ActionKind.SetField, Field: Fields.DlDst, Value: 0x0A0000000001) },
        { "set_field:0x1234->reg0", new FlowAction(ActionKind.SetField, Field: Fields.Reg0, Value: 0x1234) },
        { "set_field:99->tcp_dst", new FlowAction(ActionKind.SetField, Field: Fields.TpDst, Value: 99) },
        { "set_field:7->metadata", new FlowAction(ActionKind.SetField, Field: Fields.Metadata, Value: 7) },
        { "load:0x5->reg1[]", new FlowAction(ActionKind.SetField, Field: Fields.Reg1, Value: 5) },
        { "load:0x5->reg0[4..7]", new FlowAction(ActionKind.SetField, Field: Fields.Reg0, Value: 0x50, Mask: 0xF0) },
        { "load:1->NXM_NX_REG1[31]", new FlowAction(ActionKind.SetField, Field: Fields.Reg1, Value: 0x80000000, Mask: 0x80000000) },
        { "load:7->NXM_NX_REG0[0..31]", new FlowAction(ActionKind.SetField, Field: Fields.Reg0, Value: 7) },
        { "set_field:0x15/0xf->metadata", new FlowAction(ActionKind.SetField, Field: Fields.Metadata, Value: 5, Mask: 0xF) },
        { "set_field:0x9/0xffffffff->reg0", new FlowAction(ActionKind.SetField, Field: Fields.Reg0, Value: 9) },
        { "dec_ttl", new FlowAction(ActionKind.DecTtl) },
        { "dec_ttl(0)", new FlowAction(ActionKind.DecTtl) },
        { "dec_ttl(1,2)", new FlowAction(ActionKind.DecTtl, Value: 0x0002_0001, Mask: 2) },
        { "all", new FlowAction(ActionKind.Flood, Value: 1) },
        { "output:all", new FlowAction(ActionKind.Flood, Value: 1) },
        { "ct_clear", new FlowAction(ActionKind.CtClear) },
        { "write_metadata:0x10", new FlowAction(ActionKind.WriteMetadata, Value: 0x10, Mask: ulong.MaxValue) },
        { "write_metadata:0x1f/0xf0", new FlowAction(ActionKind.WriteMetadata, Value: 0x10, Mask: 0xF0) },
        { "goto_table:3", new FlowAction(ActionKind.GotoTable, Table: 3) },
        { "resubmit(,4)", new FlowAction(ActionKind.Resubmit, Port: -1, Table: 4) },
        { "resubmit(3,5)", new FlowAction(ActionKind.Resubmit, Port: 3, Table: 5) },
        { "resubmit(in_port,0)", new FlowAction(ActionKind.Resubmit, Port: -1, Table: 0) },
        { "resubmit:9", new FlowAction(ActionKind.Resubmit, Port: 9, Table: 1) },
        { "resubmit(9)", new FlowAction(ActionKind.Resubmit, Port: 9, Table: 1) },
    };

    [Theory]
    [MemberData(nameof(ActionCases))]
    public void Each_action_maps_to_its_flow_action(string text, FlowAction expected)
    {
        var r = Rule("table=1,tcp,actions=" + text);
        Assert.Equal([expected], r.Actions);
    }

    [Fact]
    public void Port_names_stand_for_their_numbers_in_matches_outputs_and_resubmit()
    {
        var ports = new Dictionary<string, int> { ["vm1"] = 3, ["uplink"] = 7 };
        var r = Assert.Single(FlowParser.ParseRules("table=0,in_port=vm1,ip,actions=output:uplink,resubmit(uplink,1),resubmit:vm1", "names", 1, ports));
        Assert.Equal(3UL, r.Match.GetValue(Fields.InPort));
        Assert.Equal(0xFFFFUL, r.Match.GetMask(Fields.InPort));
        Assert.Equal(
            [new FlowAction(ActionKind.Output, Port: 7), new FlowAction(ActionKind.Resubmit, Port: 7, Table: 1), new FlowAction(ActionKind.Resubmit, Port: 3, Table: 0)],
            r.Actions);
        Assert.Equal("table=0,priority=32768,ip,in_port=3,actions=output:7,resubmit(7,1),resubmit(3,0)", FlowFormatter.Format(r, withCounters: false));
        Assert.Equal(3, FlowParser.ParsePacket("in_port=vm1,udp", "trace", ports).InPort);
        Assert.Equal(7UL, FlowParser.ParseMatch("in_port=uplink", "match", ports).Match.GetValue(Fields.InPort));

        var e = Assert.Throws<FlowSyntaxException>(() => FlowParser.ParseRules("actions=output:vm9", "names", 1, ports));
        Assert.Equal("names: line 1, column 16: expected a port number from 1 to 65280 or a port name (uplink, vm1) after 'output:', found 'vm9'", e.Message);
        Assert.Throws<FlowSyntaxException>(() => FlowParser.ParseRules("actions=output:vm1", "no names", 1)); // names only where the switch gives them
    }

    [Fact]
    public void Ipv6_set_field_uses_value128()
    {
        var r = Rule("ipv6,actions=set_field:2001:db8::7->ipv6_dst,output:1");
        Assert.Equal(new FlowAction(ActionKind.SetField, Field: Fields.Ipv6Dst, Value128: V6("2001:db8::7")), r.Actions[0]);
        Assert.Equal(new FlowAction(ActionKind.Output, Port: 1), r.Actions[1]);
    }

    [Fact]
    public void Vlan_set_field_needs_a_tag_and_maps_to_set_vlan_actions()
    {
        Assert.Equal([new FlowAction(ActionKind.SetVlanVid, Value: 9)], Rule("dl_vlan=3,actions=set_field:9->vlan_vid").Actions);
        Assert.Equal([new FlowAction(ActionKind.SetVlanVid, Value: 5)], Rule("dl_vlan=3,actions=set_field:0x1005->vlan_vid").Actions);
        Assert.Throws<FlowSyntaxException>(() => Rule("dl_vlan=3,actions=set_field:0x1005->dl_vlan"));
        Assert.Equal(
            [new FlowAction(ActionKind.PushVlan, Value: 0x8100), new FlowAction(ActionKind.SetVlanPcp, Value: 2)],
            Rule("actions=push_vlan:0x8100,set_field:2->dl_vlan_pcp").Actions);
        var e = Error("actions=set_field:9->vlan_vid");
        Assert.Equal(9, e.Column);
        Assert.Contains("VLAN tag", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Several_actions_keep_their_order_and_parentheses_keep_commas()
    {
        var r = Rule("table=2,ip,actions=dec_ttl,mod_nw_dst:10.0.0.9,resubmit(,5),output:3,goto_table:7");
        Assert.Equal(
        [
            new FlowAction(ActionKind.DecTtl),
            new FlowAction(ActionKind.SetField, Field: Fields.NwDst, Value: 0x0A000009),
            new FlowAction(ActionKind.Resubmit, Port: -1, Table: 5),
            new FlowAction(ActionKind.Output, Port: 3),
            new FlowAction(ActionKind.GotoTable, Table: 7),
        ], r.Actions);
    }

    // ---------------------------------------------------------------------------------------------
    // Errors: line, column, expectation

    [Theory]
    // bad IPv4 octet: the value starts at column 32
    [InlineData("table=0,priority=100,ip,nw_dst=192.0.2.300,actions=drop", 32,
        "expected an IPv4 address or prefix after 'nw_dst=', found '192.0.2.300'")]
    // bad prefix length: the mask starts after the '/'
    [InlineData("ip,nw_src=10.0.0.0/33,actions=drop", 20,
        "expected a prefix length from 0 to 32 or a dotted mask after 'nw_src=10.0.0.0/', found '33'")]
    [InlineData("ip,nw_src=10.0.0.0/255.255.0.x,actions=drop", 20,
        "expected a prefix length from 0 to 32 or a dotted mask after 'nw_src=10.0.0.0/', found '255.255.0.x'")]
    [InlineData("tcp,tp_dst=80/0x1ffff,actions=drop", 15,
        "expected a mask from 0 to 0xffff after 'tp_dst=80/', found '0x1ffff'")]
    [InlineData("dl_src=00:11:22:33:44:55/ff:ff,actions=drop", 26,
        "expected a MAC mask (ff:ff:ff:00:00:00) after 'dl_src=00:11:22:33:44:55/', found 'ff:ff'")]
    // missing prerequisites point at the field
    [InlineData("priority=5,nw_dst=10.0.0.1,actions=drop", 12,
        "missing prerequisite for 'nw_dst': expected 'ip' (dl_type=0x0800) in the match")]
    [InlineData("ip,tp_dst=80,actions=drop", 4,
        "missing prerequisite for 'tp_dst': expected 'tcp', 'udp', 'sctp', 'tcp6', 'udp6' or 'sctp6' (nw_proto=6, 17 or 132 with ip or ipv6) in the match")]
    [InlineData("ipv6,icmp_type=1,actions=drop", 6,
        "missing prerequisite for 'icmp_type': expected 'icmp' or 'icmp6' (nw_proto=1 with ip, or 58 with ipv6) in the match")]
    [InlineData("ip,ipv6_src=::1,actions=drop", 4,
        "missing prerequisite for 'ipv6_src': expected 'ipv6' (dl_type=0x86dd) in the match")]
    [InlineData("udp,tcp_flags=+syn,actions=drop", 5,
        "missing prerequisite for 'tcp_flags': expected 'tcp' or 'tcp6' (nw_proto=6 with ip or ipv6) in the match")]
    [InlineData("ip,arp_op=1,actions=drop", 4,
        "missing prerequisite for 'arp_op': expected 'arp' (dl_type=0x0806) in the match")]
    [InlineData("ipv6,actions=mod_nw_src:1.2.3.4", 14,
        "missing prerequisite for 'mod_nw_src' in the actions: expected 'ip' (dl_type=0x0800) in the match")]
    [InlineData("actions=mod_tp_dst:1", 9,
        "missing prerequisite for 'mod_tp_dst' in the actions: expected 'tcp', 'udp', 'sctp', 'tcp6', 'udp6' or 'sctp6' (nw_proto=6, 17 or 132 with ip or ipv6) in the match")]
    // unknown names
    [InlineData("ip,nw_dstt=10.0.0.1,actions=drop", 4,
        "expected a field name, protocol or keyword, found 'nw_dstt' (did you mean 'nw_dst'")]
    [InlineData("ip,actions=output:1,frobnicate", 21, "expected an action (output:PORT, in_port, drop")]
    [InlineData("ip,actions=set_field:1->nw_frob", 25, "expected a field name after '->', found 'nw_frob'")]
    [InlineData("ip,actions=set_field:1->nw_proto", 25, "expected a writable field after '->'")]
    // goto_table backwards / equal
    [InlineData("table=3,actions=goto_table:2", 28,
        "expected a table from 4 to 254 after 'goto_table:' (later than the rule's table 3), found '2'")]
    [InlineData("table=3,actions=goto_table:3", 28,
        "expected a table from 4 to 254 after 'goto_table:' (later than the rule's table 3), found '3'")]
    [InlineData("actions=goto_table:1,output:2", 22,
        "expected nothing after 'goto_table' (it must be the last action), found 'output:2'")]
    // duplicates and contradictions
    [InlineData("ip,nw_dst=10.0.0.1,nw_dst=10.0.0.2,actions=drop", 20,
        "duplicate field 'nw_dst' (already matched at column 4)")]
    [InlineData("tcp,tp_dst=1,tcp_dst=2,actions=drop", 14,
        "duplicate field 'tcp_dst' (already matched at column 5 as 'tp_dst')")]
    [InlineData("dl_vlan=5,vlan_tci=0x1005,actions=drop", 11,
        "duplicate field 'vlan_tci' (already matched at column 1 as 'dl_vlan')")]
    [InlineData("priority=1,priority=2,actions=drop", 12, "duplicate 'priority'")]
    [InlineData("tcp,udp,actions=drop", 5, "'udp' contradicts 'tcp' at column 1")]
    [InlineData("ip,dl_type=0x86dd,actions=drop", 4, "'dl_type=0x86dd' contradicts 'ip' at column 1")]
    [InlineData("dl_vlan=0xffff,dl_vlan_pcp=3,actions=drop", 16, "'dl_vlan_pcp=3' contradicts 'dl_vlan=0xffff' at column 1")]
    // missing or misplaced actions
    [InlineData("table=0,priority=100,ip", 24, "expected 'actions=' at the end of the rule, found the end of the line")]
    [InlineData("ip,actions", 11, "expected '=' after 'actions', found nothing")]
    [InlineData("actions=drop,output:1", 14, "expected nothing after 'drop' (it must be the only action), found 'output:1'")]
    [InlineData("actions=output:1,drop", 18, "expected 'drop' to be the only action")]
    // other value errors
    [InlineData("table=255,actions=drop", 7, "expected an integer from 0 to 254 after 'table=', found '255'")]
    [InlineData("in_port=1/3,actions=drop", 10, "expected an exact value after 'in_port=' ('in_port' cannot be masked), found '1/3'")]
    [InlineData("dl_vlan=4096,actions=drop", 9, "expected a VLAN id from 0 to 4095 (or 0xffff: no tag) after 'dl_vlan=', found '4096'")]
    [InlineData("ip,ip_frag=maybe,actions=drop", 12, "expected no, yes, first, later or not_later after 'ip_frag=', found 'maybe'")]
    [InlineData("tcp,tcp_flags=+syn+bogus,actions=drop", 20, "expected a flag name (fin, syn, rst, psh, ack, urg, ece, cwr, ns) after '+', found 'bogus'")]
    [InlineData("ip=1,actions=drop", 3, "expected ',' after 'ip' (a protocol takes no value), found '=1'")]
    [InlineData("nw_dst,actions=drop", 7, "expected '=' and a value after 'nw_dst', found nothing")]
    [InlineData("cookie=0x1/0xf,actions=drop", 11, "expected a cookie without '/mask'")]
    [InlineData("actions=output:0", 16, "expected a port number from 1 to 65280 after 'output:', found '0'")]
    [InlineData("actions=push_vlan:0x0800", 19, "expected a TPID (0x8100 or 0x88a8) after 'push_vlan:', found '0x0800'")]
    [InlineData("actions=resubmit(,3", 9, "expected ')' to close 'resubmit(', found the end of the line")]
    [InlineData("actions=mod_vlan_vid:5000", 22, "expected a VLAN id from 0 to 4095 after 'mod_vlan_vid:', found '5000'")]
    [InlineData("ipv6,ipv6_dst=2001:db8::/129,actions=drop", 26, "expected a prefix length from 0 to 128 or an IPv6 mask after 'ipv6_dst=2001:db8::/', found '129'")]
    [InlineData("ipv6,ipv6_dst=2001:zz8::,actions=drop", 15, "expected an IPv6 address or prefix after 'ipv6_dst=', found '2001:zz8::'")]
    [InlineData("actions=recirc(0)", 16, "expected a recirculation id from 1 to 127 after 'recirc' (128-255 are ct(table=N)'s), found '0'")]
    [InlineData("ip,actions=dec_ttl(1,x)", 22, "expected a controller id from 0 to 65535 in 'dec_ttl(', found 'x'")]
    [InlineData("ip,actions=dec_ttl(1,2,3,4,5)", 28, "expected at most 4 controller ids in 'dec_ttl(', found more")]
    [InlineData("actions=ct_clear:1", 19, "expected ',' after 'ct_clear' (it takes no argument)")]
    [InlineData("ip,actions=mod_nw_tos:5", 23, "expected a multiple of 4 after 'mod_nw_tos:'")]
    [InlineData("ip,actions=load:1->nw_dst[0..7]", 20, "expected a whole packet field 'F[]' (bit ranges are for metadata and registers), found 'nw_dst[0..7]'")]
    [InlineData("actions=load:16->reg0[0..3]", 14, "expected an integer from 0 to 0xf (bits 0..3) after 'load:', found '16'")]
    [InlineData("actions=load:1->reg0[3..40]", 17, "expected bits 0..31 of 'reg0', found 3..40")]
    [InlineData("ip,actions=set_field:1.2.3.4/255.0.0.0->nw_dst", 41, "expected metadata or a register after a masked 'set_field:V/M->'")]
    [InlineData("recirc_id=1/1,actions=drop", 12, "expected an exact value after 'recirc_id='")]
    public void Errors_name_the_column_and_what_was_expected(string text, int column, string detail)
    {
        var e = Error(text, 3);
        Assert.Equal(3, e.Line);
        Assert.Equal(column, e.Column);
        Assert.StartsWith(detail, e.Detail, StringComparison.Ordinal);
        Assert.StartsWith($"t.flows: line 3, column {column}: {detail}", e.Message, StringComparison.Ordinal);
        Assert.IsAssignableFrom<VSwitchException>(e);
    }

    [Fact]
    public void A_batch_with_one_bad_line_throws_with_that_line()
    {
        var text = "# comment\n\ntable=0,priority=1,ip,actions=output:1\r\n  \n  # indented comment\n"
            + "table=0,priority=2,udp,tp_dst=53,actions=output:2\n"
            + "table=0,priority=3,ip,nw_dst=10.0.0.256,actions=drop\n"
            + "table=0,priority=4,bogus=1,actions=drop\n";
        var e = Assert.Throws<FlowSyntaxException>(() => FlowParser.ParseRules(text, "sw.flows"));
        Assert.Equal(7, e.Line);
        Assert.Equal(30, e.Column);
        Assert.StartsWith("sw.flows: line 7, column 30: expected an IPv4 address", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_good_batch_skips_comments_and_blank_lines_and_tolerates_crlf()
    {
        var rules = FlowParser.ParseRules("# x\r\n\r\npriority=1,actions=output:1\r\n\r\npriority=2,ip,actions=normal", "sw.flows");
        Assert.Equal(2, rules.Count);
        Assert.Equal("sw.flows:3", rules[0].Origin);
        Assert.Equal("sw.flows:5", rules[1].Origin);
        Assert.Equal([new FlowAction(ActionKind.Output, Port: 1)], rules[0].Actions);
        Assert.Empty(FlowParser.ParseRules("", "empty"));
    }

    // ---------------------------------------------------------------------------------------------
    // Match-only strings

    [Fact]
    public void Match_only_strings()
    {
        var all = FlowParser.ParseMatch("", "ctl");
        Assert.Equal(default, all.Match);
        Assert.Null(all.Table);
        Assert.Null(all.Priority);
        Assert.Null(all.Cookie);

        var m = FlowParser.ParseMatch("table=2,priority=10,cookie=0x10/0xf0,tcp,tp_dst=80", "ctl");
        Assert.Equal(2, m.Table);
        Assert.Equal(10, m.Priority);
        Assert.Equal(0x10UL, m.Cookie);
        Assert.Equal(0xF0UL, m.CookieMask);
        Assert.Equal(Match("tcp,tp_dst=80"), m.Match);

        var c = FlowParser.ParseMatch("cookie=5", "ctl");
        Assert.Equal(5UL, c.Cookie);
        Assert.Null(c.CookieMask);

        var e = Assert.Throws<FlowSyntaxException>(() => FlowParser.ParseMatch("ip,actions=drop", "ctl"));
        Assert.Equal(4, e.Column);
        e = Assert.Throws<FlowSyntaxException>(() => FlowParser.ParseMatch("ip,tp_dst=1", "ctl"));
        Assert.Equal("ctl: line 1, column 4: missing prerequisite for 'tp_dst': expected 'tcp', 'udp', 'sctp', 'tcp6', 'udp6' or 'sctp6' (nw_proto=6, 17 or 132 with ip or ipv6) in the match", e.Message);
    }

    // ---------------------------------------------------------------------------------------------
    // Trace packets

    [Fact]
    public void Packet_description_gives_an_exact_key()
    {
        var k = FlowParser.ParsePacket(
            "in_port=1,tcp,nw_src=192.0.2.1,nw_dst=198.51.100.2,tp_src=40000,tp_dst=80,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,tcp_flags=+syn", "trace");
        Assert.Equal(1, k.InPort);
        Assert.Equal(0x0800, k.DlType);
        Assert.Equal(6, k.NwProto);
        Assert.Equal(0xC0000201u, k.NwSrc);
        Assert.Equal(0xC6336402u, k.NwDst);
        Assert.Equal(40000, k.TpSrc);
        Assert.Equal(80, k.TpDst);
        Assert.Equal(0x020000000001UL, k.DlSrc);
        Assert.Equal(0x020000000002UL, k.DlDst);
        Assert.Equal(2, k.TcpFlags);
        Assert.Equal(64, k.NwTtl);
        Assert.Equal(0, k.VlanTci);
        Assert.Equal(ParseFlags.L2 | ParseFlags.L3 | ParseFlags.L4, k.Parse);
    }

    [Fact]
    public void Packet_vlan_ttl_frag_and_layers()
    {
        var k = FlowParser.ParsePacket("in_port=2,dl_vlan=10,dl_vlan_pcp=3,udp6,ipv6_dst=2001:db8::1,nw_ttl=5,tp_dst=53", "trace");
        Assert.Equal(0x1000 | (3 << 13) | 10, k.VlanTci);
        Assert.Equal(0x86DD, k.DlType);
        Assert.Equal(17, k.NwProto);
        Assert.Equal(5, k.NwTtl);
        Assert.Equal(V6("2001:db8::1"), k.Ipv6Dst);
        Assert.Equal(ParseFlags.L2 | ParseFlags.L3 | ParseFlags.L4, k.Parse);

        k = FlowParser.ParsePacket("ip,nw_proto=6,ip_frag=later", "trace");
        Assert.Equal(3, k.NwFrag);
        Assert.Equal(ParseFlags.L2 | ParseFlags.L3, k.Parse);

        k = FlowParser.ParsePacket("arp,arp_op=1,arp_tpa=10.0.0.1", "trace");
        Assert.Equal(0, k.NwTtl);
        Assert.Equal(1, k.NwProto);
        Assert.Equal(ParseFlags.L2 | ParseFlags.L3, k.Parse);

        k = FlowParser.ParsePacket("in_port=4,dl_type=0x88cc", "trace");
        Assert.Equal(ParseFlags.L2, k.Parse);
        Assert.Equal(0x88CC, k.DlType);

        k = FlowParser.ParsePacket("", "trace");
        Assert.Equal(ParseFlags.L2, k.Parse);
    }

    [Theory]
    [InlineData("ip,nw_dst=10.0.0.0/8", 19, "expected an exact value after 'nw_dst=' (a packet field takes an exact value)")]
    [InlineData("tcp,tp_dst=80/0xff", 14, "expected an exact value after 'tp_dst=' (a packet field takes an exact value)")]
    [InlineData("tp_dst=80", 1, "missing prerequisite for 'tp_dst'")]
    [InlineData("table=1,ip", 1, "expected a packet field, found 'table'")]
    [InlineData("ip,ip_frag=yes", 12, "expected no, first or later after 'ip_frag=', found 'yes'")]
    public void Packet_errors(string text, int column, string detail)
    {
        var e = Assert.Throws<FlowSyntaxException>(() => FlowParser.ParsePacket(text, "trace"));
        Assert.Equal(column, e.Column);
        Assert.StartsWith(detail, e.Detail, StringComparison.Ordinal);
    }

    // ---------------------------------------------------------------------------------------------
    // Formatting and round trips

    [Theory]
    [InlineData("table=0,priority=100,ip,nw_dst=192.0.2.0/24,actions=output:2")]
    [InlineData("table=0,priority=32768,actions=drop")]
    [InlineData("table=1,priority=5,cookie=0xabc,idle_timeout=10,hard_timeout=60,tcp,in_port=3,nw_src=10.0.0.0/255.0.255.0,tp_dst=80,tcp_flags=+syn-ack,actions=mod_tp_dst:8080,output:4")]
    [InlineData("table=0,priority=7,metadata=0x5/0xff,reg0=0x1,reg1=0x2/0xf,ct_state=+est+trk,ct_zone=3,ct_mark=0x9,udp6,ipv6_src=2001:db8::/32,ipv6_dst=fe80::1/::ffff,tp_src=0x40/0xffc0,actions=dec_ttl,output:1")]
    [InlineData("table=0,priority=9,dl_vlan=10,dl_vlan_pcp=3,dl_src=02:00:00:00:00:01/ff:ff:ff:00:00:00,dl_dst=ff:ff:ff:ff:ff:ff,actions=pop_vlan,normal")]
    [InlineData("table=0,priority=9,vlan_tci=0x0000/0x1000,actions=push_vlan:0x88a8,mod_vlan_vid:7,mod_vlan_pcp:1,flood")]
    [InlineData("table=0,priority=9,vlan_tci=0x1005/0x1007,vlan2_tci=0x1001,actions=controller")]
    [InlineData("table=0,priority=1,arp,in_port=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/24,arp_op=2,actions=in_port")]
    [InlineData("table=0,priority=1,icmp,icmp_type=8,icmp_code=0,nw_tos=0x10/0xf0,nw_ttl=64,actions=resubmit(,3),resubmit(2,4)")]
    [InlineData("table=0,priority=1,icmp6,icmp_type=135,actions=set_field:2001:db8::2->ipv6_dst,goto_table:1")]
    [InlineData("table=0,priority=1,ip,ip_frag=not_later,nw_proto=47,actions=mod_nw_src:1.2.3.4,mod_nw_dst:5.6.7.8,write_metadata:0x1/0x1")]
    [InlineData("table=0,priority=1,ipv6,ip_frag=first,actions=write_metadata:0xffff")]
    [InlineData("table=0,priority=1,dl_type=0x88cc,actions=mod_dl_src:02:00:00:00:00:09,mod_dl_dst:02:00:00:00:00:0a,set_field:0x9->reg0")]
    [InlineData("table=0,priority=1,tcp,ip_frag=0x1/0x3,actions=mod_tp_src:1")]
    [InlineData("table=0,priority=1,tcp,tcp_flags=0x012,actions=output:65280")]
    [InlineData("table=0,priority=1,ip,nw_dst=0.0.0.0/0,actions=output:1")]
    [InlineData("table=0,priority=1,ip,actions=ct_clear,dec_ttl(1,2,65535),all")]
    [InlineData("table=0,priority=1,ipv6,actions=mod_nw_ttl:255,output:2")]
    [InlineData("table=0,priority=1,ip,ip_dscp=46,actions=output:2")]
    [InlineData("table=0,priority=1,actions=load:0x3->reg0[0..1],set_field:0x100/0xf00->reg1,resubmit(,1)")]
    [InlineData("table=0,priority=1,arp,arp_sha=02:00:00:00:00:01,arp_tha=ff:ff:ff:00:00:00/ff:ff:ff:00:00:00,actions=output:2")]
    [InlineData("table=0,priority=1,ipv6,nw_ecn=3,actions=output:2")]
    public void Parse_format_parse_round_trips(string text)
    {
        var a = Rule(text);
        string formatted = FlowFormatter.Format(a, withCounters: false);
        var b = Rule(formatted);
        Assert.Equal(a.Match, b.Match);
        Assert.Equal(a.Actions, b.Actions);
        Assert.Equal(a.Table, b.Table);
        Assert.Equal(a.Priority, b.Priority);
        Assert.Equal(a.Cookie, b.Cookie);
        Assert.Equal(a.IdleTimeout, b.IdleTimeout);
        Assert.Equal(a.HardTimeout, b.HardTimeout);
        Assert.Equal(formatted, FlowFormatter.Format(b, withCounters: false));
    }

    [Theory]
    [InlineData("table=0,priority=100,ip,nw_dst=192.0.2.0/24,actions=output:2")]
    [InlineData("table=3,priority=5,tcp,in_port=1,nw_src=10.0.0.1,tp_dst=22,actions=output:1,output:2")]
    [InlineData("table=0,priority=9,dl_vlan=10,actions=pop_vlan,normal")]
    [InlineData("table=0,priority=1,tcp,tcp_flags=+syn-ack,actions=resubmit(,3)")]
    [InlineData("table=0,priority=1,ip,ip_frag=later,actions=drop")]
    [InlineData("table=0,priority=1,ipv6,ipv6_dst=2001:db8::/64,actions=drop")]
    [InlineData("table=0,priority=5,recirc_id=3,udp,actions=set_field:203.0.113.9->nw_dst,recirc(4)")]
    public void Canonical_text_formats_to_itself(string text) =>
        Assert.Equal(text, FlowFormatter.Format(Rule(text), withCounters: false));

    [Fact]
    public void Format_with_counters_is_dump_flows_style()
    {
        var r = Rule("table=2,priority=100,cookie=0x1f,idle_timeout=30,ip,nw_dst=192.0.2.0/24,actions=output:2");
        r.Counters.Packets = 3;
        r.Counters.Bytes = 180;
        r.InstalledTsc = 1_000;
        Assert.Equal(
            "cookie=0x1f, duration=2.500s, table=2, n_packets=3, n_bytes=180, idle_timeout=30, priority=100,ip,nw_dst=192.0.2.0/24,actions=output:2",
            FlowFormatter.Format(r, withCounters: true, nowTsc: 6_000, tscHz: 2_000));
        Assert.Equal(
            "cookie=0x0, duration=0.000s, table=0, n_packets=0, n_bytes=0, priority=32768,actions=drop",
            FlowFormatter.Format(Rule("actions="), withCounters: true));
    }

    [Fact]
    public void Format_match_and_actions()
    {
        Assert.Equal("", FlowFormatter.FormatMatch(default));
        Assert.Equal("tcp,nw_dst=10.0.0.0/8,tp_dst=80", FlowFormatter.FormatMatch(Match("tp_dst=80,nw_dst=10.0.0.0/8,tcp")));
        Assert.Equal("ip,nw_proto=47", FlowFormatter.FormatMatch(Match("dl_type=0x0800,nw_proto=47")));
        Assert.Equal("drop", FlowFormatter.FormatActions([]));
        Assert.Equal("output:1,resubmit(,2),resubmit(3,0),set_field:192.0.2.1->nw_src",
            FlowFormatter.FormatActions(
            [
                new FlowAction(ActionKind.Output, Port: 1),
                new FlowAction(ActionKind.Resubmit, Port: -1, Table: 2),
                new FlowAction(ActionKind.Resubmit, Port: 3, Table: 0),
                new FlowAction(ActionKind.SetField, Field: Fields.NwSrc, Value: 0xC0000201),
            ]));
    }

    [Fact]
    public void Format_key_mask_lists_masked_fields()
    {
        var key = FlowParser.ParsePacket("in_port=1,tcp,nw_src=192.0.2.1,nw_dst=198.51.100.2,tp_dst=80", "t");
        FlowKey mask = default;
        mask.InPort = 0xFFFF;
        mask.DlType = 0xFFFF;
        mask.NwProto = 0xFF;
        mask.NwDst = 0xFFFFFF00;
        mask.TpDst = 0xFFF0;
        Assert.Equal("in_port=1,dl_type=0x0800,nw_dst=198.51.100.0/24,nw_proto=6,tp_dst=0x50/0xfff0",
            FlowFormatter.FormatKeyMask(key, mask));
        Assert.Equal("", FlowFormatter.FormatKeyMask(key, default));
    }

    [Fact]
    public void Large_batch_parses()
    {
        const int n = 200_000;
        var sb = new StringBuilder(n * 70);
        for (int i = 0; i < n; i++)
        {
            sb.Append("table=0,priority=100,ip,nw_dst=10.").Append((i >> 16) & 0xFF).Append('.').Append((i >> 8) & 0xFF)
                .Append('.').Append(i & 0xFF).Append(",actions=output:2\n");
        }

        string text = sb.ToString();
        FlowParser.ParseRules("table=0,priority=100,ip,nw_dst=10.1.2.3,actions=output:2", "warm");
        var rules = FlowParser.ParseRules(text, "big.flows"); // its speed is measured by bench/flowload.sh
        Assert.Equal(n, rules.Count);
        Assert.Equal(0x0A000000u | ((uint)(n - 1) & 0xFFFFFF), rules[^1].Match.Value.NwDst);
        Assert.Equal($"big.flows:{n}", rules[^1].Origin);
    }
}
