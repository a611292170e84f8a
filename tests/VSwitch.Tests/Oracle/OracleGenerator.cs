// OracleGenerator.cs - random rule sets and random frames for the flow oracle.
//
// Values come from small pools (a few MACs, addresses, ports, VLANs) so that random rules and random
// packets actually meet; frames are built with PacketDotNet, a packet library that is not ours.
using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;
using PacketDotNet.Utils;

namespace VSwitch.Tests.Oracle;

/// <summary>A frame to send and the port it enters on.</summary>
internal sealed record OraclePacket(int InPort, byte[] Frame)
{
    public string Hex => Convert.ToHexString(Frame).ToLowerInvariant();
}

internal sealed class OracleGenerator(Random rnd, int portCount)
{
    private static readonly ulong[] s_macs = [0x020000000001, 0x020000000002, 0x020000000003, 0x020000000004, 0x020000000005, 0xFFFFFFFFFFFF, 0x01005E000001];
    private static readonly uint[] s_v4 = [0x0A000001, 0x0A000002, 0x0A000103, 0xC0000201, 0xC6336402];
    private static readonly UInt128[] s_v6 = [V6("2001:db8::1"), V6("2001:db8::2"), V6("2001:db8:1::3"), V6("fe80::1")];
    private static readonly int[] s_tp = [80, 443, 53, 1000, 8080];
    private static readonly int[] s_vlans = [10, 20, 30];
    private static readonly int[] s_ttls = [0, 1, 2, 64];
    private static readonly long[] s_maxLens = [14, 30, 60, 65535];
    private int _id;

    public static UInt128 V6(string s) => System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(IPAddress.Parse(s).GetAddressBytes());

    private T Pick<T>(IReadOnlyList<T> xs) => xs[rnd.Next(xs.Count)];

    private bool Chance(int percent) => rnd.Next(100) < percent;

    public List<OraclePort> Ports()
    {
        if (Chance(60))
        {
            return Enumerable.Range(1, portCount).Select(p => new OraclePort(p)).ToList();
        }

        if (Chance(50))
        {
            // access 10, access 20, a trunk of 10 and 20, and a port of every VLAN (plain or trunk-of-all)
            return
            [
                new OraclePort(1, OraclePortMode.Access, 10),
                new OraclePort(2, OraclePortMode.Access, 20),
                new OraclePort(3, OraclePortMode.Trunk, 0, [10, 20]),
                new OraclePort(4, Chance(50) ? OraclePortMode.Trunk : OraclePortMode.Plain),
            ];
        }

        // any mix: access ports in one of the VLANs, trunks of a random subset (VLAN 0 = untagged)
        return Enumerable.Range(1, portCount).Select(p => rnd.Next(3) switch
        {
            0 => new OraclePort(p, OraclePortMode.Access, Pick(s_vlans)),
            1 => new OraclePort(p, OraclePortMode.Trunk, 0, s_vlans.Prepend(0).Where(_ => Chance(60)).ToList()),
            _ => new OraclePort(p),
        }).ToList();
    }

    public List<OracleRule> Rules(int count)
    {
        var rules = new List<OracleRule>();
        for (int i = 0; i < count; i++)
        {
            int table = i < 2 ? 0 : rnd.Next(4); // table 0 is where every packet starts
            if (i == 2 && Chance(50))
            {
                rules.Add(new OracleRule(0, 0, new OracleMatch(), RandomActions(0, new OracleMatch()))); // a catch-all
                continue;
            }

            if (i == 3 && Chance(40))
            {
                // a protocol-only rule of rewrites: L3/L4 set_field on many packets
                var pm = RandomMatch();
                var proto = new OracleMatch { DlType = pm.DlType ?? 0x0800, NwProto = pm.NwProto ?? 6 };
                var sets = Enumerable.Range(0, rnd.Next(1, 4)).Select(_ => (OracleAction)RandomSet(proto));
                rules.Add(new OracleRule(0, 40000, proto, [.. sets, .. RandomActions(0, proto).Where(a => a is not DropAction)]));
                continue;
            }

            var m = RandomMatch();
            rules.Add(new OracleRule(table, Pick(new[] { 0, 10, 100, 100, 200, 32768 }), m, RandomActions(table, m)));
        }

        return rules;
    }

