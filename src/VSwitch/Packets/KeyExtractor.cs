// KeyExtractor.cs - parses one frame's headers into a DpKey (the datapath key), never reading past the frame.
//
// Ethernet, 802.1Q / 802.1ad (up to two tags), ARP, IPv4 (options, fragments), IPv6 (hop-by-hop,
// routing, destination options, fragment and AH extension headers), TCP (with flags), UDP, SCTP, ICMP and
// ICMPv6. Every read is preceded by a length check against the frame (data_len of the first
// segment), so a truncated or lying header sets ParseFlags.Truncated or ParseFlags.Bad and parsing
// stops there; nothing throws. The byte offsets of the network and transport headers are returned
// for the actions that rewrite them. The hash is CRC32C over the key's words (SSE4.2).
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace VSwitch.Packets;

/// <summary>Where the headers start inside the frame (0xFFFF: not present).</summary>
public struct HeaderOffsets
{
    /// <summary>Offset of the IPv4/IPv6/ARP header.</summary>
    public ushort L3;

    /// <summary>Offset of the TCP/UDP/ICMP header.</summary>
    public ushort L4;
}

public static unsafe class KeyExtractor
{
    public const ushort EthIp = 0x0800;
    public const ushort EthArp = 0x0806;
    public const ushort EthIpv6 = 0x86DD;
    public const ushort EthVlan = 0x8100;
    public const ushort EthQinQ = 0x88A8;
    public const byte ProtoIcmp = 1;
    public const byte ProtoTcp = 6;
    public const byte ProtoUdp = 17;
    public const byte ProtoIcmpv6 = 58;
    public const byte ProtoSctp = 132;
    public const ushort VlanPresent = 0x1000;
    private const int MaxIpv6ExtHeaders = 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort Be16(byte* p) => BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ushort>(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Be32(byte* p) => BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Be64(byte* p) => BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(p));

    /// <summary>Reads a MAC (6 bytes) as a 48-bit big-endian number.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mac(byte* p) => ((ulong)Be16(p) << 32) | Be32(p + 2);

    /// <summary>
    /// Fills <paramref name="key"/> (all words written) from the <paramref name="len"/> bytes at
    /// <paramref name="d"/> received on datapath port <paramref name="inPort"/>; returns the parse flags.
    /// </summary>
    public static ushort Extract(byte* d, int len, ushort inPort, DpKey* key, HeaderOffsets* off) => Extract(d, len, len, inPort, key, off);

    /// <summary>
    /// As above for a frame of <paramref name="frameLen"/> bytes whose first <paramref name="len"/>
    /// are readable at <paramref name="d"/> (a multi-segment mbuf: its first segment). Headers are read
    /// from the first segment only (one that ends inside a header is Truncated); length fields are
    /// checked against the whole frame, so a jumbo frame in a chain of mbufs parses like any other.
    /// </summary>
    public static ushort Extract(byte* d, int len, int frameLen, ushort inPort, DpKey* key, HeaderOffsets* off)
    {
        ulong* w = key->W;
        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated)
        {
            System.Runtime.Intrinsics.Vector256.Store(System.Runtime.Intrinsics.Vector256<ulong>.Zero, w);
            System.Runtime.Intrinsics.Vector256.Store(System.Runtime.Intrinsics.Vector256<ulong>.Zero, w + 4);
            System.Runtime.Intrinsics.Vector256.Store(System.Runtime.Intrinsics.Vector256<ulong>.Zero, w + 8);
            System.Runtime.Intrinsics.Vector256.Store(System.Runtime.Intrinsics.Vector256<ulong>.Zero, w + 12);
            System.Runtime.Intrinsics.Vector128.Store(System.Runtime.Intrinsics.Vector128<ulong>.Zero, w + 16);
            w[0] = inPort;
        }
        else
        {
            for (int i = 1; i < DpKey.Words; i++)
            {
                w[i] = 0;
            }

            w[0] = inPort;
        }

