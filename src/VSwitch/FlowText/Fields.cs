// Fields.cs - the one table of every field the flow text knows, and what its prerequisites mean.
//
// A field is a bit range of a FlowKey word (Word, Shift, Width; IPv6 addresses span two words)
// with its ovs-ofctl name and synonyms, the protocol it needs in the match (Prereq), whether
// set_field/load may write it, and its value syntax: how the match parser reads a value and how
// the formatter writes it back (decimal, hex, MAC, IPv4 prefix, flag names, ...). The parsers, the
// formatter and the translator all take their field knowledge from this table; adding a field is
// one line here plus its extraction (Packets) and, when writable, its rewrite (Translator).
using System.Runtime.CompilerServices;
using VSwitch.Packets;
using VSwitch.Pipeline;

namespace VSwitch.FlowText;

/// <summary>How a field's value is written in flow text (read by the parsers, written by the formatter).</summary>
public enum FieldSyntax : byte
{
    /// <summary>An integer, written in decimal ("tp_dst=80").</summary>
    Decimal,

    /// <summary>An integer, written in hex ("reg0=0x1f").</summary>
    Hex,

    /// <summary>An integer, written as four hex digits ("dl_type=0x0800").</summary>
    Hex4,

    /// <summary>aa:bb:cc:dd:ee:ff, mask in the same form.</summary>
    Mac,

    /// <summary>Dotted quad; the mask a prefix length or a dotted quad.</summary>
    Ipv4,

    /// <summary>An IPv6 address (a 128-bit field); the mask a prefix length or an address.</summary>
    Ipv6,

    /// <summary>A VLAN id (0 to 4095, 0xffff: no tag) in the VLAN TCI word, with the tag-present bit.</summary>
    Vlan,

    /// <summary>A VLAN priority (0 to 7) in the VLAN TCI word, with the tag-present bit.</summary>
    VlanPcp,

    /// <summary>no, yes, first, later, not_later, or an integer.</summary>
    Frag,

    /// <summary>"+name-name" over <see cref="FieldDef.FlagNames"/>, or an integer (written in hex).</summary>
    Flags,
}

/// <summary>What a match on a field requires of the packet (ovs-ofctl's "prerequisites").</summary>
public enum Prerequisite
{
    None,
    Ip,
    Ipv6,
    IpAny,
    Arp,
    Tcp,
    Udp,
    TcpUdp,

    /// <summary>tcp, udp or sctp (v4 or v6): what tp_src / tp_dst need in a match.</summary>
    TcpUdpSctp,

    /// <summary>sctp or sctp6 (nw_proto=132).</summary>
    Sctp,
    Icmp,
    Vlan,

    /// <summary>A valid connection state in the match (ct_state with +new, +est, +rel, +rpl, +snat or +dnat, or +trk-inv), as Open vSwitch's ct_nw_proto needs.</summary>
    Ct,

    /// <summary><see cref="Ct"/> and 'ip' (ct_nw_src, ct_nw_dst).</summary>
    CtIp,

    /// <summary><see cref="Ct"/> and 'ipv6' (ct_ipv6_src, ct_ipv6_dst).</summary>
    CtIpv6,

    /// <summary><see cref="Ct"/> and an exact ct_nw_proto (ct_tp_src, ct_tp_dst).</summary>
    CtL4,
}

/// <summary>A named key field: where it lives in the FlowKey, what it needs and how its value is written.</summary>
public sealed record FieldDef(string Name, int Word, int Shift, int Width, Prerequisite Prereq, bool Writable, FieldSyntax Syntax)
{
    /// <summary>Other names the syntax accepts for the field (OpenFlow 1.2 and ovs-ofctl synonyms).</summary>
    public string[] Aliases { get; init; } = [];

    /// <summary>A match takes an exact value only (no /mask).</summary>
    public bool Exact { get; init; }

    /// <summary>The largest value a match or a set_field takes (all ones of the width unless narrower).</summary>
    public ulong Max { get; init; } = Width >= 64 ? ulong.MaxValue : (1UL << Width) - 1;

