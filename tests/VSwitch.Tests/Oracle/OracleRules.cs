// OracleRules.cs - the flow oracle's own rule objects, and their rendering to the switch's text syntax.
//
// The oracle never reads rules back through the switch's parser: the same structured objects are
// rendered to text (what the switch loads) and interpreted directly by ReferenceSwitch. Nothing here
// uses VSwitch.Pipeline, VSwitch.Packets or VSwitch.Actions.
using System.Globalization;
using System.Net;
using System.Text;

namespace VSwitch.Tests.Oracle;

/// <summary>A value and mask of up to 128 bits (a field's mask is all ones when exact).</summary>
internal readonly record struct Masked(UInt128 Value, UInt128 Mask)
{
    public bool Matches(UInt128 field) => (field & Mask) == (Value & Mask);
}

/// <summary>What a rule matches; null fields are wildcards.</summary>
internal sealed class OracleMatch
{
    public int? InPort { get; set; }

    public Masked? DlSrc { get; set; }

    public Masked? DlDst { get; set; }

    /// <summary>dl_vlan: a VID, or 0xffff for "no tag".</summary>
    public int? DlVlan { get; set; }

    public int? VlanPcp { get; set; }

    /// <summary>Raw vlan_tci (0x1000 = tag present); never together with DlVlan/VlanPcp.</summary>
    public Masked? VlanTci { get; set; }

    public int? DlType { get; set; }

    public int? NwProto { get; set; }

    public Masked? NwSrc { get; set; }

    public Masked? NwDst { get; set; }

    public Masked? Ipv6Src { get; set; }

    public Masked? Ipv6Dst { get; set; }

    public int? NwTtl { get; set; }

    public Masked? TpSrc { get; set; }

    public Masked? TpDst { get; set; }

    public bool IsIpv4 => DlType == 0x0800;

    public bool IsIpv6 => DlType == 0x86DD;

    public bool HasPorts => (IsIpv4 || IsIpv6) && NwProto is 6 or 17;

    /// <summary>Whether the match pins a VLAN tag down (so set_field on vlan_vid is allowed).</summary>
    public bool RequiresTag => DlVlan is >= 0 and < 0x1000 || VlanPcp != null;
}

internal enum SetTarget
{
    DlSrc,
    DlDst,
    NwSrc,
    NwDst,
    Ipv6Src,
    Ipv6Dst,
    TpSrc,
    TpDst,
    VlanVid,
    VlanPcp,
    NwTtl,
    IpDscp,
    NwEcn,
}

internal abstract record OracleAction;

/// <summary>output:Port, or output(port=Port,max_len=MaxLen) when MaxLen is not 0 (the frame cut to MaxLen bytes).</summary>
internal sealed record OutputAction(int Port, long MaxLen = 0) : OracleAction;

internal sealed record InPortAction : OracleAction;

internal sealed record FloodAction : OracleAction;

internal sealed record NormalAction : OracleAction;

internal sealed record DropAction : OracleAction;

internal sealed record PushVlanAction(int Tpid) : OracleAction;

internal sealed record PopVlanAction : OracleAction;

/// <summary>mod_vlan_vid / mod_vlan_pcp (push a tag when there is none).</summary>
internal sealed record ModVlanAction(bool Pcp, int Value) : OracleAction;

internal sealed record DecTtlAction : OracleAction;

internal sealed record SetFieldAction(SetTarget Target, UInt128 Value) : OracleAction;

/// <summary>resubmit(PORT,TABLE); Port null = the current in_port.</summary>
internal sealed record ResubmitAction(int? Port, int Table) : OracleAction;

internal sealed record GotoTableAction(int Table) : OracleAction;

