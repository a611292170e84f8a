// ReferenceSwitch.cs - the flow oracle: a linear interpreter of OracleRules over packet bytes.
//
// Shares no code with the pipeline: it parses frames itself (FrameView), scans every rule of a
// table in order (highest priority, then the earliest rule), edits a byte[] for each action, and
// recomputes IPv4 and L4 checksums from scratch when a copy leaves (for a frame whose checksums
// were right on input, a from-scratch checksum equals an RFC 1624 incremental update). NORMAL is
// modelled on Open vSwitch 3.1's (docs/FLOWS.md, "NORMAL and VLANs"): learning per (MAC, VLAN), access
// and trunk ports, flood within the VLAN, and the tags each egress is written with, straight from the
// frame's bytes; it does not change the packet seen by the actions after it.
using System.Buffers.Binary;

namespace VSwitch.Tests.Oracle;

internal enum OraclePortMode
{
    Plain,
    Access,
    Trunk,
}

internal sealed record OraclePort(int Number, OraclePortMode Mode = OraclePortMode.Plain, int Tag = 0, IReadOnlyList<int>? Trunks = null)
{
    public bool Carries(int vlan) => Mode switch
    {
        OraclePortMode.Access => vlan == Tag,
        OraclePortMode.Trunk => Trunks is not { Count: > 0 } || Trunks.Contains(vlan),
        _ => true,
    };

    public override string ToString() => Mode switch
    {
        OraclePortMode.Access => $"{Number}:access({Tag})",
        OraclePortMode.Trunk => $"{Number}:trunk({(Trunks is { Count: > 0 } ? string.Join("+", Trunks) : "all")})",
        _ => $"{Number}:plain",
    };
}

/// <summary>The fields of a frame the rules can match, read straight from its bytes.</summary>
internal sealed class FrameView
{
    public const int TpidVlan = 0x8100;
    public const int TpidQinQ = 0x88A8;

    public ulong DlDst { get; private set; }

    public ulong DlSrc { get; private set; }

    public int Tags { get; private set; }

    /// <summary>Outer TCI, without the present bit; meaningful when Tags &gt; 0.</summary>
    public int OuterTci { get; private set; }

    public int EthType { get; private set; }

    public int L3 { get; private set; } = -1;

    public int NwProto { get; private set; } = -1;

    public int Ttl { get; private set; }

    public uint NwSrc { get; private set; }

    public uint NwDst { get; private set; }

    public UInt128 Ipv6Src { get; private set; }

    public UInt128 Ipv6Dst { get; private set; }

    public int L4 { get; private set; } = -1;

    public int TpSrc { get; private set; }

    public int TpDst { get; private set; }

    public bool IsIpv4 => EthType == 0x0800 && L3 >= 0;

    public bool IsIpv6 => EthType == 0x86DD && L3 >= 0;

    public static FrameView Parse(byte[] f)
    {
        var v = new FrameView { DlDst = Read48(f, 0), DlSrc = Read48(f, 6) };
        int off = 12;
        int type = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off));
        while ((type == TpidVlan || type == TpidQinQ) && v.Tags < 2)
        {
            if (v.Tags == 0)
            {
                v.OuterTci = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off + 2));
            }

            v.Tags++;
            off += 4;
            type = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off));
        }

        v.EthType = type;
        off += 2;
        if (type == 0x0800)
        {
            v.L3 = off;
            v.NwProto = f[off + 9];
            v.Ttl = f[off + 8];
            v.NwSrc = BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(off + 12));
            v.NwDst = BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(off + 16));
            v.L4 = off + ((f[off] & 0xF) * 4);
            if ((BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off + 6)) & 0x1FFF) != 0)
            {
                v.L4 = -1; // a later fragment: no transport header, ports read 0
            }
        }
        else if (type == 0x86DD)
        {
            v.L3 = off;
            v.NwProto = f[off + 6];
            v.Ttl = f[off + 7];
            v.Ipv6Src = BinaryPrimitives.ReadUInt128BigEndian(f.AsSpan(off + 8));
            v.Ipv6Dst = BinaryPrimitives.ReadUInt128BigEndian(f.AsSpan(off + 24));
            v.L4 = off + 40;
            while (v.NwProto is 0 or 43 or 60) // hop-by-hop, routing, destination options
            {
                v.NwProto = f[v.L4];
                v.L4 += (f[v.L4 + 1] + 1) * 8;
            }
        }

        if (v.L4 >= 0 && v.NwProto is 6 or 17)
        {
            v.TpSrc = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(v.L4));
            v.TpDst = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(v.L4 + 2));
        }

        return v;
    }

    public static ulong Read48(byte[] f, int at) => ((ulong)BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(at)) << 32) | BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(at + 2));

    public static void Write48(byte[] f, int at, ulong v)
    {
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(at), (ushort)(v >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(at + 2), (uint)v);
    }
}

