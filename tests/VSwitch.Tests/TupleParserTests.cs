// TupleParserTests.cs - the connection tuple of TCP, UDP, SCTP, ICMP/ICMPv6 echo and errors (the
// embedded packet's tuple), fragments, IPv6 extension headers, other protocols; and malformed
// input: every truncation of every packet kind, lying lengths, bogus header lengths. Inputs are
// exact-size arrays, so any read past the end would throw out of the span and fail the test.
using System.Net;
using PacketDotNet;
using VSwitch.Conntrack;
using static VSwitch.Tests.CtPackets;

namespace VSwitch.Tests;

public class TupleParserTests
{
    private const ushort Ip4 = 0x0800, Ip6 = 0x86DD;

    private static (TupleStatus Status, ConnTuple Tuple, TupleInfo Info) Parse(byte[] p, ushort etherType = 0)
    {
        etherType = etherType != 0 ? etherType : p.Length > 0 && p[0] >> 4 == 6 ? Ip6 : Ip4;
        var s = TupleParser.Parse(p, etherType, out var t, out var info);
        return (s, t, info);
    }

    private static ConnTuple Ok(byte[] p, TupleKind kind)
    {
        var (s, t, info) = Parse(p);
        Assert.Equal(TupleStatus.Ok, s);
        Assert.Equal(kind, info.Kind);
        return t;
    }

    [Fact]
    public void Tcp_over_ipv4_built_by_packetdotnet_gives_its_five_tuple_and_offsets()
    {
        var ip = new IPv4Packet(IPAddress.Parse("192.0.2.1"), IPAddress.Parse("198.51.100.2"))
        {
            PayloadPacket = new TcpPacket(40000, 443) { Synchronize = true, PayloadData = new byte[10] },
        };
        ip.UpdateCalculatedValues();
        byte[] p = ip.Bytes;
        var (s, t, info) = Parse(p);
        Assert.Equal(TupleStatus.Ok, s);
        Assert.Equal(ConnTuple.Ipv4(0xC0000201, 0xC6336402, 6, 40000, 443), t);
        Assert.Equal(new TupleInfo { Kind = TupleKind.Ports, L4 = 20, End = (ushort)p.Length }, info);
    }

    [Fact]
    public void Udp_over_ipv6_built_by_packetdotnet_gives_its_five_tuple()
    {
        var ip = new IPv6Packet(IPAddress.Parse("2001:db8::1"), IPAddress.Parse("2001:db8::2"))
        {
            PayloadPacket = new UdpPacket(5353, 53) { PayloadData = new byte[12] },
        };
        ip.UpdateCalculatedValues();
        var (s, t, info) = Parse(ip.Bytes);
        Assert.Equal(TupleStatus.Ok, s);
        Assert.Equal(ConnTuple.Ipv6(A6, B6, 17, 5353, 53), t);
        Assert.Equal(TupleKind.Ports, info.Kind);
        Assert.Equal(40, info.L4);
        Assert.Equal(60, info.End);
    }

    [Fact]
    public void Sctp_and_ipv4_options_give_ports_after_the_options()
    {
        var (s, t, info) = Parse(V4(A, B, 132, Sctp(2905, 2906), options: 8));
        Assert.Equal(TupleStatus.Ok, s);
        Assert.Equal(ConnTuple.Ipv4(A, B, 132, 2905, 2906), t);
        Assert.Equal(28, info.L4);
    }

    [Fact]
    public void An_icmp_echo_reply_tuple_is_the_reverse_of_its_request()
    {
        var req = Ok(V4(A, B, 1, Icmp(8, 0, 0x1234, 1)), TupleKind.IcmpEcho);
        var rep = Ok(V4(B, A, 1, Icmp(0, 0, 0x1234, 1)), TupleKind.IcmpEcho);
        var expected = ConnTuple.Ipv4(A, B, 1, 0x1234, 0x1234);
        expected.IcmpType = 8;
        Assert.Equal(expected, req);
        Assert.Equal(req.Reverse(), rep);
        Assert.Equal(0, rep.IcmpType);
        Assert.NotEqual(req.Reverse(), Ok(V4(B, A, 1, Icmp(0, 0, 0x1235, 1)), TupleKind.IcmpEcho)); // another id
        Assert.NotEqual(req.Reverse(), Ok(V4(B, A, 1, Icmp(8, 0, 0x1234, 1)), TupleKind.IcmpEcho)); // a request back is no reply
    }

