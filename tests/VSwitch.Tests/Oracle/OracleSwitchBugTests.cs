// OracleSwitchBugTests.cs - switch bugs the flow oracle found, one small skipped [Fact] each.
//
// Each fact shows the bug with the least rules and one packet (the oracle's shrinker printed them),
// and is skipped so CI stays green while src/ is not changed here. Its case class is left out of the
// random run by the exclusion next to it (FlowOracleTests.Exclusions); unskip the fact and drop the
// exclusion together when the bug is fixed.
using System.Net;
using PacketDotNet;
using VSwitch.Pipeline;

namespace VSwitch.Tests.Oracle;

public sealed class OracleSwitchBugTests
{
    internal const string Icmpv6AddressRewrite = "switch bug: set_field on ipv6_src/ipv6_dst leaves the ICMPv6 checksum stale";

    internal const string CopiesAfterTtlDrop = "switch bug: an output that is not the last action, after dec_ttl dropped the packet, copies a null mbuf";

    /// <summary>Exclusion for <see cref="Outputs_after_dec_ttl_dropped_the_packet_send_nothing_and_copy_nothing"/>.</summary>
    internal static string? ExcludeCopiesAfterTtlDrop(OracleVerdict verdict) => verdict.OutputsAfterDrop >= 2 ? CopiesAfterTtlDrop : null;

    /// <summary>
    /// dec_ttl on TTL 1 drops the packet (PipelineForwarder sets its slot in the group to 0), but a
    /// later output that is not the last one still hands the whole group to IPacketIo.Copy, null
    /// slot included: vsw_mbuf_copy_bulk then calls rte_pktmbuf_copy(NULL, NULL->pool, ...), a
    /// segfault in vswitchd for one TTL-1 packet; here FakeMbufs.Clone(0) throws.
    /// </summary>
    [Fact(Skip = CopiesAfterTtlDrop)]
    public void Outputs_after_dec_ttl_dropped_the_packet_send_nothing_and_copy_nothing()
    {
        var frame = OracleGenerator.Build(0x020000000001, 0x020000000002, EthernetType.IPv4, IPAddress.Parse("10.0.0.1"), IPAddress.Parse("10.0.0.2"), 1, 0, new byte[18]);
        var outs = Run("table=0,priority=100,ip,actions=dec_ttl,output:2,output:3", 1, frame);
        Assert.All(outs.Values, Assert.Empty);
    }

    /// <summary>Exclusion for <see cref="Rewriting_an_IPv6_address_of_an_ICMPv6_packet_updates_its_checksum"/>.</summary>
    internal static string? ExcludeIcmpv6AddressRewrite(OracleAction action, FrameView packet) =>
        action is SetFieldAction { Target: SetTarget.Ipv6Src or SetTarget.Ipv6Dst } && packet.IsIpv6 && packet.NwProto == 58
            ? Icmpv6AddressRewrite : null;

    /// <summary>
    /// ICMPv6's checksum covers the IPv6 pseudo-header (RFC 4443 2.3), so a rewritten address must
    /// update it as it does for TCP and UDP; the switch updates only TCP and UDP (Translator.L4Kind).
    /// </summary>
    [Fact(Skip = Icmpv6AddressRewrite)]
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
