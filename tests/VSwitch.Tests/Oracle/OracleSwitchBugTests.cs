// OracleSwitchBugTests.cs - switch bugs the flow oracle found, one small skipped [Fact] each.
//
// Each fact shows the bug with the fewest rules and packets (from the oracle's shrunk reproductions).
// All seven are fixed: the facts run, and the random run no longer leaves their case classes out.
using System.Net;
using PacketDotNet;
using VSwitch.FlowText;
using VSwitch.Pipeline;

namespace VSwitch.Tests.Oracle;

public sealed class OracleSwitchBugTests
{
    /// <summary>
    /// dec_ttl on TTL 1 dropped the packet in the executor (its slot in the group set to 0), and a
    /// later output that was not the last one handed the whole group to IPacketIo.Copy, null slot
    /// included: a segfault in vswitchd for one TTL-1 packet (here FakeMbufs.Clone(0) throws). Now
    /// the expired TTL ends the rule's actions at translation (Open vSwitch), so nothing is sent.
    /// </summary>
    [Fact]
    public void Outputs_after_dec_ttl_dropped_the_packet_send_nothing_and_copy_nothing()
    {
        var frame = OracleGenerator.Build(0x020000000001, 0x020000000002, EthernetType.IPv4, IPAddress.Parse("10.0.0.1"), IPAddress.Parse("10.0.0.2"), 1, 0, new byte[18]);
        var outs = Run("table=0,priority=100,ip,actions=dec_ttl,output:2,output:3", 1, frame);
        Assert.All(outs.Values, Assert.Empty);
    }

    /// <summary>
    /// NORMAL gives each egress the tag its port wants (VlanMode docs), as Open vSwitch does per
    /// output and then restores the packet. Translator.NormalOutput instead pushes/pops on the working
    /// packet: after an access egress popped the tag, a later trunk egress re-pushes a bare VID and the
    /// frame's priority (PCP) and TPID are lost; which ports lose it depends on the flood order.
    /// </summary>
    [Fact]
    public void Normal_flood_keeps_the_frames_priority_on_every_tagged_egress()
    {
        PipelinePort[] ports = [new(1, "a10", VlanMode.Access, 10), new(2, "a20", VlanMode.Access, 20), new(3, "t", VlanMode.Trunk, 0, [10, 20]), new(4, "all")];
        var untagged = OracleGenerator.Build(0x020000000003, 0xFFFFFFFFFFFF, EthernetType.IPv4, IPAddress.Parse("10.0.0.1"), IPAddress.Parse("10.0.0.2"), 64, 1, new byte[18]);
        var frame = OracleGenerator.Tag(untagged, 0x8100, (2 << 13) | 20); // VLAN 20, priority 2, in on the trunk
        var outs = Run("table=0,priority=0,actions=normal", 3, frame, ports);
        Assert.Equal(untagged, Assert.Single(outs[2])); // access: untagged
        Assert.Equal(frame, Assert.Single(outs[4]));    // every VLAN: as received, priority 2 kept
    }

    /// <summary>
    /// The same leak seen by the actions after NORMAL: a frame from access port 2 (VLAN 20) is flooded
    /// by NORMAL to the trunks tagged, and the following output then sends the tagged frame to the
    /// access port 1 too, instead of the packet as it was before NORMAL.
    /// </summary>
    [Fact]
    public void Actions_after_normal_see_the_packet_as_it_was_before_normal()
    {
        PipelinePort[] ports = [new(1, "a10", VlanMode.Access, 10), new(2, "a20", VlanMode.Access, 20), new(3, "t", VlanMode.Trunk, 0, [10, 20]), new(4, "all", VlanMode.Trunk)];
        var frame = OracleGenerator.Build(0x020000000004, 0xFFFFFFFFFFFF, EthernetType.IPv4, IPAddress.Parse("10.0.0.1"), IPAddress.Parse("10.0.0.2"), 64, 1, new byte[18]);
        var outs = Run("table=0,priority=0,actions=normal,output:1", 2, frame, ports);
        Assert.Equal(frame, Assert.Single(outs[1]));
    }