    /// <summary>The named bits of a <see cref="FieldSyntax.Flags"/> field, in the order they are written.</summary>
    public (string Name, ushort Bit)[] FlagNames { get; init; } = [];

    /// <summary>The field's bits within its word (for a 128-bit field: all of each of its two words).</summary>
    public ulong WordMask => Width >= 64 ? ulong.MaxValue : ((1UL << Width) - 1) << Shift;

    /// <summary>A field of the pipeline, not of the packet (metadata, registers): any of its bits may be written.</summary>
    public bool PipelineOnly { get; init; }

    /// <summary>
    /// The width Open vSwitch gives the field in load and move ("F[]" and bit numbers): wider than
    /// <see cref="Width"/> for a few fields it keeps in a byte (ip_dscp, nw_ecn, vlan_pcp, icmp type
    /// and code) or a word (ct_state); those extra high bits read as 0 and are not written.
    /// </summary>
    public int SubfieldWidth { get; init; } = Width;

    /// <summary>Width 128 fields (IPv6 addresses) span words Word and Word+1.</summary>
    public bool IsWide => Width == 128;
}

/// <summary>Every field the flow syntax knows (ovs-ofctl names).</summary>
public static class Fields
{
    private const Prerequisite None = Prerequisite.None;

    private static readonly (string Name, ushort Bit)[] s_tcpFlagNames =
    [
        ("fin", 0x001), ("syn", 0x002), ("rst", 0x004), ("psh", 0x008), ("ack", 0x010), ("urg", 0x020),
        ("ece", 0x040), ("cwr", 0x080), ("ns", 0x100),
    ];

    private static readonly (string Name, ushort Bit)[] s_ctStateNames =
    [
        ("new", 0x01), ("est", 0x02), ("rel", 0x04), ("rpl", 0x08), ("inv", 0x10), ("trk", 0x20), ("snat", 0x40),
        ("dnat", 0x80),
    ];

