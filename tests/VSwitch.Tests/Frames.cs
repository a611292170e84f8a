// Frames.cs - small packet builders for tests (documentation address ranges only).
using System.Buffers.Binary;

namespace VSwitch.Tests;

internal static class Frames
{
    /// <summary>An Ethernet/IPv4/UDP frame of <paramref name="size"/> bytes whose payload encodes <paramref name="seq"/>.</summary>
    public static byte[] Udp(int seq, int size = 64)
    {
        var f = new byte[Math.Max(size, 42)];
        byte[] dst = [0x02, 0, 0, 0, 0, 0x63], src = [0x02, 0, 0, 0, 0, 0x64];
        dst.CopyTo(f, 0);
        src.CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x0800);
        f[14] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), (ushort)(f.Length - 14));
        f[22] = 64;
        f[23] = 17;
        byte[] sip = [198, 51, 100, 1], dip = [203, 0, 113, 1];
        sip.CopyTo(f, 26);
        dip.CopyTo(f, 30);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(34), 1024);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(36), 80);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(38), (ushort)(f.Length - 34));
        BinaryPrimitives.WriteInt32BigEndian(f.AsSpan(f.Length - 4), seq);
        return f;
    }

    /// <summary>The payload sequence number written by <see cref="Udp"/>.</summary>
    public static int Seq(byte[] f) => BinaryPrimitives.ReadInt32BigEndian(f.AsSpan(f.Length - 4));
}

/// <summary>Minimal libpcap file reader/writer (microsecond, Ethernet) for the DPDK net_pcap tests.</summary>
internal static class Pcap
{
    /// <summary>
    /// vswitchd "--port" arguments for net_pcap ports p1..p<paramref name="count"/> in <paramref name="dir"/>:
    /// p1 reads in.pcap, the others an empty capture (written here); port N writes outN.pcap.
    /// </summary>
    public static List<string> PortArgs(string dir, int count)
    {
        Write(Path.Combine(dir, "empty.pcap"), []);
        var args = new List<string>();
        for (int p = 1; p <= count; p++)
        {
            string rx = Path.Combine(dir, p == 1 ? "in.pcap" : "empty.pcap");
            args.AddRange(["--port", $"p{p}=net_pcap{p - 1},rx_pcap={rx},tx_pcap={Path.Combine(dir, $"out{p}.pcap")}"]);
        }

        return args;
    }

    public static void Write(string path, IEnumerable<byte[]> frames)
    {
        using var w = new BinaryWriter(File.Create(path));
        w.Write(0xA1B2C3D4u);
        w.Write((ushort)2);
        w.Write((ushort)4);
        w.Write(0);
        w.Write(0u);
        w.Write(65535u);
        w.Write(1u);
        uint i = 0;
        foreach (var f in frames)
        {
            w.Write(i / 1_000_000);
            w.Write(i++ % 1_000_000);
            w.Write((uint)f.Length);
            w.Write((uint)f.Length);
            w.Write(f);
        }
    }

    public static List<byte[]> Read(string path)
    {
        var list = new List<byte[]>();
        if (!File.Exists(path))
        {
            return list;
        }

        using var r = new BinaryReader(File.OpenRead(path));
        if (r.BaseStream.Length < 24)
        {
            return list;
        }

        uint magic = r.ReadUInt32();
        Assert.True(magic is 0xA1B2C3D4u or 0xA1B23C4Du, $"{path}: not a little-endian pcap");
        r.ReadBytes(20);
        while (r.BaseStream.Position + 16 <= r.BaseStream.Length)
        {
            r.ReadUInt32();
            r.ReadUInt32();
            uint incl = r.ReadUInt32();
            r.ReadUInt32();
            list.Add(r.ReadBytes((int)incl));
        }

        return list;
    }
}
