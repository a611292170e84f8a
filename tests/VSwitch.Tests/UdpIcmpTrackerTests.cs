// UdpIcmpTrackerTests.cs - UDP, ICMP echo and generic connection state: what opens a connection,
// unreplied -> replied, Linux's timeouts, single-writer sides, and no allocation.
using VSwitch.Conntrack;
using static VSwitch.Conntrack.UdpIcmpTracker;
using static VSwitch.Tests.CtPackets;

namespace VSwitch.Tests;

public class UdpIcmpTrackerTests
{
    private static (ConnTuple Tuple, TupleKind Kind) Tuple(byte[] p)
    {
        Assert.Equal(TupleStatus.Ok, TupleParser.Parse(p, p[0] >> 4 == 6 ? (ushort)0x86DD : (ushort)0x0800, out var t, out var info));
        return (t, info.Kind);
    }

    [Fact]
    public void The_default_timeouts_are_linux_s()
    {
        Assert.Equal([30, 120, 30, 600], DefaultTimeoutSeconds);
        Assert.Equal(30, DefaultTimeoutSeconds[(int)DatagramTimeout.UdpUnreplied]);
        Assert.Equal(120, DefaultTimeoutSeconds[(int)DatagramTimeout.UdpReplied]);
        Assert.Equal(30, DefaultTimeoutSeconds[(int)DatagramTimeout.Icmp]);
        Assert.Equal(600, DefaultTimeoutSeconds[(int)DatagramTimeout.Generic]);
    }

    [Fact]
    public void Udp_is_unreplied_until_the_other_side_sends_then_a_stream()
    {
        var (req, kind) = Tuple(V4(A, B, 17, Udp(33000, 53)));
        Assert.True(Opens(req, kind));
        var c = Start(req);
        Assert.Equal(new DatagramConn { Proto = DatagramProto.Udp, Orig = SideSeen }, c);
        Assert.False(Replied(c));
        Assert.Equal(DatagramTimeout.UdpUnreplied, TimeoutOf(c));
        Assert.Equal(30, DefaultTimeoutSeconds[(int)TimeoutOf(c)]);

        Assert.False(Update(ref c, false)); // more from the originator: still unreplied
        Assert.False(Replied(c));

        var (rep, _) = Tuple(V4(B, A, 17, Udp(53, 33000)));
        Assert.Equal(req.Reverse(), rep); // the reply finds the connection in the reply direction
        byte orig = c.Orig;
        Assert.True(Update(ref c, true)); // the first reply
        Assert.Equal(orig, c.Orig); // a reply writes only the responder's byte
        Assert.True(Replied(c));
        Assert.Equal(DatagramTimeout.UdpReplied, TimeoutOf(c));
        Assert.Equal(120, DefaultTimeoutSeconds[(int)TimeoutOf(c)]);
        Assert.False(Update(ref c, true)); // not the first any more
        Assert.False(Update(ref c, false));
        Assert.Equal(new DatagramConn { Proto = DatagramProto.Udp, Orig = SideSeen, Reply = SideSeen }, c);
    }