internal sealed record OracleRule(int Table, int Priority, OracleMatch Match, IReadOnlyList<OracleAction> Actions)
{
    /// <summary>Spelling variants (aliases, shorthands) are picked by <paramref name="style"/> bits, so the text varies but means the same.</summary>
    public string Render(int style)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"table={Table},priority={Priority}");
        var m = Match;
        bool shorthand = (style & 1) != 0;
        string? proto = (m.DlType, m.NwProto) switch
        {
            (0x0800, 6) => "tcp",
            (0x0800, 17) => "udp",
            (0x0800, 1) => "icmp",
            (0x86DD, 6) => "tcp6",
            (0x86DD, 17) => "udp6",
            (0x86DD, 58) => "icmp6",
            _ => null,
        };
        if (shorthand && proto != null)
        {
            sb.Append(',').Append(proto);
        }
        else if (shorthand && m.DlType == 0x0800 && m.NwProto == null)
        {
            sb.Append(",ip");
        }
        else if (shorthand && m.DlType == 0x86DD && m.NwProto == null)
        {
            sb.Append(",ipv6");
        }
        else
        {
            if (m.DlType != null)
            {
                sb.Append(CultureInfo.InvariantCulture, $",dl_type=0x{m.DlType:x4}");
            }

            if (m.NwProto != null)
            {
                sb.Append(CultureInfo.InvariantCulture, $",nw_proto={m.NwProto}");
            }
        }

        if (m.InPort != null)
        {
            sb.Append(CultureInfo.InvariantCulture, $",in_port={m.InPort}");
        }

        if (m.DlVlan != null)
        {
            sb.Append(m.DlVlan == 0xFFFF ? ",dl_vlan=0xffff" : string.Create(CultureInfo.InvariantCulture, $",dl_vlan={m.DlVlan}"));
        }

        if (m.VlanPcp != null)
        {
            sb.Append(CultureInfo.InvariantCulture, $",dl_vlan_pcp={m.VlanPcp}");
        }

        if (m.VlanTci is { } tci)
        {
            sb.Append(CultureInfo.InvariantCulture, $",vlan_tci=0x{(ushort)tci.Value:x4}/0x{(ushort)tci.Mask:x4}");
        }

        AppendMac(sb, (style & 2) != 0 ? "eth_src" : "dl_src", m.DlSrc);
        AppendMac(sb, (style & 2) != 0 ? "eth_dst" : "dl_dst", m.DlDst);
        AppendV4(sb, "nw_src", m.NwSrc);
        AppendV4(sb, (style & 4) != 0 ? "ip_dst" : "nw_dst", m.NwDst);
        AppendV6(sb, "ipv6_src", m.Ipv6Src);
        AppendV6(sb, "ipv6_dst", m.Ipv6Dst);
        if (m.NwTtl != null)
        {
            sb.Append(CultureInfo.InvariantCulture, $",nw_ttl={m.NwTtl}");
        }

        AppendPort(sb, "tp_src", m.TpSrc);
        AppendPort(sb, (style & 4) != 0 && m.NwProto == 6 ? "tcp_dst" : "tp_dst", m.TpDst);
        sb.Append(",actions=");
        sb.AppendJoin(',', Actions.Select(a => RenderAction(a, style)));
        return sb.ToString();
    }

    public static string Mac(UInt128 v)
    {
        var b = new byte[6];
        for (int i = 0; i < 6; i++)
        {
            b[i] = (byte)(v >> (40 - (8 * i)));
        }

        return string.Join(':', b.Select(x => x.ToString("x2", CultureInfo.InvariantCulture)));
    }

    public static string V4(UInt128 v) => new IPAddress(new[] { (byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v }).ToString();

    public static string V6(UInt128 v)
    {
        var b = new byte[16];
        for (int i = 0; i < 16; i++)
        {
            b[i] = (byte)(v >> (120 - (8 * i)));
        }

        return new IPAddress(b).ToString();
    }

    private static void AppendMac(StringBuilder sb, string name, Masked? f)
    {
        if (f is { } x)
        {
            sb.Append(',').Append(name).Append('=').Append(Mac(x.Value));
            if (x.Mask != 0xFFFF_FFFF_FFFFUL)
            {
                sb.Append('/').Append(Mac(x.Mask));
            }
        }
    }

    private static void AppendV4(StringBuilder sb, string name, Masked? f)
    {
        if (f is { } x)
        {
            sb.Append(',').Append(name).Append('=').Append(V4(x.Value));
            int len = PrefixLength(x.Mask, 32);
            if (len < 32)
            {
                sb.Append('/').Append(len >= 0 ? len.ToString(CultureInfo.InvariantCulture) : V4(x.Mask));
            }
        }
    }

    private static void AppendV6(StringBuilder sb, string name, Masked? f)
    {
        if (f is { } x)
        {
            sb.Append(',').Append(name).Append('=').Append(V6(x.Value));
            int len = PrefixLength(x.Mask, 128);
            if (len < 128)
            {
                sb.Append('/').Append(len >= 0 ? len.ToString(CultureInfo.InvariantCulture) : V6(x.Mask));
            }
        }
    }

    private static void AppendPort(StringBuilder sb, string name, Masked? f)
    {
        if (f is { } x)
        {
            sb.Append(',').Append(name).Append('=');
            sb.Append(x.Mask == 0xFFFF
                ? ((ushort)x.Value).ToString(CultureInfo.InvariantCulture)
                : string.Create(CultureInfo.InvariantCulture, $"0x{(ushort)x.Value:x}/0x{(ushort)x.Mask:x}"));
        }
    }

    /// <summary>The prefix length of a contiguous mask of <paramref name="bits"/> bits, or -1.</summary>
    private static int PrefixLength(UInt128 mask, int bits)
    {
        for (int len = 0; len <= bits; len++)
        {
            UInt128 full = bits == 128 ? UInt128.MaxValue : ((UInt128)1 << bits) - 1;
            UInt128 p = len == 0 ? 0 : (full << (bits - len)) & full;
            if (p == mask)
            {
                return len;
            }
        }

        return -1;
    }

    private static string RenderAction(OracleAction a, int style) => a switch
    {
        OutputAction { MaxLen: > 0 } o => $"output(port={o.Port},max_len={o.MaxLen})",
        OutputAction o => (style & 8) != 0 ? o.Port.ToString(CultureInfo.InvariantCulture) : $"output:{o.Port}",
        InPortAction => "in_port",
        FloodAction => "flood",
        NormalAction => (style & 16) != 0 ? "NORMAL" : "normal",
        DropAction => "drop",
        PushVlanAction p => $"push_vlan:0x{p.Tpid:x4}",
        PopVlanAction => (style & 16) != 0 ? "strip_vlan" : "pop_vlan",
        ModVlanAction v => v.Pcp ? $"mod_vlan_pcp:{v.Value}" : $"mod_vlan_vid:{v.Value}",
        DecTtlAction => "dec_ttl",
        SetFieldAction s => RenderSet(s, style),
        ResubmitAction r => r.Port is { } p ? $"resubmit({p},{r.Table})" : $"resubmit(,{r.Table})",
        GotoTableAction g => $"goto_table:{g.Table}",
        _ => throw new ArgumentOutOfRangeException(nameof(a)),
    };

    private static string RenderSet(SetFieldAction s, int style)
    {
        bool mod = (style & 8) != 0;
        string v = s.Target switch
        {
            SetTarget.DlSrc or SetTarget.DlDst => Mac(s.Value),
            SetTarget.NwSrc or SetTarget.NwDst => V4(s.Value),
            SetTarget.Ipv6Src or SetTarget.Ipv6Dst => V6(s.Value),
            _ => ((int)s.Value).ToString(CultureInfo.InvariantCulture),
        };
        return s.Target switch
        {
            SetTarget.DlSrc => mod ? $"mod_dl_src:{v}" : $"set_field:{v}->eth_src",
            SetTarget.DlDst => mod ? $"mod_dl_dst:{v}" : $"set_field:{v}->dl_dst",
            SetTarget.NwSrc => mod ? $"mod_nw_src:{v}" : $"set_field:{v}->nw_src",
            SetTarget.NwDst => mod ? $"mod_nw_dst:{v}" : $"set_field:{v}->ip_dst",
            SetTarget.Ipv6Src => $"set_field:{v}->ipv6_src",
            SetTarget.Ipv6Dst => $"set_field:{v}->ipv6_dst",
            SetTarget.TpSrc => mod ? $"mod_tp_src:{v}" : $"set_field:{v}->tp_src",
            SetTarget.TpDst => mod ? $"mod_tp_dst:{v}" : $"set_field:{v}->tp_dst",
            SetTarget.VlanVid => $"set_field:{v}->vlan_vid",
            SetTarget.VlanPcp => $"set_field:{v}->vlan_pcp",
            SetTarget.NwTtl => mod ? $"mod_nw_ttl:{v}" : $"set_field:{v}->nw_ttl",
            SetTarget.IpDscp => mod ? $"mod_nw_tos:{(int)s.Value * 4}" : $"set_field:{v}->ip_dscp",
            SetTarget.NwEcn => mod ? $"mod_nw_ecn:{v}" : $"set_field:{v}->ip_ecn",
            _ => throw new ArgumentOutOfRangeException(nameof(s)),
        };
    }
}
