// NatChecksumTests.cs - incremental checksum updates for NAT (RFC 1624) against a full
// recomputation: the address and port rewrites NAT makes (PacketEdit's, which ConnTable's NAT and
// set_field share: IPv4 header, TCP/UDP over IPv4 and IPv6 with their pseudo-headers, ICMPv6's
// pseudo-header, the ICMP echo id without one, UDP's "no checksum" 0 and its computed-0 case), and
// NatChecksum's rewrite of the packet an ICMP error quotes. The reference sum (CtPackets.Checksum)
// is itself checked against PacketDotNet.
using System.Buffers.Binary;
using PacketDotNet;
using VSwitch.Actions;
using VSwitch.Conntrack;
using VSwitch.Interop;
using VSwitch.Packets;
using static VSwitch.Tests.CtPackets;

namespace VSwitch.Tests;

public unsafe class NatChecksumTests
{
    private static ushort Rd16(byte[] p, int at) => BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(at));

    private static void Wr16(byte[] p, int at, ushort v) => BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(at), v);

    [Fact]
    public void The_reference_checksums_agree_with_packetdotnet()
    {
        Assert.True(Parsed(V4(A, B, 6, Tcp(1000, 80, 33))).Extract<TcpPacket>().ValidTcpChecksum);
        Assert.True(Parsed(V4(A, B, 17, Udp(1000, 53, 33))).Extract<UdpPacket>().ValidUdpChecksum);
        Assert.True(Parsed(V4(A, B, 17, Udp(1000, 53, 33))).Extract<IPv4Packet>().ValidIPChecksum);
        Assert.True(Parsed(V6(A6, B6, 6, Tcp(1000, 80, 33), l4Proto: 6)).Extract<TcpPacket>().ValidTcpChecksum);
        Assert.True(Parsed(V6(A6, B6, 17, Udp(1000, 53, 33), l4Proto: 17)).Extract<UdpPacket>().ValidUdpChecksum);
        byte[] echo = V4(A, B, 1, Icmp(8, 0, 7, 1));
        Assert.Equal(Rd16(echo, 22), Parsed(echo).Extract<IcmpV4Packet>().Checksum);
        Assert.True(Parsed(echo).Extract<IcmpV4Packet>().ValidIcmpChecksum);
        byte[] echo6 = V6(A6, B6, 58, Icmp(128, 0, 7, 1), l4Proto: 58);
        var icmp6 = Parsed(echo6).Extract<IcmpV6Packet>();
        Assert.Equal(Rd16(echo6, 42), icmp6.CalculateIcmpChecksum());

        // And a wrong checksum is seen as wrong (the comparisons above can fail).
        byte[] bad = V4(A, B, 6, Tcp(1000, 80, 33));
        bad[^1] ^= 1;
        Assert.False(Parsed(bad).Extract<TcpPacket>().ValidTcpChecksum);
    }

    /// <summary>Runs <paramref name="edit"/> on IP packet <paramref name="p"/> in an mbuf (L3 at 0, L4 at <paramref name="l4"/>), as the datapath would, and copies the result back.</summary>
    private static void InMbuf(byte[] p, int l4, Action<nint, HeaderOffsets> edit)
    {
        using var mbufs = new FakeMbufs();
        nint m = mbufs.Create(p);
        edit(m, new HeaderOffsets { L3 = 0, L4 = (ushort)l4 });
        new ReadOnlySpan<byte>(Mbuf.Data(m), p.Length).CopyTo(p);
    }

    private static byte KindOf(byte proto) => proto switch { 6 => DpAction.L4Tcp, 17 => DpAction.L4Udp, 58 => DpAction.L4Icmp6, _ => DpAction.L4None };

    /// <summary>Rewrites the source or destination address and port (ICMP: echo id) of an IPv4 packet as NAT does (ConnTableProcess.Translate).</summary>
    private static void Nat4(byte[] p, bool dst, uint addr, ushort port)
    {
        byte proto = p[9];
        int ihl = (p[0] & 0xF) * 4;
        InMbuf(p, ihl, (m, off) =>
        {
            PacketEdit.SetIpv4(m, off, dst, addr, KindOf(proto));
            if (proto == 1)
            {
                PacketEdit.SetIcmpEchoId(m, off, port); // what NAT runs for an echo's id
            }
            else
            {
                PacketEdit.SetPort(m, off, dst, port, KindOf(proto));
            }
        });
    }

    /// <summary>The same for IPv6 (TCP, UDP, ICMPv6 echo: the id is the port), after any extension headers.</summary>
    private static void Nat6(byte[] p, bool dst, UInt128 addr, ushort port)
    {
        Assert.Equal(TupleStatus.Ok, TupleParser.Parse(p, 0x86DD, out var t, out var info)); // past any extension headers
        byte proto = t.Protocol;
        InMbuf(p, info.L4, (m, off) =>
        {
            PacketEdit.SetIpv6(m, off, dst, (ulong)(addr >> 64), (ulong)addr, KindOf(proto));
            if (proto == 58)
            {
                PacketEdit.SetIcmpEchoId(m, off, port); // what NAT runs for an echo's id
            }
            else
            {
                PacketEdit.SetPort(m, off, dst, port, KindOf(proto));
            }
        });
    }

    private static void AssertChecksumsCorrect(byte[] p, string what)
    {
        bool v6 = p[0] >> 4 == 6;
        byte proto = v6 ? p[6] : p[9];
        int l4 = v6 ? 40 : (p[0] & 0xF) * 4;
        if (!v6)
        {
            Assert.True(FullIpv4Checksum(p) == Rd16(p, 10), $"{what}: IPv4 header checksum {Rd16(p, 10):x4}, recomputed {FullIpv4Checksum(p):x4}");
        }

        ushort now = Rd16(p, l4 + ChecksumField(proto)), full = FullL4Checksum(p, l4, proto, v6);
        Assert.True(full == now, $"{what}: L4 checksum {now:x4}, recomputed {full:x4}");
        if (proto is 6 or 17)
        {
            Assert.True(proto == 6 ? Parsed(p).Extract<TcpPacket>().ValidTcpChecksum : Parsed(p).Extract<UdpPacket>().ValidUdpChecksum, $"{what}: PacketDotNet");
        }
    }

    /// <summary>A TCP, UDP or ICMP/ICMPv6 echo header with random ports (id, sequence) and 0 to 39 bytes of random payload.</summary>
    private static byte[] RandomL4(Random rnd, int proto)
    {
        ushort sp = (ushort)rnd.Next(65536), dp = (ushort)rnd.Next(65536);
        byte[] l4 = proto switch
        {
            6 => Tcp(sp, dp, rnd.Next(40)),
            17 => Udp(sp, dp, rnd.Next(40)),
            1 => Icmp(8, 0, sp, dp, new byte[rnd.Next(40)]),
            _ => Icmp(128, 0, sp, dp, new byte[rnd.Next(40)]),
        };
        rnd.NextBytes(l4.AsSpan(proto == 6 ? 20 : 8));
        return l4;
    }

    [Theory]
    [InlineData(6)]
    [InlineData(17)]
    [InlineData(1)]
    public void Ipv4_address_and_port_rewrites_match_a_full_recomputation(int proto)
    {
        var rnd = new Random(proto);
        for (int i = 0; i < 500; i++)
        {
            byte[] p = V4((uint)rnd.Next(), (uint)rnd.Next(), (byte)proto, RandomL4(rnd, proto), options: 4 * rnd.Next(3));
            AssertChecksumsCorrect(p, "as built");
            bool dst = rnd.Next(2) == 0;
            int which = rnd.Next(3); // address, port, or both
            uint addr = which == 1 ? BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(dst ? 16 : 12)) : (uint)rnd.Next();
            ushort port = which == 0 ? Rd16(p, (p[0] & 0xF) * 4 + (proto == 1 ? 4 : dst ? 2 : 0)) : (ushort)rnd.Next(65536);
            Nat4(p, dst, addr, port);
            AssertChecksumsCorrect(p, $"packet {i} after rewriting {(dst ? "dst" : "src")} to {addr:x8}:{port}");
        }
    }

    [Fact]
    public void An_icmp_echo_checksum_ignores_addresses()
    {
        byte[] p = V4(A, B, 1, Icmp(8, 0, 0x1111, 1));
        ushort before = Rd16(p, 22);
        Nat4(p, false, R, 0x1111); // address only
        Assert.Equal(before, Rd16(p, 22));
        AssertChecksumsCorrect(p, "address rewrite");
        Nat4(p, true, A, 0x2222);
        Assert.NotEqual(before, Rd16(p, 22));
        AssertChecksumsCorrect(p, "id rewrite");
        Assert.True(Parsed(p).Extract<IcmpV4Packet>().ValidIcmpChecksum);
    }

    [Theory]
    [InlineData(6)]
    [InlineData(17)]
    [InlineData(58)]
    public void Ipv6_address_and_port_rewrites_match_a_full_recomputation(int proto)
    {
        var rnd = new Random(proto);
        for (int i = 0; i < 500; i++)
        {
            byte[] l4 = RandomL4(rnd, proto);
            var src = new UInt128((ulong)rnd.NextInt64(), (ulong)rnd.NextInt64());
            var dstAddr = new UInt128((ulong)rnd.NextInt64(), (ulong)rnd.NextInt64());
            byte[] p = V6(src, dstAddr, (byte)proto, l4, l4Proto: (byte)proto);
            AssertChecksumsCorrect(p, "as built");
            bool dst = rnd.Next(2) == 0;
            var addr = rnd.Next(3) == 0 ? (dst ? dstAddr : src) : new UInt128((ulong)rnd.NextInt64(), (ulong)rnd.NextInt64());
            Nat6(p, dst, addr, (ushort)rnd.Next(65536));
            AssertChecksumsCorrect(p, $"packet {i}");
        }
    }

    [Fact]
    public void Udp_without_a_checksum_keeps_none_and_a_computed_zero_is_sent_as_ffff()
    {
        byte[] p = V4(A, B, 17, Udp(1000, 53, 10), l4Checksum: false);
        Assert.Equal(0, Rd16(p, 26));
        Nat4(p, false, R, 2000);
        Assert.Equal(0, Rd16(p, 26));

        // Every new source port: one of them makes the sum 0, which must read 0xFFFF (both families).
        foreach (bool v6 in (bool[])[false, true])
        {
            byte[] orig = v6 ? V6(A6, B6, 17, Udp(1000, 53, 10), l4Proto: 17) : V4(A, B, 17, Udp(1000, 53, 10));
            int l4 = v6 ? 40 : 20, ffff = 0;
            for (int port = 0; port < 65536; port++)
            {
                byte[] q = [.. orig];
                if (v6)
                {
                    Nat6(q, false, A6, (ushort)port);
                }
                else
                {
                    Nat4(q, false, A, (ushort)port);
                }

                ushort now = Rd16(q, l4 + 6);
                Assert.True(now == FullL4Checksum(q, l4, 17, v6), $"port {port}");
                ffff += now == 0xFFFF ? 1 : 0;
            }

            Assert.InRange(ffff, 1, 2); // ports 0 and 0xFFFF weigh the same in the sum
        }
    }

    /// <summary>Original packets an error may quote, and how many bytes of each it quotes.</summary>
    public static TheoryData<string, byte[], int> Quoted() => new()
    {
        { "udp4", V4(A, B, 17, Udp(33000, 53, 30)), 28 },
        { "udp4 no checksum", V4(A, B, 17, Udp(33000, 53, 30), l4Checksum: false), 28 },
        { "tcp4 whole", V4(A, B, 6, Tcp(40000, 80, 12)), 52 },
        { "tcp4 first 8 bytes", V4(A, B, 6, Tcp(40000, 80, 12)), 28 },
        { "tcp4 options", V4(A, B, 6, Tcp(40000, 80, 12), options: 8), 56 },
        { "echo4", V4(A, B, 1, Icmp(8, 0, 0x1111, 1)), 28 },
        { "udp6", V6(A6, B6, 17, Udp(33000, 53, 30), l4Proto: 17), 48 },
        { "tcp6 whole", V6(A6, B6, 6, Tcp(40000, 443, 12), l4Proto: 6), 72 },
        { "tcp6 ext", V6(A6, B6, 60, [.. Ext(6), .. Tcp(40000, 443, 12)], l4At: 8, l4Proto: 6), 80 },
        { "echo6", V6(A6, B6, 58, Icmp(128, 0, 0x1111, 1), l4Proto: 58), 48 },
    };

    [Theory]
    [MemberData(nameof(Quoted))]
    public void Rewriting_the_packet_an_error_quotes_gives_the_error_about_the_rewritten_packet(string name, byte[] original, int quote)
    {
        bool v6 = original[0] >> 4 == 6;
        foreach (bool source in (bool[])[true, false])
        {
            // Reverse NAT on an error: what it quotes becomes what the rewritten original would have been.
            byte[] natted = [.. original];
            if (v6)
            {
                Nat6(natted, !source, R6, 4444);
            }
            else
            {
                Nat4(natted, !source, R, 4444);
            }

            byte[] Error(byte[] quoted) => v6
                ? V6(B6, A6, 58, Icmp(1, 4, 0, 0, Quote(quoted, quote)), l4Proto: 58)
                : V4(B, A, 1, Icmp(3, 3, 0, 0, Quote(quoted, quote)));
            byte[] err = Error(original), expected = Error(natted);
            if (source)
            {
                // The parser checks the quoted source is the error's destination: rewrite the outer one too.
                expected = v6 ? V6(B6, R6, 58, Icmp(1, 4, 0, 0, Quote(natted, quote)), l4Proto: 58) : V4(B, R, 1, Icmp(3, 3, 0, 0, Quote(natted, quote)));
            }

            Assert.Equal(TupleStatus.Ok, TupleParser.Parse(err, v6 ? (ushort)0x86DD : (ushort)0x0800, out var t, out var info));
            Assert.Equal(TupleKind.IcmpError, info.Kind);
            NatChecksum.RewriteQuoted(err, t, info, source, v6 ? (ulong)(R6 >> 64) : 0, v6 ? (ulong)R6 : R, 4444);
            if (source)
            {
                if (v6)
                {
                    // The outer destination: ICMPv6's pseudo-header holds it.
                    BinaryPrimitives.WriteUInt128BigEndian(err.AsSpan(24), R6);
                    Wr16(err, 42, NatChecksum.Apply(Rd16(err, 42), NatChecksum.Delta128((ulong)(A6 >> 64), (ulong)A6, (ulong)(R6 >> 64), (ulong)R6)));
                }
                else
                {
                    Nat4(err, true, R, Rd16(err, 24)); // the outer destination; ICMP's sum does not see it
                }
            }

            Assert.True(expected.AsSpan().SequenceEqual(err), $"{name} ({(source ? "source" : "destination")}): {Convert.ToHexString(err)} != {Convert.ToHexString(expected)}");
        }
    }

    [Fact]
    public void The_building_blocks_compose_and_a_no_op_changes_nothing()
    {
        Assert.Equal(0x1234, NatChecksum.Apply(0x1234, NatChecksum.Delta32(0xC0A80001, 0xC0A80001)));
        Assert.Equal(NatChecksum.Apply(NatChecksum.Apply(0x5555, NatChecksum.Delta32(A, B)), NatChecksum.Delta16(1, 2)), NatChecksum.Apply(0x5555, NatChecksum.Delta16(1, 2) + NatChecksum.Delta32(A, B)));
        Assert.Equal(
            NatChecksum.Apply(0x7777, NatChecksum.Delta128(1, 2, 3, 4)),
            NatChecksum.Apply(0x7777, NatChecksum.Delta64(1, 3) + NatChecksum.Delta64(2, 4)));
    }

    [Fact]
    public void Checksum_updates_allocate_nothing()
    {
        ushort c = 0x1234;
        byte[] err = V4(R, A, 1, Icmp(3, 3, 0, 0, Quote(V4(A, B, 17, Udp(33000, 53, 30)), 28)));
        Assert.Equal(TupleStatus.Ok, TupleParser.Parse(err, 0x0800, out var quoted, out var info));
        for (int round = 0; round < 2; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (uint i = 0; i < 10_000; i++)
            {
                NatChecksum.RewriteQuoted(err, quoted, info, true, 0, A, (ushort)i);
                c = NatChecksum.Apply(c, NatChecksum.Delta32(i, i * 7) + NatChecksum.Delta16((ushort)i, 80));
                c = NatChecksum.Apply(c, NatChecksum.Delta128(i, i, 0, 0));
            }

            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        Assert.NotEqual(0x1234, c);
    }
}