    [Fact]
    public void An_icmpv6_echo_reply_tuple_is_the_reverse_of_its_request()
    {
        var req = Ok(V6(A6, B6, 58, Icmp(128, 0, 77, 1), l4Proto: 58), TupleKind.IcmpEcho);
        var rep = Ok(V6(B6, A6, 58, Icmp(129, 0, 77, 1), l4Proto: 58), TupleKind.IcmpEcho);
        Assert.Equal(ConnTuple.Echo(ConnTuple.Ipv6(A6, B6, 58), 128, 77), req);
        Assert.Equal(req.Reverse(), rep);
        Assert.Equal(129, rep.IcmpType);
    }

    [Fact]
    public void An_icmp_error_gives_the_tuple_of_the_packet_it_quotes_as_that_packet_travelled()
    {
        // A sent UDP to B; router R answers A: port unreachable, quoting A's packet.
        byte[] udp = V4(A, B, 17, Udp(33000, 53, 30));
        byte[] err = V4(R, A, 1, Icmp(3, 3, 0, 0, Quote(udp, 28)));
        var (s, t, info) = Parse(err);
        Assert.Equal(TupleStatus.Ok, s);
        Assert.Equal(Ok(udp, TupleKind.Ports), t);
        Assert.Equal(ConnTuple.Ipv4(A, B, 17, 33000, 53), t);
        Assert.Equal(new TupleInfo { Kind = TupleKind.IcmpError, L4 = 20, End = (ushort)err.Length, InnerL3 = 28, InnerL4 = 48 }, info);

        // The other error types, and an error quoting all of a TCP segment or an echo request.
        foreach (byte type in (byte[])[4, 5, 11, 12])
        {
            Assert.Equal(t, Ok(V4(R, A, 1, Icmp(type, 0, 0, 0, Quote(udp, 28))), TupleKind.IcmpError));
        }

        byte[] tcp = V4(A, B, 6, Tcp(40000, 80, 100));
        Assert.Equal(ConnTuple.Ipv4(A, B, 6, 40000, 80), Ok(V4(B, A, 1, Icmp(3, 4, 0, 1400, tcp)), TupleKind.IcmpError));
        var echo = Ok(V4(R, A, 1, Icmp(11, 0, 0, 0, Quote(V4(A, B, 1, Icmp(8, 0, 9, 1)), 28))), TupleKind.IcmpError);
        Assert.Equal(ConnTuple.Echo(ConnTuple.Ipv4(A, B, 1), 8, 9), echo);
    }

    [Fact]
    public void An_icmpv6_error_gives_the_tuple_of_the_packet_it_quotes()
    {
        byte[] tcp = V6(A6, B6, 6, Tcp(40000, 443, 1400), l4Proto: 6);
        byte[] err = V6(R6, A6, 58, Icmp(2, 0, 0, 1280, Quote(tcp, 48 + 40)), l4Proto: 58); // packet too big
        var (s, t, info) = Parse(err);
        Assert.Equal(TupleStatus.Ok, s);
        Assert.Equal(ConnTuple.Ipv6(A6, B6, 6, 40000, 443), t);
        Assert.Equal(new TupleInfo { Kind = TupleKind.IcmpError, L4 = 40, End = (ushort)err.Length, InnerL3 = 48, InnerL4 = 88 }, info);
        foreach (byte type in (byte[])[1, 3, 4])
        {
            Assert.Equal(t, Ok(V6(R6, A6, 58, Icmp(type, 0, 0, 0, Quote(tcp, 48))), TupleKind.IcmpError));
        }

        // The quoted packet's extension headers are walked too.
        byte[] withExt = V6(A6, B6, 60, [.. Ext(17), .. Udp(1000, 2000)]);
        Assert.Equal(ConnTuple.Ipv6(A6, B6, 17, 1000, 2000), Ok(V6(R6, A6, 58, Icmp(1, 4, 0, 0, withExt)), TupleKind.IcmpError));
    }