    // Name, FlowKey word, shift and width in bits, prerequisite, writable by set_field/load, value syntax.
    public static readonly FieldDef InPort    = new("in_port",      0,  0,  16, None,                false, FieldSyntax.Decimal) { Exact = true };
    public static readonly FieldDef DlType    = new("dl_type",      0, 16,  16, None,                false, FieldSyntax.Hex4) { Exact = true, Aliases = ["eth_type"] };
    public static readonly FieldDef VlanTci   = new("vlan_tci",     0, 32,  16, None,                false, FieldSyntax.Hex4);
    public static readonly FieldDef DlVlan    = new("dl_vlan",      0, 32,  12, Prerequisite.Vlan,   true,  FieldSyntax.Vlan) { Aliases = ["vlan_vid"] };
    public static readonly FieldDef DlVlanPcp = new("dl_vlan_pcp",  0, 45,   3, Prerequisite.Vlan,   true,  FieldSyntax.VlanPcp) { Aliases = ["vlan_pcp"], SubfieldWidth = 8 };
    public static readonly FieldDef Vlan2Tci  = new("vlan2_tci",    0, 48,  16, None,                false, FieldSyntax.Hex4);
    public static readonly FieldDef DlDst     = new("dl_dst",       1,  0,  48, None,                true,  FieldSyntax.Mac) { Aliases = ["eth_dst"] };
    public static readonly FieldDef NwProto   = new("nw_proto",     1, 48,   8, Prerequisite.IpAny,  false, FieldSyntax.Decimal) { Exact = true, Aliases = ["ip_proto"] };
    public static readonly FieldDef ArpOp     = new("arp_op",       1, 48,   8, Prerequisite.Arp,    false, FieldSyntax.Decimal) { Exact = true };
    public static readonly FieldDef NwTos     = new("nw_tos",       1, 56,   8, Prerequisite.IpAny,  false, FieldSyntax.Decimal);
    public static readonly FieldDef IpDscp    = new("ip_dscp",      1, 58,   6, Prerequisite.IpAny,  true,  FieldSyntax.Decimal) { SubfieldWidth = 8 }; // nw_tos >> 2
    public static readonly FieldDef NwEcn     = new("nw_ecn",       1, 56,   2, Prerequisite.IpAny,  true,  FieldSyntax.Decimal) { Aliases = ["ip_ecn"], SubfieldWidth = 8 }; // nw_tos & 3
    public static readonly FieldDef DlSrc     = new("dl_src",       2,  0,  48, None,                true,  FieldSyntax.Mac) { Aliases = ["eth_src"] };
    public static readonly FieldDef NwTtl     = new("nw_ttl",       2, 48,   8, Prerequisite.IpAny,  true,  FieldSyntax.Decimal);
    public static readonly FieldDef NwFrag    = new("ip_frag",      2, 56,   8, Prerequisite.IpAny,  false, FieldSyntax.Frag);
    public static readonly FieldDef TpSrc     = new("tp_src",       3,  0,  16, Prerequisite.TcpUdpSctp, true, FieldSyntax.Decimal) { Aliases = ["tcp_src", "udp_src", "sctp_src"] };
    public static readonly FieldDef TpDst     = new("tp_dst",       3, 16,  16, Prerequisite.TcpUdpSctp, true, FieldSyntax.Decimal) { Aliases = ["tcp_dst", "udp_dst", "sctp_dst"] };
    public static readonly FieldDef IcmpType  = new("icmp_type",    3,  0,  16, Prerequisite.Icmp,   false, FieldSyntax.Decimal) { Max = 255, Aliases = ["icmpv6_type"], SubfieldWidth = 8 };
    public static readonly FieldDef IcmpCode  = new("icmp_code",    3, 16,  16, Prerequisite.Icmp,   false, FieldSyntax.Decimal) { Max = 255, Aliases = ["icmpv6_code"], SubfieldWidth = 8 };
    public static readonly FieldDef TcpFlags  = new("tcp_flags",    3, 32,  12, Prerequisite.Tcp,    false, FieldSyntax.Flags) { Max = 0xFFF, FlagNames = s_tcpFlagNames };
    public static readonly FieldDef NwSrc     = new("nw_src",       4,  0,  32, Prerequisite.Ip,     true,  FieldSyntax.Ipv4) { Aliases = ["ip_src", "ipv4_src"] };
    public static readonly FieldDef NwDst     = new("nw_dst",       4, 32,  32, Prerequisite.Ip,     true,  FieldSyntax.Ipv4) { Aliases = ["ip_dst", "ipv4_dst"] };
    public static readonly FieldDef ArpSpa    = new("arp_spa",      4,  0,  32, Prerequisite.Arp,    false, FieldSyntax.Ipv4);
    public static readonly FieldDef ArpTpa    = new("arp_tpa",      4, 32,  32, Prerequisite.Arp,    false, FieldSyntax.Ipv4);
    public static readonly FieldDef ArpSha    = new("arp_sha",      5,  0,  48, Prerequisite.Arp,    false, FieldSyntax.Mac);
    public static readonly FieldDef ArpTha    = new("arp_tha",      6,  0,  48, Prerequisite.Arp,    false, FieldSyntax.Mac);
    public static readonly FieldDef Ipv6Src   = new("ipv6_src",     5,  0, 128, Prerequisite.Ipv6,   true,  FieldSyntax.Ipv6);
    public static readonly FieldDef Ipv6Dst   = new("ipv6_dst",     7,  0, 128, Prerequisite.Ipv6,   true,  FieldSyntax.Ipv6);
    public static readonly FieldDef Metadata  = new("metadata",    FlowKey.MetadataWord,  0,  64, None,                true,  FieldSyntax.Hex) { Aliases = ["OXM_OF_METADATA"], PipelineOnly = true };
    public static readonly FieldDef CtState   = new("ct_state",    FlowKey.CtWord,  0,   8, None,     false, FieldSyntax.Flags) { FlagNames = s_ctStateNames, SubfieldWidth = 32 };
    public static readonly FieldDef CtZone    = new("ct_zone",     FlowKey.CtWord,  8,  16, None,     false, FieldSyntax.Decimal);
    public static readonly FieldDef CtMark    = new("ct_mark",     FlowKey.CtWord, 32,  32, None,     false, FieldSyntax.Hex);
    public static readonly FieldDef IpsecSa   = new("ipsec_sa",    3, FlowKey.IpsecSaShift, 12, None, false, FieldSyntax.Decimal); // the inbound SA a packet was decrypted by, 0: none
    public static readonly FieldDef RecircId  = new("recirc_id",   FlowKey.CtWord, 24,   8, None,     false, FieldSyntax.Decimal) { Exact = true };

