// TcpTracker.cs - TCP connection state and window tracking for connection tracking (issue 11).
//
// The model is the one Guido van Rooij described in "Real Stateful TCP Packet Filtering in IP
// Filter" (2000), which Linux, pf and Open vSwitch all follow: each side of a connection has the
// highest sequence number it has sent (End), the highest one the other side's acknowledgements and
// windows allow it to send (MaxEnd), and the largest window it advertised. A segment is in window
// when
//   1. it ends at or before MaxEnd of its sender (no data beyond what the receiver allowed),
//   2. it starts no more than one of the receiver's windows before its sender's End (a retransmit),
//   3. it acknowledges no more than a little (MaxAckWindow) beyond what the other side sent, and
//   4. no more than MaxAckWindow times the window scale behind it;
// a RST must also carry exactly the sequence number expected (RFC 5961's blind-reset defence).
// An in-window segment advances the sides' state (SYN sent, established, FIN sent, FIN acked)
// and their windows; anything else is invalid and changes nothing. Differences from Open vSwitch,
// on purpose: only a SYN without ACK creates a connection (Open vSwitch also picks up an
// established stream from any ACK; a stateful firewall here lets no mid-stream packet open a hole),
// and a segment that fails the checks is always invalid (no loosened second chance).
//
// Pure functions over a struct that lives in the connection table's native memory: nothing here
// allocates or locks.
using System.Runtime.CompilerServices;

namespace VSwitch.Conntrack;

/// <summary>What one side of a TCP connection has done, in order (comparisons use the order).</summary>
public enum TcpPeerState : byte
{
    /// <summary>Nothing seen from this side yet.</summary>
    None,

    /// <summary>It sent a SYN.</summary>
    SynSent,

    /// <summary>Its SYN was acknowledged.</summary>
    Established,

    /// <summary>It sent a FIN.</summary>
    FinSent,

    /// <summary>Its FIN was acknowledged.</summary>
    FinAcked,

    /// <summary>A RST ended the connection.</summary>
    Reset,
}

/// <summary>One side's sequence space and window (host byte order).</summary>
public struct TcpPeer
{
    /// <summary>Highest sequence number sent, plus one (SYN and FIN count one each).</summary>
    public uint End;

    /// <summary>Highest sequence number the other side allows this one to send (its ack plus its window).</summary>
    public uint MaxEnd;

    /// <summary>Largest window field this side sent, in its scaled units once both sides scale (a SYN's rounded up to them).</summary>
    public uint MaxWin;

    /// <summary>Window scale shift from its SYN; <see cref="TcpTracker.NoScale"/> when it sent none.</summary>
    public byte Scale;

    public TcpPeerState State;
}

/// <summary>Both sides of a tracked TCP connection: the originator (sent the first SYN) and the responder.</summary>
public struct TcpConn
{
    public TcpPeer Orig;
    public TcpPeer Reply;
}

/// <summary>The fields of a TCP segment the tracker reads (host byte order).</summary>
public readonly record struct TcpSegment(uint Seq, uint Ack, ushort Window, ushort Flags, int PayloadLength, byte WindowScale = TcpTracker.NoScale);

/// <summary>What a segment did to its connection.</summary>
public enum TcpVerdict : byte
{
    /// <summary>Bad flags, out of window, or not allowed in the connection's state: nothing changed.</summary>
    Invalid,

    /// <summary>In window: the connection advanced.</summary>
    Valid,

    /// <summary>A SYN on a connection both sides closed: the caller starts a new connection with it.</summary>
    Restart,
}

/// <summary>Which timeout a connection's state takes (Linux's nf_conntrack TCP timeouts by default).</summary>
public enum TcpTimeout : byte
{
    /// <summary>SYN sent, not answered (Linux syn_sent, 120 s).</summary>
    SynSent,

    /// <summary>SYN answered, handshake not complete (syn_recv, 60 s).</summary>
    SynRecv,

    /// <summary>Both SYNs acknowledged (established, 5 days).</summary>
    Established,

    /// <summary>One side sent a FIN (fin_wait / close_wait, 120 s).</summary>
    FinWait,

    /// <summary>Both sides' FINs sent, one not yet acknowledged (last_ack, 30 s).</summary>
    LastAck,

    /// <summary>Both FINs acknowledged (time_wait, 120 s).</summary>
    TimeWait,

    /// <summary>Reset (close, 10 s).</summary>
    Close,
}

