// SyntaxIssue14Tests.cs - syntax Open vSwitch 3.1 accepts that this switch used to refuse (issue 14):
// sctp matches, registers reg2..reg5 and xreg0..xreg2, NXM/OXM names in load and move, move, note,
// LOCAL and output(port=,max_len=). Each case states what Open vSwitch does with the same rule.
using System.Buffers.Binary;
using VSwitch.FlowText;
using VSwitch.Packets;
using VSwitch.Pipeline;
using VSwitch.Tests.Oracle;
using Xunit;

namespace VSwitch.Tests;

public sealed class SyntaxIssue14Tests
{
    private static byte[] Frame(byte proto = 17, ushort src = 1234, ushort dst = 80, List<(ushort, ushort)>? tags = null) =>
        FrameBuilder.Build(new FrameSpec { Proto = proto, SrcPort = src, DstPort = dst, Tags = tags ?? [], Payload = new byte[18] });

    private static FlowRule Rule(string text) => Assert.Single(FlowParser.ParseRules(text, "t.flows"));

    private static string RoundTrip(string text) => FlowFormatter.Format(Rule(text), withCounters: false);

    private static string Refused(string text) => Assert.Throws<FlowSyntaxException>(() => FlowParser.ParseRules(text, "t.flows")).Message;

    // --- SCTP ---------------------------------------------------------------------------------

    [Fact]
    public unsafe void The_parser_extracts_sctp_ports()
    {
        var frame = Frame(proto: 132, src: 5000, dst: 36412);
        DpKey dk;
        HeaderOffsets off;
        fixed (byte* d = frame)
        {
            ushort parse = KeyExtractor.Extract(d, frame.Length, 1, &dk, &off);
            Assert.Equal(ParseFlags.L4, parse & (ParseFlags.L4 | ParseFlags.Errors));
        }

        var key = dk.ToFlowKey();

        Assert.Equal(132, key.NwProto);
        Assert.Equal(5000, key.TpSrc);
        Assert.Equal(36412, key.TpDst);
        Assert.Equal(34, off.L4);
    }

    [Fact]
    public unsafe void A_truncated_sctp_header_is_flagged_like_a_truncated_udp_one()
    {
        var frame = Frame(proto: 132)[..(14 + 20 + 8)];
        frame[16] = 0; frame[17] = 28; // IPv4 total length: 8 bytes of SCTP
        KeyExtractor.PipelineKeyOf(frame, 1, out ushort parse);
        Assert.NotEqual(0, parse & ParseFlags.Truncated);
    }

    [Theory]
    [InlineData("sctp,tp_dst=36412", 2)]
    [InlineData("sctp,sctp_dst=36412,sctp_src=5000", 2)]
    [InlineData("ip,nw_proto=132,tp_src=5000", 2)]
    [InlineData("sctp,tp_dst=80", 3)]
    [InlineData("udp,tp_dst=36412", 3)]
    public void Sctp_matches_take_the_sctp_ports(string match, int port)
    {
        var outs = OracleSwitchBugTests.Run($"""
            table=0,priority=10,{match},actions=output:2
            table=0,priority=0,actions=output:3
            """, 1, Frame(proto: 132, src: 5000, dst: 36412));
        Assert.Single(outs[port]);
        Assert.Equal(1, outs.Values.Sum(o => o.Count));
    }

    [Theory]
    [InlineData("priority=1,sctp,tp_dst=5,actions=drop", "table=0,priority=1,sctp,tp_dst=5,actions=drop")]
    [InlineData("priority=1,sctp6,sctp_src=5,actions=drop", "table=0,priority=1,sctp6,tp_src=5,actions=drop")]
    public void Sctp_rules_round_trip(string text, string dumped) => Assert.Equal(dumped, RoundTrip(text));

    [Theory]
    [InlineData("sctp,actions=set_field:7->sctp_dst", "table=0,priority=32768,sctp,actions=set_field:7->tp_dst")]
    [InlineData("sctp,actions=mod_tp_src:7", "table=0,priority=32768,sctp,actions=set_field:7->tp_src")]
    [InlineData("sctp6,actions=load:7->OXM_OF_SCTP_DST[]", "table=0,priority=32768,sctp6,actions=set_field:7->tp_dst")]
    [InlineData("sctp,actions=move:reg0[0..15]->tp_dst[]", "table=0,priority=32768,sctp,actions=move:reg0[0..15]->tp_dst[0..15]")]
    public void Rewrites_of_sctp_ports_are_taken_as_in_ovs_ofctl(string text, string dumped)
    {
        // The CRC32c is recomputed (ParityActionTests); these load and dump like any port rewrite.
        Assert.Equal(dumped, RoundTrip(text));
    }

