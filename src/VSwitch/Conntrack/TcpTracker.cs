// TcpTracker.cs - TCP connection state and window tracking for connection tracking (issue 11).
//
// The model is the one Guido van Rooij described in "Real Stateful TCP Packet Filtering in IP
// Filter" (2000), which Linux, pf and Open vSwitch all follow: a segment is in window when
//   1. it ends at or before what the receiver allowed (the receiver's ack plus its window),
//   2. it starts no more than one of the receiver's windows before what its sender sent (a retransmit),
//   3. it acknowledges no more than a little (MaxAckWindow) beyond what the other side sent, and
//   4. no more than MaxAckWindow times the window scale behind it;
// a RST must also carry exactly the sequence number expected (RFC 5961's blind-reset defence).
// Differences from Open vSwitch, on purpose: only a SYN without ACK opens a connection (Open vSwitch
// also picks up an established stream from any ACK; a stateful firewall here lets no mid-stream
// packet open a hole), data after a side's FIN is invalid, and a segment that fails the checks is
// always invalid (no loosened second chance).
//
// Each side's record is written only by the segments that side sends: Update reads the other side
// and writes its sender's half. The two directions of a connection may arrive on ports polled by
// different PMDs, and so neither needs a lock nor can undo the other's writes (a side's state, such
// as "its FIN was acknowledged", is derived from both halves when asked). Pure functions over a
// struct that lives in the connection table's native memory: nothing here allocates.
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

/// <summary>One side's sequence space and window (host byte order), written only by the segments it sends.</summary>
public struct TcpPeer
{
    /// <summary>Highest sequence number sent, plus one (SYN and FIN count one each).</summary>
    public uint End;

    /// <summary>Highest sequence number this side lets the other send: its highest ack plus its window (never shrinks).</summary>
    public uint Grant;

    /// <summary>Highest acknowledgement this side sent.</summary>
    public uint Acked;

    /// <summary>Largest window this side advertised, in bytes.</summary>
    public uint MaxWin;

    /// <summary>Sequence number after its SYN, and after its FIN (valid with the flags).</summary>
    public uint SynEnd, FinEnd;

    /// <summary>Window scale shift from its SYN; <see cref="TcpTracker.NoScale"/> when it sent none.</summary>
    public byte Scale;

    /// <summary><see cref="TcpTracker"/>'s SideSyn, SideFin, SideRst, SideAck bits: what this side has sent.</summary>
    public byte Seen;
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

