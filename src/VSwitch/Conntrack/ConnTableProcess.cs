// ConnTableProcess.cs - a ct action on one packet: parse its tuple, find or create its connection,
// track TCP, apply NAT, and return the connection-tracking word the packet carries on (ct_state,
// ct_zone and ct_mark in FlowKey's word 9 layout).
//
// Runs on the PMD for every packet a ct op reaches (a ct op is per packet: the megaflow in front of it
// need not separate connections). The tuple comes from TupleParser (the packet from its IP header),
// TCP state from TcpTracker, other protocols' from UdpIcmpTracker, checksum updates for the quoted
// packet of an ICMP error from NatChecksum; allocates nothing, takes no lock (ConnTable.cs says how
// writers share the table). Fragments are tracked by the first fragment (FragmentTable.cs says how
// and why), not reassembled.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using VSwitch.Actions;
using VSwitch.Interop;
using VSwitch.Packets;
using VSwitch.Pmd;

namespace VSwitch.Conntrack;

/// <summary>A packet's tuple as a ct op's prefetch parsed it (ConnTable.Prefetch), for Process to take.</summary>
public struct CtParsed
{
    public ConnTuple Tuple;
    public TupleInfo Info;
    public TupleStatus Status;

    /// <summary>The tuple's hash in the op's zone; 0: not computed.</summary>
    public uint Hash;
}

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

    /// <summary>Connections above which a ct op prefetches its group's buckets and entries (below, the table stays in cache).</summary>
    public int PrefetchAbove { get; set; } = 16384;

    /// <summary>
    /// Before a ct op runs on a group of <paramref name="k"/> packets: each packet's tuple is parsed
    /// into <paramref name="parsed"/> (which Process then takes instead of parsing again), and the
    /// bucket of each tuple, then the head entry of that bucket, are prefetched, so the group's cache
    /// misses overlap instead of running one after another (with 100 000 connections the table is
    /// far larger than the caches). Changes nothing in the table.
    /// </summary>
    public void Prefetch(nint* pkts, HeaderOffsets* offs, int k, ushort zone, CtParsed* parsed)
    {
        for (int j = 0; j < k; j++)
        {
            CtParsed* r = parsed + j;
            r->Hash = 0;
            r->Status = TupleStatus.Truncated;
            nint m = pkts[j];
            int len = Mbuf.DataLen(m);
            int l3 = offs[j].L3;
            if (l3 == 0xFFFF || l3 >= len)
            {
                continue; // Process refuses it before reading the parse
            }

            byte* p = Mbuf.Data(m) + l3;
            r->Status = TupleParser.Parse(p, len - l3, (int)Mbuf.PktLen(m) - l3, (p[0] >> 4) == 6 ? KeyExtractor.EthIpv6 : KeyExtractor.EthIp, out r->Tuple, out r->Info);
            if (r->Status != TupleStatus.Ok || r->Info.Kind is TupleKind.IcmpError or TupleKind.LaterFragment)
            {
                continue; // looked up by another tuple (the quoted one), or not at all
            }

            uint h = new CtTuple(r->Tuple, zone).Hash(); // (a hash of 0 is neither kept nor prefetched)
            r->Hash = h;
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(_buckets + (h & _bucketMask));
        }

        for (int j = 0; j < k; j++)
        {
            uint h = parsed[j].Hash;
            if (h == 0)
            {
                continue;
            }

            int node = Volatile.Read(ref _buckets[h & _bucketMask]);
            if (node >= 0)
            {
                byte* e = (byte*)(_entries + (node >> 1));
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(e);
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(e + 64);
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(e + 128);
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(e + 192);
            }
        }
    }

    /// <summary>+trk+inv with no connection: the packet's connection words (if wanted) read 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong NoConnection(ulong* ext, ulong zoneBits)
    {
        if (ext != null)
        {
            new Span<ulong>(ext, DpKey.CtExtWords).Clear();
        }

        return CtState.Trk | CtState.Inv | zoneBits;
    }

    /// <summary>
    /// The connection's words of the key (Packets/DpKey.cs) for a packet of connection <paramref name="orig"/>
    /// (its original direction's tuple) with label <paramref name="labelHi"/>:<paramref name="labelLo"/>;
    /// ICMP and ICMPv6 put the type and code where the ports go, as Open vSwitch.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteTupleWords(ulong* ext, in ConnTuple orig, ulong labelHi, ulong labelLo)
    {
        ext[0] = labelHi;
        ext[1] = labelLo;
        bool v4 = orig.Family == ConnTuple.V4;
        ext[2] = v4 ? (uint)orig.SrcLo | ((ulong)(uint)orig.DstLo << 32) : 0;
        ext[3] = v4 ? 0 : orig.SrcHi;
        ext[4] = v4 ? 0 : orig.SrcLo;
        ext[5] = v4 ? 0 : orig.DstHi;
        ext[6] = v4 ? 0 : orig.DstLo;
        bool icmp = orig.Protocol is KeyExtractor.ProtoIcmp or KeyExtractor.ProtoIcmpv6;
        ulong sp = icmp ? orig.IcmpType : orig.SrcPort, dp = icmp ? orig.IcmpCode : orig.DstPort;
        ext[7] = sp | (dp << 16) | ((ulong)orig.Protocol << 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteTupleWords(ulong* ext, ConnEntry* e)
    {
        if (ext != null)
        {
            WriteTupleWords(ext, e->Orig.T, e->LabelHi, e->LabelLo);
        }
    }

    /// <summary>
    /// Runs ct with <paramref name="spec"/> on one packet; returns the packet's new word 9 (ct_state |
    /// ct_zone &lt;&lt; 8 | ct_mark &lt;&lt; 32; recirc_id bits zero). <paramref name="current"/> is the word the
    /// packet carries: a packet already tracked in this zone (a second ct after recirculation) is not
    /// tracked again (its TCP state and counters already saw it), as Open vSwitch. <paramref name="frags"/>
    /// is the PMD's memory of first fragments' verdicts (FragmentTable.cs); null: fragments are +inv.
    /// <paramref name="ext"/> (DpKey.CtExtWords words, or null when no rule reads them) gets the packet's
    /// connection words: written when a connection is found or the packet is new, zeroed when there is
    /// none, left as they were when a second ct finds nothing more.
    /// </summary>
    public ulong Process(nint m, ref HeaderOffsets off, DpCtSpec* spec, ulong now, PmdCounters* c, ulong current = 0, FragmentTable? frags = null, ulong* ext = null, CtParsed* parsed = null)
    {
        byte* d = Mbuf.Data(m);
        int len = Mbuf.DataLen(m);
        ushort zone = spec->Zone;
        ulong zoneBits = (ulong)zone << 8;
        if (off.L3 == 0xFFFF || off.L3 >= len)
        {
            c->CtInvalid++;
            return NoConnection(ext, zoneBits);
        }

        byte* l3 = d + off.L3;
        // headers from the first segment, lengths against the whole frame (a chain of mbufs: a jumbo frame)
        TupleStatus status;
        ConnTuple ct;
        TupleInfo info;
        uint hash = 0;
        if (parsed != null)
        {
            status = parsed->Status; // Prefetch parsed it (and hashed its tuple)
            ct = parsed->Tuple;
            info = parsed->Info;
            hash = parsed->Hash;
        }
        else
        {
            status = TupleParser.Parse(l3, len - off.L3, (int)Mbuf.PktLen(m) - off.L3, (l3[0] >> 4) == 6 ? KeyExtractor.EthIpv6 : KeyExtractor.EthIp, out ct, out info);
        }

        if (status != TupleStatus.Ok || ((info.FirstFragment || info.Kind == TupleKind.LaterFragment) && frags == null))
        {
            c->CtInvalid++;
            return NoConnection(ext, zoneBits);
        }

        bool again = (current & CtState.Trk) != 0 && (ushort)(current >> 8) == zone && (current & CtState.Inv) == 0;
        if (info.Kind == TupleKind.LaterFragment)
        {
            // Also on a second ct (after recirculation): the first fragment may have been committed
            // and NATed since (both in one burst); once NATed, this one is found no more and keeps its state.
            return LaterFragment(m, off, ct, info, zone, now, c, frags!, again ? current : 0, ext);
        }

        if (info.FirstFragment && info.Kind != TupleKind.IcmpError) // an error's tuple is the quoted packet's, not its datagram's
        {
            // the later fragments take this one's tuple words too, whether or not this pass wants them
            ulong* words = stackalloc ulong[DpKey.CtExtWords];
            if (ext != null)
            {
                new Span<ulong>(ext, DpKey.CtExtWords).CopyTo(new Span<ulong>(words, DpKey.CtExtWords));
            }
            else
            {
                new Span<ulong>(words, DpKey.CtExtWords).Clear();
            }

            ulong w = Whole(m, ref off, l3, ct, info, spec, now, c, zoneBits, again, current, words, hash);

            if (ext != null)
            {
                new Span<ulong>(words, DpKey.CtExtWords).CopyTo(new Span<ulong>(ext, DpKey.CtExtWords));
            }

            bool v4 = ct.Family == ConnTuple.V4;
            frags!.Remember(ct, info.FragmentId, zone, w, v4 ? 0 : Rd64(l3 + 8), v4 ? Rd32(l3 + 12) : Rd64(l3 + 16),
                v4 ? 0 : Rd64(l3 + 24), v4 ? Rd32(l3 + 16) : Rd64(l3 + 32), now + ((ulong)FragmentTable.Seconds * TscHz), words);
            return w;
        }

        return Whole(m, ref off, l3, ct, info, spec, now, c, zoneBits, again, current, ext, hash);
    }

    /// <summary>A later fragment: the verdict and address rewrite of its datagram's first fragment, or +inv.</summary>
    private static ulong LaterFragment(nint m, in HeaderOffsets off, in ConnTuple ct, in TupleInfo info, ushort zone, ulong now, PmdCounters* c, FragmentTable frags, ulong tracked, ulong* ext)
    {
        FragmentEntry* f = frags.Find(ct, info.FragmentId, zone, now);
        if (f == null && tracked != 0)
        {
            return tracked;
        }

        if (f == null)
        {
            c->CtInvalid++; // before its first fragment, or forgotten
            return NoConnection(ext, (ulong)zone << 8);
        }

        bool v4 = ct.Family == ConnTuple.V4; // no transport header here: the IP header's addresses only
        if (f->NewSrcHi != ct.SrcHi || f->NewSrcLo != ct.SrcLo)
        {
            SetAddr(m, off, v4, false, f->NewSrcHi, f->NewSrcLo, DpAction.L4None);
        }

        if (f->NewDstHi != ct.DstHi || f->NewDstLo != ct.DstLo)
        {
            SetAddr(m, off, v4, true, f->NewDstHi, f->NewDstLo, DpAction.L4None);
        }

        if (ext != null)
        {
            new Span<ulong>(f->Ext, DpKey.CtExtWords).CopyTo(new Span<ulong>(ext, DpKey.CtExtWords));
        }

        return f->CtWord;
    }

    /// <summary>A packet with its transport header (not a later fragment).</summary>
    private ulong Whole(nint m, ref HeaderOffsets off, byte* l3, in ConnTuple ct, in TupleInfo info, DpCtSpec* spec, ulong now, PmdCounters* c, ulong zoneBits, bool again, ulong current, ulong* ext, uint hash)
    {
        ushort zone = spec->Zone;
        var t = new CtTuple(ct, zone);
        if (info.Kind == TupleKind.IcmpError)
        {
            return Related(m, l3, off, t, info, spec, zoneBits, again ? current : 0, c, ext);
        }

        c->CtLookups++;
        uint h = hash != 0 ? hash : t.Hash();
        int node = Find(t, h);
        TcpSegment seg = default;
        bool tcp = ct.Protocol == KeyExtractor.ProtoTcp;
        if (tcp)
        {
            seg = Segment(l3, info);
        }

        if (node < 0 && again)
        {
            // Tracked already in this zone, and NATed by that ct: its tuple is now the reverse of the
            // other direction's (Open vSwitch keeps the connection with the packet; here it is found again).
            CtTuple r = t.Reverse();
            int other = Find(r, r.Hash());
            if (other >= 0)
            {
                return Existing(m, ref off, _entries + (other >> 1), (other & 1) == 0, t, spec, now, zoneBits, ext, count: false);
            }
        }

        if (node >= 0)
        {
            ConnEntry* e = _entries + (node >> 1);
            bool reply = (node & 1) != 0;
            if (again)
            {
                return Existing(m, ref off, e, reply, t, spec, now, zoneBits, ext, count: false);
            }

            // force: a committed connection met in its reply direction is ended and this packet starts
            // one its way, if it may open one (a TCP SYN; any other protocol's packet).
            bool force = (spec->Flags & (DpCtSpec.FlagForce | DpCtSpec.FlagCommit)) == (DpCtSpec.FlagForce | DpCtSpec.FlagCommit) && reply
                && (tcp ? TcpTracker.Opens(seg) : UdpIcmpTracker.Opens(ct, info.Kind));
            if (force)
            {
                TryKill(e);
                node = -1;
            }
            else if (tcp)
            {
                // the time first: a segment that moves the connection to a shorter timeout must not let
                // a sweep expire it by its old last-seen time
                if (reply)
                {
                    Volatile.Write(ref e->LastReply, now);
                }
                else
                {
                    Volatile.Write(ref e->LastOrig, now);
                }

                TcpVerdict v = TcpTracker.Update(ref e->Tcp, reply, seg);
                if (v == TcpVerdict.Restart)
                {
                    TryKill(e); // a new connection on the tuple of a closed one
                    node = -1;
                }
                else if (v == TcpVerdict.Invalid)
                {
                    c->CtInvalid++;
                    WriteTupleWords(ext, e); // a segment of a known connection: its mark, label and tuple (Open vSwitch)
                    return CtState.Trk | CtState.Inv | zoneBits | ((ulong)e->Mark << 32);
                }
            }

            if (node >= 0)
            {
                return Existing(m, ref off, e, reply, t, spec, now, zoneBits, ext);
            }
        }

        // No connection: is this packet allowed to start one?
        if (tcp ? !TcpTracker.Opens(seg) : !UdpIcmpTracker.Opens(ct, info.Kind))
        {
            c->CtInvalid++;
            return NoConnection(ext, zoneBits); // a mid-stream TCP segment, an echo reply nobody asked for
        }

        if ((spec->Flags & DpCtSpec.FlagCommit) == 0)
        {
            if (ext != null)
            {
                WriteTupleWords(ext, ct, 0, 0); // not committed: the tuple is the packet's own
            }

            return CtState.Trk | CtState.New | zoneBits;
        }

        return Commit(m, ref off, t, h, tcp, seg, spec, now, zoneBits, c, ext);
    }

    private ulong Existing(nint m, ref HeaderOffsets off, ConnEntry* e, bool reply, in CtTuple t, DpCtSpec* spec, ulong now, ulong zoneBits, ulong* ext, bool count = true)
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
            UdpIcmpTracker.Update(ref e->Dgram, true);
        }
        else
        {
            e->LastOrig = now;
            e->PacketsOrig++;
            e->BytesOrig += bytes;
        }

        bool answered = e->Orig.T.Protocol == KeyExtractor.ProtoTcp ? TcpTracker.Answered(e->Tcp) : UdpIcmpTracker.Replied(e->Dgram);
        ulong state = CtState.Trk | (answered ? CtState.Est : CtState.New) | (reply ? CtState.Rpl : 0u);
        if (e->Nat != 0 && spec->Nat != CtNatKind.None)
        {
            state |= Translate(m, off, e, reply, t);
        }

        if ((spec->Flags & DpCtSpec.FlagCommit) != 0)
        {
            Exec(e, spec);
        }

        WriteTupleWords(ext, e);
        return state | zoneBits | ((ulong)e->Mark << 32);
    }

    private ulong Commit(nint m, ref HeaderOffsets off, in CtTuple t, uint h, bool tcp, in TcpSegment seg, DpCtSpec* spec, ulong now, ulong zoneBits, PmdCounters* c, ulong* ext)
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

            // The whole entry is built before it is linked: a PMD that finds it (as a twin created at
            // the same time) sees its trackers, NAT and mark.
            ConnEntry n = default;
            n.Orig = t;
            n.Reply = reply;
            n.Created = now;
            n.LastOrig = now;
            n.PacketsOrig = 1;
            n.BytesOrig = Mbuf.PktLen(m);
            if (tcp)
            {
                n.Tcp = TcpTracker.Start(seg);
            }
            else
            {
                n.Dgram = UdpIcmpTracker.Start(t.T);
            }

            n.Nat = spec->Nat switch
            {
                CtNatKind.Src => (byte)CtState.Snat,
                CtNatKind.Dst => (byte)CtState.Dnat,
                _ => 0,
            };
            Exec(&n, spec);
            int node = Create(n, h, rh, out bool created);
            if (node == -1)
            {
                c->CtFull++;
                return NoConnection(ext, zoneBits);
            }

            if (node == -2)
            {
                continue;
            }

            ConnEntry* e = _entries + (node >> 1);
            if (!created)
            {
                return Existing(m, ref off, e, (node & 1) != 0, t, spec, now, zoneBits, ext); // another PMD stored it first
            }

            c->CtCommits++;
            ulong state = CtState.Trk | CtState.New;
            if (e->Nat != 0)
            {
                state |= Translate(m, off, e, false, t);
            }

            WriteTupleWords(ext, e);
            return state | zoneBits | ((ulong)e->Mark << 32);
        }

        c->CtFull++; // every NAT tuple tried is taken
        return NoConnection(ext, zoneBits);
    }

    /// <summary>exec(set_field:...->ct_mark / ct_label) of a commit.</summary>
    private static void Exec(ConnEntry* e, DpCtSpec* spec)
    {
        if ((spec->Flags & DpCtSpec.FlagMark) != 0)
        {
            // Both directions' PMDs may commit: a lost update would drop bits of the other's mask.
            uint old, now;
            do
            {
                old = Volatile.Read(ref e->Mark);
                now = (old & ~spec->MarkMask) | spec->MarkValue;
            }
            while (old != now && Interlocked.CompareExchange(ref e->Mark, now, old) != old);
        }

        if ((spec->Flags & DpCtSpec.FlagLabel) != 0)
        {
            // Each 64-bit half by CAS, as the mark (a label is matchable and cached per connection;
            // a reader may still see one half of a commit another PMD is making at that instant).
            SetBits(ref e->LabelHi, spec->LabelMaskHi, spec->LabelHi);
            SetBits(ref e->LabelLo, spec->LabelMaskLo, spec->LabelLo);
        }
    }

    private static void SetBits(ref ulong word, ulong mask, ulong value)
    {
        ulong old, now;
        do
        {
            old = Volatile.Read(ref word);
            now = (old & ~mask) | value;
        }
        while (old != now && Interlocked.CompareExchange(ref word, now, old) != old);
    }

    /// <summary>
    /// The reply tuple of attempt <paramref name="attempt"/> for a new NATed connection: the address
    /// from the range by hash, the port (or echo id) by hash from the range, or the packet's own
    /// port first when the range has none. False when the spec cannot apply (family mismatch).
    /// </summary>
    private static bool ChooseNat(DpCtSpec* s, in CtTuple t, ref CtTuple reply, uint seed, int attempt)
    {
        bool v6 = (s->Flags & DpCtSpec.FlagV6) != 0;
        if (v6 != (t.T.Family == ConnTuple.V6))
        {
            return false;
        }

        ulong hi = s->AddrMinHi, lo = s->AddrMinLo;
        ulong span = s->AddrMaxLo - s->AddrMinLo; // ranges within one /64 (IPv6) or anywhere in IPv4
        if (span != 0 && s->AddrMaxHi == s->AddrMinHi)
        {
            ulong pick = seed + (ulong)(attempt / 16);
            lo += span == ulong.MaxValue ? pick : pick % (span + 1); // a whole /64: any offset is in range
        }

        ushort port;
        bool hasPorts = (s->Flags & DpCtSpec.FlagPorts) != 0;
        bool ports = t.T.Protocol is KeyExtractor.ProtoTcp or KeyExtractor.ProtoUdp or KeyExtractor.ProtoSctp || t.IsIcmp;
        if (hasPorts)
        {
            uint n = (uint)(s->PortMax - s->PortMin) + 1;
            port = (ushort)(s->PortMin + ((seed + (uint)attempt) % n));
        }
        else
        {
            ushort own = s->Nat == CtNatKind.Src ? t.T.SrcPort : t.T.DstPort;
            port = attempt == 0 || !ports || s->Nat == CtNatKind.Dst ? own : (ushort)(1024 + ((seed + (uint)attempt) % (65536 - 1024)));
        }

        if (s->Nat == CtNatKind.Src)
        {
            reply.T.DstHi = hi;
            reply.T.DstLo = lo;
            if (t.IsIcmp)
            {
                reply.T.SrcPort = reply.T.DstPort = port; // the echo id, the same both ways
            }
            else if (ports)
            {
                reply.T.DstPort = port;
            }
        }
        else
        {
            reply.T.SrcHi = hi;
            reply.T.SrcLo = lo;
            if (ports && !t.IsIcmp && hasPorts)
            {
                reply.T.SrcPort = port;
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
        ConnTuple want = reply ? e->Orig.T.Reverse() : e->Reply.T.Reverse();
        ref readonly ConnTuple now = ref t.T;
        byte kind = L4Kind(now.Protocol);
        ulong bits = 0;
        bool v4 = now.Family == ConnTuple.V4;
        if (want.SrcLo != now.SrcLo || want.SrcHi != now.SrcHi)
        {
            SetAddr(m, off, v4, false, want.SrcHi, want.SrcLo, kind);
            bits |= CtState.Snat;
        }

        if (want.DstLo != now.DstLo || want.DstHi != now.DstHi)
        {
            SetAddr(m, off, v4, true, want.DstHi, want.DstLo, kind);
            bits |= CtState.Dnat;
        }

        if (t.IsIcmp)
        {
            if (want.SrcPort != now.SrcPort && off.L4 != 0xFFFF)
            {
                PacketEdit.SetIcmpEchoId(m, off, want.SrcPort);
                bits |= reply ? CtState.Dnat : CtState.Snat;
            }
        }
        else if (now.Protocol is KeyExtractor.ProtoTcp or KeyExtractor.ProtoUdp or KeyExtractor.ProtoSctp)
        {
            byte portKind = now.Protocol == KeyExtractor.ProtoSctp ? DpAction.L4Sctp : kind;
            if (want.SrcPort != now.SrcPort)
            {
                PacketEdit.SetPort(m, off, false, want.SrcPort, portKind);
                bits |= CtState.Snat;
            }

            if (want.DstPort != now.DstPort)
            {
                PacketEdit.SetPort(m, off, true, want.DstPort, portKind);
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
    private static byte L4Kind(byte protocol) => protocol switch
    {
        KeyExtractor.ProtoTcp => DpAction.L4Tcp,
        KeyExtractor.ProtoUdp => DpAction.L4Udp,
        KeyExtractor.ProtoIcmpv6 => DpAction.L4Icmp6,
        _ => DpAction.L4None,
    };

    /// <summary>The TCP fields the tracker needs (window scale from a SYN's options); the parser checked the header is there.</summary>
    private static TcpSegment Segment(byte* l3, in TupleInfo info)
    {
        byte* l4 = l3 + info.L4;
        int doff = (l4[12] >> 4) * 4;
        int payload = info.End - info.L4 - doff;
        ushort flags = l4[13];
        byte scale = TcpTracker.NoScale;
        int optEnd = Math.Min(doff, info.End - info.L4);
        if ((flags & TcpTracker.Syn) != 0)
        {
            for (int i = 20; i < optEnd;)
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

                if (i + 1 >= optEnd)
                {
                    break;
                }

                int olen = l4[i + 1];
                if (olen < 2 || i + olen > optEnd)
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
    /// the reply direction), with that connection's NAT applied to the outer addresses it concerns
    /// and undone on the quoted packet. Not related to any connection: +inv.
    /// </summary>
    private ulong Related(nint m, byte* l3, in HeaderOffsets off, in CtTuple quoted, in TupleInfo info, DpCtSpec* spec, ulong zoneBits, ulong tracked, PmdCounters* c, ulong* ext)
    {
        CtTuple key = quoted.Reverse(); // the error travels against the quoted packet
        int node = Find(key, key.Hash());
        if (node < 0 && tracked != 0)
        {
            return tracked; // a second ct after one that un-NATed the quote: nothing more to find
        }

        if (node < 0)
        {
            c->CtInvalid++;
            return NoConnection(ext, zoneBits);
        }

        ConnEntry* e = _entries + (node >> 1);
        bool reply = (node & 1) != 0;
        ulong state = CtState.Trk | CtState.Rel | (reply ? CtState.Rpl : 0u);
        if (e->Nat != 0 && spec->Nat != CtNatKind.None)
        {
            // The error, as seen, carries `seen` (this direction's tuple); its receiver knows the
            // connection as `want`, and sent the quoted packet as want's reverse.
            ConnTuple seen = reply ? e->Reply.T : e->Orig.T;
            ConnTuple want = reply ? e->Orig.T.Reverse() : e->Reply.T.Reverse();
            bool v4 = seen.Family == ConnTuple.V4;
            byte kind = v4 ? DpAction.L4None : DpAction.L4Icmp6;
            ulong outerSrcHi = v4 ? 0 : Rd64(l3 + 8), outerSrcLo = v4 ? Rd32(l3 + 12) : Rd64(l3 + 16);
            ulong outerDstHi = v4 ? 0 : Rd64(l3 + 24), outerDstLo = v4 ? Rd32(l3 + 16) : Rd64(l3 + 32);
            if (outerSrcHi == seen.SrcHi && outerSrcLo == seen.SrcLo && (seen.SrcHi != want.SrcHi || seen.SrcLo != want.SrcLo))
            {
                SetAddr(m, off, v4, false, want.SrcHi, want.SrcLo, kind);
                state |= CtState.Snat;
            }

            if (outerDstHi == seen.DstHi && outerDstLo == seen.DstLo && (seen.DstHi != want.DstHi || seen.DstLo != want.DstLo))
            {
                SetAddr(m, off, v4, true, want.DstHi, want.DstLo, kind);
                state |= CtState.Dnat;
            }

            ConnTuple q = want.Reverse();
            var packet = new Span<byte>(l3, info.End);
            if (q.SrcHi != quoted.T.SrcHi || q.SrcLo != quoted.T.SrcLo || q.SrcPort != quoted.T.SrcPort)
            {
                NatChecksum.RewriteQuoted(packet, quoted.T, info, true, q.SrcHi, q.SrcLo, q.SrcPort);
            }

            if (q.DstHi != quoted.T.DstHi || q.DstLo != quoted.T.DstLo || q.DstPort != quoted.T.DstPort)
            {
                NatChecksum.RewriteQuoted(packet, quoted.T, info, false, q.DstHi, q.DstLo, q.DstPort);
            }
        }

        WriteTupleWords(ext, e); // a related packet's tuple is its connection's (Open vSwitch)
        return state | zoneBits | ((ulong)e->Mark << 32);
    }
}
