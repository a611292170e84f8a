// NatChecksum.cs - the checksums of the packet an ICMP error quotes, after reverse NAT, updated
// incrementally (RFC 1624). The packet's own headers are rewritten by PacketEdit (SetIpv4, SetIpv6,
// SetPort, Update16), as set_field's are; this file handles what only NAT needs.
//
// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for each 16-bit word m that became m'. The differences
// (~m + m') of every changed word are summed in a 64-bit accumulator first (a Delta) and folded
// once (Apply), so an IPv6 address (8 words) and a port cost one fold. What each checksum covers:
//   IPv4 header checksum: the header, so the addresses (not the ports);
//   TCP, UDP: an IP pseudo-header (addresses) and the segment (ports): address and port changes;
//   ICMPv6: an IPv6 pseudo-header (RFC 4443 2.3) and the message (the echo identifier);
//   ICMP (IPv4): the message only, no pseudo-header: only the echo identifier.
// A quoted UDP checksum of 0 (none) stays 0; one that computes to 0 is written as 0xFFFF (RFC 768).
//
// An ICMP error to a NATed connection quotes the packet as NAT left it, so reverse NAT rewrites the
// quote too (RewriteQuoted): the embedded address and port, the embedded IPv4 header checksum and
// transport checksum (UDP's is always quoted, TCP's when the quote reaches it), the embedded echo
// id and ICMP checksum; every word it changes inside the message is summed into the error's own
// ICMP checksum. The outer header is the caller's, with the functions above. Nothing here allocates.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using VSwitch.Packets;

namespace VSwitch.Conntrack;

public static class NatChecksum
{
    /// <summary>The sum of ~old + now for one 16-bit word (add deltas, then <see cref="Apply"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Delta16(ushort old, ushort now) => (ulong)(ushort)~old + now;

    /// <summary>The delta of a 32-bit field (an IPv4 address; two ports).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Delta32(uint old, uint now) => Delta16((ushort)(old >> 16), (ushort)(now >> 16)) + Delta16((ushort)old, (ushort)now);

    /// <summary>The delta of a 64-bit field (half an IPv6 address).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Delta64(ulong old, ulong now) => Delta32((uint)(old >> 32), (uint)(now >> 32)) + Delta32((uint)old, (uint)now);

    /// <summary>The delta of an IPv6 address given as its high and low 8 bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Delta128(ulong oldHi, ulong oldLo, ulong nowHi, ulong nowLo) => Delta64(oldHi, nowHi) + Delta64(oldLo, nowLo);

    /// <summary>The checksum <paramref name="csum"/> after the changes summed in <paramref name="delta"/> (RFC 1624 eqn. 3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Apply(ushort csum, ulong delta)
    {
        ulong s = (ushort)~csum + delta; // at most 17 words of deltas fit in far fewer than 64 bits
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        return (ushort)~s;
    }

    /// <summary>
    /// Rewrites the source (<paramref name="source"/>) or destination address and port of the packet
    /// an ICMP/ICMPv6 error quotes, fixing every checksum inside the quote and the error's ICMP
    /// checksum. <paramref name="l3"/> is the error from its IP header; <paramref name="quoted"/> and
    /// <paramref name="info"/> are what <see cref="TupleParser"/> returned for it (kind
    /// <see cref="TupleKind.IcmpError"/>). IPv4 addresses go in <paramref name="addrLo"/>. For a
    /// quoted echo, <paramref name="port"/> is the id. A quoted SCTP packet's CRC is left alone.
    /// </summary>
    public static void RewriteQuoted(Span<byte> l3, in ConnTuple quoted, in TupleInfo info, bool source, ulong addrHi, ulong addrLo, ushort port)
    {
        Span<byte> q = l3[..info.End];
        int il3 = info.InnerL3, il4 = info.InnerL4;
        bool v6 = quoted.Family == ConnTuple.V6;
        byte proto = quoted.Protocol;
        ulong outer, addrDelta;
        if (v6)
        {
            Span<byte> field = q[(il3 + (source ? 8 : 24))..];
            ulong oldHi = BinaryPrimitives.ReadUInt64BigEndian(field), oldLo = BinaryPrimitives.ReadUInt64BigEndian(field[8..]);
            BinaryPrimitives.WriteUInt64BigEndian(field, addrHi);
            BinaryPrimitives.WriteUInt64BigEndian(field[8..], addrLo);
            addrDelta = outer = Delta128(oldHi, oldLo, addrHi, addrLo);
        }
        else
        {
            Span<byte> field = q[(il3 + (source ? 12 : 16))..];
            uint old = BinaryPrimitives.ReadUInt32BigEndian(field);
            BinaryPrimitives.WriteUInt32BigEndian(field, (uint)addrLo);
            addrDelta = outer = Delta32(old, (uint)addrLo);
            outer += Rewrite16(q[(il3 + 10)..], Apply(BinaryPrimitives.ReadUInt16BigEndian(q[(il3 + 10)..]), addrDelta));
        }

        switch (proto)
        {
            case KeyExtractor.ProtoTcp:
            case KeyExtractor.ProtoUdp:
            case KeyExtractor.ProtoSctp:
                ulong portDelta = Rewrite16(q[(il4 + (source ? 0 : 2))..], port);
                outer += portDelta;
                int csumAt = il4 + (proto == KeyExtractor.ProtoUdp ? 6 : 16);
                if (proto != KeyExtractor.ProtoSctp && csumAt + 2 <= q.Length)
                {
                    ushort c = BinaryPrimitives.ReadUInt16BigEndian(q[csumAt..]);
                    if (proto == KeyExtractor.ProtoTcp || c != 0) // UDP's 0: no checksum
                    {
                        ushort now = Apply(c, addrDelta + portDelta);
                        outer += Rewrite16(q[csumAt..], proto == KeyExtractor.ProtoUdp && now == 0 ? (ushort)0xFFFF : now);
                    }
                }

                break;
            case KeyExtractor.ProtoIcmp:
            case KeyExtractor.ProtoIcmpv6:
                byte type = q[il4];
                if (type is ConnTuple.IcmpEchoRequest or ConnTuple.IcmpEchoReply or ConnTuple.Icmp6EchoRequest or ConnTuple.Icmp6EchoReply)
                {
                    ulong idDelta = Rewrite16(q[(il4 + 4)..], port);
                    ulong inner = v6 ? addrDelta + idDelta : idDelta; // ICMPv6's pseudo-header holds the addresses
                    outer += idDelta + Rewrite16(q[(il4 + 2)..], Apply(BinaryPrimitives.ReadUInt16BigEndian(q[(il4 + 2)..]), inner));
                }

                break;
        }

        Span<byte> icmpCsum = q[(info.L4 + 2)..];
        BinaryPrimitives.WriteUInt16BigEndian(icmpCsum, Apply(BinaryPrimitives.ReadUInt16BigEndian(icmpCsum), outer));
    }

    /// <summary>Writes <paramref name="now"/> over the big-endian word at the start of <paramref name="field"/>; returns its delta.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Rewrite16(Span<byte> field, ushort now)
    {
        ushort old = BinaryPrimitives.ReadUInt16BigEndian(field);
        BinaryPrimitives.WriteUInt16BigEndian(field, now);
        return Delta16(old, now);
    }
}
