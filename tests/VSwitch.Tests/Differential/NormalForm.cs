// NormalForm.cs - the common form both switches' datapath actions are compared in.
//
// This switch's verdict is a list of DpActions; Open vSwitch's is the "Datapath actions:" line of
// ofproto/trace (odp actions: set(eth(...)), push_vlan(...), pop_vlan, set(ipv4(...)), numeric odp
// ports, userspace(controller(...))). Neither is compared as text: both are run over the same
// abstract header state, taken from the frame as it came, and every output is recorded with the
// state it leaves with: Ethernet addresses, the VLAN tags (TPID, VID, PCP; the DEI bit is not
// compared), IPv4/IPv6 addresses, TTL / hop limit, ToS / traffic class, TCP/UDP/SCTP ports, and the
// length an output truncates the frame to (`len=N`, only when output(port,max_len) cuts it; the frame
// length follows tag pushes and pops). So a rewrite
// spelt differently (set_field vid on a tag vs pop+push; one set(ipv4) for two rewrites) compares
// equal, and a rewrite that changes nothing is invisible on both sides, as on the wire.
//
// Outputs in a row that leave with the same state form one group compared as a multiset of ports
// (a flood's order is the switch's business); groups, and controller punts, compare in order.
using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Text;
using VSwitch.Actions;

namespace VSwitch.Tests.Differential;

/// <summary>One VLAN tag: TPID, VID, PCP.</summary>
internal readonly record struct Tag(int Tpid, int Vid, int Pcp)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{(Tpid == 0x8100 ? "" : $"tpid=0x{Tpid:x4},")}vid={Vid},pcp={Pcp}");
}

/// <summary>The header fields a rewrite can change, as the packet would carry them.</summary>
internal sealed class HeaderState
{
    public ulong EthSrc;
    public ulong EthDst;

    /// <summary>Outermost first.</summary>
    public List<Tag> Tags = [];

    public int EthType;
    public bool Ipv4;
    public bool Ipv6;
    public UInt128 Src;
    public UInt128 Dst;
    public int Ttl;
    public int Tos;

    /// <summary>Whether a TCP, UDP or SCTP header follows (not a later fragment).</summary>
    public bool HasPorts;
    public int TpSrc;
    public int TpDst;

    /// <summary>The most tags the state ever had (a third tag is an excluded class).</summary>
    public int MaxTags;

    /// <summary>The frame's length in bytes (tags pushed and popped counted).</summary>
    public int Length;

    public HeaderState Clone() => new()
    {
        EthSrc = EthSrc, EthDst = EthDst, Tags = [.. Tags], EthType = EthType, Ipv4 = Ipv4, Ipv6 = Ipv6, Src = Src, Dst = Dst,
        Ttl = Ttl, Tos = Tos, HasPorts = HasPorts, TpSrc = TpSrc, TpDst = TpDst, MaxTags = MaxTags, Length = Length,
    };

