// ParityActionTests.cs - the two datapath actions added for Open vSwitch parity, over in-memory
// ports: SCTP port rewrites (the CRC32c recomputed over the whole SCTP packet, a wrong one kept
// wrong as Open vSwitch's packet_set_sctp_port keeps it), output(port=N,max_len=M) (the
// datapath's trunc: only that output's packet is cut), and NORMAL's VLAN handling (Open vSwitch's
// xvlan model: priority tags, access ports that take them, the tags each egress is written with). Expected frames come from FrameBuilder, whose
// CRC32c is a bitwise one that shares nothing with the switch's SSE4.2 code.
using System.Buffers.Binary;
using VSwitch.FlowText;
using VSwitch.Interop;
using VSwitch.Pipeline;
using VSwitch.Tests.Oracle;
using Xunit;
using static VSwitch.Tests.PipelineTests;

namespace VSwitch.Tests;

public sealed unsafe class ParityActionTests
{
    private static FrameSpec Sctp(bool v6, ushort src = 5000, ushort dst = 36412, int payload = 40) => new()
    {
        Proto = 132, EthType = (ushort)(v6 ? 0x86DD : 0x0800), SrcPort = src, DstPort = dst,
        Payload = Enumerable.Range(0, payload).Select(i => (byte)(i * 7)).ToArray(),
    };

    private static int L4(bool v6) => v6 ? 54 : 34;