        off->L3 = 0xFFFF;
        off->L4 = 0xFFFF;
        ushort parse = Parse(d, len, Math.Max(len, frameLen), w, off);
        if (len >= 14 && d[12] == 0x88 && d[13] == 0xA8)
        {
            parse |= ParseFlags.OuterQinQ;
        }
        w[3] |= (ulong)parse << FlowKey.ParseShift;
        return parse;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort Parse(byte* d, int len, int frameLen, ulong* w, HeaderOffsets* off)
    {
        if (len < 14)
        {
            return ParseFlags.Truncated;
        }

        w[1] = Mac(d);
        w[2] = Mac(d + 6);
        int o = 12;
        ushort type = Be16(d + o);
        if (type == EthVlan || type == EthQinQ)
        {
            if (len < o + 6)
            {
                return ParseFlags.L2 | ParseFlags.Truncated;
            }

            w[0] |= (ulong)(ushort)(Be16(d + o + 2) | VlanPresent) << 32;
            o += 4;
            type = Be16(d + o);
            if (type == EthVlan || type == EthQinQ)
            {
                if (len < o + 6)
                {
                    return ParseFlags.L2 | ParseFlags.Truncated;
                }

                w[0] |= (ulong)(ushort)(Be16(d + o + 2) | VlanPresent) << 48;
                o += 4;
                type = Be16(d + o);
            }
        }

        if (type < 0x600)
        {
            type = 0x05FF; // 802.3 length field: no Ethernet II type (as Open vSwitch records it)
        }

        w[0] |= (ulong)type << 16;
        o += 2;
        int avail = len - o;
        return type switch
        {
            EthIp => ParseIpv4(d + o, avail, frameLen - o, o, w, off),
            EthIpv6 => ParseIpv6(d + o, avail, frameLen - o, o, w, off),
            EthArp => ParseArp(d + o, avail, o, w, off),
            _ => ParseFlags.L2,
        };
    }

    private static ushort ParseArp(byte* p, int avail, int o, ulong* w, HeaderOffsets* off)
    {
        if (avail < 28)
        {
            return ParseFlags.L2 | ParseFlags.Truncated;
        }

        if (Be16(p) != 1 || Be16(p + 2) != EthIp || p[4] != 6 || p[5] != 4)
        {
            return ParseFlags.L2; // ARP for other hardware/protocols: fields not extracted
        }

        off->L3 = (ushort)o;
        w[1] |= (ulong)(byte)Be16(p + 6) << 48;
        w[4] = Be32(p + 14) | ((ulong)Be32(p + 24) << 32);
        w[5] = Mac(p + 8); // arp_sha and arp_tha: the words IPv6 addresses use (an ARP packet has none)
        w[6] = Mac(p + 18);
        return ParseFlags.L2 | ParseFlags.L3;
    }

    /// <param name="avail">Bytes readable at <paramref name="p"/> (to the end of the first segment).</param>
    /// <param name="frameAvail">Bytes of the frame from <paramref name="p"/> on (all segments).</param>
    private static ushort ParseIpv4(byte* p, int avail, int frameAvail, int o, ulong* w, HeaderOffsets* off)
    {
        if (avail < 20)
        {
            return ParseFlags.L2 | ParseFlags.Truncated;
        }

        int ihl = (p[0] & 0xF) * 4;
        int total = Be16(p + 2);
        if ((p[0] >> 4) != 4 || ihl < 20 || total < ihl)
        {
            return ParseFlags.L2 | ParseFlags.Bad;
        }

        if (ihl > avail)
        {
            return ParseFlags.L2 | ParseFlags.Truncated;
        }

        if (total > frameAvail)
        {
            return ParseFlags.L2 | ParseFlags.Bad; // claims more bytes than the frame holds
        }

        off->L3 = (ushort)o;
        byte proto = p[9];
        w[1] |= ((ulong)proto << 48) | ((ulong)p[1] << 56);
        ushort fragField = Be16(p + 6);
        int frag = (fragField & 0x3FFF) == 0 ? 0 : ((fragField & 0x1FFF) != 0 ? 3 : 1);
        w[2] |= ((ulong)p[8] << 48) | ((ulong)frag << 56);
        w[4] = Be32(p + 12) | ((ulong)Be32(p + 16) << 32);
        if ((frag & 2) != 0)
        {
            return ParseFlags.L2 | ParseFlags.L3; // later fragments carry no transport header
        }

        return (ushort)(ParseFlags.L2 | ParseFlags.L3 | ParseL4(p + ihl, Math.Min(total, avail) - ihl, o + ihl, proto, false, w, off));
    }