    [Fact]
    public void Tp_dst_without_tcp_udp_or_sctp_names_all_three()
    {
        Assert.Contains("'sctp'", Refused("ip,tp_dst=80,actions=drop"));
    }

    // --- registers ------------------------------------------------------------------------------

    [Fact]
    public void Registers_2_to_5_and_xregs_are_set_matched_and_dumped_as_their_regs()
    {
        // Open vSwitch: xregN is reg(2N) in its high 32 bits and reg(2N+1) in its low 32 bits.
        var outs = OracleSwitchBugTests.Run("""
            table=0,priority=10,actions=set_field:0x11->reg2,load:0x22->NXM_NX_REG3[],load:0x100000002->xreg2[],load:3->OXM_OF_PKT_REG0[0..1],resubmit(,1)
            table=1,priority=10,reg2=0x11,reg3=0x22,reg4=1,reg5=2,reg1=3,reg0=0,actions=output:2
            table=1,priority=0,actions=output:3
            """, 1, Frame());
        Assert.Single(outs[2]);
        Assert.Empty(outs[3]);
        Assert.Equal("table=0,priority=1,reg3=0x10/0xff,actions=drop", RoundTrip("priority=1,xreg1=0x10/0xff,actions=drop"));
        Assert.Equal("table=0,priority=1,reg4=0x1,reg5=0x2,actions=drop", RoundTrip("priority=1,xreg2=0x100000002,actions=drop"));
    }

    [Fact]
    public void A_register_and_its_xreg_in_one_match_are_a_duplicate()
    {
        // Open vSwitch lets the later item overwrite the earlier one's bits; this switch refuses the overlap.
        Assert.Contains("duplicate field 'xreg1'", Refused("reg2=5,xreg1=0x10/0xff,actions=drop"));
    }

    [Fact]
    public void Registers_6_to_15_xregs_to_7_and_xxregs_are_set_moved_matched_and_dumped_as_their_regs()
    {
        // Open vSwitch: xxregN is xreg(2N):xreg(2N+1), so reg(4N) is its top 32 bits.
        var outs = OracleSwitchBugTests.Run("""
            table=0,priority=10,actions=set_field:0x2->xxreg2,set_field:0x9->reg9,load:0xc->NXM_NX_REG12[],load:0x700000007->xreg7[],load:5->NXM_NX_XXREG0[0..3],load:6->NXM_NX_XXREG0[96..99],move:NXM_OF_IN_PORT[]->xxreg1[32..47],resubmit(,1)
            table=1,priority=10,reg9=9,reg11=2,reg12=0xc,reg14=7,reg15=7,reg3=5,reg0=6,reg6=1,actions=output:2
            table=1,priority=0,actions=output:3
            """, 1, Frame());
        Assert.Single(outs[2]);
        Assert.Empty(outs[3]);
        Assert.Equal("table=0,priority=1,reg7=0x10/0xff,actions=drop", RoundTrip("priority=1,xxreg1=0x10/0xff,actions=drop"));
        Assert.Equal("table=0,priority=1,reg12=0x1,reg13=0x2,reg14=0x3,reg15=0x4,actions=drop",
            RoundTrip("priority=1,xxreg3=0x00000001000000020000000300000004,actions=drop"));
        Assert.Equal("table=0,priority=1,actions=set_field:0x1000000000000000000000002->xxreg1",
            RoundTrip("priority=1,actions=load:0x1000000000000000000000002->NXM_NX_XXREG1[]"));
    }

    [Theory]
    [InlineData("reg16=1,actions=drop", "reg16")]
    [InlineData("actions=load:1->NXM_NX_XXREG0[32..95]", "within bits 0..63 or 64..127")]
    [InlineData("actions=set_field:1/1->xxreg0", "at most 64 bits")]
    public void Registers_beyond_open_vswitch_s_and_xxreg_ranges_across_halves_are_refused(string text, string why)
    {
        Assert.Contains(why, Refused(text));
    }

