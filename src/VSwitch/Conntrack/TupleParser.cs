// TupleParser.cs - the connection tuple of a packet, from its bytes at the IPv4/IPv6 header.
//
// TCP, UDP and SCTP give ports; ICMP/ICMPv6 echo gives the identifier as both ports and the type;
// other ICMP types give addresses, type and code; other protocols give addresses and protocol.
// IPv6 extension headers (hop-by-hop, routing, destination options, fragment, AH) are walked to the
// upper layer, at most MaxExtensionHeaders of them. Fragments: a first fragment (offset 0, more
// fragments) parses as a whole packet and says so; a later one (offset != 0) has no transport
// header, so its tuple has addresses and protocol only.
//
// ICMP errors (IPv4 destination unreachable, source quench, redirect, time exceeded, parameter
// problem; ICMPv6 destination unreachable, packet too big, time exceeded, parameter problem) carry
// the start of the packet that caused them. The tuple returned for an error is that EMBEDDED
// packet's own tuple, as the embedded packet travelled: inner source to inner destination. Looking
// it up finds the connection in the direction the original packet went; the error itself travels
// the other way, so when the inner tuple is a connection's original-direction tuple the error is a
// reply-direction packet of it (and vice versa), and Reverse() of the inner tuple is the tuple of
// the error's own direction (Linux inverts the inner tuple before its lookup for the same reason).
// The embedded source must be the error's destination (the error goes back to whoever sent the
// original; Open vSwitch checks the same), and an error about an ICMP error is invalid (RFC 1122).
//
// Every read is bounds-checked against the span (a lying length gives a failure status, never a
// read past the end: the span would throw, and the tests run every truncation). The outer packet
// is bounded by its IP length; the embedded one only by the outer packet, as errors quote only its
// first bytes. Nothing allocates.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using VSwitch.Packets;

namespace VSwitch.Conntrack;

/// <summary>Whether a packet's tuple could be parsed.</summary>
public enum TupleStatus : byte
{
    /// <summary>Parsed: the tuple and <see cref="TupleInfo"/> are valid.</summary>
    Ok,

    /// <summary>Not IPv4 or IPv6 (ethertype, or a version nibble that disagrees with it).</summary>
    NotIp,

    /// <summary>A header needed for the tuple runs past the bytes given (or the IP length does).</summary>
    Truncated,

    /// <summary>A header contradicts itself (IPv4 header length under 20, IP length under the header, TCP data offset under 20, hop-by-hop not first).</summary>
    Malformed,

    /// <summary>More than <see cref="TupleParser.MaxExtensionHeaders"/> IPv6 extension headers.</summary>
    TooManyHeaders,

    /// <summary>An ICMP error whose embedded packet is unusable: truncated, another family, an ICMP error itself, a later fragment, or not from the error's destination.</summary>
    BadEmbedded,
}

/// <summary>What the tuple holds.</summary>
public enum TupleKind : byte
{
    /// <summary>TCP, UDP or SCTP: addresses, protocol and ports.</summary>
    Ports,

    /// <summary>ICMP/ICMPv6 echo request or reply: the identifier as both ports, the type and code.</summary>
    IcmpEcho,

    /// <summary>ICMP/ICMPv6 error: the tuple is the embedded packet's (see the file comment for its direction).</summary>
    IcmpError,

    /// <summary>Another ICMP/ICMPv6 type (neighbour discovery, router advertisement, timestamp...): addresses, type and code, no ports.</summary>
    IcmpOther,

    /// <summary>Another protocol (or ESP, or no next header): addresses and protocol.</summary>
    Addresses,

    /// <summary>A fragment with a non-zero offset: addresses and protocol; its transport header is in the first fragment.</summary>
    LaterFragment,
}

/// <summary>Where the headers are (offsets from the IP header) and what kind of tuple was parsed.</summary>
public struct TupleInfo
{
    /// <summary>What the tuple holds.</summary>
    public TupleKind Kind;

    /// <summary>True for a first fragment: offset 0 with more fragments to come (IPv4 MF, or an IPv6 fragment header's M bit).</summary>
    public bool FirstFragment;

    /// <summary>Offset of the transport header (for an ICMP error, of the ICMP header); the end of the IP headers for a later fragment.</summary>
    public ushort L4;

    /// <summary>End of the IP packet (its total length; the outer one for an ICMP error).</summary>
    public ushort End;

    /// <summary>ICMP errors: offset of the embedded IP header; 0 otherwise.</summary>
    public ushort InnerL3;

