// PathMtu.cs - the MTU check of encapsulation: a packet whose ESP packet would exceed the SA's MTU
// is not encrypted; its sender gets ICMP "fragmentation needed" (IPv4, RFC 792/1191) or ICMPv6
// "packet too big" (RFC 4443) with the largest inner packet that fits, so path MTU discovery works
// through the tunnel. An IPv4 packet without DF through an SA with df=off is encrypted anyway (the
// outer packet may be fragmented on its way, as Linux does for such packets).
//
// Rare-path code on the PMD: one mbuf from the packet's own pool per error (no managed allocation),
// built in place; the executor sends it out of the port the packet came in on.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using VSwitch.Interop;

namespace VSwitch.Ipsec;

public static unsafe class PathMtu
{
    /// <summary>Bytes ESP adds to an inner packet of <paramref name="innerLen"/> bytes (outer IP and UDP, header, IV, padding, trailer, ICV).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int OuterLength(SaSlot* s, int innerLen) =>
        s->OuterFixed + ((innerLen + 2 + s->PadAlign - 1) & ~(s->PadAlign - 1));

    /// <summary>The largest inner packet whose ESP packet fits in the SA's MTU.</summary>
    public static int InnerMax(SaSlot* s) => ((s->Mtu - s->OuterFixed) & ~(s->PadAlign - 1)) - 2;

    /// <summary>
    /// Builds the ICMP error for the inner packet at <paramref name="l3"/> of <paramref name="m"/> (an
    /// IPv4 or IPv6 packet behind an Ethernet header); 0 when no mbuf was to be had.
    /// </summary>
    public static nint TooBig(nint m, int l3, bool v6, SaSlot* s)
    {
        nint icmp;
        if (Native.MbufAllocBulk(*(nint*)(m + Mbuf.PoolOffset), &icmp, 1) != 0)
        {
            return 0;
        }

        byte* src = Mbuf.Data(m);
        int innerLen = (int)Mbuf.PktLen(m) - l3;
        int avail = Mbuf.DataLen(m) - l3;
        byte* d = Mbuf.Data(icmp);
        Buffer.MemoryCopy(src, d, l3, l3); // the frame's L2 header, VLAN tags included: the error goes back on its VLAN
        Buffer.MemoryCopy(src + 6, d, 6, 6); // to the sender
        Buffer.MemoryCopy(src, d + 6, 6, 6);
        int mtu = InnerMax(s);
        byte* ip = d + l3;
        int len;
        if (!v6)
        {
            // ICMP type 3 code 4 with the next-hop MTU, quoting the IP header and 8 bytes (RFC 792)
            int quote = Math.Min(avail, ((src[l3] & 0xF) * 4) + 8);
            len = 20 + 8 + quote;
            BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(d + l3 - 2, 2), 0x0800);
            ip[0] = 0x45;
            ip[1] = 0xC0;
            BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(ip + 2, 2), (ushort)len);
            *(uint*)(ip + 4) = 0;
            ip[8] = 64;
            ip[9] = 1;
            *(ushort*)(ip + 10) = 0;
            Buffer.MemoryCopy(src + l3 + 16, ip + 12, 4, 4); // from the address the packet was sent to
            Buffer.MemoryCopy(src + l3 + 12, ip + 16, 4, 4); // to its sender
            BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(ip + 10, 2), Checksum(ip, 20, 0));
            byte* ic = ip + 20;
            ic[0] = 3;
            ic[1] = 4;
            *(ushort*)(ic + 2) = 0;
            *(ushort*)(ic + 4) = 0;
            BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(ic + 6, 2), (ushort)mtu);
            Buffer.MemoryCopy(src + l3, ic + 8, quote, quote);
            BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(ic + 2, 2), Checksum(ic, 8 + quote, 0));
        }
        else
        {
            // ICMPv6 type 2 with the MTU, quoting as much of the packet as keeps the error within 1280 bytes (RFC 4443)
            int quote = Math.Min(avail, Math.Min(innerLen, 1280 - 40 - 8));
            len = 40 + 8 + quote;
            BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(d + l3 - 2, 2), 0x86DD);
            *(uint*)ip = BinaryPrimitives.ReverseEndianness(0x60000000u);
            BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(ip + 4, 2), (ushort)(8 + quote));
            ip[6] = 58;
            ip[7] = 64;
            Buffer.MemoryCopy(src + l3 + 24, ip + 8, 16, 16); // from the address the packet was sent to
            Buffer.MemoryCopy(src + l3 + 8, ip + 24, 16, 16); // to its sender
            byte* ic = ip + 40;
            ic[0] = 2;
            ic[1] = 0;
            *(ushort*)(ic + 2) = 0;
            BinaryPrimitives.WriteUInt32BigEndian(new Span<byte>(ic + 4, 4), (uint)Math.Max(mtu, 1280));
            Buffer.MemoryCopy(src + l3, ic + 8, quote, quote);
            // the pseudo-header: addresses, upper-layer length, next header 58
            uint sum = 0;
            for (int i = 8; i < 40; i += 2)
            {
                sum += (uint)((ip[i] << 8) | ip[i + 1]);
            }

            sum += (uint)(8 + quote) + 58;
            BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(ic + 2, 2), Checksum(ic, 8 + quote, sum));
        }

        *(ushort*)(icmp + Mbuf.DataLenOffset) = (ushort)(l3 + len);
        *(uint*)(icmp + Mbuf.PktLenOffset) = (uint)(l3 + len);
        return icmp;
    }

    /// <summary>The Internet checksum of <paramref name="n"/> bytes plus a partial <paramref name="sum"/>.</summary>
    private static ushort Checksum(byte* p, int n, uint sum)
    {
        int i = 0;
        for (; i + 1 < n; i += 2)
        {
            sum += (uint)((p[i] << 8) | p[i + 1]);
        }

        if (i < n)
        {
            sum += (uint)(p[i] << 8);
        }

        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)~sum;
    }
}