    [Theory]
    [InlineData(false, "mod_tp_src:7")]
    [InlineData(false, "set_field:7->sctp_dst")]
    [InlineData(true, "load:7->OXM_OF_SCTP_SRC[]")]
    [InlineData(true, "set_field:7->tp_dst")]
    [InlineData(false, "load:7->reg0[0..15],move:reg0[0..15]->tp_dst[]")]
    public void An_sctp_port_rewrite_recomputes_the_crc32c(bool v6, string rewrite)
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules($"table=0,priority=10,{(v6 ? "sctp6" : "sctp")},actions={rewrite},output:2", "test"));
        rig.Send(1, [FrameBuilder.Build(Sctp(v6))]);
        var got = Assert.Single(rig.Out(2));
        bool dst = rewrite.Contains("dst", StringComparison.Ordinal);
        var want = FrameBuilder.Build(Sctp(v6, src: dst ? (ushort)5000 : (ushort)7, dst: dst ? (ushort)7 : (ushort)36412));
        Assert.Equal(Convert.ToHexString(want), Convert.ToHexString(got));
        Assert.Empty(FrameBuilder.VerifyChecksums(got));
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(false, 1)]
    [InlineData(false, 7)]
    [InlineData(false, 8)]
    [InlineData(true, 1499)]
    public void Payload_lengths_that_are_not_a_multiple_of_eight_are_covered(bool v6, int payload)
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules($"table=0,priority=10,{(v6 ? "sctp6" : "sctp")},actions=mod_tp_dst:99,mod_tp_src:98,output:2", "test"));
        rig.Send(1, [FrameBuilder.Build(Sctp(v6, payload: payload))]);
        var got = Assert.Single(rig.Out(2));
        Assert.Equal(Convert.ToHexString(FrameBuilder.Build(Sctp(v6, 98, 99, payload))), Convert.ToHexString(got));
    }

    [Fact]
    public void A_wrong_crc32c_stays_wrong_by_the_same_bits_as_in_open_vswitch()
    {
        // packet_set_sctp_port: new = old ^ crc(old packet) ^ crc(new packet), so a rewrite never
        // makes a corrupt packet look good.
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=10,sctp,actions=mod_tp_dst:99,output:2", "test"));
        var input = FrameBuilder.Build(Sctp(false));
        input[L4(false) + 8] ^= 0x5A;
        rig.Send(1, [input]);
        var got = Assert.Single(rig.Out(2));
        var want = FrameBuilder.Build(Sctp(false, dst: 99));
        want[L4(false) + 8] ^= 0x5A;
        Assert.Equal(Convert.ToHexString(want), Convert.ToHexString(got));
        Assert.Equal(["sctp"], FrameBuilder.VerifyChecksums(got));
    }

    [Fact]
    public void The_crc32c_covers_the_ip_payload_not_the_ethernet_padding()
    {
        // A 60-byte minimum frame: 14 + 20 + 12 bytes of SCTP (no chunk), 14 bytes of padding that
        // dp_packet_l4_size leaves out in Open vSwitch too.
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=10,sctp,actions=mod_tp_src:1,output:2", "test"));
        var input = FrameBuilder.Build(Sctp(false, payload: 0)).Concat(new byte[14]).ToArray();
        rig.Send(1, [input]);
        var got = Assert.Single(rig.Out(2));
        var want = FrameBuilder.Build(Sctp(false, src: 1, payload: 0)).Concat(new byte[14]).ToArray();
        Assert.Equal(Convert.ToHexString(want), Convert.ToHexString(got));
    }

    [Fact]
    public void An_address_rewrite_leaves_the_sctp_crc32c_alone()
    {
        // SCTP's checksum has no pseudo-header (unlike TCP's and UDP's).
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=10,sctp,actions=mod_nw_dst:203.0.113.5,output:2", "test"));
        rig.Send(1, [FrameBuilder.Build(Sctp(false))]);
        var got = Assert.Single(rig.Out(2));
        var s = Sctp(false);
        s.NwDst = FrameBuilder.Ip("203.0.113.5");
        Assert.Equal(Convert.ToHexString(FrameBuilder.Build(s)), Convert.ToHexString(got));
        Assert.Empty(FrameBuilder.VerifyChecksums(got));
    }

    [Theory]
    [InlineData(60)]
    [InlineData(1400)]
    [InlineData(2047)]
    public void The_crc32c_of_a_jumbo_sctp_packet_is_computed_over_every_segment(int firstSegment)
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=10,sctp,actions=mod_tp_dst:4242,push_vlan:0x8100,mod_vlan_vid:7,output:2", "test"));
        var input = FrameBuilder.Build(Sctp(false, payload: 8900));
        var s = Sctp(false, dst: 4242, payload: 8900);
        s.Tags = [(0x8100, 7)];
        var want = FrameBuilder.Build(s);
        rig.Ports.Inject(0, rig.Mbufs.CreateChain(input, firstSegment));
        while (rig.Loop.Poll() != 0)
        {
        }

        var got = FakeMbufs.ChainBytes(Assert.Single(rig.Ports.Sent(1)));
        Assert.Empty(FrameBuilder.VerifyChecksums(got));
        Assert.Equal(Convert.ToHexString(want), Convert.ToHexString(got));
    }

    [Fact]
    public void An_sctp_later_fragment_is_not_rewritten()
    {
        // No transport header in a later fragment: Open vSwitch's commit leaves the ports alone too.
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=10,sctp,actions=mod_tp_dst:99,output:2", "test"));
        var s = Sctp(false);
        s.FragField = 0x0010;
        var input = FrameBuilder.Build(s);
        rig.Send(1, [input]);
        Assert.Equal(Convert.ToHexString(input), Convert.ToHexString(Assert.Single(rig.Out(2))));
    }

    // --- output(port=N,max_len=M) ---------------------------------------------------------------

    [Fact]
    public void A_truncating_output_cuts_only_its_own_packet()
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=10,actions=output(port=2,max_len=20),output:3,output(port=4,max_len=100),mod_dl_src:02:00:00:00:00:99,output(port=1,max_len=30)", "test"));
        var input = FrameBuilder.Build(new FrameSpec { Proto = 17, Payload = new byte[100] });
        rig.Send(3, [input]);
        Assert.Equal(Convert.ToHexString(input[..20]), Convert.ToHexString(Assert.Single(rig.Out(2))));
        Assert.Equal(Convert.ToHexString(input[..100]), Convert.ToHexString(Assert.Single(rig.Out(4))));
        Assert.Empty(rig.Out(3)); // the input port
        var last = Assert.Single(rig.Out(1));
        Assert.Equal(30, last.Length);
        Assert.Equal(0x99, last[11]); // the final output cuts the original after the rewrite
    }

    [Theory]
    [InlineData(1, 3)]
    [InlineData(4, 5)]
    [InlineData(31, 33)]
    public void Truncation_applies_to_every_packet_of_a_group_and_the_loop_tails(int a, int b)
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=10,actions=output(port=2,max_len=64)", "test"));
        var frames = Enumerable.Range(0, a + b).Select(i => FrameBuilder.Build(new FrameSpec { Proto = 17, Payload = new byte[(i % 3) * 40] })).ToList();
        rig.Send(1, frames);
        var got = rig.Out(2);
        Assert.Equal(frames.Count, got.Count);
        for (int i = 0; i < frames.Count; i++)
        {
            Assert.Equal(Convert.ToHexString(frames[i][..Math.Min(64, frames[i].Length)]), Convert.ToHexString(got[i]));
        }
    }

    [Theory]
    [InlineData(100, 60)] // the cut falls in the second segment (the first holds 60 bytes): the others are freed
    [InlineData(4000, 1400)] // in the third (1400 + 2048 bytes before it)
    [InlineData(9000, 2047)] // a no-op: the frame is shorter
    public void Truncation_cuts_a_chain_of_mbufs_and_frees_the_segments_after_the_cut(int maxLen, int firstSegment)
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules($"table=0,priority=10,actions=output(port=2,max_len={maxLen})", "test"));
        var input = FrameBuilder.Build(new FrameSpec { Proto = 17, Payload = Enumerable.Range(0, 8000).Select(i => (byte)i).ToArray() });
        nint chain = rig.Mbufs.CreateChain(input, firstSegment);
        int segments = Mbuf.NbSegs(chain);
        rig.Ports.Inject(0, chain);
        int freedBefore = rig.Mbufs.Freed;
        while (rig.Loop.Poll() != 0)
        {
        }

        nint sent = Assert.Single(rig.Ports.Sent(1));
        var got = FakeMbufs.ChainBytes(sent);
        int want = Math.Min(maxLen, input.Length);
        Assert.Equal(Convert.ToHexString(input[..want]), Convert.ToHexString(got));
        Assert.Equal((uint)want, Mbuf.PktLen(sent));
        int kept = 0;
        for (nint m = sent; m != 0; m = *(nint*)(m + Mbuf.NextOffset))
        {
            kept++;
        }

        Assert.Equal(kept, Mbuf.NbSegs(sent));
        Assert.Equal(segments > kept ? 1 : 0, rig.Mbufs.Freed - freedBefore); // the cut-off segments, as one chain in one free
    }

    [Fact]
    public void A_truncated_sctp_copy_keeps_the_crc32c_of_the_whole_packet()
    {
        // As in Open vSwitch: trunc cuts bytes, it does not recompute anything (a receiver sees a
        // short packet); the rewrite before it covered the whole SCTP packet.
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("table=0,priority=10,sctp,actions=mod_tp_src:9,output(port=2,max_len=50),output:3", "test"));
        rig.Send(1, [FrameBuilder.Build(Sctp(false))]);
        var whole = Assert.Single(rig.Out(3));
        Assert.Equal(Convert.ToHexString(FrameBuilder.Build(Sctp(false, src: 9))), Convert.ToHexString(whole));
        Assert.Equal(Convert.ToHexString(whole[..50]), Convert.ToHexString(Assert.Single(rig.Out(2))));
        Assert.Equal(9, BinaryPrimitives.ReadUInt16BigEndian(whole.AsSpan(L4(false))));
    }

    [Fact]
    public void Sctp_rewrites_and_truncation_allocate_nothing_on_the_pmd_path()
    {
        // Two cached verdicts that flip the SCTP destination port (so every round recomputes the
        // CRC32c) and cut the frame (its lengths are put back between rounds: the bytes stay).
        using var rig = new Rig(emcInvProb: 1);
        rig.Load(FlowParser.ParseRules("""
            table=0,priority=10,sctp,tp_dst=1,actions=mod_tp_dst:2,output(port=2,max_len=50)
            table=0,priority=10,sctp,tp_dst=2,actions=mod_tp_dst:1,output(port=2,max_len=50)
            """, "test"));
        var mbufs = Enumerable.Range(0, 32).Select(i => rig.Mbufs.Create(FrameBuilder.Build(Sctp(false, src: (ushort)(1000 + i), dst: 1, payload: 100)))).ToArray();
        var lengths = mbufs.Select(Mbuf.DataLen).ToArray();
        void Run(int rounds)
        {
            for (int r = 0; r < rounds; r++)
            {
                for (int i = 0; i < mbufs.Length; i++)
                {
                    *(ushort*)(mbufs[i] + Mbuf.DataLenOffset) = lengths[i];
                    *(uint*)(mbufs[i] + Mbuf.PktLenOffset) = lengths[i];
                    rig.Ports.Inject(0, mbufs[i]);
                }

                rig.Loop.Poll();
                rig.Loop.Poll();
                rig.Ports.RxHead[0] = rig.Ports.RxTail[0] = 0;
                rig.Ports.TxCount[1] = 0;
            }
        }

        AssertAllocatesNothing(Run);
        Assert.Equal(0UL, rig.Counters.Malformed);
        Assert.Equal(50, Mbuf.DataLen(mbufs[0]));
        Assert.Empty(FrameBuilder.VerifyChecksums(new Span<byte>(Mbuf.Data(mbufs[0]), lengths[0]).ToArray())); // the bytes under the cut: a right CRC32c
    }

    // --- NORMAL and VLANs -------------------------------------------------------------------------

    private static readonly PipelinePort[] VlanPorts =
    [
        new(1, "plain"),
        new(2, "access10", VlanMode.Access, 10),
        new(3, "trunk", VlanMode.Trunk, 0, [0, 10, 20]),
        new(4, "plain2"),
    ];

    private static byte[] Tagged(params (ushort Tpid, ushort Tci)[] tags) =>
        FrameBuilder.Build(new FrameSpec { Dst = 0xFFFFFFFFFFFF, Proto = 17, Tags = [.. tags], Payload = new byte[18] });

    private static Dictionary<int, List<byte[]>> Normal(int inPort, byte[] frame) =>
        OracleSwitchBugTests.Run("table=0,priority=0,actions=normal", inPort, frame, VlanPorts);

    private static void AssertOut(Dictionary<int, List<byte[]>> outs, int port, byte[]? want)
    {
        if (want == null)
        {
            Assert.Empty(outs[port]);
        }
        else
        {
            Assert.Equal(Convert.ToHexString(want), Convert.ToHexString(Assert.Single(outs[port])));
        }
    }

    [Fact]
    public void A_priority_tag_with_a_pcp_keeps_its_tag_in_vlan_0_and_one_with_pcp_0_is_omitted()
    {
        var prio5 = Tagged((0x8100, 5 << 13));
        var outs = Normal(1, prio5);
        AssertOut(outs, 4, prio5); // no VLAN configuration: the 802.1p priority survives, as in Open vSwitch
        AssertOut(outs, 3, prio5); // a trunk of VLAN 0
        AssertOut(outs, 2, null); // access 10 is another VLAN

        var prio0 = Tagged((0x8100, 0));
        outs = Normal(1, prio0);
        AssertOut(outs, 4, Tagged()); // VID 0, PCP 0: no tag
        AssertOut(outs, 3, Tagged());
    }

    [Fact]
    public void An_outer_tag_with_vid_0_and_pcp_0_ends_the_stack_and_takes_the_inner_tag_with_it()
    {
        // Open vSwitch writes tags from the outside in while VID or PCP is not 0.
        var outs = Normal(1, Tagged((0x88A8, 0), (0x8100, 20)));
        AssertOut(outs, 4, Tagged());
        outs = Normal(1, Tagged((0x88A8, 3 << 13), (0x8100, 20)));
        AssertOut(outs, 4, Tagged((0x88A8, 3 << 13), (0x8100, 20)));
    }

    [Fact]
    public void An_access_port_takes_a_priority_tagged_frame_into_its_vlan_with_its_pcp()
    {
        var outs = Normal(2, Tagged((0x8100, 6 << 13)));
        AssertOut(outs, 3, Tagged((0x8100, (6 << 13) | 10))); // the trunk: VLAN 10, the frame's priority
        AssertOut(outs, 1, Tagged((0x8100, (6 << 13) | 10))); // no VLAN configuration: a trunk of every VLAN
        outs = Normal(2, Tagged((0x8100, 10)));
        Assert.Equal(0, outs.Values.Sum(o => o.Count)); // a VLAN-tagged frame on an access port: dropped
        outs = Normal(3, Tagged((0x8100, (2 << 13) | 10)));
        AssertOut(outs, 2, Tagged()); // towards an access port: no tag at all
    }

    [Fact]
    public void A_trunk_with_a_list_takes_untagged_frames_only_when_it_lists_vlan_0()
    {
        var ports = new PipelinePort[] { new(1, "t", VlanMode.Trunk, 0, [10]), new(2, "p") };
        var outs = OracleSwitchBugTests.Run("table=0,priority=0,actions=normal", 1, Tagged(), ports);
        Assert.Equal(0, outs.Values.Sum(o => o.Count));
        outs = Normal(3, Tagged());
        AssertOut(outs, 1, Tagged());
        AssertOut(outs, 4, Tagged());
    }
}