    // The connection's words (filled after ct(table=N)): the label, and the tuple of its original direction.
    public static readonly FieldDef CtLabel   = new("ct_label",    FlowKey.CtExtWord,      0, 128, None,                 false, FieldSyntax.Hex);
    public static readonly FieldDef CtNwSrc   = new("ct_nw_src",   FlowKey.CtExtWord + 2,  0,  32, Prerequisite.CtIp,    false, FieldSyntax.Ipv4);
    public static readonly FieldDef CtNwDst   = new("ct_nw_dst",   FlowKey.CtExtWord + 2, 32,  32, Prerequisite.CtIp,    false, FieldSyntax.Ipv4);
    public static readonly FieldDef CtIpv6Src = new("ct_ipv6_src", FlowKey.CtExtWord + 3,  0, 128, Prerequisite.CtIpv6,  false, FieldSyntax.Ipv6);
    public static readonly FieldDef CtIpv6Dst = new("ct_ipv6_dst", FlowKey.CtExtWord + 5,  0, 128, Prerequisite.CtIpv6,  false, FieldSyntax.Ipv6);
    public static readonly FieldDef CtTpSrc   = new("ct_tp_src",   FlowKey.CtL4Word,       0,  16, Prerequisite.CtL4,    false, FieldSyntax.Decimal);
    public static readonly FieldDef CtTpDst   = new("ct_tp_dst",   FlowKey.CtL4Word,      16,  16, Prerequisite.CtL4,    false, FieldSyntax.Decimal);
    public static readonly FieldDef CtNwProto = new("ct_nw_proto", FlowKey.CtL4Word,      32,   8, Prerequisite.Ct,      false, FieldSyntax.Decimal) { Exact = true };

    /// <summary>The fields of the connection's words (DpKey.cs: filled only when a rule matches one of them).</summary>
    public static readonly IReadOnlyList<FieldDef> CtTupleFields = [CtLabel, CtNwSrc, CtNwDst, CtIpv6Src, CtIpv6Dst, CtNwProto, CtTpSrc, CtTpDst];

    /// <summary>reg0 to reg15 (NXM_NX_REG0 ...): reg(2n) the high half of xreg n's word, as Open vSwitch.</summary>
    public static readonly IReadOnlyList<FieldDef> Registers = [.. Enumerable.Range(0, FlowKey.Registers).Select(n =>
        new FieldDef($"reg{n}", FlowKey.RegWord(n), (n & 1) == 0 ? 32 : 0, 32, None, true, FieldSyntax.Hex) { PipelineOnly = true })];

    /// <summary>xreg0 to xreg7 (OXM_OF_PKT_REG0 ...): a 64-bit register, reg(2n):reg(2n+1).</summary>
    public static readonly IReadOnlyList<FieldDef> Xregs = [.. Enumerable.Range(0, FlowKey.Registers / 2).Select(n =>
        new FieldDef($"xreg{n}", FlowKey.RegWord(2 * n), 0, 64, None, true, FieldSyntax.Hex) { PipelineOnly = true })];

    /// <summary>xxreg0 to xxreg3 (NXM_NX_XXREG0 ...): a 128-bit register, xreg(2n):xreg(2n+1).</summary>
    public static readonly IReadOnlyList<FieldDef> Xxregs = [.. Enumerable.Range(0, FlowKey.Registers / 4).Select(n =>
        new FieldDef($"xxreg{n}", FlowKey.RegWord(4 * n), 0, 128, None, true, FieldSyntax.Hex) { PipelineOnly = true })];

    public static FieldDef Reg0 => Registers[0];
    public static FieldDef Reg1 => Registers[1];
    public static FieldDef Xreg0 => Xregs[0];