    /// <summary>ICMP errors: offset of the embedded transport header; 0 otherwise.</summary>
    public ushort InnerL4;

    /// <summary>Fragments (first or later): the datagram's identification (IPv4's 16 bits, the IPv6 fragment header's 32).</summary>
    public uint FragmentId;
}

public static unsafe class TupleParser
{
    /// <summary>The most IPv6 extension headers walked before giving up (as the key extractor).</summary>
    public const int MaxExtensionHeaders = 8;

    private const byte NextHopByHop = 0, NextRouting = 43, NextFragment = 44, NextEsp = 50, NextAh = 51, NextNone = 59, NextDestOpts = 60;

    /// <summary>Parses the packet at <paramref name="l3"/> (<paramref name="length"/> bytes) of ethertype <paramref name="etherType"/>.</summary>
    public static TupleStatus Parse(byte* l3, int length, ushort etherType, out ConnTuple tuple, out TupleInfo info) =>
        Parse(new ReadOnlySpan<byte>(l3, length), etherType, out tuple, out info);

    /// <summary>
    /// As above for a packet in a chain of mbufs: <paramref name="length"/> bytes are readable at
    /// <paramref name="l3"/> (the first segment) of the <paramref name="frameLength"/> from there to
    /// the frame's end. The headers must be in the readable part; the IP length is checked against
    /// the whole frame, so a jumbo frame is tracked like any other (its info.End may lie beyond the
    /// readable bytes: only lengths are computed from it).
    /// </summary>
    public static TupleStatus Parse(byte* l3, int length, int frameLength, ushort etherType, out ConnTuple tuple, out TupleInfo info) =>
        Parse(new ReadOnlySpan<byte>(l3, length), Math.Max(length, frameLength), etherType, out tuple, out info);

    /// <summary>
    /// Parses the packet whose IP header starts <paramref name="p"/>; <paramref name="tuple"/> and
    /// <paramref name="info"/> are meaningful only when the status is <see cref="TupleStatus.Ok"/>.
    /// </summary>
    public static TupleStatus Parse(ReadOnlySpan<byte> p, ushort etherType, out ConnTuple tuple, out TupleInfo info) =>
        Parse(p, p.Length, etherType, out tuple, out info);