public static class TcpTracker
{
    public const ushort Fin = 0x01, Syn = 0x02, Rst = 0x04, Psh = 0x08, Ack = 0x10, Urg = 0x20;

    /// <summary>No window scale option (RFC 7323: the shift is 0).</summary>
    public const byte NoScale = 0xFF;

    /// <summary>The largest shift RFC 7323 allows.</summary>
    public const int MaxScale = 14;

    /// <summary>How far an ack may stray from what the other side sent: a maximal unscaled window plus a segment.</summary>
    public const int MaxAckWindow = 65535 + 1500;

    /// <summary>Linux's default timeouts in seconds, by <see cref="TcpTimeout"/>.</summary>
    public static readonly int[] DefaultTimeoutSeconds = [120, 60, 432_000, 120, 30, 120, 10];

    /// <summary>True for flag combinations no TCP stack sends (SYN with RST or FIN, no SYN/ACK/RST at all, FIN/PSH/URG without ACK).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool BadFlags(ushort flags)
    {
        if ((flags & Syn) != 0 ? (flags & (Rst | Fin)) != 0 : (flags & (Ack | Rst)) == 0)
        {
            return true;
        }

        return (flags & Ack) == 0 && (flags & (Fin | Psh | Urg)) != 0;
    }

    /// <summary>True when a segment may open a connection: a SYN without ACK (and sane flags).</summary>
    public static bool Opens(in TcpSegment s) => !BadFlags(s.Flags) && (s.Flags & (Syn | Ack)) == Syn;

    /// <summary>A new connection from its first SYN (<see cref="Opens"/> must hold).</summary>
    public static TcpConn Start(in TcpSegment s)
    {
        TcpConn c = default;
        ref TcpPeer o = ref c.Orig;
        o.State = TcpPeerState.SynSent;
        o.Scale = s.WindowScale == NoScale ? NoScale : (byte)Math.Min((int)s.WindowScale, MaxScale);
        o.End = s.Seq + (uint)s.PayloadLength + 1 + ((s.Flags & Fin) != 0 ? 1u : 0u);
        o.MaxWin = Unscaled(s.Window, o.Scale); // in the units its later windows will have, if the responder scales too
        o.MaxEnd = o.End; // nothing more until the responder's window arrives
        c.Reply.MaxWin = 1;
        c.Reply.Scale = NoScale;
        return c;
    }

