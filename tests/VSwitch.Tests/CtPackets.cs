// CtPackets.cs - IP packets (from the IP header on, no Ethernet) for the conntrack protocol tests:
// IPv4 with options and fragment fields, IPv6 with extension headers, ICMP errors quoting other
// packets, with checksums from a plain reference sum (RFC 1071) written here, which the checksum
// tests check against PacketDotNet; and a PacketDotNet view of such a packet.
using System.Buffers.Binary;
using PacketDotNet;

namespace VSwitch.Tests;

internal static class CtPackets
{
    public const uint A = 0x0A000001, B = 0x0A000002, R = 0x0A0000FE; // 10.0.0.1, 10.0.0.2, a router 10.0.0.254
    public static readonly UInt128 A6 = new(0x20010DB800000000, 1), B6 = new(0x20010DB800000000, 2), R6 = new(0x20010DB8000000FF, 0xFE);

    /// <summary>An IPv4 packet carrying <paramref name="l4"/>, header checksum set (and the L4 checksum for TCP/UDP/ICMP when <paramref name="l4Checksum"/>).</summary>
    public static byte[] V4(uint src, uint dst, byte proto, byte[] l4, ushort frag = 0, int options = 0, bool l4Checksum = true)
    {
        int ihl = 20 + options;
        var b = new byte[ihl + l4.Length];
        b[0] = (byte)(0x40 | (ihl / 4));
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), (ushort)b.Length);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), 0x4242);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(6), frag);
        b[8] = 64;
        b[9] = proto;
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), src);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), dst);
        for (int i = 20; i < ihl; i++)
        {
            b[i] = 1; // NOP options
        }

        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(10), Checksum(b.AsSpan(0, ihl)));
        l4.CopyTo(b, ihl);
        if (l4Checksum && frag == 0)
        {
            SetL4Checksum(b, ihl, proto, v6: false);
        }

        return b;
    }

    /// <summary>An IPv6 packet: <paramref name="next"/> names the first header of <paramref name="rest"/> (extension headers, then the upper layer).</summary>
    public static byte[] V6(UInt128 src, UInt128 dst, byte next, byte[] rest, int l4At = 0, byte l4Proto = 0)
    {
        var b = new byte[40 + rest.Length];
        b[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), (ushort)rest.Length);
        b[6] = next;
        b[7] = 64;
        BinaryPrimitives.WriteUInt128BigEndian(b.AsSpan(8), src);
        BinaryPrimitives.WriteUInt128BigEndian(b.AsSpan(24), dst);
        rest.CopyTo(b, 40);
        if (l4Proto != 0)
        {
            SetL4Checksum(b, 40 + l4At, l4Proto, v6: true);
        }

        return b;
    }

    /// <summary>A TCP header (SYN, no options) with <paramref name="payload"/> bytes of a counting payload.</summary>
    public static byte[] Tcp(ushort sport, ushort dport, int payload = 0)
    {
        var b = new byte[20 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(b, sport);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), 0x01020304);
        b[12] = 0x50;
        b[13] = 0x02;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(14), 64240);
        Fill(b.AsSpan(20));
        return b;
    }

    /// <summary>A UDP header (length set) with <paramref name="payload"/> bytes.</summary>
    public static byte[] Udp(ushort sport, ushort dport, int payload = 4)
    {
        var b = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(b, sport);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), (ushort)b.Length);
        Fill(b.AsSpan(8));
        return b;
    }

    /// <summary>An SCTP common header (12 bytes) and a fake chunk.</summary>
    public static byte[] Sctp(ushort sport, ushort dport)
    {
        var b = new byte[16];
        BinaryPrimitives.WriteUInt16BigEndian(b, sport);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), 0xDEADBEEF);
        b[12] = 1; // INIT
        return b;
    }

    /// <summary>An ICMP/ICMPv6 message: type, code, checksum 0 (set by V4/V6), then id and sequence (or the unused word of errors), then <paramref name="body"/>.</summary>
    public static byte[] Icmp(byte type, byte code, ushort id, ushort seq, byte[]? body = null)
    {
        body ??= [0xAA, 0xBB, 0xCC, 0xDD];
        var b = new byte[8 + body.Length];
        b[0] = type;
        b[1] = code;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(6), seq);
        body.CopyTo(b, 8);
        return b;
    }

    /// <summary>An extension header of <paramref name="len"/> bytes (a multiple of 8) naming <paramref name="next"/>.</summary>
    public static byte[] Ext(byte next, int len = 8)
    {
        var b = new byte[len];
        b[0] = next;
        b[1] = (byte)(len / 8 - 1);
        b[2] = 1; // PadN
        b[3] = (byte)(len - 4);
        return b;
    }

    /// <summary>An IPv6 fragment header: offset in 8-byte units, M bit.</summary>
    public static byte[] Frag(byte next, int offset, bool more)
    {
        var b = new byte[8];
        b[0] = next;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), (ushort)((offset << 3) | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), 0x12345678);
        return b;
    }

    /// <summary>The first <paramref name="n"/> bytes of a packet, as an error quotes it (IP header + 8 bytes by default).</summary>
    public static byte[] Quote(byte[] packet, int n) => packet.AsSpan(0, Math.Min(n, packet.Length)).ToArray();

    /// <summary>RFC 1071: the one's complement of the one's complement sum of <paramref name="data"/> plus <paramref name="initial"/>.</summary>
    public static ushort Checksum(ReadOnlySpan<byte> data, ulong initial = 0)
    {
        ulong s = initial;
        for (int i = 0; i + 1 < data.Length; i += 2)
        {
            s += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }

        if ((data.Length & 1) != 0)
        {
            s += (ulong)data[^1] << 8;
        }

        while (s >> 16 != 0)
        {
            s = (s & 0xFFFF) + (s >> 16);
        }

        return (ushort)~s;
    }

    /// <summary>The L4 checksum of the transport header at <paramref name="l4"/> computed from scratch (field counted as zero); UDP's 0 is 0xFFFF.</summary>
    public static ushort FullL4Checksum(byte[] p, int l4, byte proto, bool v6)
    {
        int field = ChecksumField(proto);
        var seg = p.AsSpan(l4).ToArray();
        seg[field] = 0;
        seg[field + 1] = 0;
        ulong pseudo = 0;
        if (proto != 1)
        {
            var addrs = v6 ? p.AsSpan(8, 32) : p.AsSpan(12, 8);
            for (int i = 0; i < addrs.Length; i += 2)
            {
                pseudo += BinaryPrimitives.ReadUInt16BigEndian(addrs[i..]);
            }

            pseudo += proto + (ulong)seg.Length;
        }

        ushort c = Checksum(seg, pseudo);
        return proto == 17 && c == 0 ? (ushort)0xFFFF : c;
    }

    /// <summary>The IPv4 header checksum computed from scratch.</summary>
    public static ushort FullIpv4Checksum(byte[] p)
    {
        int ihl = (p[0] & 0xF) * 4;
        var h = p.AsSpan(0, ihl).ToArray();
        h[10] = 0;
        h[11] = 0;
        return Checksum(h);
    }

    public static int ChecksumField(byte proto) => proto switch { 6 => 16, 17 => 6, _ => 2 };

    private static void SetL4Checksum(byte[] p, int l4, byte proto, bool v6)
    {
        if (proto is 6 or 17 or 1 or 58)
        {
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(l4 + ChecksumField(proto)), FullL4Checksum(p, l4, proto, v6));
        }
    }

    private static void Fill(Span<byte> s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            s[i] = (byte)(i * 7 + 3);
        }
    }

    /// <summary>PacketDotNet's parse of an IP packet (an Ethernet header is put in front).</summary>
    public static Packet Parsed(byte[] ip)
    {
        byte[] frame = new byte[14 + ip.Length];
        frame[12] = (byte)((ip[0] >> 4) == 4 ? 0x08 : 0x86);
        frame[13] = (byte)((ip[0] >> 4) == 4 ? 0x00 : 0xDD);
        ip.CopyTo(frame, 14);
        return Packet.ParsePacket(LinkLayers.Ethernet, frame);
    }
}