    [Fact]
    public void Unusable_icmp_errors_are_bad_embedded()
    {
        byte[] udp = V4(A, B, 17, Udp(33000, 53, 30));
        Assert.Equal(TupleStatus.BadEmbedded, Parse(V4(R, B, 1, Icmp(3, 3, 0, 0, Quote(udp, 28)))).Status); // not sent back to the quoted source
        Assert.Equal(TupleStatus.BadEmbedded, Parse(V4(R, A, 1, Icmp(3, 3, 0, 0, Quote(udp, 27)))).Status); // under 8 bytes of UDP
        Assert.Equal(TupleStatus.BadEmbedded, Parse(V4(R, A, 1, Icmp(3, 3, 0, 0, Quote(udp, 19)))).Status); // not even the IP header
        byte[] inner = V4(A, B, 1, Icmp(3, 1, 0, 0, Quote(udp, 28)));
        Assert.Equal(TupleStatus.BadEmbedded, Parse(V4(R, A, 1, Icmp(11, 0, 0, 0, inner))).Status); // an error about an error
        byte[] later = V4(A, B, 17, Udp(33000, 53, 30), frag: 100);
        Assert.Equal(TupleStatus.BadEmbedded, Parse(V4(R, A, 1, Icmp(11, 1, 0, 0, later))).Status); // quotes a later fragment
        byte[] v6 = V6(A6, B6, 17, Udp(1, 2));
        Assert.Equal(TupleStatus.BadEmbedded, Parse(V4(R, A, 1, Icmp(3, 3, 0, 0, v6))).Status); // another family
        byte[] err6 = V6(A6, B6, 58, Icmp(1, 0, 0, 0, Quote(v6, 48)));
        Assert.Equal(TupleStatus.BadEmbedded, Parse(V6(R6, A6, 58, Icmp(3, 0, 0, 0, err6))).Status);
    }

    [Fact]
    public void Other_icmp_types_give_addresses_type_and_code_and_no_ports()
    {
        var ts = Ok(V4(A, B, 1, Icmp(13, 0, 5, 6)), TupleKind.IcmpOther); // timestamp
        var expected = ConnTuple.Ipv4(A, B, 1);
        expected.IcmpType = 13;
        Assert.Equal(expected, ts);
        var ns = Ok(V6(A6, B6, 58, Icmp(135, 0, 0, 0, new byte[16])), TupleKind.IcmpOther); // neighbour solicitation
        expected = ConnTuple.Ipv6(A6, B6, 58);
        expected.IcmpType = 135;
        Assert.Equal(expected, ns);

        // ICMPv6 inside IPv4 (and ICMP inside IPv6) is just another protocol.
        Assert.Equal(ConnTuple.Ipv4(A, B, 58), Ok(V4(A, B, 58, Icmp(128, 0, 1, 1)), TupleKind.Addresses));
        Assert.Equal(ConnTuple.Ipv6(A6, B6, 1), Ok(V6(A6, B6, 1, Icmp(8, 0, 1, 1)), TupleKind.Addresses));
    }

    [Fact]
    public void Other_protocols_give_addresses_and_protocol()
    {
        Assert.Equal(ConnTuple.Ipv4(A, B, 47), Ok(V4(A, B, 47, new byte[4]), TupleKind.Addresses)); // GRE
        Assert.Equal(ConnTuple.Ipv6(A6, B6, 50), Ok(V6(A6, B6, 50, new byte[16]), TupleKind.Addresses)); // ESP
        Assert.Equal(ConnTuple.Ipv6(A6, B6, 59), Ok(V6(A6, B6, 0, Ext(59)), TupleKind.Addresses)); // no next header
    }

    [Fact]
    public void Ipv4_fragments_say_first_or_later()
    {
        var (s, t, info) = Parse(V4(A, B, 17, Udp(1000, 2000, 100), frag: 0x2000)); // MF, offset 0
        Assert.Equal(TupleStatus.Ok, s);
        Assert.True(info.FirstFragment);
        Assert.Equal(TupleKind.Ports, info.Kind);
        Assert.Equal(ConnTuple.Ipv4(A, B, 17, 1000, 2000), t);

        foreach (ushort frag in (ushort[])[0x2000 | 185, 185, 1])
        {
            (s, t, info) = Parse(V4(A, B, 17, Udp(1000, 2000, 100), frag: frag));
            Assert.Equal(TupleStatus.Ok, s);
            Assert.False(info.FirstFragment);
            Assert.Equal(TupleKind.LaterFragment, info.Kind);
            Assert.Equal(ConnTuple.Ipv4(A, B, 17), t);
        }

        (s, _, info) = Parse(V4(A, B, 17, Udp(1000, 2000), frag: 0x4000)); // DF only: a whole packet
        Assert.Equal(TupleStatus.Ok, s);
        Assert.False(info.FirstFragment);
        Assert.Equal(TupleKind.Ports, info.Kind);
    }

