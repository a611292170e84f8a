// UdpIcmpTracker.cs - connection state for UDP, ICMP/ICMPv6 echo and every other non-TCP protocol.
//
// Linux's nf_conntrack model: these protocols have no handshake, so a connection is "unreplied"
// until a packet goes the other way and "replied" after. UDP waits 30 s unreplied and 120 s once
// replied (a stream: udp_timeout and udp_timeout_stream; Linux also keeps the 30 s for the first
// 2 s after a reply, which this tracker does not). ICMP and ICMPv6 echo wait 30 s either way
// (icmp_timeout, icmpv6_timeout); only an echo request opens one, so an unsolicited echo reply or an
// ICMP error that matches no connection is not new (it is invalid, or related to the connection
// its embedded packet names). Every other protocol (SCTP included: no SCTP state machine here) is
// generic: 600 s (nf_conntrack_generic_timeout), opened by any packet.
//
// As in TcpTracker, each side's byte is written only by packets that side sends, so the two
// directions of a connection may be tracked by different PMDs without a lock; the state is derived
// from both bytes when asked. The struct lives in the connection table's native memory.
using System.Runtime.CompilerServices;
using VSwitch.Packets;

namespace VSwitch.Conntrack;

/// <summary>Which kind of non-TCP connection, fixed when it starts.</summary>
public enum DatagramProto : byte
{
    /// <summary>UDP.</summary>
    Udp,

    /// <summary>ICMP or ICMPv6 echo.</summary>
    IcmpEcho,

    /// <summary>Any other protocol.</summary>
    Generic,
}

/// <summary>Which timeout a non-TCP connection's state takes (Linux's defaults in <see cref="UdpIcmpTracker.DefaultTimeoutSeconds"/>).</summary>
public enum DatagramTimeout : byte
{
    /// <summary>UDP, nothing back yet (udp_timeout, 30 s).</summary>
    UdpUnreplied,

    /// <summary>UDP, both ways (udp_timeout_stream, 120 s).</summary>
    UdpReplied,

    /// <summary>ICMP/ICMPv6 echo (icmp_timeout, icmpv6_timeout, 30 s).</summary>
    Icmp,

    /// <summary>Other protocols (generic_timeout, 600 s).</summary>
    Generic,
}

/// <summary>A non-TCP connection: its kind and what each side sent (each side's byte written only by its own packets).</summary>
public struct DatagramConn
{
    /// <summary>The protocol class, written once by <see cref="UdpIcmpTracker.Start"/>.</summary>
    public DatagramProto Proto;

    /// <summary><see cref="UdpIcmpTracker.SideSeen"/>: the originator sent a packet (written only by its packets).</summary>
    public byte Orig;

    /// <summary><see cref="UdpIcmpTracker.SideSeen"/>: the responder sent a packet (written only by its packets).</summary>
    public byte Reply;
}

public static class UdpIcmpTracker
{
    /// <summary>Bit of <see cref="DatagramConn.Orig"/> and <see cref="DatagramConn.Reply"/>: that side sent a packet.</summary>
    public const byte SideSeen = 1;

    /// <summary>Linux's default timeouts in seconds, by <see cref="DatagramTimeout"/> (settable).</summary>
    public static readonly int[] DefaultTimeoutSeconds = [30, 120, 30, 600];

    /// <summary>The class a tuple's protocol is tracked as (TCP belongs to <see cref="TcpTracker"/>, not here).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static DatagramProto ProtoOf(byte protocol) => protocol switch
    {
        KeyExtractor.ProtoUdp => DatagramProto.Udp,
        KeyExtractor.ProtoIcmp or KeyExtractor.ProtoIcmpv6 => DatagramProto.IcmpEcho,
        _ => DatagramProto.Generic,
    };

    /// <summary>
    /// True when a packet that matches no connection may open one: any UDP or other-protocol packet,
    /// but of ICMP only an echo request; never an ICMP error, another ICMP type or a later fragment.
    /// </summary>
    public static bool Opens(in ConnTuple t, TupleKind kind) => kind switch
    {
        TupleKind.Ports or TupleKind.Addresses => true,
        TupleKind.IcmpEcho => t.IcmpType == (t.Family == ConnTuple.V4 ? ConnTuple.IcmpEchoRequest : ConnTuple.Icmp6EchoRequest),
        _ => false,
    };

    /// <summary>A new connection from its first packet (<see cref="Opens"/> must hold), sent by the originator.</summary>
    public static DatagramConn Start(in ConnTuple t) => new() { Proto = ProtoOf(t.Protocol), Orig = SideSeen };

    /// <summary>Tracks one packet sent by the originator or (<paramref name="reply"/>) the responder; writes only the sender's byte. True when it is the first reply.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Update(ref DatagramConn c, bool reply)
    {
        ref byte side = ref reply ? ref c.Reply : ref c.Orig;
        if ((side & SideSeen) != 0)
        {
            return false; // already set: no write, so the cache line stays shared between the PMDs
        }

        side |= SideSeen;
        return reply;
    }

    /// <summary>True once the responder has sent a packet: established in conntrack's sense (+est).</summary>
    public static bool Replied(in DatagramConn c) => (c.Reply & SideSeen) != 0;

    /// <summary>The timeout class of a connection's state.</summary>
    public static DatagramTimeout TimeoutOf(in DatagramConn c) => c.Proto switch
    {
        DatagramProto.Udp => Replied(c) ? DatagramTimeout.UdpReplied : DatagramTimeout.UdpUnreplied,
        DatagramProto.IcmpEcho => DatagramTimeout.Icmp,
        _ => DatagramTimeout.Generic,
    };
}
