// PacketEdit.cs - header rewrites on one packet in place, with incremental checksum updates.
//
// Checksums are updated with RFC 1624's incremental formula (HC' = ~(~HC + ~m + m')), so a rewrite
// costs a few ALU operations whatever the packet size: the IPv4 header checksum for address and TTL
// changes, and the TCP/UDP checksum for address (pseudo-header) and port changes. A UDP checksum of
// 0 over IPv4 means "none" and stays 0; a computed 0 is sent as 0xFFFF. SCTP's checksum is a CRC32c
// over the whole SCTP packet with no pseudo-header, so only a port rewrite touches it, and it cannot
// be updated incrementally: the rewrite runs two CRC32c chains (SSE4.2) over the packet in one pass,
// the old ports' and the new ones', and stores old ^ crc(old) ^ crc(new) as Open vSwitch does, so a
// packet that came with a wrong checksum leaves with one just as wrong. The caller passes the header
// offsets the key extractor found; VLAN push/pop move them by 4. Headers sit in the first segment of
// a chained mbuf; what reads or cuts the payload (the SCTP CRC, a truncation) walks the chain.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using VSwitch.Interop;
using VSwitch.Packets;

namespace VSwitch.Actions;

public static unsafe class PacketEdit
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort Rd16(byte* p) => BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ushort>(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Wr16(byte* p, ushort v) => Unsafe.WriteUnaligned(p, BinaryPrimitives.ReverseEndianness(v));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Rd32(byte* p) => BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Wr32(byte* p, uint v) => Unsafe.WriteUnaligned(p, BinaryPrimitives.ReverseEndianness(v));

    /// <summary>RFC 1624: the checksum after one 16-bit word changed from <paramref name="old"/> to <paramref name="now"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Update16(ushort csum, ushort old, ushort now)
    {
        uint s = (uint)(ushort)~csum + (ushort)~old + now;
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        return (ushort)~s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Update32(ushort csum, uint old, uint now) =>
        Update16(Update16(csum, (ushort)(old >> 16), (ushort)(now >> 16)), (ushort)old, (ushort)now);

    /// <summary>Writes a MAC (48-bit number) at <paramref name="p"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteMac(byte* p, ulong mac)
    {
        Wr16(p, (ushort)(mac >> 32));
        Wr32(p + 2, (uint)mac);
    }

    /// <summary>Adjusts the L4 checksum at <paramref name="l4"/> for a 32-bit pseudo-header/port word change.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void L4Update32(byte* l4, byte kind, uint old, uint now, bool udpZeroMeansNone)
    {
        if (kind == DpAction.L4Tcp)
        {
            Wr16(l4 + 16, Update32(Rd16(l4 + 16), old, now));
        }
        else if (kind == DpAction.L4Udp)
        {
            ushort c = Rd16(l4 + 6);
            if (c == 0 && udpZeroMeansNone)
            {
                return;
            }

            c = Update32(c, old, now);
            Wr16(l4 + 6, c == 0 ? (ushort)0xFFFF : c);
        }
        else if (kind == DpAction.L4Icmp6)
        {
            // ICMPv6's checksum covers the IPv6 pseudo-header (RFC 4443 2.3), so address rewrites reach it
            Wr16(l4 + 2, Update32(Rd16(l4 + 2), old, now));
        }
    }

    public static void SetIpv4(nint m, in HeaderOffsets off, bool dst, uint addr, byte l4Kind)
    {
        byte* d = Mbuf.Data(m);
        byte* ip = d + off.L3;
        byte* field = ip + (dst ? 16 : 12);
        uint old = Rd32(field);
        Wr32(field, addr);
        Wr16(ip + 10, Update32(Rd16(ip + 10), old, addr));
        if (off.L4 != 0xFFFF)
        {
            L4Update32(d + off.L4, l4Kind, old, addr, true);
        }
    }

    public static void SetIpv6(nint m, in HeaderOffsets off, bool dst, ulong hi, ulong lo, byte l4Kind)
    {
        byte* d = Mbuf.Data(m);
        byte* field = d + off.L3 + (dst ? 24 : 8);
        byte* l4 = off.L4 != 0xFFFF ? d + off.L4 : null;
        Span<uint> now = [(uint)(hi >> 32), (uint)hi, (uint)(lo >> 32), (uint)lo];
        for (int i = 0; i < 4; i++)
        {
            uint old = Rd32(field + 4 * i);
            Wr32(field + 4 * i, now[i]);
            if (l4 != null)
            {
                L4Update32(l4, l4Kind, old, now[i], false);
            }
        }
    }

    /// <summary>An ICMP or ICMPv6 echo's identifier (NAT's "port" for echo), its checksum updated.</summary>
    public static void SetIcmpEchoId(nint m, in HeaderOffsets off, ushort id)
    {
        if (off.L4 == 0xFFFF)
        {
            return;
        }

        byte* icmp = Mbuf.Data(m) + off.L4;
        ushort old = Rd16(icmp + 4);
        Wr16(icmp + 4, id);
        Wr16(icmp + 2, Update16(Rd16(icmp + 2), old, id));
    }

    public static void SetPort(nint m, in HeaderOffsets off, bool dst, ushort port, byte l4Kind)
    {
        if (off.L4 == 0xFFFF)
        {
            return;
        }

        byte* l4 = Mbuf.Data(m) + off.L4;
        byte* field = l4 + (dst ? 2 : 0);
        ushort old = Rd16(field);
        Wr16(field, port);
        if (l4Kind == DpAction.L4Tcp)
        {
            Wr16(l4 + 16, Update16(Rd16(l4 + 16), old, port));
        }
        else if (l4Kind == DpAction.L4Udp)
        {
            ushort c = Rd16(l4 + 6);
            if (c != 0 || off.L3 == 0xFFFF || (Mbuf.Data(m)[off.L3] >> 4) == 6)
            {
                c = Update16(c, old, port);
                Wr16(l4 + 6, c == 0 ? (ushort)0xFFFF : c);
            }
        }
        else if (l4Kind == DpAction.L4Sctp && old != port)
        {
            SctpRecompute(m, off, l4, dst ? (uint)(old ^ port) : (uint)(old ^ port) << 16);
        }
    }

    /// <summary>
    /// The SCTP checksum after a port rewrite (the new ports are in place; <paramref name="portsXor"/>
    /// is the old first word ^ the new one, host order): the CRC32c of the SCTP packet (from the
    /// common header to the end of the IP payload, padding excluded; checksum field zero) is computed
    /// for the old and the new ports in one pass, and the field becomes old ^ crc(old) ^ crc(new).
    /// </summary>
    private static void SctpRecompute(nint m, in HeaderOffsets off, byte* sh, uint portsXor)
    {
        if (off.L3 == 0xFFFF)
        {
            return;
        }

        int len = IpPayloadEnd(Mbuf.Data(m), off) - off.L4; // the SCTP packet's length, as the IP header gives it
        if (len < 12)
        {
            return; // as Open vSwitch: no SCTP header, no rewrite of its checksum
        }

        uint stored = Unsafe.ReadUnaligned<uint>(sh + 8);
        ulong first = Unsafe.ReadUnaligned<ulong>(sh); // ports and verification tag, as on the wire
        ulong oldFirst = first ^ BinaryPrimitives.ReverseEndianness(portsXor); // the ports' bytes as they were
        uint cNew = (uint)Sse42.X64.Crc32(0xFFFFFFFFUL, first);
        uint cOld = (uint)Sse42.X64.Crc32(0xFFFFFFFFUL, oldFirst);
        cNew = Sse42.Crc32(cNew, 0u); // the checksum field counts as zero
        cOld = Sse42.Crc32(cOld, 0u);

        // The rest: the first segment after the common header, then each further segment.
        byte* p = sh + 12;
        int left = len - 12;
        int inSeg = Math.Min(left, (int)(Mbuf.Data(m) + Mbuf.DataLen(m) - p));
        nint seg = m;
        while (true)
        {
            Crc32cPair(p, inSeg, ref cOld, ref cNew);
            left -= inSeg;
            seg = left > 0 ? *(nint*)(seg + Mbuf.NextOffset) : 0;
            if (seg == 0)
            {
                break;
            }

            p = Mbuf.Data(seg);
            inSeg = Math.Min(left, (int)Mbuf.DataLen(seg));
        }

        Unsafe.WriteUnaligned(sh + 8, stored ^ ~cOld ^ ~cNew); // ~crc in memory order is the wire's CRC32c
    }

    /// <summary>Advances two CRC32c chains over the same <paramref name="n"/> bytes (the two are independent, so the instructions overlap).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Crc32cPair(byte* p, int n, ref uint a, ref uint b)
    {
        ulong x = a, y = b;
        int i = 0;
        for (; i + 8 <= n; i += 8)
        {
            ulong v = Unsafe.ReadUnaligned<ulong>(p + i);
            x = Sse42.X64.Crc32(x, v);
            y = Sse42.X64.Crc32(y, v);
        }

        uint xa = (uint)x, yb = (uint)y;
        for (; i < n; i++)
        {
            xa = Sse42.Crc32(xa, p[i]);
            yb = Sse42.Crc32(yb, p[i]);
        }

        a = xa;
        b = yb;
    }

    /// <summary>The frame offset where the IP payload ends (IPv4 total length, IPv6 payload length): Ethernet padding after it is not the transport's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int IpPayloadEnd(byte* d, in HeaderOffsets off)
    {
        byte* ip = d + off.L3;
        return (ip[0] >> 4) == 6 ? off.L3 + 40 + Rd16(ip + 4) : off.L3 + Rd16(ip + 2);
    }

    /// <summary>
    /// Cuts the packet to its first <paramref name="maxLen"/> bytes (Open vSwitch's datapath trunc;
    /// no-op when it is not longer). In a chain, the segment the cut falls in becomes the last; the
    /// segments after it are returned (their head, 0 when none) for the caller to free with the
    /// group's others in one call.
    /// </summary>
    public static nint Truncate(nint m, uint maxLen)
    {
        uint pktLen = Mbuf.PktLen(m);
        if (pktLen <= maxLen)
        {
            return 0;
        }

        *(uint*)(m + Mbuf.PktLenOffset) = maxLen;
        nint seg = m;
        uint before = 0; // bytes in the segments before seg
        ushort segs = 1;
        while (before + Mbuf.DataLen(seg) < maxLen)
        {
            before += Mbuf.DataLen(seg);
            seg = *(nint*)(seg + Mbuf.NextOffset);
            segs++;
        }

        *(ushort*)(seg + Mbuf.DataLenOffset) = (ushort)(maxLen - before);
        nint rest = *(nint*)(seg + Mbuf.NextOffset);
        if (rest != 0)
        {
            *(nint*)(seg + Mbuf.NextOffset) = 0;
            *(ushort*)(m + Mbuf.NbSegsOffset) = segs;
        }

        return rest;
    }

    /// <summary>Decrements TTL/hop limit; false when the packet must be dropped (TTL 0 or 1).</summary>
    public static bool DecTtl(nint m, in HeaderOffsets off, bool v6)
    {
        if (off.L3 == 0xFFFF)
        {
            return false;
        }

        byte* ip = Mbuf.Data(m) + off.L3;
        if (v6)
        {
            if (ip[7] <= 1)
            {
                return false;
            }

            ip[7]--;
            return true;
        }

        if (ip[8] <= 1)
        {
            return false;
        }

        ushort oldWord = Rd16(ip + 8);
        ip[8]--;
        Wr16(ip + 10, Update16(Rd16(ip + 10), oldWord, Rd16(ip + 8)));
        return true;
    }

    /// <summary>Sets the IPv4 TTL (incremental header checksum update) or the IPv6 hop limit.</summary>
    public static void SetTtl(nint m, in HeaderOffsets off, bool v6, byte ttl)
    {
        if (off.L3 == 0xFFFF)
        {
            return;
        }

        byte* ip = Mbuf.Data(m) + off.L3;
        if (v6)
        {
            ip[7] = ttl;
            return;
        }

        ushort oldWord = Rd16(ip + 8);
        ip[8] = ttl;
        Wr16(ip + 10, Update16(Rd16(ip + 10), oldWord, Rd16(ip + 8)));
    }

    /// <summary>
    /// Sets the <paramref name="mask"/> bits of the IPv4 ToS byte (incremental header checksum update)
    /// or the IPv6 traffic class (bits 4-11 of the header's first word) to <paramref name="value"/>.
    /// Neither is in a transport checksum's pseudo-header.
    /// </summary>
    public static void SetTos(nint m, in HeaderOffsets off, bool v6, byte value, byte mask)
    {
        if (off.L3 == 0xFFFF)
        {
            return;
        }

        byte* ip = Mbuf.Data(m) + off.L3;
        if (v6)
        {
            ushort w = Rd16(ip);
            byte tc = (byte)(w >> 4);
            tc = (byte)((tc & ~mask) | (value & mask));
            Wr16(ip, (ushort)((w & 0xF00F) | (tc << 4)));
            return;
        }

        ushort oldWord = Rd16(ip);
        ip[1] = (byte)((ip[1] & ~mask) | (value & mask));
        Wr16(ip + 10, Update16(Rd16(ip + 10), oldWord, Rd16(ip)));
    }

    /// <summary>Pushes a VLAN tag; false when the mbuf has no headroom or is not one segment.</summary>
    public static bool PushVlan(nint m, ref HeaderOffsets off, ushort tpid, ushort tci)
    {
        if (Mbuf.DataOff(m) < 4 || Mbuf.DataLen(m) < 12) // the tag goes into the first segment's headroom
        {
            return false;
        }

        Mbuf.AdjustFront(m, 4);
        byte* d = Mbuf.Data(m);
        Buffer.MemoryCopy(d + 4, d, 12, 12);
        Wr16(d + 12, tpid);
        Wr16(d + 14, tci);
        if (off.L3 != 0xFFFF)
        {
            off.L3 += 4;
        }

        if (off.L4 != 0xFFFF)
        {
            off.L4 += 4;
        }

        return true;
    }

    /// <summary>Removes the outermost VLAN tag when there is one.</summary>
    public static void PopVlan(nint m, ref HeaderOffsets off)
    {
        byte* d = Mbuf.Data(m);
        if (Mbuf.DataLen(m) < 18)
        {
            return;
        }

        ushort t = Rd16(d + 12);
        if (t != KeyExtractor.EthVlan && t != KeyExtractor.EthQinQ)
        {
            return;
        }

        Buffer.MemoryCopy(d, d + 4, 12, 12);
        Mbuf.AdjustFront(m, -4);
        if (off.L3 != 0xFFFF)
        {
            off.L3 -= 4;
        }

        if (off.L4 != 0xFFFF)
        {
            off.L4 -= 4;
        }
    }

    /// <summary>Sets bits of the outermost TCI (no-op on an untagged frame).</summary>
    public static void SetVlanTci(nint m, ushort value, ushort mask)
    {
        byte* d = Mbuf.Data(m);
        if (Mbuf.DataLen(m) < 18)
        {
            return;
        }

        ushort t = Rd16(d + 12);
        if (t == KeyExtractor.EthVlan || t == KeyExtractor.EthQinQ)
        {
            Wr16(d + 14, (ushort)((Rd16(d + 14) & ~mask) | (value & mask)));
        }
    }
}
