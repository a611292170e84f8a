// The TCP tracker (connection tracking's TCP state and window checks) on recorded and hand-built
// segment sequences: a real transfer between Linux's own stacks, handshakes, closes, resets, and
// segments a stateful firewall must call invalid.
using System.Globalization;
using VSwitch.Conntrack;
using Xunit;
using static VSwitch.Conntrack.TcpTracker;

namespace VSwitch.Tests;

public class TcpTrackerTests
{
    private const uint C = 1000, S = 5000; // initial sequence numbers of client and server

    private static TcpSegment Seg(uint seq, uint ack, ushort flags, int len = 0, ushort win = 502, byte ws = NoScale) =>
        new(seq, ack, win, flags, len, ws);

    /// <summary>Client SYN (window scale 7), server SYN/ACK (7), client ACK: an established connection.</summary>
    private static TcpConn Handshake()
    {
        var c = Start(Seg(C, 0, Syn, win: 64240, ws: 7));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, true, Seg(S, C + 1, Syn | Ack, win: 65160, ws: 7)));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C + 1, S + 1, Ack)));
        return c;
    }

    [Fact]
    public void A_recorded_linux_transfer_is_valid_segment_by_segment_and_ends_in_time_wait()
    {
        var lines = File.ReadAllLines(Path.Combine(Repo.Root, "tests/VSwitch.Tests/Data/tcp-loopback-transfer.tsv"))
            .Where(l => l.Length > 0 && l[0] != '#').Select(l => l.Split('\t')).ToList();
        Assert.True(lines.Count > 50, $"{lines.Count} segments recorded");
        TcpConn conn = default;
        for (int i = 0; i < lines.Count; i++)
        {
            var f = lines[i];
            var seg = new TcpSegment(uint.Parse(f[1], CultureInfo.InvariantCulture), uint.Parse(f[2], CultureInfo.InvariantCulture),
                ushort.Parse(f[3], CultureInfo.InvariantCulture), Convert.ToUInt16(f[4], 16), int.Parse(f[5], CultureInfo.InvariantCulture),
                f.Length > 6 && f[6].Length > 0 ? byte.Parse(f[6], CultureInfo.InvariantCulture) : NoScale);
            if (i == 0)
            {
                Assert.True(Opens(seg));
                conn = Start(seg);
                continue;
            }

            bool reply = f[0] == "18471";
            var other = reply ? conn.Orig : conn.Reply;
            var verdict = Update(ref conn, reply, seg);
            Assert.Equal(other, reply ? conn.Orig : conn.Reply); // a segment writes only its sender's half (two PMDs need no lock)
            Assert.True(verdict == TcpVerdict.Valid, $"segment {i + 1} ({string.Join(' ', f)}) is invalid; orig {Show(conn.Orig)}, reply {Show(conn.Reply)}");
            if (i == 2)
            {
                Assert.Equal(TcpTimeout.Established, TimeoutOf(conn));
            }
        }

        Assert.Equal(TcpPeerState.FinAcked, StateOf(conn, false));
        Assert.Equal(TcpPeerState.FinAcked, StateOf(conn, true));
        Assert.Equal(TcpTimeout.TimeWait, TimeoutOf(conn));
    }

    private static string Show(TcpPeer p) => $"[end {p.End} grant {p.Grant} acked {p.Acked} maxwin {p.MaxWin} scale {p.Scale} seen {p.Seen}]";

    [Fact]
    public void Handshake_data_and_a_fin_close_walk_the_states_and_their_timeouts()
    {
        var c = Start(Seg(C, 0, Syn, win: 64240, ws: 7));
        Assert.Equal(TcpTimeout.SynSent, TimeoutOf(c));
        Assert.False(Answered(c));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, true, Seg(S, C + 1, Syn | Ack, win: 65160, ws: 7)));
        Assert.True(Answered(c));
        Assert.Equal(TcpTimeout.SynRecv, TimeoutOf(c));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C + 1, S + 1, Ack)));
        Assert.Equal(TcpTimeout.Established, TimeoutOf(c));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C + 1, S + 1, Psh | Ack, len: 100)));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, true, Seg(S + 1, C + 101, Psh | Ack, len: 2000)));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C + 101, S + 2001, Fin | Ack)));
        Assert.Equal(TcpTimeout.FinWait, TimeoutOf(c));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, true, Seg(S + 2001, C + 102, Fin | Ack)));
        Assert.Equal(TcpTimeout.LastAck, TimeoutOf(c));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C + 102, S + 2002, Ack)));
        Assert.Equal(TcpTimeout.TimeWait, TimeoutOf(c));

        // Data after a side's FIN is invalid; a new SYN on the closed tuple restarts it.
        Assert.Equal(TcpVerdict.Invalid, Update(ref c, false, Seg(C + 102, S + 2002, Psh | Ack, len: 10)));
        Assert.Equal(TcpVerdict.Restart, Update(ref c, false, Seg(C + 90000, 0, Syn, ws: 7)));
    }

    [Fact]
    public void Segments_outside_the_window_or_acking_unsent_data_are_invalid_and_change_nothing()
    {
        var c = Handshake();
        var before = c;
        Assert.Equal(TcpVerdict.Invalid, Update(ref c, false, Seg(C + 1 + 20_000_000, S + 1, Psh | Ack, len: 100))); // far ahead
        Assert.Equal(TcpVerdict.Invalid, Update(ref c, false, Seg(unchecked(C + 1 - 20_000_000), S + 1, Psh | Ack, len: 100))); // far behind
        Assert.Equal(TcpVerdict.Invalid, Update(ref c, true, Seg(S + 1, C + 1 + 500_000, Ack))); // acks data never sent
        Assert.Equal(before, c);

        // The same segments in window pass, and a retransmit one window back still does.
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C + 1, S + 1, Psh | Ack, len: 1000)));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C + 1, S + 1, Psh | Ack, len: 1000)));
    }

    [Theory]
    [InlineData(Syn | Fin)]
    [InlineData(Syn | Rst)]
    [InlineData(0)] // a null scan
    [InlineData(Fin)] // FIN without ACK
    [InlineData(Fin | Psh | Urg)] // xmas
    [InlineData(Psh)]
    public void Flag_combinations_no_stack_sends_are_invalid_and_open_nothing(int flags)
    {
        Assert.True(BadFlags((ushort)flags));
        Assert.False(Opens(Seg(C, 0, (ushort)flags)));
        var c = Handshake();
        Assert.Equal(TcpVerdict.Invalid, Update(ref c, false, Seg(C + 1, S + 1, (ushort)flags)));
    }

    [Fact]
    public void Only_a_syn_without_ack_opens_a_connection()
    {
        Assert.True(Opens(Seg(C, 0, Syn)));
        Assert.False(Opens(Seg(C, 0, Syn | Ack)));
        Assert.False(Opens(Seg(C, S, Ack)));
        Assert.False(Opens(Seg(C, S, Rst | Ack)));

        // The responder's first segment must be a SYN: a bare ACK from "inside" a connection nobody opened is invalid.
        var c = Start(Seg(C, 0, Syn, win: 64240));
        Assert.Equal(TcpVerdict.Invalid, Update(ref c, true, Seg(S, C + 1, Ack)));
    }

    [Fact]
    public void A_reset_must_carry_the_expected_sequence_number_and_then_closes_both_sides()
    {
        var c = Handshake();
        Assert.Equal(TcpVerdict.Invalid, Update(ref c, true, Seg(S + 1 + 30_000, C + 1, Rst | Ack))); // blind reset guess
        Assert.Equal(TcpTimeout.Established, TimeoutOf(c));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, true, Seg(S + 1, C + 1, Rst | Ack)));
        Assert.Equal(TcpTimeout.Close, TimeoutOf(c));
        Assert.Equal(TcpVerdict.Invalid, Update(ref c, false, Seg(C + 1, S + 1, Psh | Ack, len: 10)));
        Assert.Equal(TcpVerdict.Restart, Update(ref c, false, Seg(C + 7777, 0, Syn)));
    }

    [Fact]
    public void A_reset_answering_a_syn_to_a_closed_port_is_valid()
    {
        var c = Start(Seg(C, 0, Syn, win: 64240));
        // RST/ACK with seq 0 acking the SYN: the responder has no sequence yet.
        Assert.Equal(TcpVerdict.Invalid, Update(ref c, true, Seg(0, C + 1, Rst | Ack))); // not a SYN: the responder never synchronized
        Assert.Equal(TcpTimeout.SynSent, TimeoutOf(c));
    }

    [Fact]
    public void Simultaneous_open_and_a_retransmitted_syn_are_valid()
    {
        var c = Start(Seg(C, 0, Syn, win: 64240, ws: 7));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C, 0, Syn, win: 64240, ws: 7))); // retransmit
        Assert.Equal(TcpVerdict.Valid, Update(ref c, true, Seg(S, 0, Syn, win: 65160, ws: 7))); // their SYN crosses ours
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C, S + 1, Syn | Ack, win: 64240, ws: 7)));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, true, Seg(S, C + 1, Syn | Ack, win: 65160, ws: 7)));
        Assert.Equal(TcpTimeout.Established, TimeoutOf(c));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C + 1, S + 1, Psh | Ack, len: 500)));

        // A SYN/ACK retransmitted after the handshake (the final ACK was lost beyond the switch) is
        // valid; a SYN with a new initial sequence number inside the connection is not.
        var d = Handshake();
        Assert.Equal(TcpVerdict.Valid, Update(ref d, true, Seg(S, C + 1, Syn | Ack, win: 65160, ws: 7)));
        Assert.Equal(TcpVerdict.Invalid, Update(ref d, true, Seg(S + 3000, C + 1, Syn | Ack, win: 65160, ws: 7)));
        Assert.Equal(TcpVerdict.Invalid, Update(ref d, false, Seg(C + 3000, 0, Syn, win: 64240, ws: 7)));
    }

    [Fact]
    public void Window_scaling_counts_only_when_both_syns_carry_the_option()
    {
        // Both scale by 7: after a SYN/ACK window of 1000 bytes, a window field of 502 allows 64256 bytes.
        var c = Start(Seg(C, 0, Syn, win: 64240, ws: 7));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, true, Seg(S, C + 1, Syn | Ack, win: 1000, ws: 7)));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C + 1, S + 1, Ack)));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, true, Seg(S + 1, C + 1, Ack, win: 502)));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C + 1, S + 1, Psh | Ack, len: 60000)));

        // The server sends no option: neither side scales, and 502 bytes of window allow no 60000-byte segment.
        var d = Start(Seg(C, 0, Syn, win: 64240, ws: 7));
        Assert.Equal(TcpVerdict.Valid, Update(ref d, true, Seg(S, C + 1, Syn | Ack, win: 1000)));
        Assert.Equal(TcpVerdict.Valid, Update(ref d, false, Seg(C + 1, S + 1, Ack)));
        Assert.Equal(TcpVerdict.Valid, Update(ref d, true, Seg(S + 1, C + 1, Ack, win: 502)));
        Assert.Equal(TcpVerdict.Invalid, Update(ref d, false, Seg(C + 1, S + 1, Psh | Ack, len: 60000)));
        Assert.Equal(TcpVerdict.Valid, Update(ref d, false, Seg(C + 1, S + 1, Psh | Ack, len: 500)));
    }

    [Fact]
    public void Sequence_numbers_wrap_around_zero()
    {
        uint c0 = uint.MaxValue - 10, s0 = uint.MaxValue - 3; // not const: the sums below wrap
        var c = Start(Seg(c0, 0, Syn, win: 64240, ws: 7));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, true, Seg(s0, c0 + 1, Syn | Ack, win: 65160, ws: 7)));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(c0 + 1, s0 + 1, Ack)));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(c0 + 1, s0 + 1, Psh | Ack, len: 100))); // crosses 2^32
        Assert.Equal(TcpVerdict.Valid, Update(ref c, true, Seg(s0 + 1, c0 + 101, Ack)));
        Assert.Equal(unchecked(c0 + 101), c.Orig.End);
    }

    [Fact]
    public void A_syn_carrying_data_opens_the_connection_and_a_syn_ack_with_data_in_the_window_is_valid()
    {
        // TCP Fast Open: the client's SYN carries 18 bytes; the server's SYN/ACK acknowledges the SYN
        // only and carries data too (within the client's window). Before the fix the SYN was not
        // recorded at all (its data ran past a window nobody had announced) and the SYN/ACK was invalid.
        var c = Start(Seg(C, 0, Syn, len: 18, win: 64240));
        Assert.Equal(TcpPeerState.SynSent, StateOf(c, false));
        Assert.Equal(C + 19, c.Orig.End);
        Assert.Equal(TcpVerdict.Valid, Update(ref c, true, Seg(S, C + 1, Syn | Ack, len: 18, win: 65160)));
        Assert.Equal(TcpVerdict.Valid, Update(ref c, false, Seg(C + 19, S + 19, Ack)));
        Assert.Equal(TcpTimeout.Established, TimeoutOf(c));

        // Still refused: a SYN/ACK whose data runs past the client's window.
        var d = Start(Seg(C, 0, Syn, len: 18, win: 100));
        Assert.Equal(TcpVerdict.Invalid, Update(ref d, true, Seg(S, C + 1, Syn | Ack, len: 200, win: 65160)));

        // And data from the client before any answer, outside its SYN (a spoofed segment far ahead):
        // refused, so it cannot push the client's end past what the real SYN/ACK acknowledges.
        var e = Start(Seg(C, 0, Syn, len: 18, win: 64240));
        Assert.Equal(TcpVerdict.Invalid, Update(ref e, false, Seg(C + 1_000_001, 0, Ack, len: 100)));
        Assert.Equal(TcpVerdict.Valid, Update(ref e, false, Seg(C, 0, Syn, len: 18, win: 64240))); // the SYN again (its SYN/ACK was lost)
        Assert.Equal(TcpVerdict.Valid, Update(ref e, true, Seg(S, C + 19, Syn | Ack, win: 65160)));
    }
}