    private OracleMatch RandomMatch()
    {
        var m = new OracleMatch();
        int kind = rnd.Next(12);
        (m.DlType, m.NwProto) = kind switch
        {
            0 => (0x0800, (int?)null),
            1 => (0x0800, 6),
            2 => (0x0800, 17),
            3 => (0x0800, 1),
            4 => (0x86DD, null),
            5 => (0x86DD, 6),
            6 => (0x86DD, 17),
            7 => (0x86DD, 58),
            8 => (0x0800, 6),
            9 => (0x86DD, 17),
            _ => ((int?)null, (int?)null),
        };
        if (Chance(30))
        {
            m.InPort = 1 + rnd.Next(portCount);
        }

        if (Chance(20))
        {
            m.DlSrc = Chance(70) ? new Masked(Pick(s_macs), 0xFFFFFFFFFFFF) : new Masked(0x010000000000, 0x010000000000);
        }

        if (Chance(20))
        {
            m.DlDst = Chance(70) ? new Masked(Pick(s_macs), 0xFFFFFFFFFFFF) : new Masked(0, 0x010000000000);
        }

        int vlan = rnd.Next(10);
        if (vlan == 0)
        {
            m.DlVlan = 0xFFFF;
        }
        else if (vlan == 1)
        {
            m.DlVlan = Pick(s_vlans);
        }
        else if (vlan == 2)
        {
            m.VlanPcp = rnd.Next(8);
        }
        else if (vlan == 3)
        {
            m.VlanTci = Chance(50) ? new Masked(0x1000, 0x1000) : new Masked(0x1000 | (UInt128)Pick(s_vlans), 0x1FFF);
        }

        if (m.IsIpv4)
        {
            if (Chance(30))
            {
                m.NwSrc = new Masked(Pick(s_v4), Prefix(Pick(new[] { 32, 24, 16, 8 }), 32));
            }

            if (Chance(30))
            {
                m.NwDst = Chance(10) ? new Masked(0x0A000001, 0xFF00FF01) : new Masked(Pick(s_v4), Prefix(Pick(new[] { 32, 24, 23, 0 }), 32));
            }
        }

        if (m.IsIpv6)
        {
            if (Chance(30))
            {
                m.Ipv6Src = new Masked(Pick(s_v6), Prefix(Pick(new[] { 128, 64, 32, 48 }), 128));
            }

            if (Chance(30))
            {
                m.Ipv6Dst = new Masked(Pick(s_v6), Prefix(Pick(new[] { 128, 126, 16 }), 128));
            }
        }

        if ((m.IsIpv4 || m.IsIpv6) && Chance(15))
        {
            m.NwTtl = Pick(s_ttls);
        }

        if (m.HasPorts)
        {
            if (Chance(30))
            {
                m.TpSrc = new Masked((UInt128)Pick(s_tp), (UInt128)(Chance(80) ? 0xFFFF : 0xFF00));
            }

            if (Chance(40))
            {
                m.TpDst = new Masked((UInt128)Pick(s_tp), (UInt128)(Chance(80) ? 0xFFFF : 0xFFF0));
            }
        }

        return m;
    }

    private static UInt128 Prefix(int len, int bits)
    {
        UInt128 full = bits == 128 ? UInt128.MaxValue : ((UInt128)1 << bits) - 1;
        return len == 0 ? 0 : (full << (bits - len)) & full;
    }