    public static readonly IReadOnlyList<FieldDef> All =
    [
        InPort, DlType, VlanTci, DlVlan, DlVlanPcp, Vlan2Tci, DlDst, NwProto, ArpOp, NwTos, IpDscp, NwEcn, DlSrc, NwTtl, NwFrag,
        TpSrc, TpDst, IcmpType, IcmpCode, TcpFlags, NwSrc, NwDst, ArpSpa, ArpTpa, ArpSha, ArpTha, Ipv6Src, Ipv6Dst, Metadata,
        .. Registers, .. Xregs, .. Xxregs, CtState, CtZone, CtMark, RecircId, .. CtTupleFields, IpsecSa,
    ];

    /// <summary>The pipeline's fields in ovs-ofctl's dump order (before the protocol); xregs and xxregs are dumped as their regs.</summary>
    public static readonly IReadOnlyList<FieldDef> PipelineFields = [RecircId, Metadata, .. Registers, CtState, CtZone, CtMark, CtLabel,
        CtNwSrc, CtNwDst, CtIpv6Src, CtIpv6Dst, CtNwProto, CtTpSrc, CtTpDst, IpsecSa];

    /// <summary>
    /// Open vSwitch's NXM/OXM names of the fields this switch has, as load and move take them
    /// ("NXM_OF_IP_SRC[]", "NXM_NX_REG2[0..7]"); ovs-ofctl takes them nowhere else. Only fields whose
    /// NXM/OXM meaning is this switch's field exactly are here (not NXM_OF_VLAN_TCI's CFI-less forms,
    /// not OXM_OF_VLAN_VID's 13 bits).
    /// </summary>
    private static readonly Dictionary<string, FieldDef> s_nxm = WithRegisters(new(StringComparer.Ordinal)
    {
        ["NXM_OF_IN_PORT"] = InPort,
        ["NXM_OF_ETH_DST"] = DlDst, ["OXM_OF_ETH_DST"] = DlDst,
        ["NXM_OF_ETH_SRC"] = DlSrc, ["OXM_OF_ETH_SRC"] = DlSrc,
        ["NXM_OF_ETH_TYPE"] = DlType, ["OXM_OF_ETH_TYPE"] = DlType,
        ["NXM_OF_VLAN_TCI"] = VlanTci,
        ["OXM_OF_VLAN_PCP"] = DlVlanPcp,
        ["NXM_OF_IP_TOS"] = NwTos,
        ["NXM_OF_IP_PROTO"] = NwProto, ["OXM_OF_IP_PROTO"] = NwProto,
        ["NXM_NX_IP_TTL"] = NwTtl,
        ["OXM_OF_IP_DSCP"] = IpDscp,
        ["NXM_NX_IP_ECN"] = NwEcn, ["OXM_OF_IP_ECN"] = NwEcn,
        ["NXM_OF_IP_SRC"] = NwSrc, ["OXM_OF_IPV4_SRC"] = NwSrc,
        ["NXM_OF_IP_DST"] = NwDst, ["OXM_OF_IPV4_DST"] = NwDst,
        ["NXM_NX_IPV6_SRC"] = Ipv6Src, ["OXM_OF_IPV6_SRC"] = Ipv6Src,
        ["NXM_NX_IPV6_DST"] = Ipv6Dst, ["OXM_OF_IPV6_DST"] = Ipv6Dst,
        ["NXM_OF_TCP_SRC"] = TpSrc, ["OXM_OF_TCP_SRC"] = TpSrc,
        ["NXM_OF_TCP_DST"] = TpDst, ["OXM_OF_TCP_DST"] = TpDst,
        ["NXM_OF_UDP_SRC"] = TpSrc, ["OXM_OF_UDP_SRC"] = TpSrc,
        ["NXM_OF_UDP_DST"] = TpDst, ["OXM_OF_UDP_DST"] = TpDst,
        ["OXM_OF_SCTP_SRC"] = TpSrc,
        ["OXM_OF_SCTP_DST"] = TpDst,
        ["NXM_OF_ARP_OP"] = ArpOp, ["OXM_OF_ARP_OP"] = ArpOp,
        ["NXM_OF_ARP_SPA"] = ArpSpa, ["OXM_OF_ARP_SPA"] = ArpSpa,
        ["NXM_OF_ARP_TPA"] = ArpTpa, ["OXM_OF_ARP_TPA"] = ArpTpa,
        ["NXM_NX_ARP_SHA"] = ArpSha, ["OXM_OF_ARP_SHA"] = ArpSha,
        ["NXM_NX_ARP_THA"] = ArpTha, ["OXM_OF_ARP_THA"] = ArpTha,
        ["NXM_NX_TCP_FLAGS"] = TcpFlags, ["OXM_OF_TCP_FLAGS"] = TcpFlags,
        ["OXM_OF_METADATA"] = Metadata,
        ["NXM_NX_CT_STATE"] = CtState, ["NXM_NX_CT_ZONE"] = CtZone, ["NXM_NX_CT_MARK"] = CtMark, ["NXM_NX_CT_LABEL"] = CtLabel,
        ["NXM_NX_CT_NW_SRC"] = CtNwSrc, ["NXM_NX_CT_NW_DST"] = CtNwDst, ["NXM_NX_CT_IPV6_SRC"] = CtIpv6Src, ["NXM_NX_CT_IPV6_DST"] = CtIpv6Dst,
        ["NXM_NX_CT_NW_PROTO"] = CtNwProto, ["NXM_NX_CT_TP_SRC"] = CtTpSrc, ["NXM_NX_CT_TP_DST"] = CtTpDst,
    });