    /// <summary>
    /// The first NORMAL floods (destination 02:..:01 unknown), then the rule rewrites the source to
    /// that MAC and the second NORMAL learns it behind the input port. The same packet again must be
    /// dropped (its destination is now known behind the input port); the switch caches the first
    /// verdict under the MAC table generation that includes its own learning, so it floods again.
    /// </summary>
    [Fact]
    public void A_verdict_that_teaches_the_mac_table_is_not_reused_once_stale()
    {
        var frame = OracleGenerator.Build(0x020000000005, 0x020000000001, EthernetType.IPv4, IPAddress.Parse("10.0.0.1"), IPAddress.Parse("10.0.0.2"), 64, 1, new byte[18]);
        using var rig = new PipelineTests.Rig(ports: 4, emcInvProb: 1);
        rig.Load(FlowParser.ParseRules("table=0,priority=0,actions=normal,mod_dl_src:02:00:00:00:00:01,normal", "bug.flows"));
        rig.Send(3, [frame]);
        Assert.Single(rig.Out(1)); // flooded: 02:..:01 not known yet
        rig.Send(3, [frame]);
        Assert.Empty(rig.Out(1)); // 02:..:01 is now known behind port 3, the input port
    }

    private const int PmdBurst = 32;

    /// <summary>
    /// A port's tx buffer holds two bursts (TxBuffer.cs: "one rx burst can be appended to a buffer
    /// holding up to 31"), which assumes at most one copy per packet and port; a rule that sends a
    /// packet to the same port more than once (output:2 twice, or output:2 then flood) overflows it
    /// within one rx burst, and PipelineForwarder.Enqueue frees the excess as tx drops although the
    /// port itself took everything it was given.
    /// </summary>
    [Fact]
    public void Every_copy_a_rule_sends_to_one_port_leaves_even_three_per_packet()
    {
        var frame = OracleGenerator.Build(0x020000000001, 0x020000000002, EthernetType.IPv4, IPAddress.Parse("10.0.0.1"), IPAddress.Parse("10.0.0.2"), 64, 1, new byte[18]);
        using var rig = new PipelineTests.Rig(ports: 4, emcInvProb: 1);
        rig.Load(FlowParser.ParseRules("table=0,priority=0,actions=output:2,output:2,output:2", "bug.flows"));
        rig.Send(1, [.. Enumerable.Repeat(frame, PmdBurst)]);
        Assert.Equal(3 * PmdBurst, rig.Out(2).Count);
    }

    /// <summary>
    /// PipelineForwarder.Revalidate translates me-&gt;Key, the stale megaflow's key under its old mask,
    /// with learning on. When the new verdict reaches NORMAL, the MAC table learns from fields the old
    /// mask zeroed (or along a path only the masked key takes): here the VLAN (a frame tagged 20 is learned in VLAN 0). The translation is then
    /// refused (its wildcards exceed the mask) and the packet takes a real upcall, but the bogus
    /// binding stays: an untagged frame to that MAC is sent to port 4 only instead of flooded.
    /// </summary>
    [Fact]
    public void Revalidating_a_megaflow_into_normal_learns_nothing_from_its_masked_key()
    {
        var ip = OracleGenerator.Build(0x020000000003, 0x020000000005, EthernetType.IPv4, IPAddress.Parse("10.0.0.1"), IPAddress.Parse("10.0.0.2"), 64, 1, new byte[18]);
        var fromA = OracleGenerator.Tag(ip, 0x8100, 20); // 02:..:03 in VLAN 20
        var toA = OracleGenerator.Build(0x020000000004, 0x020000000003, EthernetType.IPv4, IPAddress.Parse("10.0.0.2"), IPAddress.Parse("10.0.0.1"), 64, 1, new byte[18]);
        using var rig = new PipelineTests.Rig(ports: 4, emcInvProb: 1);
        rig.Load(FlowParser.ParseRules("table=0,priority=10,dl_src=02:00:00:00:00:03,actions=drop", "bug.flows"));
        rig.Send(4, [fromA]); // a megaflow over in_port and dl_src only
        rig.Load(FlowParser.ParseRules("table=0,priority=0,actions=normal", "bug.flows"));
        rig.Send(4, [fromA]); // revalidated, then an upcall: flooded in VLAN 20
        Assert.Equal(3, Enumerable.Range(1, 3).Sum(p => rig.Out(p).Count));
        rig.Send(1, [toA]); // VLAN 0: 02:..:03 was never seen there, so flooded
        Assert.Single(rig.Out(2));
        Assert.Single(rig.Out(3));
        Assert.Single(rig.Out(4));
    }