    private List<OracleAction> RandomActions(int table, OracleMatch m)
    {
        if (Chance(8))
        {
            return [new DropAction()];
        }

        var acts = new List<OracleAction>();
        int n = rnd.Next(1, 5);
        bool tagKnown = m.RequiresTag;
        for (int i = 0; i < n; i++)
        {
            switch (rnd.Next(15))
            {
                case 0:
                case 1:
                    acts.Add(new OutputAction(1 + rnd.Next(portCount + (Chance(10) ? 1 : 0)), Chance(12) ? Pick(s_maxLens) : 0));
                    break;
                case 2:
                    acts.Add(Chance(20) ? new InPortAction() : new FloodAction());
                    break;
                case 3:
                    acts.Add(new NormalAction());
                    break;
                case 4:
                    acts.Add(new PushVlanAction(Chance(70) ? FrameView.TpidVlan : FrameView.TpidQinQ));
                    tagKnown = true;
                    break;
                case 5:
                    acts.Add(new PopVlanAction());
                    tagKnown = false;
                    break;
                case 6:
                    if (tagKnown && Chance(50))
                    {
                        acts.Add(new SetFieldAction(Chance(50) ? SetTarget.VlanVid : SetTarget.VlanPcp, (UInt128)rnd.Next(1, 8)));
                    }
                    else
                    {
                        bool pcp = Chance(40);
                        acts.Add(new ModVlanAction(pcp, pcp ? rnd.Next(8) : Pick(s_vlans.Append(0).Append(4095).ToArray())));
                        tagKnown = true;
                    }

                    break;
                case 7:
                    acts.Add(new DecTtlAction());
                    break;
                case 8:
                case 9:
                case 13:
                    acts.Add(RandomSet(m));
                    break;
                case 10:
                case 11:
                    if (table < 3)
                    {
                        int to = rnd.Next(table + 1, 4);
                        acts.Add(Chance(15) ? new ResubmitAction(1 + rnd.Next(portCount), to) : new ResubmitAction(null, to));
                    }

                    break;
                default:
                    if (table < 3 && i == n - 1)
                    {
                        acts.Add(new GotoTableAction(rnd.Next(table + 1, 4)));
                    }
                    else
                    {
                        acts.Add(new OutputAction(1 + rnd.Next(portCount)));
                    }

                    break;
            }
        }

        return acts.Count == 0 ? [new OutputAction(1 + rnd.Next(portCount))] : acts;
    }

    private SetFieldAction RandomSet(OracleMatch m)
    {
        // Mostly the deepest layer the match allows: those rules are the rarer ones.
        var options = new List<SetTarget> { SetTarget.DlSrc, SetTarget.DlDst };
        if (m.IsIpv4)
        {
            options.AddRange(Enumerable.Repeat(new[] { SetTarget.NwSrc, SetTarget.NwDst }, 3).SelectMany(x => x));
        }

        if (m.IsIpv6)
        {
            options.AddRange(Enumerable.Repeat(new[] { SetTarget.Ipv6Src, SetTarget.Ipv6Dst }, 3).SelectMany(x => x));
        }

        if (m.HasPorts)
        {
            options.AddRange(Enumerable.Repeat(new[] { SetTarget.TpSrc, SetTarget.TpDst }, 6).SelectMany(x => x));
        }

        if (m.IsIpv4 || m.IsIpv6)
        {
            options.AddRange([SetTarget.NwTtl, SetTarget.IpDscp, SetTarget.NwEcn]);
        }

        var t = Pick(options);
        UInt128 v = t switch
        {
            SetTarget.DlSrc or SetTarget.DlDst => Chance(80) ? Pick(s_macs.Take(5).ToArray()) : (UInt128)(0x02AB00000000UL | (uint)rnd.Next()),
            SetTarget.NwSrc or SetTarget.NwDst => Chance(70) ? Pick(s_v4) : (uint)rnd.Next(),
            SetTarget.Ipv6Src or SetTarget.Ipv6Dst => Chance(70) ? Pick(s_v6) : ((UInt128)(ulong)rnd.NextInt64() << 64) | (ulong)rnd.NextInt64(),
            SetTarget.NwTtl => (UInt128)(Chance(60) ? rnd.Next(0, 3) : rnd.Next(256)), // 0-2 meet dec_ttl's edge
            SetTarget.IpDscp => (UInt128)rnd.Next(64),
            SetTarget.NwEcn => (UInt128)rnd.Next(4),
            _ => (UInt128)(Chance(70) ? Pick(s_tp) : rnd.Next(65536)),
        };
        return new SetFieldAction(t, v);
    }