    /// <summary>Adds the registers' NXM/OXM names: NXM_NX_REGn, OXM_OF_PKT_REGn (xregs), NXM_NX_XXREGn.</summary>
    private static Dictionary<string, FieldDef> WithRegisters(Dictionary<string, FieldDef> d)
    {
        foreach (var (names, prefix, skip) in new[] { (Registers, "NXM_NX_REG", 3), (Xregs, "OXM_OF_PKT_REG", 4), (Xxregs, "NXM_NX_XXREG", 5) })
        {
            foreach (var r in names)
            {
                d.Add(prefix + r.Name[skip..], r);
            }
        }

        return d;
    }

    /// <summary>The field an NXM/OXM name (load, move) stands for, or null.</summary>
    public static FieldDef? FindNxm(ReadOnlySpan<char> name) =>
        s_nxm.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(name, out var f) ? f : null;

    private static readonly Dictionary<string, FieldDef> s_byName = Build();

    private static Dictionary<string, FieldDef> Build()
    {
        var d = All.ToDictionary(f => f.Name, StringComparer.Ordinal);
        foreach (var f in All)
        {
            foreach (var alias in f.Aliases)
            {
                d.Add(alias, f);
            }
        }

        return d;
    }

    /// <summary>The field with this name or synonym, or null.</summary>
    public static FieldDef? Find(string name) => s_byName.GetValueOrDefault(name);

    /// <summary>Every name and synonym.</summary>
    public static IEnumerable<string> Names => s_byName.Keys;
}