    /// <summary>
    /// pop_vlan makes the inner tag the outer one on the working key, and later lookups OR their
    /// vlan_tci masks into the wildcards as bits of the original outer tag: the megaflow never
    /// covers vlan2_tci, so a frame without the inner tag shares the verdict of one with it (also
    /// after revalidation, which the oracle's mixed bursts hit: NORMAL's verdict was re-translated
    /// from the masked key, as if the inner tag were absent).
    /// </summary>
    [Fact]
    public void A_megaflow_after_pop_vlan_covers_the_inner_tag_it_depends_on()
    {
        var ip = OracleGenerator.Build(0x020000000001, 0x020000000002, EthernetType.IPv4, IPAddress.Parse("10.0.0.1"), IPAddress.Parse("10.0.0.2"), 64, 1, new byte[18]);
        var outer30 = OracleGenerator.Tag(ip, 0x8100, 30);
        var outer30Inner20 = OracleGenerator.Tag(OracleGenerator.Tag(ip, 0x8100, 20), 0x88A8, 30);
        using var rig = new PipelineTests.Rig(ports: 4, emcInvProb: 1);
        rig.Load(FlowParser.ParseRules(
            "table=0,priority=1,actions=pop_vlan,goto_table:1\n"
            + "table=1,priority=10,dl_vlan=20,actions=output:2\n"
            + "table=1,priority=0,actions=output:3", "bug.flows"));
        rig.Send(1, [outer30Inner20]);
        Assert.Single(rig.Out(2)); // inner tag 20 is the outer one after the pop
        rig.Send(1, [outer30]);
        Assert.Empty(rig.Out(2));
        Assert.Single(rig.Out(3)); // untagged after the pop: the catch-all
    }

    /// <summary>
    /// ICMPv6's checksum covers the IPv6 pseudo-header (RFC 4443 2.3), so a rewritten address must
    /// update it as it does for TCP and UDP; the switch updates only TCP and UDP (Translator.L4Kind).
    /// </summary>
    [Fact]
    public void Rewriting_an_IPv6_address_of_an_ICMPv6_packet_updates_its_checksum()
    {
        var frame = OracleGenerator.Build(0x020000000001, 0x020000000002, EthernetType.IPv6, IPAddress.Parse("2001:db8::1"), IPAddress.Parse("2001:db8::2"), 64, 2, new byte[18]);
        var outs = Run("table=0,priority=100,icmp6,actions=set_field:2001:db8::99->ipv6_dst,output:2", 1, frame);
        var sent = Assert.Single(outs[2]);
        var icmp = Packet.ParsePacket(LinkLayers.Ethernet, sent).Extract<IcmpV6Packet>();
        Assert.Equal(icmp.CalculateIcmpChecksum(), icmp.Checksum);
    }

    /// <summary>Loads <paramref name="rules"/> and sends one frame; the frames each port sent.</summary>
    internal static Dictionary<int, List<byte[]>> Run(string rules, int inPort, byte[] frame, IEnumerable<PipelinePort>? ports = null)
    {
        using var rig = new PipelineTests.Rig(ports: 4, emcInvProb: 1, portSpecs: ports);
        rig.Load(FlowParser.ParseRules(rules, "bug.flows"));
        rig.Send(inPort, [frame]);
        return Enumerable.Range(1, 4).ToDictionary(p => p, rig.Out);
    }
}