/// <summary>What the oracle expects for one packet: the copies in the order they leave.</summary>
internal sealed class OracleVerdict
{
    public List<(int Port, byte[] Frame)> Outputs { get; } = [];

    /// <summary>Why the oracle declines to judge this packet (an excluded case class), or null.</summary>
    public string? Excluded { get; set; }

    /// <summary>The kinds of action applied to the live packet (for the run's coverage report).</summary>
    public HashSet<string> Applied { get; } = [];

    /// <summary>Whether the verdict changed the MAC learning table.</summary>
    public bool Learned { get; set; }
}

internal sealed class ReferenceSwitch(IReadOnlyList<OraclePort> ports, IReadOnlyList<OracleRule> rules, ISet<int> missContinue)
{
    /// <summary>Exclusion: verdicts longer than a megaflow's action list (24 datapath actions) are dropped by design.</summary>
    public const string ExcludedLongVerdict = "verdict may exceed the 4096 datapath actions of a translation";

    /// <summary>Exclusion: the key extractor reads two VLAN tags; a third pushed tag makes key and bytes disagree.</summary>
    public const string ExcludedThirdTag = "more than two VLAN tags";

    private readonly Dictionary<(ulong Mac, int Vlan), int> _macs = [];

    /// <summary>Excluded case classes (known switch bugs): asked before every action with the packet as it is then.</summary>
    public Func<OracleAction, FrameView, string?>? Exclude { get; set; }

    public OracleVerdict Run(int inPort, byte[] frame, bool learn = true)
    {
        var ctx = new Context { Frame = (byte[])frame.Clone(), InPort = inPort, Verdict = new OracleVerdict(), Learn = learn };
        RunTable(ctx, 0);
        if (ctx.Ops > 4096)
        {
            ctx.Verdict.Excluded ??= ExcludedLongVerdict;
        }

        return ctx.Verdict;
    }

    /// <summary>The same learning table under new rules (a table update).</summary>
    public ReferenceSwitch WithRules(IReadOnlyList<OracleRule> newRules)
    {
        var r = new ReferenceSwitch(ports, newRules, missContinue) { Exclude = Exclude };
        foreach (var kv in _macs)
        {
            r._macs[kv.Key] = kv.Value;
        }

        return r;
    }

    /// <summary>A copy of the learning table, to try a burst without committing it.</summary>
    public ReferenceSwitch Fork()
    {
        var r = new ReferenceSwitch(ports, rules, missContinue) { Exclude = Exclude };
        foreach (var kv in _macs)
        {
            r._macs[kv.Key] = kv.Value;
        }

        return r;
    }

    private sealed class Context
    {
        public required byte[] Frame;
        public required int InPort;
        public required OracleVerdict Verdict;
        public required bool Learn;
        public int Ops;

        /// <summary>dec_ttl found the TTL expired: the current rule's remaining actions are skipped.</summary>
        public bool TableStop;
    }