    /// <summary>The frame's headers (its own small parser: up to 3 tags, IPv4 options, IPv6 hop-by-hop / routing / destination options).</summary>
    public static HeaderState Of(byte[] f)
    {
        var s = new HeaderState { EthDst = Read48(f, 0), EthSrc = Read48(f, 6), Length = f.Length };
        int off = 12;
        int type = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off));
        while (type is 0x8100 or 0x88A8)
        {
            int tci = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off + 2));
            s.Tags.Add(new Tag(type, tci & 0xFFF, tci >> 13));
            off += 4;
            type = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off));
        }

        s.MaxTags = s.Tags.Count;
        s.EthType = type;
        off += 2;
        int proto = -1, l4 = -1;
        if (type == 0x0800)
        {
            s.Ipv4 = true;
            s.Tos = f[off + 1];
            s.Ttl = f[off + 8];
            proto = f[off + 9];
            s.Src = BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(off + 12));
            s.Dst = BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(off + 16));
            l4 = (BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off + 6)) & 0x1FFF) != 0 ? -1 : off + ((f[off] & 0xF) * 4);
        }
        else if (type == 0x86DD)
        {
            s.Ipv6 = true;
            s.Tos = (BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off)) >> 4) & 0xFF;
            s.Ttl = f[off + 7];
            proto = f[off + 6];
            s.Src = BinaryPrimitives.ReadUInt128BigEndian(f.AsSpan(off + 8));
            s.Dst = BinaryPrimitives.ReadUInt128BigEndian(f.AsSpan(off + 24));
            l4 = off + 40;
            while (proto is 0 or 43 or 60)
            {
                proto = f[l4];
                l4 += (f[l4 + 1] + 1) * 8;
            }
        }

        if (l4 >= 0 && proto is 6 or 17 or 132 && l4 + 4 <= f.Length)
        {
            s.HasPorts = true;
            s.TpSrc = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(l4));
            s.TpDst = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(l4 + 2));
        }

        return s;
    }

    private static ulong Read48(byte[] f, int at) => ((ulong)BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(at)) << 32) | BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(at + 2));

    public void Push(Tag t)
    {
        Tags.Insert(0, t);
        MaxTags = Math.Max(MaxTags, Tags.Count);
        Length += 4;
    }

    public void Pop()
    {
        if (Tags.Count > 0)
        {
            Tags.RemoveAt(0);
            Length -= 4;
        }
    }

    /// <summary>The state an output sends, cut to <paramref name="maxLen"/> bytes when that is shorter than the frame (0: no cut).</summary>
    public string Sent(long maxLen) => maxLen > 0 && maxLen < Length ? string.Create(CultureInfo.InvariantCulture, $"{this},len={maxLen}") : ToString();

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"eth({Mac(EthSrc)}>{Mac(EthDst)})");
        foreach (var t in Tags)
        {
            sb.Append(CultureInfo.InvariantCulture, $",vlan({t})");
        }

        if (Ipv4)
        {
            sb.Append(CultureInfo.InvariantCulture, $",ipv4({V4(Src)}>{V4(Dst)},ttl={Ttl},tos=0x{Tos:x2})");
        }
        else if (Ipv6)
        {
            sb.Append(CultureInfo.InvariantCulture, $",ipv6({V6(Src)}>{V6(Dst)},hlimit={Ttl},tclass=0x{Tos:x2})");
        }

        if (HasPorts)
        {
            sb.Append(CultureInfo.InvariantCulture, $",tp({TpSrc}>{TpDst})");
        }

        return sb.ToString();
    }

    public static string Mac(ulong m) => string.Join(':', Enumerable.Range(0, 6).Select(i => ((byte)(m >> (40 - (8 * i)))).ToString("x2", CultureInfo.InvariantCulture)));

    private static string V4(UInt128 a) => new IPAddress(new[] { (byte)(a >> 24), (byte)(a >> 16), (byte)(a >> 8), (byte)a }).ToString();

    private static string V6(UInt128 a)
    {
        var b = new byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(b, a);
        return new IPAddress(b).ToString();
    }
}

/// <summary>What leaves: an output to an OpenFlow port, or a punt to the controller; with the state it leaves with.</summary>
internal readonly record struct DpEvent(int Port, bool Controller, string State);

/// <summary>A verdict in the common form: groups of outputs in order, each a sorted multiset of ports and one state.</summary>
internal sealed class NormalVerdict
{
    public List<DpEvent> Events { get; } = [];

    /// <summary>The most VLAN tags the packet had at any point.</summary>
    public int MaxTags { get; set; }

    /// <summary>Why the actions could not be read (an odp action this form does not know), or null.</summary>
    public string? Unreadable { get; set; }

    public List<string> Groups()
    {
        var groups = new List<string>();
        int i = 0;
        while (i < Events.Count)
        {
            var e = Events[i];
            if (e.Controller)
            {
                groups.Add($"controller [{e.State}]");
                i++;
                continue;
            }

            var ports = new List<int>();
            int j = i;
            while (j < Events.Count && !Events[j].Controller && Events[j].State == e.State)
            {
                ports.Add(Events[j].Port);
                j++;
            }

            ports.Sort();
            groups.Add($"output {string.Join(",", ports)} [{e.State}]");
            i = j;
        }

        return groups;
    }

    public override string ToString() => Unreadable != null ? $"unreadable: {Unreadable}" : Events.Count == 0 ? "drop" : string.Join("; ", Groups());
}