    /// <summary>Tracks one segment of an existing connection, sent by the originator or (<paramref name="reply"/>) the responder.</summary>
    public static TcpVerdict Update(ref TcpConn c, bool reply, in TcpSegment s)
    {
        ref TcpPeer src = ref reply ? ref c.Reply : ref c.Orig;
        ref TcpPeer dst = ref reply ? ref c.Orig : ref c.Reply;
        ushort flags = s.Flags;
        if (BadFlags(flags))
        {
            return TcpVerdict.Invalid;
        }

        bool syn = (flags & Syn) != 0, ack = (flags & Ack) != 0, rst = (flags & Rst) != 0, fin = (flags & Fin) != 0;
        if (src.State == TcpPeerState.Reset && !rst)
        {
            return syn && !ack ? TcpVerdict.Restart : TcpVerdict.Invalid; // reset: only a new SYN (or another RST) belongs
        }
        if (syn && !ack)
        {
            if (src.State >= TcpPeerState.FinAcked && dst.State >= TcpPeerState.FinAcked)
            {
                return TcpVerdict.Restart; // a port reused after a close (or a reset)
            }

            if (src.State > TcpPeerState.SynSent)
            {
                return TcpVerdict.Invalid; // a SYN inside a synchronized connection
            }
        }

        // Window scaling applies once both SYNs carried the option, and never to a SYN's own window.
        bool scaled = src.Scale != NoScale && dst.Scale != NoScale;
        int sws = scaled && !syn ? src.Scale : 0;

        uint seq = s.Seq;
        uint end = seq + (uint)s.PayloadLength + (syn ? 1u : 0u) + (fin ? 1u : 0u);
        uint rawWin = syn ? Unscaled(s.Window, scaled ? src.Scale : NoScale) : s.Window; // in the sender's window units
        if (src.State == TcpPeerState.None)
        {
            // The responder's first segment (its SYN/ACK, or a SYN of a simultaneous open).
            if (!syn)
            {
                return TcpVerdict.Invalid;
            }

            src.Scale = s.WindowScale == NoScale ? NoScale : (byte)Math.Min((int)s.WindowScale, MaxScale);
            if (src.Scale == NoScale && dst.Scale != NoScale)
            {
                dst.MaxWin <<= dst.Scale; // one side without the option: neither scales (RFC 7323)
                dst.Scale = NoScale;
            }

            scaled = src.Scale != NoScale && dst.Scale != NoScale;
            rawWin = scaled ? Unscaled(s.Window, src.Scale) : s.Window;
            src.End = seq;
            src.MaxEnd = end + Math.Max(1u, dst.MaxWin << (scaled ? dst.Scale : 0));
            src.MaxWin = Math.Max(1u, rawWin);
        }

        uint ackNo = s.Ack;
        if (!ack || (rst && ackNo == 0))
        {
            ackNo = dst.End; // nothing acknowledged: the ack checks pass
        }

        if (seq == end)
        {
            seq = end = src.End; // an empty segment (a pure ACK) may carry any old sequence number
        }

        int ackSkew = (int)(dst.End - ackNo);
        uint back = dst.MaxWin << (scaled ? dst.Scale : 0);
        bool inWindow = SeqLeq(end, src.MaxEnd)
            && SeqGeq(seq, src.End - back)
            && ackSkew >= -MaxAckWindow
            && ackSkew <= (MaxAckWindow << sws)
            && (!rst || s.Seq == src.End || s.Seq + 1 == src.End || s.Seq == src.End + 1);
        if (!inWindow || (src.State >= TcpPeerState.FinSent && SeqGt(end, src.End)))
        {
            return TcpVerdict.Invalid; // out of window, or data after this side's FIN
        }

        src.MaxWin = Math.Max(src.MaxWin, rawWin);
        if (SeqGt(end, src.End))
        {
            src.End = end;
        }

        uint allowed = ackNo + Math.Max(syn ? s.Window : rawWin << sws, 1u);
        if (ack && SeqGeq(allowed, dst.MaxEnd))
        {
            dst.MaxEnd = allowed;
        }

        if (syn && src.State < TcpPeerState.SynSent)
        {
            src.State = TcpPeerState.SynSent;
        }

        if (fin && src.State < TcpPeerState.FinSent)
        {
            src.State = TcpPeerState.FinSent;
        }

        if (ack)
        {
            if (dst.State == TcpPeerState.SynSent && SeqGeq(ackNo, dst.End))
            {
                dst.State = TcpPeerState.Established;
            }
            else if (dst.State == TcpPeerState.FinSent && SeqGeq(ackNo, dst.End))
            {
                dst.State = TcpPeerState.FinAcked;
            }
        }

        if (rst)
        {
            src.State = dst.State = TcpPeerState.Reset;
        }

        return TcpVerdict.Valid;
    }

    /// <summary>The timeout class of a connection's state.</summary>
    public static TcpTimeout TimeoutOf(in TcpConn c)
    {
        TcpPeerState a = c.Orig.State, b = c.Reply.State;
        TcpPeerState lo = a < b ? a : b, hi = a < b ? b : a;
        return hi == TcpPeerState.Reset ? TcpTimeout.Close
            : lo >= TcpPeerState.FinAcked ? TcpTimeout.TimeWait
            : lo >= TcpPeerState.FinSent ? TcpTimeout.LastAck
            : hi >= TcpPeerState.FinSent ? TcpTimeout.FinWait
            : lo == TcpPeerState.Established ? TcpTimeout.Established
            : b == TcpPeerState.None ? TcpTimeout.SynSent
            : TcpTimeout.SynRecv;
    }

    /// <summary>True once the responder has answered in window: the connection is established in conntrack's sense (+est).</summary>
    public static bool Answered(in TcpConn c) => c.Reply.State != TcpPeerState.None;

    /// <summary>A SYN's window in the units of a scaled window (rounded up), or as is without scaling.</summary>
    private static uint Unscaled(ushort window, byte scale)
    {
        uint w = Math.Max(window, (ushort)1);
        return scale == NoScale || scale == 0 ? w : (w + (1u << scale) - 1) >> scale;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SeqLeq(uint a, uint b) => (int)(a - b) <= 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SeqGeq(uint a, uint b) => (int)(a - b) >= 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SeqGt(uint a, uint b) => (int)(a - b) > 0;
}
