// FrameBuilder.cs - builds test frames (Ethernet, VLAN tags, IPv4/IPv6, TCP/UDP/ICMP, ARP) with
// correct checksums, and verifies checksums from scratch (independently of the switch's
// incremental updates).
using System.Buffers.Binary;
using System.Net;

namespace VSwitch.Tests;

internal sealed class FrameSpec
{
    public ulong Dst = 0x020000000002;
    public ulong Src = 0x020000000001;
    public List<(ushort Tpid, ushort Tci)> Tags = [];
    public ushort EthType = 0x0800;
    public uint NwSrc = 0xC0000201; // 192.0.2.1
    public uint NwDst = 0xC6336402; // 198.51.100.2
    public UInt128 V6Src = UInt128.Parse("42540766411282592856903984951653826561"); // 2001:db8::1
    public UInt128 V6Dst = UInt128.Parse("42540766411282592856903984951653826562"); // 2001:db8::2
    public byte Proto = 6;
    public byte Ttl = 64;
    public byte Tos;
    public ushort FragField; // IPv4 flags+offset
    public ushort SrcPort = 1234;
    public ushort DstPort = 80;
    public byte TcpFlags = 0x02;
    public uint TcpSeq = 1000;
    public uint TcpAck;
    public byte IcmpType = 8;
    public byte IcmpCode;
    public ushort IcmpId = 1;
    public byte[] Payload = new byte[18];
    public ushort ArpOp = 1;
    public byte[] IpOptions = [];
}

internal static class FrameBuilder
{
    public static byte[] Build(FrameSpec s)
    {
        var f = new List<byte>();
        AddMac(f, s.Dst);
        AddMac(f, s.Src);
        foreach (var (tpid, tci) in s.Tags)
        {
            Add16(f, tpid);
            Add16(f, tci);
        }

        Add16(f, s.EthType);
        int l3 = f.Count;
        if (s.EthType == 0x0806)
        {
            Add16(f, 1); Add16(f, 0x0800); f.Add(6); f.Add(4); Add16(f, s.ArpOp);
            AddMac(f, s.Src); Add32(f, s.NwSrc); AddMac(f, 0); Add32(f, s.NwDst);
            return [.. f];
        }

        byte[] l4 = L4(s);
        if (s.EthType == 0x0800)
        {
            int ihl = 20 + s.IpOptions.Length;
            f.Add((byte)(0x40 | (ihl / 4))); f.Add(s.Tos); Add16(f, (ushort)(ihl + l4.Length));
            Add16(f, 0x1234); Add16(f, s.FragField); f.Add(s.Ttl); f.Add(s.Proto); Add16(f, 0);
            Add32(f, s.NwSrc); Add32(f, s.NwDst);
            f.AddRange(s.IpOptions);
            var arr = f.ToArray();
            ushort c = Checksum(arr.AsSpan(l3, ihl), 0);
            f[l3 + 10] = (byte)(c >> 8); f[l3 + 11] = (byte)c;
            if ((s.FragField & 0x1FFF) == 0)
            {
                FillL4Checksum(l4, s, v6: false);
            }

            f.AddRange(l4);
        }
        else if (s.EthType == 0x86DD)
        {
            Add32(f, 0x60000000u | ((uint)s.Tos << 20)); Add16(f, (ushort)l4.Length); f.Add(s.Proto); f.Add(s.Ttl);
            Add64(f, (ulong)(s.V6Src >> 64)); Add64(f, (ulong)s.V6Src); Add64(f, (ulong)(s.V6Dst >> 64)); Add64(f, (ulong)s.V6Dst);
            FillL4Checksum(l4, s, v6: true);
            f.AddRange(l4);
        }
        else
        {
            f.AddRange(s.Payload);
        }

        return [.. f];
    }

    private static byte[] L4(FrameSpec s)
    {
        var l = new List<byte>();
        switch (s.Proto)
        {
            case 6:
                Add16(l, s.SrcPort); Add16(l, s.DstPort); Add32(l, s.TcpSeq); Add32(l, s.TcpAck);
                l.Add(0x50); l.Add(s.TcpFlags); Add16(l, 8192); Add16(l, 0); Add16(l, 0);
                break;
            case 17:
                Add16(l, s.SrcPort); Add16(l, s.DstPort); Add16(l, (ushort)(8 + s.Payload.Length)); Add16(l, 0);
                break;
            case 1:
            case 58:
                l.Add(s.IcmpType); l.Add(s.IcmpCode); Add16(l, 0);
                if (s.IcmpType is 8 or 0 or 128 or 129)
                {
                    Add16(l, s.IcmpId); Add16(l, 1); // identifier, sequence
                }
                else
                {
                    Add32(l, 0); // an error: unused (the quoted packet is the payload)
                }

                break;
            case 132: // SCTP common header: ports, verification tag, CRC32c (FillL4Checksum)
                Add16(l, s.SrcPort); Add16(l, s.DstPort); Add32(l, 0x5C7B0001); Add32(l, 0);
                break;
        }

        l.AddRange(s.Payload);
        return [.. l];
    }

    private static void FillL4Checksum(byte[] l4, FrameSpec s, bool v6)
    {
        if (s.Proto == 132)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(l4.AsSpan(8), SctpCrc32c(l4));
            return;
        }