/// <summary>Runs each side's datapath actions over a <see cref="HeaderState"/>.</summary>
internal static class NormalForm
{
    /// <summary>This switch's compiled actions (slot s is OpenFlow port s + 1).</summary>
    public static NormalVerdict OfSwitch(HeaderState start, ReadOnlySpan<DpAction> ops)
    {
        var v = new NormalVerdict();
        var s = start.Clone();
        for (int i = 0; i < ops.Length; i++)
        {
            var op = ops[i];
            switch (op.Op)
            {
                case DpOp.Output:
                    v.Events.Add(new DpEvent(op.A + 1, false, s.Sent(op.B)));
                    break;
                case DpOp.Controller:
                    v.Events.Add(new DpEvent(0, true, s.ToString()));
                    break;
                case DpOp.SetEthDst:
                    s.EthDst = op.C;
                    break;
                case DpOp.SetEthSrc:
                    s.EthSrc = op.C;
                    break;
                case DpOp.PushVlan:
                    s.Push(new Tag(op.A, (int)(op.B & 0xFFF), (int)(op.B >> 13) & 7));
                    break;
                case DpOp.PopVlan:
                    s.Pop();
                    break;
                case DpOp.SetVlanTci:
                    if (s.Tags.Count > 0)
                    {
                        var t = s.Tags[0];
                        uint tci = (uint)((t.Pcp << 13) | t.Vid);
                        tci = (tci & ~op.B & 0xEFFFu) | (op.A & 0xEFFFu);
                        s.Tags[0] = t with { Vid = (int)(tci & 0xFFF), Pcp = (int)(tci >> 13) };
                    }

                    break;
                case DpOp.SetIpv4Src when s.Ipv4:
                    s.Src = op.B;
                    break;
                case DpOp.SetIpv4Dst when s.Ipv4:
                    s.Dst = op.B;
                    break;
                case DpOp.SetIpv6Src or DpOp.SetIpv6Dst:
                    if (s.Ipv6)
                    {
                        UInt128 a = ((UInt128)op.C << 64) | ops[i + 1].C;
                        if (op.Op == DpOp.SetIpv6Src)
                        {
                            s.Src = a;
                        }
                        else
                        {
                            s.Dst = a;
                        }
                    }

                    i++; // the Ext slot
                    break;
                case DpOp.SetTpSrc when s.HasPorts:
                    s.TpSrc = op.A;
                    break;
                case DpOp.SetTpDst when s.HasPorts:
                    s.TpDst = op.A;
                    break;
                case DpOp.DecTtl when s.Ipv4 || s.Ipv6:
                    s.Ttl = Math.Max(0, s.Ttl - 1);
                    break;
                case DpOp.SetTtl when s.Ipv4 || s.Ipv6:
                    s.Ttl = op.A;
                    break;
                case DpOp.SetTos when s.Ipv4 || s.Ipv6:
                    s.Tos = (int)((s.Tos & ~op.B) | (op.A & op.B)) & 0xFF;
                    break;
                case DpOp.MissNote:
                case DpOp.Ext:
                    break;
                case DpOp.Recirc:
                    v.Unreadable = "recirc";
                    break;
                default:
                    break; // a rewrite of a header the packet does not have: nothing on the wire
            }
        }

        v.MaxTags = s.MaxTags;
        return v;
    }

    /// <summary>
    /// Open vSwitch's "Datapath actions:" text. <paramref name="ofPortOfOdp"/> maps datapath port
    /// numbers to OpenFlow ones; outputs to <paramref name="localOdp"/> (the bridge's LOCAL port,
    /// which this switch does not have) are left out. A controller action is a userspace action
    /// with reason=1 (OFPR_ACTION), or 6 (explicit miss: Open vSwitch's name for a controller
    /// action in a priority-0 match-all rule, OpenFlow 1.3's table-miss entry); the one dec_ttl
    /// composes when the TTL expires (reason=2, invalid TTL, with no controller connected:
    /// dont_send=1) reaches nobody and is left out.
    /// </summary>
    public static NormalVerdict OfOvs(HeaderState start, string actions, IReadOnlyDictionary<int, int> ofPortOfOdp, int localOdp)
    {
        var v = new NormalVerdict();
        var s = start.Clone();
        long trunc = 0; // a datapath trunc(M) cuts what the next output sends
        foreach (string raw in SplitTop(actions.Trim()))
        {
            string a = raw.Trim();
            if (a.Length == 0 || a == "drop")
            {
                continue;
            }

            if (int.TryParse(a, NumberStyles.None, CultureInfo.InvariantCulture, out int odp))
            {
                long cut = trunc;
                trunc = 0;
                if (odp == localOdp)
                {
                    continue;
                }

                if (!ofPortOfOdp.TryGetValue(odp, out int of))
                {
                    v.Unreadable = $"output to unknown datapath port {odp}";
                    break;
                }

                v.Events.Add(new DpEvent(of, false, s.Sent(cut)));
            }
            else if (a == "pop_vlan")
            {
                s.Pop();
            }
            else if (a.StartsWith("push_vlan(", StringComparison.Ordinal))
            {
                var kv = Args(Inner(a));
                int tpid = kv.TryGetValue("tpid", out string? tp) ? (int)Num(tp) : 0x8100;
                s.Push(new Tag(tpid, (int)Num(kv.GetValueOrDefault("vid", "0")), (int)Num(kv.GetValueOrDefault("pcp", "0"))));
            }
            else if (a.StartsWith("userspace(", StringComparison.Ordinal) && a.Contains("controller(", StringComparison.Ordinal))
            {
                if (!a.Contains("reason=2,", StringComparison.Ordinal))
                {
                    v.Events.Add(new DpEvent(0, true, s.ToString()));
                }
            }
            else if (a.StartsWith("trunc(", StringComparison.Ordinal))
            {
                trunc = (long)Num(Inner(a));
            }
            else if (a.StartsWith("set(", StringComparison.Ordinal))
            {
                string body = Inner(a); // eth(src=..,dst=..)
                int p = body.IndexOf('(', StringComparison.Ordinal);
                if (p < 0 || !Set(s, body[..p], Args(Inner(body))))
                {
                    v.Unreadable = $"set action '{a}'";
                    break;
                }
            }
            else
            {
                v.Unreadable = $"odp action '{a}'";
                break;
            }
        }

        v.MaxTags = s.MaxTags;
        return v;
    }