    [Fact]
    public void Only_an_echo_request_opens_an_icmp_connection_and_its_reply_answers_it()
    {
        var (req, kind) = Tuple(V4(A, B, 1, Icmp(8, 0, 7, 1)));
        Assert.True(Opens(req, kind));
        var (rep, repKind) = Tuple(V4(B, A, 1, Icmp(0, 0, 7, 1)));
        Assert.False(Opens(rep, repKind)); // an unsolicited reply is not new
        var (err, errKind) = Tuple(V4(R, A, 1, Icmp(3, 1, 0, 0, Quote(V4(A, B, 17, Udp(1, 2)), 28))));
        Assert.Equal(TupleKind.IcmpError, errKind);
        Assert.False(Opens(err, errKind)); // an error is related or invalid, never new
        var (ts, tsKind) = Tuple(V4(A, B, 1, Icmp(13, 0, 7, 1)));
        Assert.False(Opens(ts, tsKind));

        var c = Start(req);
        Assert.Equal(DatagramProto.IcmpEcho, c.Proto);
        Assert.Equal(DatagramTimeout.Icmp, TimeoutOf(c));
        Assert.Equal(req.Reverse(), rep);
        Assert.True(Update(ref c, true));
        Assert.True(Replied(c));
        Assert.Equal(DatagramTimeout.Icmp, TimeoutOf(c));
        Assert.Equal(30, DefaultTimeoutSeconds[(int)TimeoutOf(c)]);

        var (req6, kind6) = Tuple(V6(A6, B6, 58, Icmp(128, 0, 7, 1)));
        Assert.True(Opens(req6, kind6));
        Assert.Equal(DatagramProto.IcmpEcho, Start(req6).Proto);
        var (rep6, repKind6) = Tuple(V6(B6, A6, 58, Icmp(129, 0, 7, 1)));
        Assert.False(Opens(rep6, repKind6));
        Assert.Equal(req6.Reverse(), rep6);
        var (ns, nsKind) = Tuple(V6(A6, B6, 58, Icmp(135, 0, 0, 0, new byte[16])));
        Assert.False(Opens(ns, nsKind));
    }

    [Fact]
    public void Other_protocols_are_generic_and_later_fragments_open_nothing()
    {
        var (gre, kind) = Tuple(V4(A, B, 47, new byte[8]));
        Assert.True(Opens(gre, kind));
        var c = Start(gre);
        Assert.Equal(DatagramProto.Generic, c.Proto);
        Assert.Equal(DatagramTimeout.Generic, TimeoutOf(c));
        Assert.Equal(600, DefaultTimeoutSeconds[(int)TimeoutOf(c)]);
        Assert.True(Update(ref c, true));
        Assert.Equal(DatagramTimeout.Generic, TimeoutOf(c)); // replied or not

        var (sctp, sctpKind) = Tuple(V4(A, B, 132, Sctp(1, 2)));
        Assert.True(Opens(sctp, sctpKind));
        Assert.Equal(DatagramProto.Generic, Start(sctp).Proto);

        var (frag, fragKind) = Tuple(V4(A, B, 17, Udp(1, 2), frag: 185));
        Assert.False(Opens(frag, fragKind));
    }

    [Fact]
    public void The_timeout_table_is_settable()
    {
        var c = Start(ConnTuple.Ipv4(A, B, 17, 1, 2));
        int saved = DefaultTimeoutSeconds[(int)DatagramTimeout.UdpUnreplied];
        try
        {
            DefaultTimeoutSeconds[(int)DatagramTimeout.UdpUnreplied] = 5;
            Assert.Equal(5, DefaultTimeoutSeconds[(int)TimeoutOf(c)]);
        }
        finally
        {
            DefaultTimeoutSeconds[(int)DatagramTimeout.UdpUnreplied] = saved;
        }

        Assert.Equal(30, DefaultTimeoutSeconds[(int)TimeoutOf(c)]);
    }

    [Fact]
    public void Tracking_allocates_nothing()
    {
        var t = ConnTuple.Ipv4(A, B, 17, 1, 2);
        var e = ConnTuple.Echo(ConnTuple.Ipv4(A, B, 1), 8, 5);
        int n = 0;
        for (int round = 0; round < 2; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 10_000; i++)
            {
                var c = Start((i & 1) == 0 ? t : e);
                n += Opens(t, TupleKind.Ports) ? 1 : 0;
                n += Opens(e, TupleKind.IcmpEcho) ? 1 : 0;
                n += Update(ref c, (i & 2) != 0) ? 1 : 0;
                n += Replied(c) ? 1 : 0;
                n += DefaultTimeoutSeconds[(int)TimeoutOf(c)] + (int)TimeoutOf(c) + (int)ProtoOf(t.Protocol);
            }

            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        Assert.NotEqual(0, n);
    }
}