    /// <param name="lookupInPort">resubmit(P,T): the in_port T's lookup (and a miss's continuation)
    /// matches with; the matched rule's actions see the real in_port (Open vSwitch's semantics).</param>
    private void RunTable(Context c, int table, int? lookupInPort = null)
    {
        while (c.Verdict.Excluded == null)
        {
            var view = FrameView.Parse(c.Frame);
            OracleRule? best = null;
            foreach (var r in rules)
            {
                if (r.Table == table && (best == null || r.Priority > best.Priority) && Matches(r.Match, view, lookupInPort ?? c.InPort))
                {
                    best = r;
                }
            }

            if (best == null)
            {
                if (missContinue.Contains(table))
                {
                    table++;
                    continue;
                }

                return;
            }

            lookupInPort = null; // goto_table looks up with the real in_port
            int next = -1;
            foreach (var a in best.Actions)
            {
                if (c.Verdict.Excluded != null)
                {
                    return;
                }

                if (a is GotoTableAction g)
                {
                    c.Verdict.Applied.Add(nameof(GotoTableAction));
                    next = g.Table;
                    break;
                }

                Apply(c, a);
                if (c.TableStop)
                {
                    c.TableStop = false; // Open vSwitch: dec_ttl on an expired TTL ends this table's actions
                    return;
                }
            }

            if (next < 0)
            {
                return;
            }

            table = next;
        }
    }

    private static bool Matches(OracleMatch m, FrameView v, int inPort)
    {
        bool tagged = v.Tags > 0;
        int rawTci = tagged ? v.OuterTci | 0x1000 : 0;
        return (m.InPort == null || m.InPort == inPort)
            && (m.DlSrc == null || m.DlSrc.Value.Matches(v.DlSrc))
            && (m.DlDst == null || m.DlDst.Value.Matches(v.DlDst))
            && (m.DlVlan == null || (m.DlVlan == 0xFFFF ? !tagged : tagged && (v.OuterTci & 0xFFF) == m.DlVlan))
            && (m.VlanPcp == null || (tagged && v.OuterTci >> 13 == m.VlanPcp))
            && (m.VlanTci == null || m.VlanTci.Value.Matches((UInt128)rawTci))
            && (m.DlType == null || m.DlType == v.EthType)
            && (m.NwProto == null || m.NwProto == v.NwProto)
            && (m.NwSrc == null || m.NwSrc.Value.Matches(v.NwSrc))
            && (m.NwDst == null || m.NwDst.Value.Matches(v.NwDst))
            && (m.Ipv6Src == null || m.Ipv6Src.Value.Matches(v.Ipv6Src))
            && (m.Ipv6Dst == null || m.Ipv6Dst.Value.Matches(v.Ipv6Dst))
            && (m.NwTtl == null || m.NwTtl == v.Ttl)
            && (m.TpSrc == null || m.TpSrc.Value.Matches((UInt128)v.TpSrc))
            && (m.TpDst == null || m.TpDst.Value.Matches((UInt128)v.TpDst));
    }

    private void Apply(Context c, OracleAction a)
    {
        var v = FrameView.Parse(c.Frame);
        if (Exclude?.Invoke(a, v) is { } why)
        {
            c.Verdict.Excluded = why;
            return;
        }

        c.Verdict.Applied.Add(a is SetFieldAction sf ? $"set_field:{sf.Target}" : a.GetType().Name);

        switch (a)
        {
            case OutputAction o:
                Output(c, o.Port, c.Frame, o.MaxLen);
                break;
            case InPortAction:
                Emit(c, c.InPort, c.Frame);
                break;
            case DropAction:
                break;
            case FloodAction:
                foreach (var p in ports)
                {
                    if (p.Number != c.InPort)
                    {
                        Emit(c, p.Number, c.Frame);
                    }
                }

                break;
            case NormalAction:
                Normal(c, v);
                break;
            case PushVlanAction p:
                Push(c, v, p.Tpid, 0); // VID 0, PCP 0 (Open vSwitch), whatever tag is there
                break;
            case PopVlanAction:
                if (v.Tags > 0)
                {
                    c.Frame = [.. c.Frame.AsSpan(0, 12), .. c.Frame.AsSpan(16)];
                    c.Ops++;
                }

                break;
            case ModVlanAction mv:
                ModVlan(c, v, mv.Pcp, mv.Value);
                break;
            case SetFieldAction { Target: SetTarget.VlanVid or SetTarget.VlanPcp } s:
                ModVlan(c, v, s.Target == SetTarget.VlanPcp, (int)s.Value);
                break;
            case DecTtlAction:
                if (v.IsIpv4 || v.IsIpv6)
                {
                    int at = v.L3 + (v.IsIpv4 ? 8 : 7);
                    if (c.Frame[at] > 1)
                    {
                        c.Ops++;
                        c.Frame[at]--;
                    }
                    else
                    {
                        c.TableStop = true; // TTL 0 or 1: nothing more from this rule
                    }
                }

                break;
            case SetFieldAction s:
                SetField(c, v, s);
                break;
            case ResubmitAction r:
                RunTable(c, r.Table, r.Port);
                break;

            default:
                throw new ArgumentOutOfRangeException(nameof(a));
        }
    }