    /// <summary>Bits of <see cref="TcpPeer.Seen"/>.</summary>
    public const byte SideSyn = 1, SideFin = 2, SideRst = 4, SideAck = 8;

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
        c.Reply.Scale = NoScale;
        c.Orig.Scale = NoScale;
        _ = Update(ref c, false, s);
        return c;
    }

    /// <summary>What a side has done, from both halves (only the other side's acks say its SYN or FIN arrived).</summary>
    public static TcpPeerState StateOf(in TcpConn c, bool reply)
    {
        TcpPeer x = reply ? c.Reply : c.Orig, o = reply ? c.Orig : c.Reply;
        bool acked = (o.Seen & SideAck) != 0;
        return ((x.Seen | o.Seen) & SideRst) != 0 ? TcpPeerState.Reset
            : (x.Seen & SideSyn) == 0 ? TcpPeerState.None
            : (x.Seen & SideFin) != 0 ? (acked && SeqGeq(o.Acked, x.FinEnd) ? TcpPeerState.FinAcked : TcpPeerState.FinSent)
            : acked && SeqGeq(o.Acked, x.SynEnd) ? TcpPeerState.Established
            : TcpPeerState.SynSent;
    }

    /// <summary>Tracks one segment, sent by the originator or (<paramref name="reply"/>) the responder; writes only the sender's half.</summary>
    public static TcpVerdict Update(ref TcpConn c, bool reply, in TcpSegment s)
    {
        ref TcpPeer src = ref reply ? ref c.Reply : ref c.Orig;
        TcpPeer dst = reply ? c.Orig : c.Reply; // read once: another PMD may be writing it
        ushort flags = s.Flags;
        if (BadFlags(flags))
        {
            return TcpVerdict.Invalid;
        }

        bool syn = (flags & Syn) != 0, ack = (flags & Ack) != 0, rst = (flags & Rst) != 0, fin = (flags & Fin) != 0;
        TcpPeerState me = StateOf(c, reply), other = StateOf(c, !reply);
        if (syn && !ack && me >= TcpPeerState.FinAcked && other >= TcpPeerState.FinAcked)
        {
            return TcpVerdict.Restart; // a port reused after a close or a reset
        }

        if (me == TcpPeerState.Reset && !rst)
        {
            return TcpVerdict.Invalid; // after a reset only another RST belongs (or a new SYN, above)
        }

        bool first = (src.Seen & SideSyn) == 0; // this side's first segment: it must be its SYN
        if (first && !syn)
        {
            return TcpVerdict.Invalid;
        }

        byte scale = !first ? src.Scale : s.WindowScale == NoScale ? NoScale : (byte)Math.Min((int)s.WindowScale, MaxScale);
        uint sent = first ? s.Seq : src.End;
        uint synEnd = first ? s.Seq + 1 : src.SynEnd;
        if (syn && !first && s.Seq + 1 != synEnd)
        {
            return TcpVerdict.Invalid; // a SYN with a new initial sequence number inside the connection (a retransmitted one is checked as any segment)
        }

        // Window scaling applies once both SYNs carried the option, and never to a SYN's own window.
        int sws = scale != NoScale && dst.Scale != NoScale && !syn ? scale : 0;
        uint win = (uint)s.Window << sws;
        uint seq = s.Seq;
        uint end = seq + (uint)s.PayloadLength + (syn ? 1u : 0u) + (fin ? 1u : 0u);
        uint ackNo = !ack || (rst && s.Ack == 0) ? dst.End : s.Ack; // nothing acknowledged: the ack checks pass
        if (seq == end)
        {
            seq = end = sent; // an empty segment (a pure ACK) may carry any old sequence number
        }

        // What the receiver allowed: its ack plus window; before it acknowledged anything, a SYN
        // (with at most one of its windows of data) is all a side may send. Before the receiver has
        // sent anything, the originator's SYN may carry data (TCP Fast Open, no window announced yet);
        // anything else then may only repeat what was sent.
        uint limit = (dst.Seen & SideAck) != 0 ? dst.Grant
            : (dst.Seen & SideSyn) == 0 ? (syn ? end : src.End)
            : synEnd + Math.Max(1u, dst.MaxWin);
        int ackSkew = (int)(dst.End - ackNo);
        bool inWindow = SeqLeq(end, limit)
            && (dst.MaxWin == 0 || SeqGeq(end, sent - dst.MaxWin)) // as Linux: the segment's end within a window of what was sent (a retransmission of a SYN with data, too)
            && ackSkew >= -MaxAckWindow
            && ackSkew <= (MaxAckWindow << sws)
            && (!rst || s.Seq == sent || s.Seq + 1 == sent || s.Seq == sent + 1);
        if (!inWindow || ((src.Seen & SideFin) != 0 && SeqGt(end, src.FinEnd)))
        {
            return TcpVerdict.Invalid; // out of window, or data after this side's FIN
        }

        if (first)
        {
            src.Scale = scale;
            src.SynEnd = synEnd;
            src.End = sent;
            src.Seen |= SideSyn;
        }

        src.MaxWin = Math.Max(src.MaxWin, win);
        if (SeqGt(end, src.End))
        {
            src.End = end;
        }

        if (fin && (src.Seen & SideFin) == 0)
        {
            src.FinEnd = end;
            src.Seen |= SideFin;
        }

        if (ack)
        {
            uint grant = ackNo + Math.Max(win, 1u);
            if ((src.Seen & SideAck) == 0 || SeqGt(ackNo, src.Acked))
            {
                src.Acked = ackNo;
            }

            if ((src.Seen & SideAck) == 0 || SeqGt(grant, src.Grant))
            {
                src.Grant = grant;
            }

            src.Seen |= SideAck;
        }

        if (rst)
        {
            src.Seen |= SideRst;
        }

        return TcpVerdict.Valid;
    }

    /// <summary>The timeout class of a connection's state.</summary>
    public static TcpTimeout TimeoutOf(in TcpConn c)
    {
        TcpPeerState a = StateOf(c, false), b = StateOf(c, true);
        TcpPeerState lo = a < b ? a : b, hi = a < b ? b : a;
        return hi == TcpPeerState.Reset ? TcpTimeout.Close
            : lo >= TcpPeerState.FinAcked ? TcpTimeout.TimeWait
            : lo >= TcpPeerState.FinSent ? TcpTimeout.LastAck
            : hi >= TcpPeerState.FinSent ? TcpTimeout.FinWait
            : lo == TcpPeerState.Established ? TcpTimeout.Established
            : b == TcpPeerState.None ? TcpTimeout.SynSent
            : TcpTimeout.SynRecv;
    }

    /// <summary>True once the responder has answered: the connection is established in conntrack's sense (+est).</summary>
    public static bool Answered(in TcpConn c) => (c.Reply.Seen & SideSyn) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SeqLeq(uint a, uint b) => (int)(a - b) <= 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SeqGeq(uint a, uint b) => (int)(a - b) >= 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SeqGt(uint a, uint b) => (int)(a - b) > 0;
}