    [Fact]
    public void Ipv6_extension_headers_are_walked_to_the_transport_header()
    {
        // Hop-by-hop (16 bytes) -> routing -> fragment (first) -> destination options -> TCP.
        byte[] p = V6(A6, B6, 0, [.. Ext(43, 16), .. Ext(44), .. Frag(60, 0, true), .. Ext(6), .. Tcp(1234, 80)]);
        var (s, t, info) = Parse(p);
        Assert.Equal(TupleStatus.Ok, s);
        Assert.Equal(ConnTuple.Ipv6(A6, B6, 6, 1234, 80), t);
        Assert.Equal(new TupleInfo { Kind = TupleKind.Ports, FirstFragment = true, L4 = 80, End = (ushort)p.Length, FragmentId = 0x12345678 }, info);

        // AH counts its length in 4-byte units (minus 2).
        byte[] ah = new byte[16];
        ah[0] = 17;
        ah[1] = 2;
        (s, t, info) = Parse(V6(A6, B6, 51, [.. ah, .. Udp(7, 9)]));
        Assert.Equal(TupleStatus.Ok, s);
        Assert.Equal(ConnTuple.Ipv6(A6, B6, 17, 7, 9), t);
        Assert.Equal(56, info.L4);

        // A later fragment: the protocol from the fragment header, no ports.
        (s, t, info) = Parse(V6(A6, B6, 44, [.. Frag(17, 181, false), .. new byte[24]]));
        Assert.Equal(TupleStatus.Ok, s);
        Assert.Equal(TupleKind.LaterFragment, info.Kind);
        Assert.Equal(ConnTuple.Ipv6(A6, B6, 17), t);
        Assert.Equal(48, info.L4);
        Assert.Equal(0x12345678u, info.FragmentId); // what its first fragment is remembered by (FragmentTable)
    }

    [Fact]
    public void The_extension_header_walk_is_bounded_and_hop_by_hop_must_come_first()
    {
        static byte[] Chain(int n)
        {
            var rest = new List<byte>();
            for (int i = 0; i < n; i++)
            {
                rest.AddRange(Ext(i == n - 1 ? (byte)17 : (byte)60));
            }

            rest.AddRange(Udp(1, 2));
            return V6(A6, B6, 60, [.. rest]);
        }

        Assert.Equal(ConnTuple.Ipv6(A6, B6, 17, 1, 2), Ok(Chain(TupleParser.MaxExtensionHeaders), TupleKind.Ports));
        Assert.Equal(TupleStatus.TooManyHeaders, Parse(Chain(TupleParser.MaxExtensionHeaders + 1)).Status);
        Assert.Equal(TupleStatus.Malformed, Parse(V6(A6, B6, 60, [.. Ext(0), .. Ext(17), .. Udp(1, 2)])).Status);
    }

    [Fact]
    public void Non_ip_and_malformed_headers_are_reported()
    {
        byte[] tcp = V4(A, B, 6, Tcp(1, 2));
        Assert.Equal(TupleStatus.NotIp, Parse(tcp, 0x0806).Status); // ARP
        Assert.Equal(TupleStatus.NotIp, Parse(tcp, Ip6).Status); // version 4 under the IPv6 ethertype
        Assert.Equal(TupleStatus.NotIp, Parse(V6(A6, B6, 17, Udp(1, 2)), Ip4).Status);

        byte[] bad = [.. tcp];
        bad[0] = 0x44; // IHL 16 bytes
        Assert.Equal(TupleStatus.Malformed, Parse(bad).Status);
        bad = [.. tcp];
        bad[3] = 19; // total length under the header
        bad[2] = 0;
        Assert.Equal(TupleStatus.Malformed, Parse(bad).Status);
        bad = [.. tcp];
        bad[32] = 0x40; // TCP data offset 16 bytes
        Assert.Equal(TupleStatus.Malformed, Parse(bad).Status);
        bad = [.. tcp];
        bad[32] = 0x60; // TCP data offset 24 bytes, only 20 there
        Assert.Equal(TupleStatus.Truncated, Parse(bad).Status);
        bad = [.. tcp];
        bad[3]++; // total length one past the buffer
        Assert.Equal(TupleStatus.Truncated, Parse(bad).Status);
    }

