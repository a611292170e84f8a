// KeyExtractorTests.cs - header parsing into the flow key, and malformed input: truncated at every
// byte, lying lengths, bogus IHL. Frames are placed so their last byte is the last byte before a
// PROT_NONE page: any read past the end of the frame crashes the test run instead of passing.
using System.Runtime.InteropServices;
using VSwitch.Packets;
using Xunit;

namespace VSwitch.Tests;

public sealed unsafe partial class KeyExtractorTests
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int mprotect(nint addr, nuint len, int prot);

    [LibraryImport("libc")]
    private static partial int munmap(nint addr, nuint length);

    private const int Page = 4096;

    /// <summary>Extracts from a copy of <paramref name="frame"/> whose end touches an inaccessible page.</summary>
    private static (FlowKey Key, HeaderOffsets Off, ushort Parse) Guarded(ReadOnlySpan<byte> frame, ushort inPort = 1)
    {
        nint mem = mmap(0, 2 * Page, 3, 0x22, -1, 0); // PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
        Assert.NotEqual(-1, mem);
        try
        {
            Assert.Equal(0, mprotect(mem + Page, Page, 0));
            byte* d = (byte*)(mem + Page - frame.Length);
            frame.CopyTo(new Span<byte>(d, frame.Length));
            DpKey dk;
            HeaderOffsets off;
            ushort parse = KeyExtractor.Extract(d, frame.Length, inPort, &dk, &off);
            var key = dk.ToFlowKey();
            Assert.Equal(parse, key.Parse);
            return (key, off, parse);
        }
        finally
        {
            munmap(mem, 2 * Page);
        }
    }

    [Fact]
    public void Tcp_over_ipv4_with_options_fills_every_field()
    {
        var s = new FrameSpec { Tos = 0x28, Ttl = 17, SrcPort = 4321, DstPort = 443, TcpFlags = 0x12, IpOptions = [1, 1, 1, 0] };
        var (k, off, parse) = Guarded(FrameBuilder.Build(s), 7);
        Assert.Equal(ParseFlags.L2 | ParseFlags.L3 | ParseFlags.L4, parse);
        Assert.Equal(7, k.InPort);
        Assert.Equal(0x020000000002UL, k.DlDst);
        Assert.Equal(0x020000000001UL, k.DlSrc);
        Assert.Equal(0x0800, k.DlType);
        Assert.Equal(FrameBuilder.Ip("192.0.2.1"), k.NwSrc);
        Assert.Equal(FrameBuilder.Ip("198.51.100.2"), k.NwDst);
        Assert.Equal(6, k.NwProto);
        Assert.Equal(0x28, k.NwTos);
        Assert.Equal(17, k.NwTtl);
        Assert.Equal(4321, k.TpSrc);
        Assert.Equal(443, k.TpDst);
        Assert.Equal(0x12, k.TcpFlags);
        Assert.Equal(14, off.L3);
        Assert.Equal(14 + 24, off.L4);
    }

    [Fact]
    public void Two_vlan_tags_arp_icmp_and_fragments()
    {
        var (k, off, _) = Guarded(FrameBuilder.Build(new FrameSpec { Tags = [(0x88A8, 0x2064), (0x8100, 0x0005)], Proto = 17 }));
        Assert.Equal(0x2064 | 0x1000, k.VlanTci);
        Assert.Equal(0x0005 | 0x1000, k.Vlan2Tci);
        Assert.Equal(22, off.L3);
        Assert.Equal(17, k.NwProto);

        var (a, _, pa) = Guarded(FrameBuilder.Build(new FrameSpec { EthType = 0x0806, ArpOp = 2 }));
        Assert.Equal(ParseFlags.L2 | ParseFlags.L3, pa);
        Assert.Equal(2, a.NwProto);
        Assert.Equal(FrameBuilder.Ip("192.0.2.1"), a.NwSrc);
        Assert.Equal(FrameBuilder.Ip("198.51.100.2"), a.NwDst);
        Assert.Equal(0x020000000001UL, a.ArpSha); // the builder's sender MAC
        Assert.Equal(0UL, a.ArpTha);

        var (i, _, _) = Guarded(FrameBuilder.Build(new FrameSpec { Proto = 1 }));
        Assert.Equal(8, i.TpSrc); // echo request: type 8, code 0
        Assert.Equal(0, i.TpDst);

        var (first, _, pf) = Guarded(FrameBuilder.Build(new FrameSpec { FragField = 0x2000 }));
        Assert.Equal(1, first.NwFrag);
        Assert.True((pf & ParseFlags.L4) != 0);
        var (later, _, pl) = Guarded(FrameBuilder.Build(new FrameSpec { FragField = 0x0010, Proto = 17 }));
        Assert.Equal(3, later.NwFrag);
        Assert.Equal(ParseFlags.L2 | ParseFlags.L3, pl);
        Assert.Equal(0, later.TpDst);
    }

    [Fact]
    public void Ipv6_extension_headers_are_followed_to_the_transport_header()
    {
        var s = new FrameSpec { EthType = 0x86DD, Proto = 6 };
        var plain = FrameBuilder.Build(s);
        // Insert hop-by-hop (8 bytes) and a first fragment (8 bytes) before TCP.
        var f = new List<byte>(plain[..54]);
        f[14 + 6] = 0; // next header: hop-by-hop
        byte[] hbh = [44, 0, 1, 4, 0, 0, 0, 0];
        byte[] frag = [6, 0, 0x00, 0x01, 0, 0, 0, 1]; // offset 0, M=1
        f.AddRange(hbh);
        f.AddRange(frag);
        f.AddRange(plain[54..]);
        int payload = plain.Length - 54 + 16;
        f[14 + 4] = (byte)(payload >> 8);
        f[14 + 5] = (byte)payload;
        var (k, off, parse) = Guarded(f.ToArray());
        Assert.Equal(ParseFlags.L2 | ParseFlags.L3 | ParseFlags.L4, parse);
        Assert.Equal(6, k.NwProto);
        Assert.Equal(1, k.NwFrag);
        Assert.Equal(80, k.TpDst);
        Assert.Equal(14 + 40 + 16, off.L4);
        Assert.Equal(s.V6Dst, k.Ipv6Dst);
    }

    public static TheoryData<string> Families => new() { "tcp4", "tcp6", "udp4", "vlan-tcp4" };

    private static byte[] Sample(string family) => family switch
    {
        "tcp4" => FrameBuilder.Build(new FrameSpec { Proto = 6, IpOptions = [1, 1, 1, 0] }),
        "tcp6" => FrameBuilder.Build(new FrameSpec { EthType = 0x86DD, Proto = 6 }),
        "udp4" => FrameBuilder.Build(new FrameSpec { Proto = 17 }),
        _ => FrameBuilder.Build(new FrameSpec { Proto = 6, Tags = [(0x8100, 5)] }),
    };

    [Theory]
    [MemberData(nameof(Families))]
    public void A_frame_truncated_at_every_byte_offset_is_flagged_and_never_read_past(string family)
    {
        var frame = Sample(family);
        for (int len = 0; len < frame.Length; len++)
        {
            var (k, _, parse) = Guarded(frame.AsSpan(0, len));
            // Every strict prefix of a complete frame is cut inside some header (the payload is part
            // of the IP length), so it must carry an error bit and never claim a transport header.
            Assert.True((parse & ParseFlags.Errors) != 0, $"{family} cut at {len}: parse 0x{parse:x} has no error bit");
            if (len < 14)
            {
                Assert.Equal(0, k.DlType);
            }
        }

        Assert.Equal(0, Guarded(frame).Parse & ParseFlags.Errors);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(15)]
    public void Bogus_ihl_is_flagged_bad_or_truncated(int ihlWords)
    {
        var frame = FrameBuilder.Build(new FrameSpec());
        frame[14] = (byte)(0x40 | ihlWords);
        var (_, _, parse) = Guarded(frame);
        Assert.True((parse & (ParseFlags.Bad | ParseFlags.Truncated)) != 0);
        Assert.Equal(0, parse & ParseFlags.L4);
    }

    [Fact]
    public void Lengths_larger_than_the_frame_are_flagged_bad()
    {
        var v4 = FrameBuilder.Build(new FrameSpec());
        v4[16] = 0x05; // total length 0x05xx > frame
        Assert.True((Guarded(v4).Parse & ParseFlags.Bad) != 0);
        var v6 = FrameBuilder.Build(new FrameSpec { EthType = 0x86DD });
        v6[18] = 0x7F; // payload length
        Assert.True((Guarded(v6).Parse & ParseFlags.Bad) != 0);
        var tcp = FrameBuilder.Build(new FrameSpec());
        tcp[14 + 20 + 12] = 0xF0; // data offset 60 bytes > segment
        Assert.True((Guarded(tcp).Parse & ParseFlags.Bad) != 0);
    }

    [Fact]
    public void Random_garbage_never_throws_or_overreads()
    {
        var rnd = new Random(7);
        for (int i = 0; i < 20000; i++)
        {
            var buf = new byte[rnd.Next(0, 200)];
            rnd.NextBytes(buf);
            if (buf.Length > 14 && rnd.Next(2) == 0)
            {
                buf[12] = rnd.Next(3) switch { 0 => (byte)0x08, 1 => (byte)0x86, _ => (byte)0x81 };
                buf[13] = buf[12] switch { 0x08 => 0x00, 0x86 => 0xDD, _ => 0x00 };
            }

            Guarded(buf);
        }
    }
}