    /// <summary>A random frame built with PacketDotNet (Ethernet, IPv4/IPv6, TCP/UDP/ICMP/ICMPv6, or other), then tagged.</summary>
    public OraclePacket Packet()
    {
        int id = _id++;
        var payload = new byte[18];
        BitConverter.TryWriteBytes(payload, id);
        payload[4] = (byte)rnd.Next(256);
        ulong src = Chance(92) ? Pick(s_macs.Take(5).ToArray()) : Pick(s_macs);
        ulong dst = Pick(s_macs);
        int kind = rnd.Next(8);
        EthernetType type = kind switch
        {
            < 3 => EthernetType.IPv4,
            < 7 => EthernetType.IPv6,
            _ => (EthernetType)0x88B5,
        };
        var (ipSrc, ipDst) = type == EthernetType.IPv4 ? (Addr4(Pick(s_v4)), Addr4(Pick(s_v4))) : (Addr6(Pick(s_v6)), Addr6(Pick(s_v6)));
        byte[] frame = Build(src, dst, type, ipSrc, ipDst, Pick(s_ttls), rnd.Next(3), payload, tos: rnd.Next(4) << 2);
        if (Chance(15))
        {
            frame = type == EthernetType.IPv4 ? WithIpv4Options(frame) : type == EthernetType.IPv6 ? WithHopByHop(frame) : frame;
        }

        if (type == EthernetType.IPv4 && Chance(8))
        {
            frame = AsLaterFragment(frame);
        }
        int tags = rnd.Next(10);
        if (tags >= 6)
        {
            frame = Tag(frame, FrameView.TpidVlan, (rnd.Next(8) << 13) | Pick(s_vlans));
        }

        if (tags == 9)
        {
            frame = Tag(frame, FrameView.TpidQinQ, Pick(s_vlans));
        }

        return new OraclePacket(1 + rnd.Next(portCount), frame);
    }

    /// <summary>
    /// A frame from PacketDotNet: Ethernet with IPv4 or IPv6 (addresses of that family) carrying TCP
    /// (<paramref name="l4"/> 0), UDP (1) or ICMP/ICMPv6 echo (2), or any other type with the payload as is.
    /// </summary>
    public static byte[] Build(ulong src, ulong dst, EthernetType type, IPAddress ipSrc, IPAddress ipDst, int ttl, int l4, byte[] payload, int tos = 0)
    {
        var eth = new EthernetPacket(Mac(src), Mac(dst), type);
        if (type == EthernetType.IPv4)
        {
            var ip = new IPv4Packet(ipSrc, ipDst) { TimeToLive = ttl, Id = BitConverter.ToUInt16(payload), TypeOfService = tos };
            eth.PayloadPacket = ip;
            Transport(ip, l4, payload, v6: false);
            ip.UpdateCalculatedValues();
            ip.UpdateIPChecksum();
        }
        else if (type == EthernetType.IPv6)
        {
            var ip = new IPv6Packet(ipSrc, ipDst) { HopLimit = ttl };
            eth.PayloadPacket = ip;
            Transport(ip, l4, payload, v6: true);
        }
        else
        {
            eth.PayloadData = payload;
        }

        byte[] frame = eth.Bytes;
        if (PacketDotNet.Packet.ParsePacket(LinkLayers.Ethernet, frame).Extract<IcmpV6Packet>() is { } icmp6)
        {
            // IcmpV6Packet.UpdateIcmpChecksum on a packet under construction writes a wrong value;
            // on the parsed frame CalculateIcmpChecksum is right (checked against a hand computation).
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(frame.Length - icmp6.TotalPacketLength + 2), icmp6.CalculateIcmpChecksum());
        }