    [Fact]
    public void Ethernet_padding_after_the_ip_length_is_ignored()
    {
        byte[] p = [.. V4(A, B, 17, Udp(1, 2, 0)), 0, 0, 0, 0, 0, 0];
        var (s, t, info) = Parse(p);
        Assert.Equal(TupleStatus.Ok, s);
        Assert.Equal(ConnTuple.Ipv4(A, B, 17, 1, 2), t);
        Assert.Equal(28, info.End);
    }

    /// <summary>One packet of every shape, with the length at which it first parses when its IP length is cut to match.</summary>
    public static TheoryData<string, byte[], int> Shapes()
    {
        byte[] udp = V4(A, B, 17, Udp(33000, 53, 30));
        byte[] tcp6 = V6(A6, B6, 6, Tcp(40000, 443, 10));
        return new()
        {
            { "tcp4", V4(A, B, 6, Tcp(1, 2, 10), options: 4), 44 },
            { "udp4", udp, 28 },
            { "sctp4", V4(A, B, 132, Sctp(1, 2)), 32 },
            { "echo4", V4(A, B, 1, Icmp(8, 0, 1, 1)), 28 },
            { "other4", V4(A, B, 47, new byte[8]), 20 },
            { "error4", V4(R, A, 1, Icmp(3, 3, 0, 0, Quote(udp, 40))), 56 },
            { "tcp6", tcp6, 60 },
            { "echo6", V6(A6, B6, 58, Icmp(128, 0, 1, 1)), 48 },
            { "ext6", V6(A6, B6, 0, [.. Ext(43, 16), .. Ext(44), .. Frag(17, 0, true), .. Udp(1, 2)]), 80 },
            { "error6", V6(R6, A6, 58, Icmp(1, 0, 0, 0, [.. tcp6])), 96 },
            { "error6ext", V6(R6, A6, 58, Icmp(1, 0, 0, 0, V6(A6, B6, 60, [.. Ext(17), .. Udp(1, 2)]))), 104 },
        };
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Every_truncation_fails_cleanly_and_never_reads_past_the_end(string name, byte[] full, int minimal)
    {
        var (s, whole, wholeInfo) = Parse(full);
        Assert.True(s == TupleStatus.Ok, name);
        ushort etherType = full[0] >> 4 == 6 ? Ip6 : Ip4;
        for (int n = 0; n < full.Length; n++)
        {
            // Cut as captured: the IP length now lies, so every cut is truncated.
            byte[] cut = full.AsSpan(0, n).ToArray();
            Assert.Equal(TupleStatus.Truncated, Parse(cut, etherType).Status);

            // Cut with the IP length fixed to match: it parses once the headers the tuple needs are there.
            if (n >= (etherType == Ip4 ? 20 : 40))
            {
                if (etherType == Ip4)
                {
                    cut[2] = (byte)(n >> 8);
                    cut[3] = (byte)n;
                }
                else
                {
                    cut[4] = (byte)((n - 40) >> 8);
                    cut[5] = (byte)(n - 40);
                }
            }

            var (cs, ct, ci) = Parse(cut, etherType);
            if (n >= minimal)
            {
                Assert.True(cs == TupleStatus.Ok, $"{name} cut to {n}: {cs}");
                Assert.Equal(whole, ct);
                Assert.Equal(wholeInfo.Kind, ci.Kind);
            }
            else
            {
                Assert.True(cs is TupleStatus.Truncated or TupleStatus.BadEmbedded, $"{name} cut to {n}: {cs}");
            }
        }
    }

    [Fact]
    public unsafe void The_pointer_overload_parses_native_memory_and_nothing_allocates()
    {
        byte[][] packets =
        [
            V4(A, B, 6, Tcp(1, 2)), V6(A6, B6, 0, [.. Ext(44), .. Frag(6, 0, true), .. Tcp(1234, 80)]),
            V4(R, A, 1, Icmp(3, 3, 0, 0, Quote(V4(A, B, 17, Udp(33000, 53)), 28))), V4(A, B, 17, Udp(1, 2), frag: 185),
            V6(R6, A6, 58, Icmp(2, 0, 0, 1280, V6(A6, B6, 6, Tcp(40000, 443)))), V4(A, B, 6, Tcp(1, 2)).AsSpan(0, 30).ToArray(),
        ];
        byte* mem = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc(2048);
        try
        {
            var results = new TupleStatus[packets.Length];
            for (int round = 0; round < 2; round++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < 1000; i++)
                {
                    byte[] p = packets[i % packets.Length];
                    p.CopyTo(new Span<byte>(mem, p.Length));
                    results[i % packets.Length] = TupleParser.Parse(mem, p.Length, p[0] >> 4 == 6 ? Ip6 : Ip4, out _, out _);
                }

                Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
            }

            Assert.Equal([TupleStatus.Ok, TupleStatus.Ok, TupleStatus.Ok, TupleStatus.Ok, TupleStatus.Ok, TupleStatus.Truncated], results);
            packets[0].CopyTo(new Span<byte>(mem, packets[0].Length));
            Assert.Equal(TupleStatus.Ok, TupleParser.Parse(mem, packets[0].Length, Ip4, out var t, out _));
            Assert.Equal(ConnTuple.Ipv4(A, B, 6, 1, 2), t);
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.Free(mem);
        }
    }