/// <summary>Whether a match satisfies a field's prerequisite, and how to name one in a message.</summary>
internal static class Prerequisites
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool Satisfied(Prerequisite p, in FlowMatch m)
    {
        int dlType = m.GetMask(Fields.DlType) == 0xFFFF ? (int)m.GetValue(Fields.DlType) : -1;
        int proto = m.GetMask(Fields.NwProto) == 0xFF ? (int)m.GetValue(Fields.NwProto) : -1;
        bool v4 = dlType == KeyExtractor.EthIp;
        bool v6 = dlType == KeyExtractor.EthIpv6;
        return p switch
        {
            Prerequisite.None => true,
            Prerequisite.Ip => v4,
            Prerequisite.Ipv6 => v6,
            Prerequisite.IpAny => v4 || v6,
            Prerequisite.Arp => dlType == KeyExtractor.EthArp,
            Prerequisite.Tcp => (v4 || v6) && proto == KeyExtractor.ProtoTcp,
            Prerequisite.Udp => (v4 || v6) && proto == KeyExtractor.ProtoUdp,
            Prerequisite.TcpUdp => (v4 || v6) && proto is KeyExtractor.ProtoTcp or KeyExtractor.ProtoUdp,
            Prerequisite.TcpUdpSctp => (v4 || v6) && proto is KeyExtractor.ProtoTcp or KeyExtractor.ProtoUdp or KeyExtractor.ProtoSctp,
            Prerequisite.Sctp => (v4 || v6) && proto == KeyExtractor.ProtoSctp,
            Prerequisite.Icmp => (v4 && proto == KeyExtractor.ProtoIcmp) || (v6 && proto == KeyExtractor.ProtoIcmpv6),
            Prerequisite.Vlan => (m.GetMask(Fields.VlanTci) & m.GetValue(Fields.VlanTci) & KeyExtractor.VlanPresent) != 0,
            Prerequisite.Ct => CtValid(m),
            Prerequisite.CtIp => v4 && CtValid(m),
            Prerequisite.CtIpv6 => v6 && CtValid(m),
            Prerequisite.CtL4 => CtValid(m) && m.GetMask(Fields.CtNwProto) == 0xFF,
            _ => false,
        };
    }

    /// <summary>
    /// Open vSwitch's test for the ct tuple fields: the match requires a state that implies a
    /// connection (+new, +est, +rel, +rpl, +snat or +dnat), or +trk with -inv.
    /// </summary>
    private static bool CtValid(in FlowMatch m)
    {
        ulong v = m.GetValue(Fields.CtState), mask = m.GetMask(Fields.CtState);
        const ulong implies = Conntrack.CtState.New | Conntrack.CtState.Est | Conntrack.CtState.Rel | Conntrack.CtState.Rpl | Conntrack.CtState.Snat | Conntrack.CtState.Dnat;
        return (v & mask & implies) != 0
            || ((v & mask & Conntrack.CtState.Trk) != 0 && (mask & Conntrack.CtState.Inv) != 0 && (v & Conntrack.CtState.Inv) == 0);
    }

    public static string Describe(Prerequisite p) => p switch
    {
        Prerequisite.Ip => "'ip' (dl_type=0x0800)",
        Prerequisite.Ipv6 => "'ipv6' (dl_type=0x86dd)",
        Prerequisite.IpAny => "'ip' or 'ipv6' (dl_type=0x0800 or 0x86dd)",
        Prerequisite.Arp => "'arp' (dl_type=0x0806)",
        Prerequisite.Tcp => "'tcp' or 'tcp6' (nw_proto=6 with ip or ipv6)",
        Prerequisite.Udp => "'udp' or 'udp6' (nw_proto=17 with ip or ipv6)",
        Prerequisite.TcpUdp => "'tcp', 'udp', 'tcp6' or 'udp6' (nw_proto=6 or 17 with ip or ipv6)",
        Prerequisite.TcpUdpSctp => "'tcp', 'udp', 'sctp', 'tcp6', 'udp6' or 'sctp6' (nw_proto=6, 17 or 132 with ip or ipv6)",
        Prerequisite.Sctp => "'sctp' or 'sctp6' (nw_proto=132 with ip or ipv6)",
        Prerequisite.Icmp => "'icmp' or 'icmp6' (nw_proto=1 with ip, or 58 with ipv6)",
        Prerequisite.Vlan => "a VLAN tag (dl_vlan=N, or push_vlan / mod_vlan_vid earlier in the actions)",
        Prerequisite.Ct => "a ct_state that implies a connection (+new, +est, +rel, +rpl, +snat, +dnat, or +trk-inv)",
        Prerequisite.CtIp => "'ip' (dl_type=0x0800) and a ct_state that implies a connection (+new, +est, +rel, +rpl, +snat, +dnat, or +trk-inv)",
        Prerequisite.CtIpv6 => "'ipv6' (dl_type=0x86dd) and a ct_state that implies a connection (+new, +est, +rel, +rpl, +snat, +dnat, or +trk-inv)",
        Prerequisite.CtL4 => "ct_nw_proto=N and a ct_state that implies a connection (+new, +est, +rel, +rpl, +snat, +dnat, or +trk-inv)",
        _ => "nothing",
    };
}
