// ConnTableProcess.cs - a ct action on one packet: parse its tuple, find or create its connection,
// track TCP, apply NAT, and return the connection-tracking word the packet carries on (ct_state,
// ct_zone and ct_mark in FlowKey's word 9 layout).
//
// Runs on the PMD for every packet a ct op reaches (a ct op is per packet: the megaflow in front of it
// need not separate connections). Reads the packet's bytes from the offsets the extractor found;
// allocates nothing, takes no lock (ConnTable.cs says how writers share the table).
// Fragments are not reassembled: an IPv4 or IPv6 fragment is +trk+inv (rules decide; docs/FLOWS.md).
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using VSwitch.Actions;
using VSwitch.Interop;
using VSwitch.Packets;
using VSwitch.Pmd;

namespace VSwitch.Conntrack;

public sealed unsafe partial class ConnTable
{
    /// <summary>Most NAT tuples tried for one new connection before the commit is refused.</summary>
    public const int NatAttempts = 128;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort Rd16(byte* p) => BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ushort>(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Rd32(byte* p) => BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Rd64(byte* p) => BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Wr16(byte* p, ushort v) => Unsafe.WriteUnaligned(p, BinaryPrimitives.ReverseEndianness(v));

    private const int Ok = 0, NotIp = 1, Fragment = 2, Truncated = 3, IcmpError = 4;

    /// <summary>
    /// Runs ct with <paramref name="spec"/> on one packet; returns the packet's new word 9 (ct_state |
    /// ct_zone &lt;&lt; 8 | ct_mark &lt;&lt; 32; recirc_id bits zero). <paramref name="current"/> is the word the
    /// packet carries: a packet already tracked in this zone (a second ct after recirculation) is not
    /// tracked again (its TCP state and counters already saw it), as Open vSwitch.
    /// </summary>
    public ulong Process(nint m, ref HeaderOffsets off, DpCtSpec* spec, ulong now, PmdCounters* c, ulong current = 0)
    {
        byte* d = Mbuf.Data(m);
        int len = Mbuf.DataLen(m);
        ushort zone = spec->Zone;
        ulong zoneBits = (ulong)zone << 8;
        int kind = ParseTuple(d, len, off, zone, out CtTuple t, out byte* l4, out int l4Len);
        if (kind == IcmpError)
        {
            return Related(m, d, len, off, l4, l4Len, t, spec, zoneBits);
        }

        if (kind != Ok)
        {
            c->CtInvalid++;
            return CtState.Trk | CtState.Inv | zoneBits;
        }

        bool again = (current & CtState.Trk) != 0 && (ushort)(current >> 8) == zone && (current & CtState.Inv) == 0;
        c->CtLookups++;
        uint h = t.Hash();
        int node = Find(t, h);
        TcpSegment seg = default;
        bool tcp = t.Proto == CtTuple.ProtoTcp;
        if (tcp)
        {
            seg = Segment(d, off, l4, l4Len);
        }

        if (node < 0 && again)
        {
            // Tracked already in this zone, and NATed by that ct: its tuple is now the reverse of the
            // other direction's (Open vSwitch keeps the connection with the packet; here it is found again).
            CtTuple r = t.Reverse();
            int other = Find(r, r.Hash());
            if (other >= 0)
            {
                return Existing(m, ref off, _entries + (other >> 1), (other & 1) == 0, t, spec, now, zoneBits, count: false);
            }
        }

        if (node >= 0)
        {
            ConnEntry* e = _entries + (node >> 1);
            bool reply = (node & 1) != 0;
            if (again)
            {
                return Existing(m, ref off, e, reply, t, spec, now, zoneBits, count: false);
            }

            if (tcp)
            {
                TcpVerdict v = TcpTracker.Update(ref e->Tcp, reply, seg);
                if (v == TcpVerdict.Restart || ((spec->Flags & DpCtSpec.FlagForce) != 0 && reply))
                {
                    TryKill(e); // a new connection on the tuple of a closed one (or force: recommitted the other way)
                    node = -1;
                }
                else if (v == TcpVerdict.Invalid)
                {
                    c->CtInvalid++;
                    return CtState.Trk | CtState.Inv | zoneBits | ((ulong)e->Mark << 32);
                }
            }

            if (node >= 0)
            {
                return Existing(m, ref off, e, reply, t, spec, now, zoneBits);
            }
        }

        // No connection: is this packet allowed to start one?
        if (tcp ? !TcpTracker.Opens(seg) : t.IsIcmp && t.DstPort is not (8 or 128))
        {
            c->CtInvalid++;
            return CtState.Trk | CtState.Inv | zoneBits; // a mid-stream TCP segment, an echo reply nobody asked for
        }

        if ((spec->Flags & DpCtSpec.FlagCommit) == 0)
        {
            return CtState.Trk | CtState.New | zoneBits;
        }

        return Commit(m, ref off, t, h, tcp, seg, spec, now, zoneBits, c);
    }

    private ulong Existing(nint m, ref HeaderOffsets off, ConnEntry* e, bool reply, in CtTuple t, DpCtSpec* spec, ulong now, ulong zoneBits, bool count = true)
    {
        uint bytes = Mbuf.PktLen(m);
        if (!count)
        {
        }
        else if (reply)
        {
            e->LastReply = now;
            e->PacketsReply++;
            e->BytesReply += bytes;
            e->SeenReply = 1;
        }
        else
        {
            e->LastOrig = now;
            e->PacketsOrig++;
            e->BytesOrig += bytes;
        }

        bool answered = e->Orig.Proto == CtTuple.ProtoTcp ? TcpTracker.Answered(e->Tcp) : e->SeenReply != 0;
        ulong state = CtState.Trk | (answered ? CtState.Est : CtState.New) | (reply ? CtState.Rpl : 0u);
        if (e->Nat != 0 && spec->Nat != CtNatKind.None)
        {
            state |= Translate(m, off, e, reply, t);
        }

        if ((spec->Flags & DpCtSpec.FlagCommit) != 0)
        {
            Exec(e, spec);
        }

        return state | zoneBits | ((ulong)e->Mark << 32);
    }

    private ulong Commit(nint m, ref HeaderOffsets off, in CtTuple t, uint h, bool tcp, in TcpSegment seg, DpCtSpec* spec, ulong now, ulong zoneBits, PmdCounters* c)
    {
        CtTuple reply = t.Reverse();
        bool nat = spec->Nat is CtNatKind.Src or CtNatKind.Dst;
        uint seed = h;
        for (int attempt = 0; attempt < (nat ? NatAttempts : 1); attempt++)
        {
            if (nat && !ChooseNat(spec, t, ref reply, seed, attempt))
            {
                break;
            }

            uint rh = reply.Hash();
            if (nat && Find(reply, rh) >= 0)
            {
                continue; // that public tuple is in use: try the next
            }

            int node = Create(t, reply, h, rh, now, out bool created);
            if (node == -1)
            {
                c->CtFull++;
                return CtState.Trk | CtState.Inv | zoneBits;
            }

            if (node == -2)
            {
                continue;
            }

            ConnEntry* e = _entries + (node >> 1);
            if (!created)
            {
                return Existing(m, ref off, e, (node & 1) != 0, t, spec, now, zoneBits); // another PMD stored it first
            }

            if (tcp)
            {
                e->Tcp = TcpTracker.Start(seg);
            }

            e->SeenOrig = 1;
            e->PacketsOrig = 1;
            e->BytesOrig = Mbuf.PktLen(m);
            e->Nat = spec->Nat switch
            {
                CtNatKind.Src => (byte)CtState.Snat,
                CtNatKind.Dst => (byte)CtState.Dnat,
                _ => 0,
            };
            Exec(e, spec);
            c->CtCommits++;
            ulong state = CtState.Trk | CtState.New;
            if (e->Nat != 0)
            {
                state |= Translate(m, off, e, false, t);
            }

            return state | zoneBits | ((ulong)e->Mark << 32);
        }

        c->CtFull++; // every NAT tuple tried is taken
        return CtState.Trk | CtState.Inv | zoneBits;
    }

    /// <summary>exec(set_field:...->ct_mark / ct_label) of a commit.</summary>
    private static void Exec(ConnEntry* e, DpCtSpec* spec)
    {
        if ((spec->Flags & DpCtSpec.FlagMark) != 0)
        {
            e->Mark = (e->Mark & ~spec->MarkMask) | spec->MarkValue;
        }

        if ((spec->Flags & DpCtSpec.FlagLabel) != 0)
        {
            e->LabelHi = (e->LabelHi & ~spec->LabelMaskHi) | spec->LabelHi;
            e->LabelLo = (e->LabelLo & ~spec->LabelMaskLo) | spec->LabelLo;
        }
    }

    /// <summary>
    /// The reply tuple of attempt <paramref name="attempt"/> for a new NATed connection: the address
    /// from the range by hash, the port (or echo id) by hash from the range, or the packet's own
    /// port first when the range has none. False when the spec cannot apply (family mismatch).
    /// </summary>
    private static bool ChooseNat(DpCtSpec* s, in CtTuple t, ref CtTuple reply, uint seed, int attempt)
    {
        bool v6 = (s->Flags & DpCtSpec.FlagV6) != 0;
        if (v6 != (t.Family == 6))
        {
            return false;
        }

        ulong hi = s->AddrMinHi, lo = s->AddrMinLo;
        ulong span = s->AddrMaxLo - s->AddrMinLo; // ranges within one /64 (IPv6) or anywhere in IPv4
        if (span != 0 && s->AddrMaxHi == s->AddrMinHi)
        {
            lo += (seed + (uint)(attempt / 16)) % (span + 1);
        }

        ushort port;
        bool hasPorts = (s->Flags & DpCtSpec.FlagPorts) != 0;
        bool ports = t.Proto is CtTuple.ProtoTcp or CtTuple.ProtoUdp or CtTuple.ProtoSctp or CtTuple.ProtoIcmp or CtTuple.ProtoIcmp6;
        if (hasPorts)
        {
            uint n = (uint)(s->PortMax - s->PortMin) + 1;
            port = (ushort)(s->PortMin + ((seed + (uint)attempt) % n));
        }
        else
        {
            ushort own = s->Nat == CtNatKind.Src ? t.SrcPort : t.DstPort;
            port = attempt == 0 || !ports || s->Nat == CtNatKind.Dst ? own : (ushort)(1024 + ((seed + (uint)attempt) % (65536 - 1024)));
        }

        if (s->Nat == CtNatKind.Src)
        {
            reply.DstHi = hi;
            reply.DstLo = lo;
            if (t.IsIcmp)
            {
                reply.SrcPort = port; // the echo id, the same both ways
            }
            else if (ports)
            {
                reply.DstPort = port;
            }
        }
        else
        {
            reply.SrcHi = hi;
            reply.SrcLo = lo;
            if (ports && !t.IsIcmp && hasPorts)
            {
                reply.SrcPort = port;
            }
        }

        return true;
    }

    /// <summary>
    /// Rewrites the packet to its NATed form for its direction (checksums updated incrementally);
    /// returns the ct_state NAT bits: what was changed on this packet (+snat: its source, +dnat: its destination).
    /// </summary>
    private static ulong Translate(nint m, in HeaderOffsets off, ConnEntry* e, bool reply, in CtTuple t)
    {
        CtTuple want = reply ? e->Orig.Reverse() : e->Reply.Reverse();
        byte kind = L4Kind(t);
        ulong bits = 0;
        bool v4 = t.Family == 4;
        if (want.SrcLo != t.SrcLo || want.SrcHi != t.SrcHi)
        {
            SetAddr(m, off, v4, false, want.SrcHi, want.SrcLo, kind);
            bits |= CtState.Snat;
        }

        if (want.DstLo != t.DstLo || want.DstHi != t.DstHi)
        {
            SetAddr(m, off, v4, true, want.DstHi, want.DstLo, kind);
            bits |= CtState.Dnat;
        }

        if (t.IsIcmp)
        {
            if (want.SrcPort != t.SrcPort && off.L4 != 0xFFFF)
            {
                byte* l4 = Mbuf.Data(m) + off.L4;
                ushort old = Rd16(l4 + 4);
                Wr16(l4 + 4, want.SrcPort);
                Wr16(l4 + 2, PacketEdit.Update16(Rd16(l4 + 2), old, want.SrcPort));
                bits |= reply ? CtState.Dnat : CtState.Snat;
            }
        }
        else if (t.Proto is CtTuple.ProtoTcp or CtTuple.ProtoUdp or CtTuple.ProtoSctp)
        {
            if (want.SrcPort != t.SrcPort)
            {
                PacketEdit.SetPort(m, off, false, want.SrcPort, kind == DpAction.L4None && t.Proto == CtTuple.ProtoSctp ? DpAction.L4Sctp : kind);
                bits |= CtState.Snat;
            }

            if (want.DstPort != t.DstPort)
            {
                PacketEdit.SetPort(m, off, true, want.DstPort, kind == DpAction.L4None && t.Proto == CtTuple.ProtoSctp ? DpAction.L4Sctp : kind);
                bits |= CtState.Dnat;
            }
        }

        return bits;
    }

    private static void SetAddr(nint m, in HeaderOffsets off, bool v4, bool dst, ulong hi, ulong lo, byte kind)
    {
        if (v4)
        {
            PacketEdit.SetIpv4(m, off, dst, (uint)lo, kind);
        }
        else
        {
            PacketEdit.SetIpv6(m, off, dst, hi, lo, kind);
        }
    }

    /// <summary>The checksum kind address rewrites update (SCTP's CRC has no pseudo-header: none; ICMPv4 neither).</summary>
    private static byte L4Kind(in CtTuple t) => t.Proto switch
    {
        CtTuple.ProtoTcp => DpAction.L4Tcp,
        CtTuple.ProtoUdp => DpAction.L4Udp,
        CtTuple.ProtoIcmp6 => DpAction.L4Icmp6,
        _ => DpAction.L4None,
    };

    /// <summary>
    /// The packet's tuple. For an ICMP/ICMPv6 error, the tuple of the packet quoted inside it (as that
    /// packet was sent) and IcmpError; <paramref name="l4"/> then points at the ICMP header.
    /// </summary>
    private static int ParseTuple(byte* d, int len, in HeaderOffsets off, ushort zone, out CtTuple t, out byte* l4, out int l4Len)
    {
        t = default;
        t.Zone = zone;
        l4 = null;
        l4Len = 0;
        if (off.L3 == 0xFFFF || off.L3 + 20 > len)
        {
            return NotIp;
        }

        byte* ip = d + off.L3;
        int proto;
        int ver = ip[0] >> 4;
        if (ver == 4)
        {
            if ((Rd16(ip + 6) & 0x3FFF) != 0)
            {
                return Fragment;
            }

            t.Family = 4;
            t.SrcLo = Rd32(ip + 12);
            t.DstLo = Rd32(ip + 16);
            proto = ip[9];
        }
        else if (ver == 6 && off.L3 + 40 <= len)
        {
            t.Family = 6;
            t.SrcHi = Rd64(ip + 8);
            t.SrcLo = Rd64(ip + 16);
            t.DstHi = Rd64(ip + 24);
            t.DstLo = Rd64(ip + 32);
            proto = Ipv6Proto(d, len, off, out bool frag);
            if (frag)
            {
                return Fragment;
            }
        }
        else
        {
            return NotIp;
        }

        t.Proto = (byte)proto;
        if (off.L4 == 0xFFFF)
        {
            return proto is CtTuple.ProtoTcp or CtTuple.ProtoUdp or CtTuple.ProtoIcmp or CtTuple.ProtoIcmp6 or CtTuple.ProtoSctp ? Truncated : Ok;
        }

        l4 = d + off.L4;
        l4Len = len - off.L4;
        switch (proto)
        {
            case CtTuple.ProtoTcp:
                if (l4Len < 20)
                {
                    return Truncated;
                }

                goto case CtTuple.ProtoUdp;
            case CtTuple.ProtoUdp:
            case CtTuple.ProtoSctp:
                if (l4Len < 8)
                {
                    return Truncated;
                }

                t.SrcPort = Rd16(l4);
                t.DstPort = Rd16(l4 + 2);
                return Ok;
            case CtTuple.ProtoIcmp:
            case CtTuple.ProtoIcmp6:
            {
                if (l4Len < 8)
                {
                    return Truncated;
                }

                byte type = l4[0];
                if (type is 8 or 0 or 128 or 129)
                {
                    t.SrcPort = Rd16(l4 + 4);
                    t.DstPort = type;
                    return Ok;
                }

                bool error = proto == CtTuple.ProtoIcmp ? type is 3 or 11 or 12 : type is 1 or 2 or 3 or 4;
                if (!error)
                {
                    t.DstPort = type; // other ICMP messages: tracked as the generic protocol, by type
                    return Ok;
                }

                return InnerTuple(l4, l4Len, proto == CtTuple.ProtoIcmp6, zone, out t) ? IcmpError : Truncated;
            }

            default:
                return Ok;
        }
    }

    /// <summary>The tuple of the packet an ICMP error quotes (its IP header and first 8 bytes of L4).</summary>
    private static bool InnerTuple(byte* icmp, int icmpLen, bool v6, ushort zone, out CtTuple t)
    {
        t = default;
        t.Zone = zone;
        byte* ip = icmp + 8;
        int n = icmpLen - 8;
        byte* l4;
        if (!v6)
        {
            if (n < 28 || ip[0] >> 4 != 4)
            {
                return false;
            }

            int ihl = (ip[0] & 0xF) * 4;
            if (ihl < 20 || n < ihl + 8 || (Rd16(ip + 6) & 0x1FFF) != 0)
            {
                return false;
            }

            t.Family = 4;
            t.SrcLo = Rd32(ip + 12);
            t.DstLo = Rd32(ip + 16);
            t.Proto = ip[9];
            l4 = ip + ihl;
        }
        else
        {
            if (n < 48 || ip[0] >> 4 != 6)
            {
                return false;
            }

            t.Family = 6;
            t.SrcHi = Rd64(ip + 8);
            t.SrcLo = Rd64(ip + 16);
            t.DstHi = Rd64(ip + 24);
            t.DstLo = Rd64(ip + 32);
            t.Proto = ip[6]; // quoted packets with extension headers are not followed
            l4 = ip + 40;
        }

        switch (t.Proto)
        {
            case CtTuple.ProtoTcp:
            case CtTuple.ProtoUdp:
            case CtTuple.ProtoSctp:
                t.SrcPort = Rd16(l4);
                t.DstPort = Rd16(l4 + 2);
                return true;
            case CtTuple.ProtoIcmp:
            case CtTuple.ProtoIcmp6:
                t.SrcPort = Rd16(l4 + 4);
                t.DstPort = l4[0];
                return l4[0] is 8 or 128; // an error about an echo request
            default:
                return true;
        }
    }

    /// <summary>The upper-layer protocol of an IPv6 packet whose L4 starts at off.L4 (or the last header seen).</summary>
    private static int Ipv6Proto(byte* d, int len, in HeaderOffsets off, out bool fragment)
    {
        fragment = false;
        int nh = d[off.L3 + 6];
        int at = off.L3 + 40;
        for (int i = 0; i < 8 && at != off.L4 && at + 8 <= len; i++)
        {
            if (nh == 44)
            {
                fragment = true;
                return nh;
            }

            if (nh is not (0 or 43 or 60 or 51))
            {
                break;
            }

            int next = d[at];
            at += nh == 51 ? (d[at + 1] + 2) * 4 : (d[at + 1] + 1) * 8;
            nh = next;
        }

        return nh;
    }

    /// <summary>The TCP fields the tracker needs (window scale from a SYN's options).</summary>
    private static TcpSegment Segment(byte* d, in HeaderOffsets off, byte* l4, int l4Len)
    {
        int doff = (l4[12] >> 4) * 4;
        byte* ip = d + off.L3;
        int payload = (ip[0] >> 4) == 4
            ? Rd16(ip + 2) - ((ip[0] & 0xF) * 4) - doff
            : Rd16(ip + 4) + 40 - (off.L4 - off.L3) - doff;
        ushort flags = l4[13];
        byte scale = TcpTracker.NoScale;
        if ((flags & TcpTracker.Syn) != 0 && doff > 20 && doff <= l4Len)
        {
            for (int i = 20; i < doff;)
            {
                byte k = l4[i];
                if (k == 0)
                {
                    break;
                }

                if (k == 1)
                {
                    i++;
                    continue;
                }

                if (i + 1 >= doff)
                {
                    break;
                }

                int olen = l4[i + 1];
                if (olen < 2 || i + olen > doff)
                {
                    break;
                }

                if (k == 3 && olen == 3)
                {
                    scale = Math.Min(l4[i + 2], (byte)TcpTracker.MaxScale);
                }

                i += olen;
            }
        }

        return new TcpSegment(Rd32(l4 + 4), Rd32(l4 + 8), Rd16(l4 + 14), flags, Math.Max(0, payload), scale);
    }

    /// <summary>
    /// An ICMP error: related to the connection of the packet it quotes (+rel; +rpl when it travels in
    /// the reply direction), with that connection's NAT undone on the quoted header (IPv4) and applied
    /// to the outer addresses it concerns. Not related to any connection: +inv.
    /// </summary>
    private ulong Related(nint m, byte* d, int len, in HeaderOffsets off, byte* icmp, int icmpLen, in CtTuple inner, DpCtSpec* spec, ulong zoneBits)
    {
        CtTuple key = inner.Reverse();
        int node = Find(key, key.Hash());
        if (node < 0)
        {
            return CtState.Trk | CtState.Inv | zoneBits;
        }

        ConnEntry* e = _entries + (node >> 1);
        bool reply = (node & 1) != 0;
        ulong state = CtState.Trk | CtState.Rel | (reply ? CtState.Rpl : 0u);
        if (e->Nat != 0 && spec->Nat != CtNatKind.None && inner.Family == 4)
        {
            // The error travels in direction `reply`; its receiver sent the quoted packet as `want`'s reverse.
            CtTuple seen = reply ? e->Reply : e->Orig;
            CtTuple want = reply ? e->Orig.Reverse() : e->Reply.Reverse();
            byte* ip = d + off.L3;
            if (Rd32(ip + 12) == (uint)seen.SrcLo && seen.SrcLo != want.SrcLo)
            {
                PacketEdit.SetIpv4(m, off, false, (uint)want.SrcLo, DpAction.L4None);
                state |= CtState.Snat;
            }

            if (Rd32(ip + 16) == (uint)seen.DstLo && seen.DstLo != want.DstLo)
            {
                PacketEdit.SetIpv4(m, off, true, (uint)want.DstLo, DpAction.L4None);
                state |= CtState.Dnat;
            }

            QuoteRewrite(icmp, want.Reverse());
        }

        return state | zoneBits | ((ulong)e->Mark << 32);
    }

    /// <summary>Rewrites an ICMPv4 error's quoted IPv4 header and ports to <paramref name="q"/>, keeping the quoted IP checksum and the ICMP checksum right.</summary>
    private static void QuoteRewrite(byte* icmp, in CtTuple q)
    {
        byte* ip = icmp + 8;
        byte* l4 = ip + ((ip[0] & 0xF) * 4);
        ushort csum = Rd16(icmp + 2);
        void Word(byte* p, ushort now, ref ushort icmpSum)
        {
            ushort old = Rd16(p);
            if (old != now)
            {
                Wr16(p, now);
                icmpSum = PacketEdit.Update16(icmpSum, old, now);
            }
        }

        ushort ipSum = Rd16(ip + 10);
        ushort newIpSum = PacketEdit.Update32(PacketEdit.Update32(ipSum, Rd32(ip + 12), (uint)q.SrcLo), Rd32(ip + 16), (uint)q.DstLo);
        Word(ip + 12, (ushort)(q.SrcLo >> 16), ref csum);
        Word(ip + 14, (ushort)q.SrcLo, ref csum);
        Word(ip + 16, (ushort)(q.DstLo >> 16), ref csum);
        Word(ip + 18, (ushort)q.DstLo, ref csum);
        Word(ip + 10, newIpSum, ref csum);
        if (q.Proto is CtTuple.ProtoTcp or CtTuple.ProtoUdp or CtTuple.ProtoSctp)
        {
            Word(l4, q.SrcPort, ref csum);
            Word(l4 + 2, q.DstPort, ref csum);
        }
        else if (q.IsIcmp)
        {
            Word(l4 + 4, q.SrcPort, ref csum);
        }

        Wr16(icmp + 2, csum);
    }
}