    [Fact]
    public unsafe void A_packet_longer_than_its_first_segment_parses_from_the_headers_there_and_the_length_of_the_frame()
    {
        // A TCP segment of 3000 bytes whose first 100 are readable (a chain of mbufs): the tuple comes
        // from the readable headers, End is the IP length; a frame shorter than the IP length, or a
        // transport header past the readable bytes, is truncated; ICMP must be readable whole.
        var ip = new IPv4Packet(IPAddress.Parse("192.0.2.1"), IPAddress.Parse("198.51.100.2"))
        {
            PayloadPacket = new TcpPacket(40000, 443) { Acknowledgment = true, PayloadData = new byte[2960] },
        };
        ip.UpdateCalculatedValues();
        byte[] p = ip.Bytes;
        Assert.Equal(3000, p.Length);
        fixed (byte* b = p)
        {
            Assert.Equal(TupleStatus.Ok, TupleParser.Parse(b, 100, 3000, Ip4, out var t, out var info));
            Assert.Equal((40000, 443), ((int)t.SrcPort, (int)t.DstPort));
            Assert.Equal(3000, (int)info.End);
            Assert.Equal(TupleStatus.Truncated, TupleParser.Parse(b, 100, 2999, Ip4, out _, out _));
            Assert.Equal(TupleStatus.Truncated, TupleParser.Parse(b, 30, 3000, Ip4, out _, out _)); // TCP header cut
        }

        var icmp = new IPv4Packet(IPAddress.Parse("192.0.2.1"), IPAddress.Parse("198.51.100.2"))
        {
            PayloadPacket = new IcmpV4Packet(new PacketDotNet.Utils.ByteArraySegment(new byte[1500])) { TypeCode = IcmpV4TypeCode.EchoRequest },
        };
        icmp.UpdateCalculatedValues();
        byte[] q = icmp.Bytes;
        fixed (byte* b = q)
        {
            Assert.Equal(TupleStatus.Ok, TupleParser.Parse(b, q.Length, q.Length, Ip4, out _, out _));
            Assert.Equal(TupleStatus.Truncated, TupleParser.Parse(b, 100, q.Length, Ip4, out _, out _));
        }

        // IPv6 with a hop-by-hop header: extension headers must be readable too.
        var v6 = new byte[40 + 8 + 20 + 2000];
        v6[0] = 0x60;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(v6.AsSpan(4), (ushort)(v6.Length - 40));
        v6[6] = 0; // hop-by-hop
        v6[40] = 6; // then TCP
        v6[48 + 12] = 5 << 4;
        fixed (byte* b = v6)
        {
            Assert.Equal(TupleStatus.Ok, TupleParser.Parse(b, 80, v6.Length, Ip6, out var t6, out var i6));
            Assert.Equal(48, (int)i6.L4);
            Assert.Equal(6, t6.Protocol);
            Assert.Equal(TupleStatus.Truncated, TupleParser.Parse(b, 44, v6.Length, Ip6, out _, out _));
            Assert.Equal(TupleStatus.Truncated, TupleParser.Parse(b, 80, v6.Length - 1, Ip6, out _, out _));
        }
    }
}