    private static void SetField(Context c, FrameView v, SetFieldAction s)
    {
        var f = c.Frame;
        c.Ops += 2;
        switch (s.Target)
        {
            case SetTarget.DlDst:
                FrameView.Write48(f, 0, (ulong)s.Value);
                break;
            case SetTarget.DlSrc:
                FrameView.Write48(f, 6, (ulong)s.Value);
                break;
            case SetTarget.NwSrc when v.IsIpv4:
                BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(v.L3 + 12), (uint)s.Value);
                break;
            case SetTarget.NwDst when v.IsIpv4:
                BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(v.L3 + 16), (uint)s.Value);
                break;
            case SetTarget.Ipv6Src when v.IsIpv6:
                BinaryPrimitives.WriteUInt128BigEndian(f.AsSpan(v.L3 + 8), s.Value);
                break;
            case SetTarget.Ipv6Dst when v.IsIpv6:
                BinaryPrimitives.WriteUInt128BigEndian(f.AsSpan(v.L3 + 24), s.Value);
                break;
            case SetTarget.IpDscp or SetTarget.NwEcn when v.IsIpv4 || v.IsIpv6:
            {
                int mask = s.Target == SetTarget.IpDscp ? 0xFC : 0x03;
                int bits = (s.Target == SetTarget.IpDscp ? (int)s.Value << 2 : (int)s.Value) & mask;
                if (v.IsIpv4)
                {
                    f[v.L3 + 1] = (byte)((f[v.L3 + 1] & ~mask) | bits);
                }
                else
                {
                    int tc = ((f[v.L3] & 0xF) << 4) | (f[v.L3 + 1] >> 4); // traffic class: bits 4-11 of the first word
                    tc = (tc & ~mask) | bits;
                    f[v.L3] = (byte)((f[v.L3] & 0xF0) | (tc >> 4));
                    f[v.L3 + 1] = (byte)((f[v.L3 + 1] & 0x0F) | ((tc & 0xF) << 4));
                }

                break;
            }