    private static TupleStatus Parse(ReadOnlySpan<byte> p, int frame, ushort etherType, out ConnTuple tuple, out TupleInfo info)
    {
        tuple = default;
        info = default;
        if (p.Length > ushort.MaxValue)
        {
            p = p[..ushort.MaxValue]; // an IP packet is no longer; offsets stay 16-bit
        }

        frame = Math.Min(frame, ushort.MaxValue);
        bool v4 = etherType == KeyExtractor.EthIp;
        if (!v4 && etherType != KeyExtractor.EthIpv6)
        {
            return TupleStatus.NotIp;
        }

        TupleStatus s = v4 ? Ipv4(p, p.Length, false, ref tuple, ref info, frame) : Ipv6(p, p.Length, false, ref tuple, ref info, frame);
        if (s != TupleStatus.Ok || info.Kind == TupleKind.LaterFragment)
        {
            return s;
        }

        byte proto = tuple.Protocol;
        int l4 = info.L4, end = Math.Min(info.End, p.Length); // the transport header must be readable
        switch (proto)
        {
            case KeyExtractor.ProtoTcp:
                if (end - l4 < 20)
                {
                    return TupleStatus.Truncated;
                }

                int dataOffset = (p[l4 + 12] >> 4) * 4;
                if (dataOffset < 20)
                {
                    return TupleStatus.Malformed;
                }

                if (dataOffset > end - l4)
                {
                    return TupleStatus.Truncated;
                }

                return Ports(p, l4, ref tuple, ref info);
            case KeyExtractor.ProtoUdp:
                return end - l4 < 8 ? TupleStatus.Truncated : Ports(p, l4, ref tuple, ref info);
            case KeyExtractor.ProtoSctp:
                return end - l4 < 12 ? TupleStatus.Truncated : Ports(p, l4, ref tuple, ref info);
            case KeyExtractor.ProtoIcmp when v4:
            case KeyExtractor.ProtoIcmpv6 when !v4:
                // an ICMP message is read (and, for an error under NAT, rewritten) whole: it must be readable
                return info.End > p.Length ? TupleStatus.Truncated : Icmp(p, v4, ref tuple, ref info);
            default:
                info.Kind = TupleKind.Addresses;
                return TupleStatus.Ok;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TupleStatus Ports(ReadOnlySpan<byte> p, int l4, ref ConnTuple t, ref TupleInfo info)
    {
        t.SrcPort = BinaryPrimitives.ReadUInt16BigEndian(p[l4..]);
        t.DstPort = BinaryPrimitives.ReadUInt16BigEndian(p[(l4 + 2)..]);
        info.Kind = TupleKind.Ports;
        return TupleStatus.Ok;
    }

    /// <summary>An ICMP/ICMPv6 message at info.L4: echo, error (parses the embedded packet) or other.</summary>
    private static TupleStatus Icmp(ReadOnlySpan<byte> p, bool v4, ref ConnTuple t, ref TupleInfo info)
    {
        int l4 = info.L4, end = info.End;
        if (end - l4 < 8)
        {
            return TupleStatus.Truncated;
        }

        byte type = p[l4], code = p[l4 + 1];
        if (type == (v4 ? ConnTuple.IcmpEchoRequest : ConnTuple.Icmp6EchoRequest) || type == (v4 ? ConnTuple.IcmpEchoReply : ConnTuple.Icmp6EchoReply))
        {
            ushort id = BinaryPrimitives.ReadUInt16BigEndian(p[(l4 + 4)..]);
            t.SrcPort = id;
            t.DstPort = id;
            t.IcmpType = type;
            t.IcmpCode = code;
            info.Kind = TupleKind.IcmpEcho;
            return TupleStatus.Ok;
        }

        if (!IsError(v4, type))
        {
            t.IcmpType = type;
            t.IcmpCode = code;
            info.Kind = TupleKind.IcmpOther;
            return TupleStatus.Ok;
        }

        // The embedded packet: its IP header and at least the first 8 bytes of its transport header.
        ConnTuple inner = default;
        TupleInfo ii = default;
        ReadOnlySpan<byte> q = p[..end];
        int at = l4 + 8;
        TupleStatus s = v4 ? Ipv4(q[at..], end - at, true, ref inner, ref ii) : Ipv6(q[at..], end - at, true, ref inner, ref ii);
        if (s != TupleStatus.Ok || ii.Kind == TupleKind.LaterFragment || inner.SrcHi != t.DstHi || inner.SrcLo != t.DstLo)
        {
            return TupleStatus.BadEmbedded;
        }

        int il4 = at + ii.L4;
        if (end - il4 < 8)
        {
            return TupleStatus.BadEmbedded;
        }

        switch (inner.Protocol)
        {
            case KeyExtractor.ProtoTcp:
            case KeyExtractor.ProtoUdp:
            case KeyExtractor.ProtoSctp:
                inner.SrcPort = BinaryPrimitives.ReadUInt16BigEndian(q[il4..]);
                inner.DstPort = BinaryPrimitives.ReadUInt16BigEndian(q[(il4 + 2)..]);
                break;
            case KeyExtractor.ProtoIcmp:
            case KeyExtractor.ProtoIcmpv6:
                byte itype = q[il4];
                if (inner.Protocol != (v4 ? KeyExtractor.ProtoIcmp : KeyExtractor.ProtoIcmpv6) || IsError(v4, itype))
                {
                    return TupleStatus.BadEmbedded; // an error about an error, or ICMP of the other family
                }

                inner.IcmpType = itype;
                inner.IcmpCode = q[il4 + 1];
                if (itype == (v4 ? ConnTuple.IcmpEchoRequest : ConnTuple.Icmp6EchoRequest) || itype == (v4 ? ConnTuple.IcmpEchoReply : ConnTuple.Icmp6EchoReply))
                {
                    ushort id = BinaryPrimitives.ReadUInt16BigEndian(q[(il4 + 4)..]);
                    inner.SrcPort = id;
                    inner.DstPort = id;
                }

                break;
        }

        t = inner;
        info.Kind = TupleKind.IcmpError;
        info.InnerL3 = (ushort)at;
        info.InnerL4 = (ushort)il4;
        return TupleStatus.Ok;
    }

    /// <summary>True for the ICMP (<paramref name="v4"/>) or ICMPv6 types that are errors quoting a packet.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsError(bool v4, byte type) => v4
        ? type is 3 or 4 or 5 or 11 or 12 // unreachable, source quench, redirect, time exceeded, parameter problem
        : type is >= 1 and <= 4; // unreachable, packet too big, time exceeded, parameter problem

    /// <summary>
    /// The IPv4 header of <paramref name="p"/> (<paramref name="avail"/> bytes): addresses, protocol,
    /// L4 offset and end. An embedded header (<paramref name="inner"/>) is not held to its total length.
    /// </summary>
    private static TupleStatus Ipv4(ReadOnlySpan<byte> p, int avail, bool inner, ref ConnTuple t, ref TupleInfo info, int frame = 0)
    {
        if (avail < 20)
        {
            return TupleStatus.Truncated;
        }

        if (p[0] >> 4 != 4)
        {
            return inner ? TupleStatus.Malformed : TupleStatus.NotIp;
        }

        int ihl = (p[0] & 0xF) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(p[2..]);
        if (ihl < 20)
        {
            return TupleStatus.Malformed;
        }

        if (ihl > avail)
        {
            return TupleStatus.Truncated;
        }

        if (total < ihl)
        {
            return TupleStatus.Malformed;
        }

        if (!inner && total > Math.Max(avail, frame))
        {
            return TupleStatus.Truncated;
        }

        ushort frag = BinaryPrimitives.ReadUInt16BigEndian(p[6..]);
        t.Family = ConnTuple.V4;
        t.Protocol = p[9];
        t.SrcLo = BinaryPrimitives.ReadUInt32BigEndian(p[12..]);
        t.DstLo = BinaryPrimitives.ReadUInt32BigEndian(p[16..]);
        info.L4 = (ushort)ihl;
        info.End = (ushort)(inner ? avail : total);
        if ((frag & 0x1FFF) != 0)
        {
            info.Kind = TupleKind.LaterFragment;
        }
        else
        {
            info.FirstFragment = (frag & 0x2000) != 0;
        }

        if ((frag & 0x3FFF) != 0)
        {
            info.FragmentId = BinaryPrimitives.ReadUInt16BigEndian(p[4..]);
        }

        return TupleStatus.Ok;
    }

    /// <summary>The IPv6 header and extension headers of <paramref name="p"/>: addresses, upper-layer protocol, its offset, the end.</summary>
    private static TupleStatus Ipv6(ReadOnlySpan<byte> p, int avail, bool inner, ref ConnTuple t, ref TupleInfo info, int frame = 0)
    {
        if (avail < 40)
        {
            return TupleStatus.Truncated;
        }

        if (p[0] >> 4 != 6)
        {
            return inner ? TupleStatus.Malformed : TupleStatus.NotIp;
        }

        int end = inner ? avail : 40 + BinaryPrimitives.ReadUInt16BigEndian(p[4..]);
        if (end > Math.Max(avail, frame))
        {
            return TupleStatus.Truncated;
        }

        int readable = Math.Min(end, avail); // extension headers must be in the readable bytes

        t.Family = ConnTuple.V6;
        t.SrcHi = BinaryPrimitives.ReadUInt64BigEndian(p[8..]);
        t.SrcLo = BinaryPrimitives.ReadUInt64BigEndian(p[16..]);
        t.DstHi = BinaryPrimitives.ReadUInt64BigEndian(p[24..]);
        t.DstLo = BinaryPrimitives.ReadUInt64BigEndian(p[32..]);
        info.End = (ushort)end;
        byte next = p[6];
        int off = 40;
        for (int n = 0; ; n++)
        {
            if (next is not (NextHopByHop or NextRouting or NextFragment or NextAh or NextDestOpts))
            {
                break; // the upper layer (ESP and "no next header" included: nothing to parse after them)
            }

            if (n == MaxExtensionHeaders)
            {
                return TupleStatus.TooManyHeaders;
            }

            if (next == NextHopByHop && n != 0)
            {
                return TupleStatus.Malformed; // RFC 8200 4.3: only right after the IPv6 header
            }

            if (readable - off < 8)
            {
                return TupleStatus.Truncated; // every extension header is at least 8 bytes
            }

            byte following = p[off];
            int len = next switch
            {
                NextFragment => 8,
                NextAh => (p[off + 1] + 2) * 4,
                _ => (p[off + 1] + 1) * 8,
            };
            if (next == NextFragment)
            {
                ushort offFlags = BinaryPrimitives.ReadUInt16BigEndian(p[(off + 2)..]);
                info.FragmentId = BinaryPrimitives.ReadUInt32BigEndian(p[(off + 4)..]);
                if ((offFlags & 0xFFF8) != 0)
                {
                    t.Protocol = following;
                    info.L4 = (ushort)(off + 8);
                    info.Kind = TupleKind.LaterFragment;
                    return TupleStatus.Ok;
                }

                info.FirstFragment = (offFlags & 1) != 0;
            }

            if (len > readable - off)
            {
                return TupleStatus.Truncated;
            }

            off += len;
            next = following;
        }

        t.Protocol = next;
        info.L4 = (ushort)off;
        return TupleStatus.Ok;
    }
}
