// NatChecksum.cs - checksums after a NAT rewrite, updated incrementally (RFC 1624).
//
// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for each 16-bit word m that became m'. The differences
// (~m + m') of every changed word are summed in a 64-bit accumulator first (a Delta) and folded
// once (Apply), so an IPv6 address (8 words) and a port cost one fold. What each checksum covers:
//   IPv4 header checksum: the header, so the addresses (not the ports);
//   TCP, UDP: an IP pseudo-header (addresses) and the segment (ports): address and port changes;
//   ICMPv6: an IPv6 pseudo-header (RFC 4443 2.3) and the message (the echo identifier);
//   ICMP (IPv4): the message only, no pseudo-header: only the echo identifier.
// UDP over IPv4 with checksum 0 has none (RFC 768) and keeps 0; over IPv6, 0 can only be RFC 6935's
// zero-checksum tunnel exception, and keeps 0 as well. A UDP checksum that computes to 0 is sent
// as 0xFFFF (RFC 768). Values are host byte order; the caller reads and writes the fields. Eqn. 3
// never yields 0xFFFF from a correct checksum (as a full recomputation never does), so the result
// equals a full recomputation bit for bit, which the tests check. Nothing here allocates.
using System.Runtime.CompilerServices;

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

    /// <summary>The IPv4 header checksum after an address changed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Ipv4Header(ushort csum, uint oldAddress, uint newAddress) => Apply(csum, Delta32(oldAddress, newAddress));

    /// <summary>The TCP checksum (IPv4) after an address and/or a port changed (pass old == new for what stayed).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Tcp4(ushort csum, uint oldAddress, uint newAddress, ushort oldPort, ushort newPort) =>
        Apply(csum, Delta32(oldAddress, newAddress) + Delta16(oldPort, newPort));

    /// <summary>The UDP checksum (IPv4) after an address and/or a port changed: 0 (no checksum) stays 0, a computed 0 is 0xFFFF.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Udp4(ushort csum, uint oldAddress, uint newAddress, ushort oldPort, ushort newPort) =>
        csum == 0 ? (ushort)0 : UdpNonZero(Apply(csum, Delta32(oldAddress, newAddress) + Delta16(oldPort, newPort)));

    /// <summary>The TCP checksum (IPv6) after an address and/or a port changed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Tcp6(ushort csum, ulong oldHi, ulong oldLo, ulong newHi, ulong newLo, ushort oldPort, ushort newPort) =>
        Apply(csum, Delta128(oldHi, oldLo, newHi, newLo) + Delta16(oldPort, newPort));

    /// <summary>The UDP checksum (IPv6) after an address and/or a port changed: 0 (RFC 6935) stays 0, a computed 0 is 0xFFFF.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Udp6(ushort csum, ulong oldHi, ulong oldLo, ulong newHi, ulong newLo, ushort oldPort, ushort newPort) =>
        csum == 0 ? (ushort)0 : UdpNonZero(Apply(csum, Delta128(oldHi, oldLo, newHi, newLo) + Delta16(oldPort, newPort)));

    /// <summary>The ICMPv6 checksum after an address (pseudo-header) and/or the echo identifier changed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Icmp6(ushort csum, ulong oldHi, ulong oldLo, ulong newHi, ulong newLo, ushort oldId, ushort newId) =>
        Apply(csum, Delta128(oldHi, oldLo, newHi, newLo) + Delta16(oldId, newId));

    /// <summary>The ICMP (IPv4) checksum after the echo identifier changed (no pseudo-header: addresses do not count).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort IcmpEchoId(ushort csum, ushort oldId, ushort newId) => Apply(csum, Delta16(oldId, newId));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort UdpNonZero(ushort c) => c == 0 ? (ushort)0xFFFF : c;
}