            case SetTarget.NwTtl when v.IsIpv4 || v.IsIpv6:
                f[v.L3 + (v.IsIpv4 ? 8 : 7)] = (byte)s.Value;
                break;
            case SetTarget.TpSrc when v.L4 >= 0 && v.NwProto is 6 or 17:
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(v.L4), (ushort)s.Value);
                break;
            case SetTarget.TpDst when v.L4 >= 0 && v.NwProto is 6 or 17:
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(v.L4 + 2), (ushort)s.Value);
                break;
        }
    }

    private static void ModVlan(Context c, FrameView v, bool pcp, int value)
    {
        if (v.Tags == 0)
        {
            Push(c, v, FrameView.TpidVlan, pcp ? (value & 7) << 13 : value & 0xFFF);
            return;
        }

        int tci = pcp ? (v.OuterTci & 0x1FFF) | ((value & 7) << 13) : (v.OuterTci & 0xF000) | (value & 0xFFF);
        BinaryPrimitives.WriteUInt16BigEndian(c.Frame.AsSpan(14), (ushort)tci);
        c.Ops++;
    }

    private static void Push(Context c, FrameView v, int tpid, int tci)
    {
        if (v.Tags >= 2)
        {
            c.Verdict.Excluded ??= ExcludedThirdTag;
            return;
        }

        var tag = new byte[4];
        BinaryPrimitives.WriteUInt16BigEndian(tag, (ushort)tpid);
        BinaryPrimitives.WriteUInt16BigEndian(tag.AsSpan(2), (ushort)tci);
        c.Frame = [.. c.Frame.AsSpan(0, 12), .. tag, .. c.Frame.AsSpan(12)];
        c.Ops++;
    }

    private void Output(Context c, int port, byte[] frame, long maxLen = 0)
    {
        // OpenFlow: output to the input port is skipped (in_port does that); unknown ports too.
        if (port == c.InPort || ports.All(p => p.Number != port))
        {
            return;
        }

        Emit(c, port, frame, maxLen);
    }

    /// <summary>A copy of the frame leaves on <paramref name="port"/>, its checksums as the rewrites left them, cut to <paramref name="maxLen"/> bytes (0: whole).</summary>
    private static void Emit(Context c, int port, byte[] frame, long maxLen = 0)
    {
        c.Ops += 2;
        var f = Checksums.Fixed(frame);
        c.Verdict.Outputs.Add((port, maxLen > 0 && maxLen < f.Length ? f[..(int)maxLen] : f));
    }

    /// <summary>
    /// NORMAL as Open vSwitch 3.1 does it (ofproto-dpif-xlate.c), read from the frame's bytes: the
    /// first two tags are the VLAN view (an access port: its VLAN with the frame's PCP, and only
    /// untagged or priority-tagged frames in); a flood reaches access ports of the VLAN when there is
    /// no second VID, trunks that carry the VLAN; each egress replaces the frame's first two tags by
    /// nothing (access) or the view written from the outside in while VID or PCP is not 0.
    /// </summary>
    private void Normal(Context c, FrameView v)
    {
        var inPort = ports.FirstOrDefault(p => p.Number == c.InPort);
        if (inPort == null)
        {
            return;
        }

        var tags = Tags(c.Frame);
        int outerVid = tags.Count > 0 ? tags[0].Tci & 0xFFF : 0;
        List<(int Tpid, int Tci)> view;
        if (inPort.Mode == OraclePortMode.Access)
        {
            if (outerVid != 0)
            {
                return; // a VLAN-tagged frame on an access port is dropped (a priority tag is fine)
            }

            view = [(tags.Count > 0 ? tags[0].Tpid : FrameView.TpidVlan, (tags.Count > 0 ? tags[0].Tci & 0xE000 : 0) | inPort.Tag)];
        }
        else if (!inPort.Carries(outerVid))
        {
            return;
        }
        else
        {
            view = tags;
        }

        int vlan = view.Count > 0 ? view[0].Tci & 0xFFF : 0;
        int innerVid = view.Count > 1 ? view[1].Tci & 0xFFF : 0;
        if (c.Learn && (v.DlSrc & 0x0100_0000_0000UL) == 0)
        {
            if (!_macs.TryGetValue((v.DlSrc, vlan), out int was) || was != inPort.Number)
            {
                c.Verdict.Learned = true;
            }

            _macs[(v.DlSrc, vlan)] = inPort.Number;
        }

        bool group = (v.DlDst & 0x0100_0000_0000UL) != 0;
        var egress = new List<OraclePort>();
        if (!group && _macs.TryGetValue((v.DlDst, vlan), out int dst))
        {
            if (dst == inPort.Number)
            {
                return; // the destination is behind the input port
            }

            var target = ports.FirstOrDefault(p => p.Number == dst);
            if (target != null && target.Carries(vlan))
            {
                egress.Add(target);
            }
        }

        if (egress.Count == 0)
        {
            egress.AddRange(ports.Where(p => p.Number != inPort.Number
                && (p.Mode == OraclePortMode.Access ? vlan == p.Tag && innerVid == 0 : p.Carries(vlan))));
        }

        var written = view.TakeWhile(t => (t.Tci & 0xEFFF) != 0).ToList();
        foreach (var p in egress)
        {
            var f = NormalEgress(c.Frame, tags.Count, p.Mode == OraclePortMode.Access ? [] : written);
            c.Ops += f.AsSpan().SequenceEqual(c.Frame) ? 0 : 2;
            Emit(c, p.Number, f);
        }
    }

    /// <summary>The frame's first two VLAN tags (TPID, TCI), outermost first.</summary>
    private static List<(int Tpid, int Tci)> Tags(byte[] f)
    {
        var tags = new List<(int, int)>();
        for (int off = 12; tags.Count < 2; off += 4)
        {
            int tpid = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off));
            if (tpid is not (FrameView.TpidVlan or FrameView.TpidQinQ))
            {
                break;
            }

            tags.Add((tpid, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off + 2))));
        }

        return tags;
    }

    /// <summary>One NORMAL egress: the frame with its first <paramref name="replaced"/> tags replaced by <paramref name="tags"/>.</summary>
    private static byte[] NormalEgress(byte[] f, int replaced, List<(int Tpid, int Tci)> tags)
    {
        var head = new List<byte>(f.AsSpan(0, 12).ToArray());
        foreach (var (tpid, tci) in tags)
        {
            head.AddRange([(byte)(tpid >> 8), (byte)tpid, (byte)(tci >> 8), (byte)tci]);
        }

        byte[] egress = [.. head, .. f.AsSpan(12 + (4 * replaced))];
        return egress.AsSpan().SequenceEqual(f) ? f : egress;
    }
}

