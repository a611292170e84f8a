// ConnTuple.cs - the 5-tuple that names one direction of a tracked connection.
//
// Family, protocol, source and destination address (IPv4 in the low 32 bits of the low word, the
// high word zero) and ports, all in host byte order. ICMP and ICMPv6 echo follow Linux and Open
// vSwitch: the echo identifier is the port on both sides and IcmpType says request or reply, so an
// echo request's tuple reversed (addresses swapped, request type turned into reply type) is the
// tuple of its reply. Protocols without ports leave them zero; IcmpType and IcmpCode are zero
// outside ICMP.
//
// The struct lives in the connection table's native memory: unmanaged, 40 bytes (five 8-byte
// words, no padding), so equality is five word compares and the hash is CRC32C over the words
// (SSE4.2, or a multiply-xor fallback). Nothing here allocates.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using VSwitch.Packets;

namespace VSwitch.Conntrack;

/// <summary>One direction of a connection: addresses, ports (or echo id), protocol (host byte order).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct ConnTuple : IEquatable<ConnTuple>
{
    /// <summary>The size in bytes (five words).</summary>
    public const int Size = 40;

    /// <summary><see cref="Family"/> values: the IP version.</summary>
    public const byte V4 = 4, V6 = 6;

    /// <summary>ICMP and ICMPv6 echo types.</summary>
    public const byte IcmpEchoRequest = 8, IcmpEchoReply = 0, Icmp6EchoRequest = 128, Icmp6EchoReply = 129;

    /// <summary>Source address, first 8 bytes (IPv6) or 0 (IPv4).</summary>
    public ulong SrcHi;

    /// <summary>Source address, last 8 bytes (IPv6) or the IPv4 address.</summary>
    public ulong SrcLo;

    /// <summary>Destination address, first 8 bytes (IPv6) or 0 (IPv4).</summary>
    public ulong DstHi;

    /// <summary>Destination address, last 8 bytes (IPv6) or the IPv4 address.</summary>
    public ulong DstLo;

    /// <summary>Source port; the echo identifier for ICMP echo; 0 for protocols without ports.</summary>
    public ushort SrcPort;

    /// <summary>Destination port; the echo identifier for ICMP echo; 0 for protocols without ports.</summary>
    public ushort DstPort;

    /// <summary>IP protocol number (after IPv6 extension headers).</summary>
    public byte Protocol;

    /// <summary><see cref="V4"/> or <see cref="V6"/>.</summary>
    public byte Family;

    /// <summary>ICMP/ICMPv6 type (echo request or reply); 0 for other protocols.</summary>
    public byte IcmpType;

    /// <summary>ICMP/ICMPv6 code; 0 for other protocols.</summary>
    public byte IcmpCode;

    /// <summary>An IPv4 tuple.</summary>
    public static ConnTuple Ipv4(uint src, uint dst, byte protocol, ushort srcPort = 0, ushort dstPort = 0) => new()
    {
        SrcLo = src, DstLo = dst, Protocol = protocol, Family = V4, SrcPort = srcPort, DstPort = dstPort,
    };

    /// <summary>An IPv6 tuple.</summary>
    public static ConnTuple Ipv6(UInt128 src, UInt128 dst, byte protocol, ushort srcPort = 0, ushort dstPort = 0) => new()
    {
        SrcHi = (ulong)(src >> 64), SrcLo = (ulong)src, DstHi = (ulong)(dst >> 64), DstLo = (ulong)dst,
        Protocol = protocol, Family = V6, SrcPort = srcPort, DstPort = dstPort,
    };

    /// <summary>An ICMP (IPv4) or ICMPv6 (IPv6) echo request or reply tuple: the id on both sides.</summary>
    public static ConnTuple Echo(in ConnTuple addresses, byte type, ushort id)
    {
        ConnTuple t = addresses;
        t.Protocol = t.Family == V4 ? KeyExtractor.ProtoIcmp : KeyExtractor.ProtoIcmpv6;
        t.SrcPort = id;
        t.DstPort = id;
        t.IcmpType = type;
        t.IcmpCode = 0;
        return t;
    }

    /// <summary>The source address as one number (IPv4: the low 32 bits).</summary>
    public readonly UInt128 Src => new(SrcHi, SrcLo);

    /// <summary>The destination address as one number (IPv4: the low 32 bits).</summary>
    public readonly UInt128 Dst => new(DstHi, DstLo);

    /// <summary>
    /// The tuple of the other direction: addresses and ports swapped; an ICMP/ICMPv6 echo request
    /// becomes a reply and a reply a request (Linux's nf_conntrack_icmp invert, Open vSwitch's reverse_icmp_type).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ConnTuple Reverse()
    {
        ConnTuple r = this;
        r.SrcHi = DstHi;
        r.SrcLo = DstLo;
        r.DstHi = SrcHi;
        r.DstLo = SrcLo;
        r.SrcPort = DstPort;
        r.DstPort = SrcPort;
        r.IcmpType = ReverseIcmpType(Protocol, IcmpType);
        return r;
    }

    /// <summary>The echo type answering <paramref name="type"/> (request and reply swap); other types and protocols unchanged.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte ReverseIcmpType(byte protocol, byte type) => protocol switch
    {
        KeyExtractor.ProtoIcmp when type == IcmpEchoRequest => IcmpEchoReply,
        KeyExtractor.ProtoIcmp when type == IcmpEchoReply => IcmpEchoRequest,
        KeyExtractor.ProtoIcmpv6 when type == Icmp6EchoRequest => Icmp6EchoReply,
        KeyExtractor.ProtoIcmpv6 when type == Icmp6EchoReply => Icmp6EchoRequest,
        _ => type,
    };

    /// <summary>The last word: ports, protocol, family, ICMP type and code.</summary>
    private readonly ulong Tail => Unsafe.As<ushort, ulong>(ref Unsafe.AsRef(in SrcPort));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool Equals(ConnTuple other) =>
        ((SrcHi ^ other.SrcHi) | (SrcLo ^ other.SrcLo) | (DstHi ^ other.DstHi) | (DstLo ^ other.DstLo) | (Tail ^ other.Tail)) == 0;

    public override readonly bool Equals(object? obj) => obj is ConnTuple t && Equals(t);

    public override readonly int GetHashCode() => (int)Hash(this);

    public static bool operator ==(ConnTuple left, ConnTuple right) => left.Equals(right);

    public static bool operator !=(ConnTuple left, ConnTuple right) => !left.Equals(right);

    /// <summary>CRC32C of the five words (SSE4.2); a multiply-xor mix where the instruction is missing.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Hash(in ConnTuple t, uint seed = 0)
    {
        ulong tail = t.Tail;
        if (Sse42.X64.IsSupported)
        {
            ulong a = Sse42.X64.Crc32(seed, t.SrcHi);
            ulong b = Sse42.X64.Crc32(~(ulong)seed, t.SrcLo);
            a = Sse42.X64.Crc32(a, t.DstHi);
            b = Sse42.X64.Crc32(b, t.DstLo);
            a = Sse42.X64.Crc32(a, tail);
            return (uint)Sse42.X64.Crc32(a, b);
        }

        return SoftwareHash(t, seed);
    }

    /// <summary>The fallback hash (public so tests run it on machines with SSE4.2 too).</summary>
    public static uint SoftwareHash(in ConnTuple t, uint seed = 0)
    {
        ulong h = 0xCBF29CE484222325UL ^ seed;
        h = (h ^ t.SrcHi) * 0x100000001B3UL;
        h = (h ^ t.SrcLo) * 0x100000001B3UL;
        h = (h ^ t.DstHi) * 0x100000001B3UL;
        h = (h ^ t.DstLo) * 0x100000001B3UL;
        h = (h ^ t.Tail) * 0x100000001B3UL;
        h ^= h >> 29;
        h *= 0xBF58476D1CE4E5B9UL;
        return (uint)(h ^ (h >> 32));
    }
}