        return frame;
    }

    private static void Transport(IPPacket ip, int l4, byte[] payload, bool v6)
    {
        var rnd = new Random(payload[4]);
        if (l4 == 0)
        {
            var tcp = new TcpPacket((ushort)s_tp[rnd.Next(s_tp.Length)], (ushort)s_tp[rnd.Next(s_tp.Length)])
            {
                SequenceNumber = (uint)rnd.Next(),
                Synchronize = true,
                WindowSize = 1024,
                PayloadData = payload,
            };
            ip.PayloadPacket = tcp;
            ip.UpdateCalculatedValues();
            tcp.UpdateTcpChecksum();
        }
        else if (l4 == 1)
        {
            var udp = new UdpPacket((ushort)s_tp[rnd.Next(s_tp.Length)], (ushort)s_tp[rnd.Next(s_tp.Length)]) { PayloadData = payload };
            ip.PayloadPacket = udp;
            udp.UpdateCalculatedValues();
            ip.UpdateCalculatedValues();
            if (v6 || rnd.Next(4) != 0)
            {
                udp.UpdateUdpChecksum();
            }
        }
        else if (!v6)
        {
            var bytes = new byte[8 + payload.Length];
            bytes[0] = 8; // echo request
            payload.CopyTo(bytes, 8);
            var icmp = new IcmpV4Packet(new ByteArraySegment(bytes));
            ip.PayloadPacket = icmp;
            ip.UpdateCalculatedValues();
            icmp.UpdateIcmpChecksum();
        }
        else
        {
            var bytes = new byte[8 + payload.Length];
            bytes[0] = 128; // echo request
            payload.CopyTo(bytes, 8);
            var icmp = new IcmpV6Packet(new ByteArraySegment(bytes));
            ip.PayloadPacket = icmp;
            ip.UpdateCalculatedValues();
            icmp.UpdateIcmpChecksum();
        }
    }

    /// <summary>The same IPv4 frame with 4 bytes of options (IHL 6); PacketDotNet recomputes the header checksum.</summary>
    public static byte[] WithIpv4Options(byte[] f)
    {
        byte[] g = [.. f.AsSpan(0, 34), 0x01, 0x01, 0x01, 0x00, .. f.AsSpan(34)]; // NOP, NOP, NOP, end of options
        g[14] = 0x46;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(16), (ushort)(System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(g.AsSpan(16)) + 4));
        var ip = PacketDotNet.Packet.ParsePacket(LinkLayers.Ethernet, g).Extract<IPv4Packet>();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(24), 0);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(24), ip.CalculateIPChecksum());
        return g;
    }

    /// <summary>The same IPv4 frame as a later fragment (offset 1480): what followed the IP header is payload now.</summary>
    public static byte[] AsLaterFragment(byte[] f)
    {
        byte[] g = [.. f];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(20), 1480 / 8);
        var ip = PacketDotNet.Packet.ParsePacket(LinkLayers.Ethernet, g).Extract<IPv4Packet>();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(24), 0);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(24), ip.CalculateIPChecksum());
        return g;
    }

    /// <summary>The same IPv6 frame with an empty hop-by-hop options header (8 bytes of PadN) before its upper layer.</summary>
    public static byte[] WithHopByHop(byte[] f)
    {
        byte next = f[20];
        byte[] g = [.. f.AsSpan(0, 54), next, 0, 0x01, 0x04, 0, 0, 0, 0, .. f.AsSpan(54)];
        g[20] = 0; // hop-by-hop
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(g.AsSpan(18), (ushort)(System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(g.AsSpan(18)) + 8));
        return g; // the upper-layer length and so its checksum are unchanged
    }

    public static byte[] Tag(byte[] f, int tpid, int tci) =>
        [.. f.AsSpan(0, 12), (byte)(tpid >> 8), (byte)tpid, (byte)(tci >> 8), (byte)tci, .. f.AsSpan(12)];

    private static PhysicalAddress Mac(ulong m) => new(BitConverter.GetBytes(m).Take(6).Reverse().ToArray());

    private static IPAddress Addr4(uint a) => new(new[] { (byte)(a >> 24), (byte)(a >> 16), (byte)(a >> 8), (byte)a });

    private static IPAddress Addr6(UInt128 a)
    {
        var b = new byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(b, a);
        return new IPAddress(b);
    }
}