/// <summary>Internet checksums computed from scratch (the oracle's own; PacketDotNet checks them again).</summary>
internal static class Checksums
{
    /// <summary>A copy of <paramref name="frame"/> with its IPv4 header and TCP/UDP/ICMPv6 checksums recomputed.</summary>
    public static byte[] Fixed(byte[] frame)
    {
        var f = (byte[])frame.Clone();
        var v = FrameView.Parse(f);
        if (v.IsIpv4)
        {
            int ihl = (f[v.L3] & 0xF) * 4;
            f[v.L3 + 10] = f[v.L3 + 11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(v.L3 + 10), Fold(Sum(f.AsSpan(v.L3, ihl))));
        }

        int l4Len = v.IsIpv4 ? BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(v.L3 + 2)) - ((f[v.L3] & 0xF) * 4)
            : v.IsIpv6 ? v.L3 + 40 + BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(v.L3 + 4)) - v.L4 : 0;
        int at = v.NwProto switch
        {
            6 => 16,
            17 => 6,
            58 when v.IsIpv6 => 2,
            _ => -1,
        };
        if (at < 0 || v.L4 < 0)
        {
            return f;
        }

        if (v.IsIpv4 && v.NwProto == 17 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(v.L4 + 6)) == 0)
        {
            return f; // UDP over IPv4 without a checksum stays without one
        }

        f[v.L4 + at] = f[v.L4 + at + 1] = 0;
        ulong s = Sum(f.AsSpan(v.L4, l4Len)) + (ulong)v.NwProto + (ulong)l4Len;
        s += v.IsIpv4 ? Sum(f.AsSpan(v.L3 + 12, 8)) : Sum(f.AsSpan(v.L3 + 8, 32));
        ushort c = Fold(s);
        if (c == 0 && v.NwProto == 17)
        {
            c = 0xFFFF;
        }

        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(v.L4 + at), c);
        return f;
    }

    private static ulong Sum(ReadOnlySpan<byte> b)
    {
        ulong s = 0;
        int i = 0;
        for (; i + 1 < b.Length; i += 2)
        {
            s += (ulong)((b[i] << 8) | b[i + 1]);
        }

        if (i < b.Length)
        {
            s += (ulong)(b[i] << 8);
        }

        return s;
    }

    private static ushort Fold(ulong s)
    {
        while (s >> 16 != 0)
        {
            s = (s & 0xFFFF) + (s >> 16);
        }

        return (ushort)~s;
    }
}