    // --- move and NXM names ----------------------------------------------------------------------

    [Fact]
    public void Move_copies_header_bits_into_registers_and_registers_into_header_fields()
    {
        var frame = Frame();
        var outs = OracleSwitchBugTests.Run("""
            table=0,priority=10,udp,actions=move:NXM_OF_IP_SRC[]->NXM_NX_REG2[],move:NXM_OF_UDP_DST[0..7]->reg3[8..15],resubmit(,1)
            table=1,priority=10,udp,reg2=0xc0000201,reg3=0x5000,actions=move:reg2[]->ip_dst[],move:NXM_OF_ETH_SRC[0..15]->NXM_OF_ETH_DST[32..47],move:reg3[8..15]->tp_src[0..7],output:2
            table=1,priority=0,actions=output:3
            """, 1, frame);
        var f = Assert.Single(outs[2]);
        Assert.Empty(FrameBuilder.VerifyChecksums(f));
        Assert.Equal(0xC0000201u, BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(30))); // ip_dst = ip_src
        Assert.Equal(0x00010000_0002UL, ReadMac(f, 0)); // eth_dst's top 16 bits = eth_src's low 16 bits (0x0001)
        Assert.Equal((1234 & 0xFF00) | 80, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(34))); // udp_src low byte = 80
    }

    [Fact]
    public void A_move_into_vlan_and_ttl_bits_rewrites_only_those_bits()
    {
        var outs = OracleSwitchBugTests.Run("""
            table=0,priority=10,ip,dl_vlan=5,actions=load:0xab->reg0[],move:reg0[0..3]->vlan_vid[4..7],move:reg0[4..7]->nw_ttl[0..3],output:2
            """, 1, Frame(tags: [(0x8100, 5)]));
        var f = Assert.Single(outs[2]);
        Assert.Empty(FrameBuilder.VerifyChecksums(f));
        Assert.Equal(0xB5, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(14)) & 0xFFF);
        Assert.Equal((64 & 0xF0) | 0xA, f[18 + 8]);
    }

    [Theory]
    [InlineData("ip,actions=move:NXM_OF_IP_SRC[]->NXM_NX_REG2[]", "table=0,priority=32768,ip,actions=move:nw_src[0..31]->reg2[0..31]")]
    [InlineData("ip,actions=move:NXM_OF_IP_SRC[0..7]->reg3[8..15]", "table=0,priority=32768,ip,actions=move:nw_src[0..7]->reg3[8..15]")]
    [InlineData("ip,actions=move:ip_dscp[]->reg0[0..7]", "table=0,priority=32768,ip,actions=move:ip_dscp[0..7]->reg0[0..7]")]
    [InlineData("actions=load:5->NXM_NX_REG4[0..3],load:1->OXM_OF_METADATA[]", "table=0,priority=32768,actions=set_field:0x5/0xf->reg4,set_field:0x1->metadata")]
    public void Move_and_nxm_names_round_trip(string text, string dumped) => Assert.Equal(dumped, RoundTrip(text));

    [Theory]
    [InlineData("ip,actions=move:NXM_OF_ETH_DST[]->NXM_OF_IP_DST[]", "48 bits of 'NXM_OF_ETH_DST' and 32 bits")]
    [InlineData("actions=move:NXM_OF_IP_SRC[]->reg0[]", "missing prerequisite for 'NXM_OF_IP_SRC'")]
    [InlineData("ip,actions=move:reg0[0..7]->NXM_OF_IP_PROTO[]", "read-only")]
    [InlineData("ipv6,actions=move:ipv6_src[0..31]->reg0[]", "128-bit")]
    [InlineData("actions=move:reg0[0..40]->reg1[]", "bits 0..31 of 'reg0'")]
    [InlineData("actions=move:reg0[]", "SRC[]->DST[]")]
    public void Bad_moves_are_refused_with_the_reason(string text, string reason) => Assert.Contains(reason, Refused(text));

    [Theory]
    [InlineData("NXM_OF_IP_SRC=1.2.3.4,ip,actions=drop")]
    [InlineData("ip,actions=set_field:1.2.3.4->OXM_OF_IPV4_SRC")]
    public void Nxm_names_are_for_load_and_move_only_as_in_ovs_ofctl(string text) => Refused(text);

    // --- note, LOCAL, output(port=,max_len=), in_port --------------------------------------------

    [Fact]
    public void Note_is_kept_padded_as_open_vswitch_shows_it_and_changes_nothing()
    {
        Assert.Equal("table=0,priority=1,actions=note:01.02.03.04.00.00,output:2", RoundTrip("priority=1,actions=note:01.02.0304,output:2"));
        Assert.Equal("table=0,priority=1,actions=note:ab.00.00.00.00.00.00.00.00.00.00.00.00.00,output:2",
            RoundTrip("priority=1,actions=note:ab.00.00.00.00.00.00,output:2"));
        Assert.Contains("hex bytes", Refused("actions=note:0g"));
        var outs = OracleSwitchBugTests.Run("table=0,priority=1,actions=note:cafe,output:2", 1, Frame());
        Assert.Equal(Frame(), Assert.Single(outs[2]));
    }

    [Fact]
    public void Output_to_local_sends_nothing_and_in_port_local_matches_nothing()
    {
        // This switch has no LOCAL port: Open vSwitch would send to its bridge's internal port.
        var outs = OracleSwitchBugTests.Run("""
            table=0,priority=20,in_port=LOCAL,actions=output:3
            table=0,priority=10,actions=output:LOCAL,LOCAL,output:65534,output:2
            """, 1, Frame());
        Assert.Single(outs[2]);
        Assert.Equal(1, outs.Values.Sum(o => o.Count));
        Assert.Equal("table=0,priority=1,actions=output:LOCAL,output:LOCAL", RoundTrip("priority=1,actions=output:LOCAL,LOCAL"));
        Assert.Equal("table=0,priority=1,in_port=65534,actions=drop", RoundTrip("priority=1,in_port=LOCAL,actions=drop"));
    }

    [Fact]
    public void Output_with_port_and_max_len_outputs_to_the_port_and_takes_ovs_ofctls_range()
    {
        // Open vSwitch truncates to max_len bytes on any port (datapath trunc; ParityActionTests);
        // ovs-ofctl takes 14 (ETH_HEADER_LEN) to 2^32 - 1.
        var outs = OracleSwitchBugTests.Run("table=0,priority=1,actions=output(port=2,max_len=65535),output(max_len=65535,port=3)", 1, Frame());
        Assert.Equal(Frame(), Assert.Single(outs[2]));
        Assert.Equal(Frame(), Assert.Single(outs[3]));
        Assert.Equal("table=0,priority=1,actions=output(port=2,max_len=65535),output:3", RoundTrip("priority=1,actions=output(port=2,max_len=65535),output(port=3)"));
        Assert.Equal("table=0,priority=1,actions=output(port=2,max_len=14),output(port=3,max_len=4294967295)",
            RoundTrip("priority=1,actions=output(port=2,max_len=14),output(max_len=4294967295,port=3)"));
        Assert.Contains("at least 14", Refused("actions=output(port=2,max_len=13)"));
        Assert.Contains("'port=N' or 'max_len=N'", Refused("actions=output(port=2,max_len=4294967296)"));
        Assert.Contains("'port=N'", Refused("actions=output(max_len=65535)"));
        Assert.Contains("'port=N' or 'max_len=N'", Refused("actions=output(port=2,foo=1)"));
    }

    [Theory]
    [InlineData("in_port")]
    [InlineData("output:in_port")]
    [InlineData("IN_PORT")]
    public void In_port_as_an_action_sends_back_out_of_the_input_port(string action)
    {
        var outs = OracleSwitchBugTests.Run($"table=0,priority=1,actions={action}", 3, Frame());
        Assert.Single(outs[3]);
        Assert.Equal(1, outs.Values.Sum(o => o.Count));
    }

    private static ulong ReadMac(byte[] f, int at) => ((ulong)BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(at)) << 32) | BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(at + 2));

    [Theory]
    [InlineData("actions=meter:1,output:2", "no meters")]
    [InlineData("ip,actions=ct(commit,alg=ftp)", "application-level gateways")]
    public void Meters_and_ct_algs_are_refused_with_the_reason_not_dropped_silently(string text, string why)
    {
        Assert.Contains(why, Refused(text));
    }
}