        int at = s.Proto switch { 6 => 16, 17 => 6, 1 or 58 => 2, _ => -1 };
        if (at < 0)
        {
            return;
        }

        uint pseudo = s.Proto == 1 ? 0 : Pseudo(s, v6, l4.Length);
        ushort c = Checksum(l4, pseudo);
        if (s.Proto == 17 && c == 0)
        {
            c = 0xFFFF;
        }

        l4[at] = (byte)(c >> 8);
        l4[at + 1] = (byte)c;
    }

    private static uint Pseudo(FrameSpec s, bool v6, int len)
    {
        uint sum = 0;
        if (v6)
        {
            for (int i = 0; i < 8; i++)
            {
                sum += (uint)(ushort)(s.V6Src >> (112 - 16 * i)) + (uint)(ushort)(s.V6Dst >> (112 - 16 * i));
            }
        }
        else
        {
            sum += (s.NwSrc >> 16) + (s.NwSrc & 0xFFFF) + (s.NwDst >> 16) + (s.NwDst & 0xFFFF);
        }

        return sum + s.Proto + (uint)len;
    }

    /// <summary>
    /// The CRC32c of an SCTP packet (RFC 4960 appendix B, RFC 3309), its checksum field read as zero,
    /// bit by bit (this shares nothing with the switch's SSE4.2 code); stored little-endian in the field.
    /// </summary>
    public static uint SctpCrc32c(ReadOnlySpan<byte> sctp)
    {
        uint crc = 0xFFFFFFFF;
        for (int i = 0; i < sctp.Length; i++)
        {
            crc ^= i is >= 8 and < 12 ? 0u : sctp[i];
            for (int b = 0; b < 8; b++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
            }
        }

        return ~crc;
    }

    /// <summary>Whether the SCTP packet's stored CRC32c is right.</summary>
    private static bool SctpOk(ReadOnlySpan<byte> sctp) => sctp.Length >= 12 && BinaryPrimitives.ReadUInt32LittleEndian(sctp[8..]) == SctpCrc32c(sctp);

    /// <summary>Internet checksum of <paramref name="data"/> with an initial sum.</summary>
    public static ushort Checksum(ReadOnlySpan<byte> data, uint initial)
    {
        ulong sum = initial;
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += (uint)((data[i] << 8) | data[i + 1]);
        }

        if (i < data.Length)
        {
            sum += (uint)(data[i] << 8);
        }

        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)~sum;
    }

    /// <summary>Recomputes every checksum of an Ethernet frame from scratch; returns the failures (empty: all good).</summary>
    public static List<string> VerifyChecksums(byte[] frame)
    {
        var bad = new List<string>();
        int o = 12;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(o));
        while (type is 0x8100 or 0x88A8)
        {
            o += 4;
            type = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(o));
        }

        o += 2;
        if (type == 0x0800)
        {
            int ihl = (frame[o] & 0xF) * 4;
            int total = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(o + 2));
            if (Checksum(frame.AsSpan(o, ihl), 0) != 0)
            {
                bad.Add("ipv4 header");
            }

            byte proto = frame[o + 9];
            if ((BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(o + 6)) & 0x1FFF) != 0)
            {
                return bad;
            }

            var l4 = frame.AsSpan(o + ihl, total - ihl);
            uint pseudo = 0;
            for (int i = 0; i < 8; i += 2)
            {
                pseudo += (uint)((frame[o + 12 + i] << 8) | frame[o + 13 + i]);
            }

            pseudo += proto + (uint)l4.Length;
            if (proto == 6 && Checksum(l4, pseudo) != 0)
            {
                bad.Add("tcp");
            }
            else if (proto == 17 && BinaryPrimitives.ReadUInt16BigEndian(l4[6..]) != 0 && Checksum(l4, pseudo) != 0)
            {
                bad.Add("udp");
            }
            else if (proto == 132 && !SctpOk(l4))
            {
                bad.Add("sctp");
            }
        }
        else if (type == 0x86DD)
        {
            int len = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(o + 4));
            byte proto = frame[o + 6];
            uint pseudo = 0;
            for (int i = 0; i < 32; i += 2)
            {
                pseudo += (uint)((frame[o + 8 + i] << 8) | frame[o + 9 + i]);
            }

            pseudo += proto + (uint)len;
            var l4 = frame.AsSpan(o + 40, len);
            if (proto is 6 or 17 or 58 && Checksum(l4, pseudo) != 0)
            {
                bad.Add(proto == 6 ? "tcp6" : proto == 17 ? "udp6" : "icmp6");
            }
            else if (proto == 132 && !SctpOk(l4))
            {
                bad.Add("sctp6");
            }
        }

        return bad;
    }

    public static uint Ip(string s) => BinaryPrimitives.ReadUInt32BigEndian(IPAddress.Parse(s).GetAddressBytes());

    private static void AddMac(List<byte> f, ulong m)
    {
        for (int i = 5; i >= 0; i--)
        {
            f.Add((byte)(m >> (8 * i)));
        }
    }

    private static void Add16(List<byte> f, ushort v) { f.Add((byte)(v >> 8)); f.Add((byte)v); }

    private static void Add32(List<byte> f, uint v) { Add16(f, (ushort)(v >> 16)); Add16(f, (ushort)v); }

    private static void Add64(List<byte> f, ulong v) { Add32(f, (uint)(v >> 32)); Add32(f, (uint)v); }
}