    private static bool Set(HeaderState s, string header, Dictionary<string, string> kv)
    {
        foreach (var (k, text) in kv)
        {
            string value = text, mask = "";
            int slash = text.IndexOf('/', StringComparison.Ordinal);
            if (slash >= 0)
            {
                value = text[..slash];
                mask = text[(slash + 1)..];
            }

            switch (header, k)
            {
                case ("eth", "src"):
                    s.EthSrc = MaskedMac(s.EthSrc, value, mask);
                    break;
                case ("eth", "dst"):
                    s.EthDst = MaskedMac(s.EthDst, value, mask);
                    break;
                case ("ipv4", "src"):
                    s.Src = Masked(s.Src, V4(value), mask.Length == 0 ? uint.MaxValue : V4(mask));
                    break;
                case ("ipv4", "dst"):
                    s.Dst = Masked(s.Dst, V4(value), mask.Length == 0 ? uint.MaxValue : V4(mask));
                    break;
                case ("ipv6", "src"):
                    s.Src = Masked(s.Src, V6(value), mask.Length == 0 ? UInt128.MaxValue : V6(mask));
                    break;
                case ("ipv6", "dst"):
                    s.Dst = Masked(s.Dst, V6(value), mask.Length == 0 ? UInt128.MaxValue : V6(mask));
                    break;
                case ("ipv4", "ttl") or ("ipv6", "hlimit"):
                    s.Ttl = (int)Masked((UInt128)s.Ttl, Num(value), mask.Length == 0 ? 0xFF : Num(mask));
                    break;
                case ("ipv4", "tos") or ("ipv6", "tclass"):
                    s.Tos = (int)Masked((UInt128)s.Tos, Num(value), mask.Length == 0 ? 0xFF : Num(mask));
                    break;
                case ("tcp" or "udp" or "sctp", "src"):
                    s.TpSrc = (int)Masked((UInt128)s.TpSrc, Num(value), mask.Length == 0 ? 0xFFFF : Num(mask));
                    break;
                case ("tcp" or "udp" or "sctp", "dst"):
                    s.TpDst = (int)Masked((UInt128)s.TpDst, Num(value), mask.Length == 0 ? 0xFFFF : Num(mask));
                    break;
                case ("ipv4" or "ipv6", "proto" or "frag" or "label"):
                    if (mask.Length == 0 || Num(mask) != 0)
                    {
                        return false; // never rewritten by these rules
                    }

                    break;
                default:
                    return false;
            }
        }

        return true;
    }

    private static UInt128 Masked(UInt128 old, UInt128 value, UInt128 mask) => (old & ~mask) | (value & mask);

    private static ulong MaskedMac(ulong old, string value, string mask) =>
        (ulong)Masked(old, Mac(value), mask.Length == 0 ? 0xFFFF_FFFF_FFFFUL : Mac(mask));

    private static ulong Mac(string s) => s.Split(':').Aggregate(0UL, (acc, b) => (acc << 8) | byte.Parse(b, NumberStyles.HexNumber, CultureInfo.InvariantCulture));

    private static uint V4(string s) => BinaryPrimitives.ReadUInt32BigEndian(IPAddress.Parse(s).GetAddressBytes());

    private static UInt128 V6(string s) => BinaryPrimitives.ReadUInt128BigEndian(IPAddress.Parse(s).GetAddressBytes());

    private static UInt128 Num(string s) => s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
        ? UInt128.Parse(s[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture)
        : UInt128.Parse(s, CultureInfo.InvariantCulture);

    /// <summary>The text between the first '(' and the matching last ')'.</summary>
    private static string Inner(string a)
    {
        int open = a.IndexOf('(', StringComparison.Ordinal);
        return a[(open + 1)..a.LastIndexOf(')')];
    }

    private static Dictionary<string, string> Args(string s)
    {
        var kv = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string item in SplitTop(s))
        {
            int eq = item.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                kv[item[..eq].Trim()] = item[(eq + 1)..].Trim();
            }
        }

        return kv;
    }

    /// <summary>Splits at commas outside parentheses.</summary>
    public static List<string> SplitTop(string s)
    {
        var parts = new List<string>();
        int depth = 0, start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '(')
            {
                depth++;
            }
            else if (c == ')')
            {
                depth--;
            }
            else if (c == ',' && depth == 0)
            {
                parts.Add(s[start..i]);
                start = i + 1;
            }
        }

        parts.Add(s[start..]);
        return parts;
    }
}