    private static ushort ParseIpv6(byte* p, int avail, int frameAvail, int o, ulong* w, HeaderOffsets* off)
    {
        if (avail < 40)
        {
            return ParseFlags.L2 | ParseFlags.Truncated;
        }

        if ((p[0] >> 4) != 6)
        {
            return ParseFlags.L2 | ParseFlags.Bad;
        }

        int payload = Be16(p + 4);
        if (40 + payload > frameAvail)
        {
            return ParseFlags.L2 | ParseFlags.Bad;
        }

        off->L3 = (ushort)o;
        byte tc = (byte)(Be16(p) >> 4);
        w[5] = Be64(p + 8);
        w[6] = Be64(p + 16);
        w[7] = Be64(p + 24);
        w[8] = Be64(p + 32);
        byte next = p[6];
        int frag = 0;
        int h = 40;
        int end = Math.Min(40 + payload, avail); // extension and transport headers are read from the first segment
        for (int i = 0; ; i++)
        {
            if (next != 0 && next != 43 && next != 60 && next != 44 && next != 51)
            {
                break;
            }

            if (i == MaxIpv6ExtHeaders)
            {
                SetL3(w, next, tc, p[7], frag);
                return ParseFlags.L2 | ParseFlags.L3 | ParseFlags.TooDeep;
            }

            if (h + 8 > end)
            {
                SetL3(w, next, tc, p[7], frag);
                return ParseFlags.L2 | ParseFlags.L3 | ParseFlags.Truncated;
            }

            int extLen;
            if (next == 44)
            {
                ushort fo = Be16(p + h + 2);
                frag = (fo & 0xFFF8) != 0 ? 3 : 1;
                extLen = 8;
            }
            else if (next == 51)
            {
                extLen = (p[h + 1] + 2) * 4;
            }
            else
            {
                extLen = (p[h + 1] + 1) * 8;
            }

            next = p[h];
            h += extLen;
            if (h > end)
            {
                SetL3(w, next, tc, p[7], frag);
                return ParseFlags.L2 | ParseFlags.L3 | ParseFlags.Truncated;
            }

            if ((frag & 2) != 0)
            {
                break;
            }
        }

        SetL3(w, next, tc, p[7], frag);
        if ((frag & 2) != 0)
        {
            return ParseFlags.L2 | ParseFlags.L3;
        }

        return (ushort)(ParseFlags.L2 | ParseFlags.L3 | ParseL4(p + h, end - h, o + h, next, true, w, off));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetL3(ulong* w, byte proto, byte tos, byte ttl, int frag)
    {
        w[1] |= ((ulong)proto << 48) | ((ulong)tos << 56);
        w[2] |= ((ulong)ttl << 48) | ((ulong)frag << 56);
    }

    private static ushort ParseL4(byte* p, int avail, int o, byte proto, bool v6, ulong* w, HeaderOffsets* off)
    {
        switch (proto)
        {
            case ProtoTcp:
                if (avail < 20)
                {
                    return ParseFlags.Truncated;
                }

                int doff = (p[12] >> 4) * 4;
                if (doff < 20 || doff > avail)
                {
                    return ParseFlags.Bad;
                }

                off->L4 = (ushort)o;
                w[3] = Be16(p) | ((ulong)Be16(p + 2) << 16) | ((ulong)(Be16(p + 12) & 0x0FFF) << 32);
                return ParseFlags.L4;
            case ProtoUdp:
                if (avail < 8)
                {
                    return ParseFlags.Truncated;
                }

                off->L4 = (ushort)o;
                w[3] = Be16(p) | ((ulong)Be16(p + 2) << 16);
                return ParseFlags.L4;
            case ProtoSctp:
                // The 12-byte common header: ports, verification tag, CRC32c checksum.
                if (avail < 12)
                {
                    return ParseFlags.Truncated;
                }

                off->L4 = (ushort)o;
                w[3] = Be16(p) | ((ulong)Be16(p + 2) << 16);
                return ParseFlags.L4;
            case ProtoIcmp when !v6:
            case ProtoIcmpv6 when v6:
                if (avail < 4)
                {
                    return ParseFlags.Truncated;
                }

                off->L4 = (ushort)o;
                w[3] = p[0] | ((ulong)p[1] << 16);
                return ParseFlags.L4;
            default:
                return 0;
        }
    }

    /// <summary>
    /// The pipeline key a whole frame held in managed memory starts with (trace, tests: cold paths);
    /// <paramref name="parse"/> gets the parse flags.
    /// </summary>
    public static FlowKey PipelineKeyOf(ReadOnlySpan<byte> frame, ushort inPort, out ushort parse)
    {
        DpKey key;
        HeaderOffsets off;
        fixed (byte* d = frame)
        {
            parse = Extract(d, frame.Length, inPort, &key, &off);
        }

        return key.ToFlowKey();
    }

    /// <summary>CRC32C of the key's words (the microflow cache's index).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Hash(DpKey* key)
    {
        ulong* w = key->W;
        if (Sse42.X64.IsSupported)
        {
            ulong a = Sse42.X64.Crc32(0UL, w[0]);
            ulong b = Sse42.X64.Crc32(1UL, w[1]);
            ulong c = Sse42.X64.Crc32(2UL, w[2]);
            a = Sse42.X64.Crc32(a, w[3]);
            b = Sse42.X64.Crc32(b, w[4]);
            c = Sse42.X64.Crc32(c, w[5]);
            a = Sse42.X64.Crc32(a, w[6]);
            b = Sse42.X64.Crc32(b, w[7]);
            c = Sse42.X64.Crc32(c, w[8]);
            a = Sse42.X64.Crc32(a, w[9]);
            return (uint)Sse42.X64.Crc32(a ^ (b << 21) ^ (c << 42), c ^ b);
        }

        ulong h = 0xCBF29CE484222325UL;
        for (int i = 0; i < DpKey.PacketWords; i++)
        {
            h = (h ^ w[i]) * 0x100000001B3UL;
        }

        return (uint)(h ^ (h >> 32));
    }
}
