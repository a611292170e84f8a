// PipelineBenchmarks.cs - the flow pipeline stage by stage, on in-memory fake mbufs: key extraction,
// the whole PMD round on a microflow (EMC) hit, on a megaflow hit with 1/10/100 subtables, and the
// upcall. One operation = one packet (OperationsPerInvoke); allocated bytes must read 0 ("-").
//
// What each benchmark includes:
//   PipelineKeyBenchmarks.ExtractAndHash - KeyExtractor.Extract + KeyExtractor.Hash over 32 frames
//     already in (L1-resident) fake mbufs: IPv4 TCP and UDP, one IPv6 TCP, one 802.1Q-tagged IPv4 UDP.
//   PipelineEmcBenchmarks.EmcHit - PmdLoop.Poll over PipelineForwarder: rx (a pointer copy), key and
//     hash, EMC hit, grouping by megaflow, megaflow and rule counters, the output action, tx
//     buffering and tx_burst, PMD counters. The 1000-rule tables below (2 tables, goto_table,
//     output-only: the loopback re-delivers the same mbufs, so nothing may rewrite them); one burst of
//     4 flows x 8 packets (interleaved, so 4 groups of 8), every megaflow installed and in the EMC.
//   PipelineMegaflowBenchmarks.MegaflowHit(Subtables) - the same round with the EMC off
//     (EmcInsertInvProb = 0): the EMC lookup misses and every packet is found in the megaflow cache.
//     Table 0 sends tp_dst 1000+j to table j+1, whose rules match nw_dst/(24 + j%9) and
//     nw_src/(8 + j/9); so each j gives its own megaflow mask (subtable) and each flow its own
//     megaflow. Traffic is SPREAD EVENLY over the subtables, not the worst case: lcm(N, 4) flows,
//     4 per burst (8 packets each), bursts replayed in turn; every subtable gets the same hits, so
//     re-ranking cannot favour one and a lookup probes (N + 1) / 2 subtables on average (the worst
//     case, all traffic in the last-ranked subtable, is not stable: re-ranking moves it to the top).
//     With N = 1 the traffic has the EmcHit shape (one burst, 4 flows, 4 groups): the two compare
//     directly. N = 10 and 100 replay 5 and 25 bursts, so their mbufs live in L2 rather than L1.
//   PipelineUpcallBenchmarks - the slow path without the datapath around it, over 256 precomputed
//     keys (extraction excluded; all in_ports; 172 reach an output, the rest drop: unknown source,
//     blocked port, or a route back out of the input port) on the 1000-rule tables, with 256
//     resident megaflows (3 masks: nw_dst is always /32 as the /32 routes are tried first) so the
//     subtables exist as in steady state. Translate = Translator.Translate alone; Upcall = Translate
//     + MegaflowCache.Install + MegaflowCache.Remove (the cache does not grow). An upcall in the
//     handler also pays the failed EMC and megaflow lookups and the group's actions (above).
// Frames carry no checksums: the extractor does not read them and no rule rewrites headers.
// Run: dotnet run -c Release --project bench/VSwitch.Benchmarks -- --filter '*Pipeline*' --job short
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using VSwitch.Caches;
using VSwitch.FlowText;
using VSwitch.Forwarding;
using VSwitch.Interop;
using VSwitch.Packets;
using VSwitch.Pipeline;
using VSwitch.Pmd;
using VSwitch.Ports;

namespace VSwitch.Benchmarks;

/// <summary>Builds the benchmarks' Ethernet frames (TCP/UDP over IPv4 or IPv6, optional 802.1Q tag).</summary>
internal static class BenchFrames
{
    public const byte Tcp = 6;
    public const byte Udp = 17;
    private const int PayloadBytes = 18;

    /// <summary>An IPv4 TCP or UDP frame; <paramref name="vlan"/> != 0 adds an 802.1Q tag with that VID.</summary>
    public static byte[] Ipv4(uint src, uint dst, byte proto, ushort sport, ushort dport, ushort vlan = 0)
    {
        int l4 = (proto == Tcp ? 20 : 8) + PayloadBytes;
        int o = vlan != 0 ? 18 : 14;
        var f = new byte[o + 20 + l4];
        Ethernet(f, vlan, KeyExtractor.EthIp);
        Span<byte> ip = f.AsSpan(o);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + l4));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 0x1234);
        ip[8] = 64;
        ip[9] = proto;
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], src);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], dst);
        Transport(ip[20..], proto, sport, dport, l4);
        return f;
    }

    /// <summary>An IPv6 TCP frame.</summary>
    public static byte[] Ipv6Tcp(UInt128 src, UInt128 dst, ushort sport, ushort dport)
    {
        const int l4 = 20 + PayloadBytes;
        var f = new byte[14 + 40 + l4];
        Ethernet(f, 0, KeyExtractor.EthIpv6);
        Span<byte> ip = f.AsSpan(14);
        BinaryPrimitives.WriteUInt32BigEndian(ip, 0x60000000);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], l4);
        ip[6] = Tcp;
        ip[7] = 64;
        BinaryPrimitives.WriteUInt128BigEndian(ip[8..], src);
        BinaryPrimitives.WriteUInt128BigEndian(ip[24..], dst);
        Transport(ip[40..], Tcp, sport, dport, l4);
        return f;
    }

    /// <summary>a.b.c.d as the host-order number the flow key uses.</summary>
    public static uint Ip(int a, int b, int c, int d) => (uint)((a << 24) | (b << 16) | (c << 8) | d);

    private static void Ethernet(byte[] f, ushort vlan, ushort type)
    {
        f[0] = 0x02; f[5] = 0x02; // dst 02:00:00:00:00:02
        f[6] = 0x02; f[11] = 0x01; // src 02:00:00:00:00:01
        int o = 12;
        if (vlan != 0)
        {
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(o), KeyExtractor.EthVlan);
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(o + 2), vlan);
            o += 4;
        }

        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(o), type);
    }

    private static void Transport(Span<byte> p, byte proto, ushort sport, ushort dport, int len)
    {
        BinaryPrimitives.WriteUInt16BigEndian(p, sport);
        BinaryPrimitives.WriteUInt16BigEndian(p[2..], dport);
        if (proto == Tcp)
        {
            BinaryPrimitives.WriteUInt32BigEndian(p[4..], 1000);
            p[12] = 0x50; // data offset 5 words
            p[13] = 0x10; // ACK
            BinaryPrimitives.WriteUInt16BigEndian(p[14..], 8192);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(p[4..], (ushort)len);
        }
    }
}

/// <summary>Fake one-segment mbufs in one native block, each holding one frame.</summary>
internal sealed unsafe class FakeMbufBlock : IDisposable
{
    /// <summary>Bytes per mbuf: header, headroom, room for a small frame (a multiple of 64).</summary>
    private const int Size = Mbuf.StructSize + Mbuf.Headroom + 256;

    /// <summary>The mbufs' memory.</summary>
    private readonly nint _block;

    public FakeMbufBlock(IReadOnlyList<byte[]> frames)
    {
        Count = frames.Count;
        _block = (nint)NativeMemory.AlignedAlloc((nuint)(Count * Size), 64);
        Mbufs = (nint*)NativeMemory.AlignedAlloc((nuint)(Count * sizeof(nint)), 64);
        for (int i = 0; i < Count; i++)
        {
            byte[] f = frames[i];
            if (f.Length > Size - Mbuf.StructSize - Mbuf.Headroom)
            {
                throw new ArgumentException($"frame {i} is {f.Length} bytes: too long for a fake mbuf", nameof(frames));
            }

            nint m = _block + (i * Size);
            NativeMemory.Clear((void*)m, Size);
            *(nint*)m = m + Mbuf.StructSize;
            *(ushort*)(m + Mbuf.DataOffOffset) = Mbuf.Headroom;
            *(ushort*)(m + Mbuf.NbSegsOffset) = 1;
            *(ushort*)(m + Mbuf.DataLenOffset) = (ushort)f.Length;
            *(uint*)(m + Mbuf.PktLenOffset) = (uint)f.Length;
            f.CopyTo(new Span<byte>(Mbuf.Data(m), f.Length));
            Mbufs[i] = m;
        }
    }

    /// <summary>Number of mbufs.</summary>
    public int Count { get; }

    /// <summary>The mbuf pointers, in frame order.</summary>
    public nint* Mbufs { get; }

    public void Dispose()
    {
        NativeMemory.AlignedFree(Mbufs);
        NativeMemory.AlignedFree((void*)_block);
    }
}

/// <summary>
/// A loopback port that replays a fixed set of bursts in turn (burst = 32 mbufs) and takes every
/// tx_burst; the cursor lives in native memory because the PMD loop holds its own copy of this struct.
/// </summary>
internal readonly unsafe struct BurstRingIo(nint* mbufs, int* cursor, int bursts) : IPacketIo
{
    public ushort RxBurst(ushort portId, ushort queueId, nint* rx, ushort n)
    {
        int b = *cursor;
        *cursor = b + 1 == bursts ? 0 : b + 1;
        Buffer.MemoryCopy(mbufs + (b * PmdState.Burst), rx, n * sizeof(nint), n * sizeof(nint));
        return n;
    }

    public ushort TxBurst(ushort portId, ushort queueId, nint* mbufs, ushort n) => n;

    public ushort RxBurstMayBlock(ushort portId, ushort queueId, nint* rx, ushort n) => RxBurst(portId, queueId, rx, n);

    public ushort TxBurstMayBlock(ushort portId, ushort queueId, nint* mbufs, ushort n) => TxBurst(portId, queueId, mbufs, n);

    public void Free(nint* mbufs, uint n)
    {
    }

    /// <summary>The benchmarks' rules never clone: a copy is refused (as a pool with no free mbuf would).</summary>
    public void Copy(nint* src, nint* dst, uint n)
    {
        for (uint i = 0; i < n; i++)
        {
            dst[i] = 0;
        }
    }

    public ulong Now() => 0;

    public void Sleep(uint us)
    {
    }
}

/// <summary>One PMD in pipeline mode over a <see cref="BurstRingIo"/>: rx on ofport 1, four ports.</summary>
internal sealed unsafe class PipelineRig : IDisposable
{
    public const int Ports = 4;

    /// <summary>Replay position of the loopback port.</summary>
    private readonly int* _cursor;

    public PipelineRig(IReadOnlyList<byte[]> frames, IReadOnlyList<FlowRule> rules, int emcInsertInvProb)
    {
        if (frames.Count == 0 || frames.Count % PmdState.Burst != 0)
        {
            throw new ArgumentException("whole bursts of frames only", nameof(frames));
        }

        Mbufs = new FakeMbufBlock(frames);
        Bursts = frames.Count / PmdState.Burst;
        _cursor = (int*)NativeMemory.AllocZeroed(1, sizeof(int));
        Shared = new PipelineShared(BenchRules.PortSpecs()) { EmcInsertInvProb = emcInsertInvProb, MegaflowLimit = 1 << 14 };
        Shared.Publish(BenchRules.Tables(Shared.Current, Shared.NextVersion(), rules));
        Flow = new FlowPmd(Shared);
        State = new PmdState(0);
        State.SetRxQueues([new RxQueueRef { DpPort = 0, PortId = 0, QueueId = 0, OfPort = 1 }]);
        for (int p = 0; p < Ports; p++)
        {
            State.SetTxPort(p, (ushort)p, 0, true);
        }

        var io = new BurstRingIo(Mbufs.Mbufs, _cursor, Bursts);
        Loop = new PmdLoop<BurstRingIo, PipelineForwarder<BurstRingIo>>(State, io, new PipelineForwarder<BurstRingIo>(Flow, io));
    }

    public FakeMbufBlock Mbufs { get; }

    /// <summary>Distinct bursts the port replays.</summary>
    public int Bursts { get; }

    public PipelineShared Shared { get; }

    public FlowPmd Flow { get; }

    public PmdState State { get; }

    public PmdLoop<BurstRingIo, PipelineForwarder<BurstRingIo>> Loop { get; }

    /// <summary>Runs <paramref name="rounds"/> polling rounds; returns the packets received.</summary>
    public int Poll(int rounds)
    {
        var loop = Loop;
        int n = 0;
        for (int r = 0; r < rounds; r++)
        {
            n += loop.Poll();
        }

        return n;
    }

    public PmdCounters Counters => *State.Counters;

    /// <summary>
    /// Polls every burst <paramref name="passes"/> times, then once more and checks that pass: every
    /// packet forwarded, none by upcall, and each one an EMC hit (<paramref name="emc"/>) or a megaflow hit.
    /// </summary>
    public void WarmAndCheck(int passes, bool emc)
    {
        for (int i = 0; i < passes * Bursts; i++)
        {
            Loop.Poll();
        }

        PmdCounters a = Counters;
        for (int i = 0; i < Bursts; i++)
        {
            Loop.Poll();
        }

        PmdCounters b = Counters;
        ulong n = (ulong)(Bursts * PmdState.Burst);
        ulong emcHits = b.EmcHits - a.EmcHits;
        ulong mfHits = b.MegaflowHits - a.MegaflowHits;
        ulong upcalls = b.Upcalls - a.Upcalls;
        ulong tx = b.TxPackets - a.TxPackets;
        if (upcalls != 0 || tx != n || emcHits != (emc ? n : 0) || mfHits != (emc ? 0 : n))
        {
            throw new InvalidOperationException(
                $"warm-up: {n} packets gave {emcHits} EMC hits, {mfHits} megaflow hits, {upcalls} upcalls, {tx} sent");
        }
    }

    public void Dispose()
    {
        Flow.Dispose();
        State.Dispose();
        Mbufs.Dispose();
        NativeMemory.Free(_cursor);
    }
}

/// <summary>The rule sets and flows of the benchmarks.</summary>
internal static class BenchRules
{
    /// <summary>Flows per burst in the EMC and megaflow benchmarks (8 packets each, interleaved).</summary>
    public const int FlowsPerBurst = 4;

    public static IEnumerable<PipelinePort> PortSpecs() =>
        Enumerable.Range(1, PipelineRig.Ports).Select(p => new PipelinePort(p, $"p{p}"));

    /// <summary>A new version of <paramref name="current"/> holding <paramref name="rules"/> (numbered in order).</summary>
    public static FlowTables Tables(FlowTables current, long version, IReadOnlyList<FlowRule> rules)
    {
        for (int i = 0; i < rules.Count; i++)
        {
            rules[i].Seq = i;
        }

        return current.WithRules(version, rules);
    }

    /// <summary>
    /// 1000 rules in 2 tables. Table 0 (299): drop 50 blocked TCP ports; per in_port, 50 source /24s and
    /// 12 source /16s go to table 1; anything else is dropped. Table 1 (701): 200 host routes (/32),
    /// 500 /24 routes, a default route; outputs spread over ports 2-4.
    /// </summary>
    public static List<FlowRule> Realistic()
    {
        var rules = new List<FlowRule>();
        for (int i = 0; i < 50; i++)
        {
            rules.Add(Rule(0, 300, TcpMatch().With(Fields.TpDst, (ulong)(6000 + i))));
        }

        for (int p = 1; p <= PipelineRig.Ports; p++)
        {
            for (int i = 0; i < 50; i++)
            {
                var m = IpMatch().With(Fields.InPort, (ulong)p).With(Fields.NwSrc, BenchFrames.Ip(172, 16, (p * 50) + i, 0), Prefix(24));
                rules.Add(Rule(0, 200, m, Goto(1)));
            }

            for (int i = 0; i < 12; i++)
            {
                var m = IpMatch().With(Fields.InPort, (ulong)p).With(Fields.NwSrc, BenchFrames.Ip(172, 17 + i, 0, 0), Prefix(16));
                rules.Add(Rule(0, 100, m, Goto(1)));
            }
        }

        rules.Add(Rule(0, 0, default));
        for (int h = 0; h < 200; h++)
        {
            rules.Add(Rule(1, 320, IpMatch().With(Fields.NwDst, BenchFrames.Ip(10, 0, h, 1)), Output(2 + (h % 3))));
        }

        for (int x = 0; x < 250; x++)
        {
            rules.Add(Rule(1, 240, IpMatch().With(Fields.NwDst, BenchFrames.Ip(10, 1, x, 0), Prefix(24)), Output(2 + (x % 3))));
            rules.Add(Rule(1, 240, IpMatch().With(Fields.NwDst, BenchFrames.Ip(10, 2, x, 0), Prefix(24)), Output(2 + (x % 3))));
        }

        rules.Add(Rule(1, 0, IpMatch(), Output(4)));
        return rules;
    }

    /// <summary>One burst for the realistic tables, in on port 1: 4 distinct megaflows (host route, two /24 routes, default route).</summary>
    public static List<byte[]> RealisticBurst()
    {
        byte[][] flows =
        [
            BenchFrames.Ipv4(BenchFrames.Ip(172, 16, 50, 10), BenchFrames.Ip(10, 0, 7, 1), BenchFrames.Tcp, 40000, 80),
            BenchFrames.Ipv4(BenchFrames.Ip(172, 16, 51, 20), BenchFrames.Ip(10, 1, 9, 77), BenchFrames.Tcp, 40001, 443),
            BenchFrames.Ipv4(BenchFrames.Ip(172, 16, 52, 30), BenchFrames.Ip(10, 2, 100, 5), BenchFrames.Udp, 40002, 53),
            BenchFrames.Ipv4(BenchFrames.Ip(172, 17, 3, 4), BenchFrames.Ip(198, 51, 100, 7), BenchFrames.Tcp, 40003, 22),
        ];
        return [.. Enumerable.Range(0, PmdState.Burst).Select(i => flows[i % FlowsPerBurst])];
    }

    /// <summary>
    /// 256 upcall frames for the realistic tables (<paramref name="salt"/> varies hosts): all in_ports,
    /// sources in the /24s, the /16s and nowhere, blocked ports, host / /24 / default routes.
    /// </summary>
    public static List<(byte[] Frame, ushort InPort)> UpcallFrames(int count, int salt)
    {
        var list = new List<(byte[], ushort)>(count);
        for (int i = 0; i < count; i++)
        {
            int p = 1 + (i % PipelineRig.Ports);
            int host = 1 + ((i + salt) % 200);
            uint src = (i % 8) switch
            {
                < 6 => BenchFrames.Ip(172, 16, (p * 50) + ((i * 7) % 50), host),
                6 => BenchFrames.Ip(172, 17 + (i % 12), (i + salt) % 256, host),
                _ => BenchFrames.Ip(203, 0, 113, host),
            };
            int x = (i + salt) % 200;
            uint dst = (i / 8 % 4) switch
            {
                0 => BenchFrames.Ip(10, 0, x, 1),
                1 => BenchFrames.Ip(10, 1, x, host),
                2 => BenchFrames.Ip(10, 2, x, host),
                _ => BenchFrames.Ip(192, 0, 2, host),
            };
            byte proto = i % 3 == 2 ? BenchFrames.Udp : BenchFrames.Tcp;
            ushort dport = i % 16 == 5 ? (ushort)(6000 + (i % 50)) : proto == BenchFrames.Udp ? (ushort)53 : (ushort)(i % 2 == 0 ? 80 : 443);
            list.Add((BenchFrames.Ipv4(src, dst, proto, (ushort)(30000 + i + salt), dport), (ushort)p));
        }

        return list;
    }

    /// <summary>The mask (subtable) index a flow of the megaflow benchmark uses.</summary>
    private static int MaskOf(int flow, int subtables) => flow % subtables;

    /// <summary>Flows of the megaflow benchmark: lcm(subtables, FlowsPerBurst), so every subtable gets as many.</summary>
    public static int MegaflowFlows(int subtables)
    {
        int a = subtables, b = FlowsPerBurst;
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }

        return subtables / a * FlowsPerBurst;
    }

    private static uint FlowDst(int flow) => BenchFrames.Ip(10, 9, flow, 1);

    /// <summary>
    /// Table 0: tcp,tp_dst=1000+j -> goto_table j+1 (one subtable). Table j+1: one rule per flow of
    /// mask j: nw_dst=flow's /(24 + j%9), nw_src=192.168.0.0/(8 + j/9) -> output. Mask j differs for
    /// each j, and every flow has its own megaflow.
    /// </summary>
    public static List<FlowRule> SubtableRules(int subtables)
    {
        if (subtables >= FlowTables.MaxTables - 1 || subtables > 9 * 24 || MegaflowFlows(subtables) > 256)
        {
            throw new ArgumentOutOfRangeException(nameof(subtables));
        }

        var rules = new List<FlowRule>();
        for (int j = 0; j < subtables; j++)
        {
            rules.Add(Rule(0, 100, TcpMatch().With(Fields.TpDst, (ulong)(1000 + j)), Goto(j + 1)));
        }

        for (int k = 0; k < MegaflowFlows(subtables); k++)
        {
            int j = MaskOf(k, subtables);
            var m = IpMatch().With(Fields.NwDst, FlowDst(k), Prefix(24 + (j % 9)))
                .With(Fields.NwSrc, BenchFrames.Ip(192, 168, 0, 0), Prefix(8 + (j / 9)));
            rules.Add(Rule(j + 1, 100, m, Output(2 + (k % 3))));
        }

        return rules;
    }

    /// <summary>The megaflow benchmark's bursts: burst b holds flows 4b..4b+3, 8 packets each, interleaved.</summary>
    public static List<byte[]> SubtableFrames(int subtables)
    {
        int flows = MegaflowFlows(subtables);
        var frames = new List<byte[]>();
        for (int b = 0; b < flows / FlowsPerBurst; b++)
        {
            var burst = new byte[FlowsPerBurst][];
            for (int f = 0; f < FlowsPerBurst; f++)
            {
                int k = (b * FlowsPerBurst) + f;
                burst[f] = BenchFrames.Ipv4(BenchFrames.Ip(192, 168, 1, 1 + (k % 250)), FlowDst(k), BenchFrames.Tcp,
                    (ushort)(20000 + k), (ushort)(1000 + MaskOf(k, subtables)));
            }

            for (int i = 0; i < PmdState.Burst; i++)
            {
                frames.Add(burst[i % FlowsPerBurst]);
            }
        }

        return frames;
    }

    private static FlowMatch IpMatch() => default(FlowMatch).With(Fields.DlType, KeyExtractor.EthIp);

    private static FlowMatch TcpMatch() => IpMatch().With(Fields.NwProto, KeyExtractor.ProtoTcp);

    private static FlowMatch With(this FlowMatch m, FieldDef f, ulong value, ulong mask = ulong.MaxValue)
    {
        m.Set(f, value, mask);
        return m;
    }

    private static ulong Prefix(int len) => len == 0 ? 0 : (uint.MaxValue << (32 - len));

    private static FlowAction Output(int port) => new(ActionKind.Output, Port: port);

    private static FlowAction Goto(int table) => new(ActionKind.GotoTable, Table: table);

    private static FlowRule Rule(int table, int priority, FlowMatch match, params FlowAction[] actions) =>
        new() { Table = table, Priority = priority, Match = match, Actions = actions };
}

[MemoryDiagnoser]
public unsafe class PipelineKeyBenchmarks
{
    private const int Rounds = 1000;
    private const int PacketsPerInvoke = Rounds * PmdState.Burst;

    /// <summary>The 32 frames, in fake mbufs.</summary>
    private FakeMbufBlock _mbufs = null!;

    /// <summary>Per-burst key and offset scratch, as FlowPmd has.</summary>
    private DpKey* _keys;
    private HeaderOffsets* _offsets;

    [GlobalSetup]
    public void Setup()
    {
        var frames = new List<byte[]>();
        for (int i = 0; i < PmdState.Burst; i++)
        {
            uint src = BenchFrames.Ip(192, 0, 2, 1 + i);
            uint dst = BenchFrames.Ip(198, 51, 100, 1 + (i * 7 % 200));
            frames.Add(i switch
            {
                7 => BenchFrames.Ipv6Tcp(((UInt128)0x20010DB8_00000000UL << 64) | (uint)(1 + i), ((UInt128)0x20010DB8_00000001UL << 64) | 2u, (ushort)(40000 + i), 443),
                21 => BenchFrames.Ipv4(src, dst, BenchFrames.Udp, (ushort)(40000 + i), 53, vlan: 100),
                _ when i % 3 == 2 => BenchFrames.Ipv4(src, dst, BenchFrames.Udp, (ushort)(40000 + i), 53),
                _ => BenchFrames.Ipv4(src, dst, BenchFrames.Tcp, (ushort)(40000 + i), (ushort)(i % 2 == 0 ? 80 : 443)),
            });
        }

        _mbufs = new FakeMbufBlock(frames);
        _keys = (DpKey*)NativeMemory.AlignedAlloc(PmdState.Burst * (nuint)sizeof(DpKey), 64);
        _offsets = (HeaderOffsets*)NativeMemory.AlignedAlloc(PmdState.Burst * (nuint)sizeof(HeaderOffsets), 64);
        for (int i = 0; i < PmdState.Burst; i++)
        {
            nint m = _mbufs.Mbufs[i];
            ushort parse = KeyExtractor.Extract(Mbuf.Data(m), Mbuf.DataLen(m), 1, _keys + i, _offsets + i);
            if ((parse & ParseFlags.L4) == 0 || (parse & ParseFlags.Errors) != 0)
            {
                throw new InvalidOperationException($"frame {i}: parse flags 0x{parse:X4}");
            }
        }
    }

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public uint ExtractAndHash()
    {
        nint* mbufs = _mbufs.Mbufs;
        DpKey* keys = _keys;
        HeaderOffsets* offsets = _offsets;
        uint h = 0;
        for (int r = 0; r < Rounds; r++)
        {
            for (int i = 0; i < PmdState.Burst; i++)
            {
                nint m = mbufs[i];
                KeyExtractor.Extract(Mbuf.Data(m), Mbuf.DataLen(m), 1, keys + i, offsets + i);
                h += KeyExtractor.Hash(keys + i);
            }
        }

        return h;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _mbufs.Dispose();
        NativeMemory.AlignedFree(_keys);
        NativeMemory.AlignedFree(_offsets);
    }
}

[MemoryDiagnoser]
public class PipelineEmcBenchmarks
{
    private const int Rounds = 1000;
    private const int PacketsPerInvoke = Rounds * PmdState.Burst;

    /// <summary>The PMD: 1000-rule tables, one burst of 4 flows, EMC insertion on every megaflow hit.</summary>
    private PipelineRig _rig = null!;

    [GlobalSetup]
    public void Setup()
    {
        _rig = new PipelineRig(BenchRules.RealisticBurst(), BenchRules.Realistic(), emcInsertInvProb: 1);
        _rig.WarmAndCheck(passes: 4, emc: true);
    }

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public int EmcHit()
    {
        return _rig.Poll(Rounds);
    }

    [GlobalCleanup]
    public void Cleanup() => _rig.Dispose();
}

[MemoryDiagnoser]
public class PipelineMegaflowBenchmarks
{
    private const int Rounds = 1000;
    private const int PacketsPerInvoke = Rounds * PmdState.Burst;

    /// <summary>The PMD: EMC off, one megaflow per flow, <see cref="Subtables"/> masks.</summary>
    private PipelineRig _rig = null!;

    /// <summary>Distinct megaflow masks (subtables) the traffic is spread over.</summary>
    [Params(1, 10, 100)]
    public int Subtables { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _rig = new PipelineRig(BenchRules.SubtableFrames(Subtables), BenchRules.SubtableRules(Subtables), emcInsertInvProb: 0);
        _rig.WarmAndCheck(passes: 4, emc: false);
        if (_rig.Flow.Megaflows.SubtableCount != Subtables || _rig.Flow.Megaflows.Count != BenchRules.MegaflowFlows(Subtables))
        {
            throw new InvalidOperationException(
                $"{_rig.Flow.Megaflows.SubtableCount} subtables and {_rig.Flow.Megaflows.Count} megaflows, wanted {Subtables} and {BenchRules.MegaflowFlows(Subtables)}");
        }
    }

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public int MegaflowHit()
    {
        return _rig.Poll(Rounds);
    }

    [GlobalCleanup]
    public void Cleanup() => _rig.Dispose();
}

[MemoryDiagnoser]
public unsafe class PipelineUpcallBenchmarks
{
    private const int Keys = 256;

    /// <summary>The 1000-rule tables.</summary>
    private FlowTables _tables = null!;

    /// <summary>Unused (no NORMAL action) but required by the translator.</summary>
    private MacTable _macs = null!;

    /// <summary>Reused by every translation, as the PMD's.</summary>
    private Translation _t = null!;

    /// <summary>Holds ~256 resident megaflows; each measured upcall installs and removes one more.</summary>
    private MegaflowCache _cache = null!;

    /// <summary>The keys translated, in turn.</summary>
    private DpKey* _keys;

    [GlobalSetup]
    public void Setup()
    {
        _tables = BenchRules.Tables(FlowTables.Empty(1, BenchRules.PortSpecs()), 2, BenchRules.Realistic());
        _macs = new MacTable();
        _t = new Translation();
        _cache = new MegaflowCache(1 << 14);
        _keys = (DpKey*)NativeMemory.AlignedAlloc(Keys * (nuint)sizeof(DpKey), 64);
        Extract(BenchRules.UpcallFrames(Keys, salt: 0), _keys);
        var resident = (DpKey*)NativeMemory.AlignedAlloc(Keys * (nuint)sizeof(DpKey), 64);
        Extract(BenchRules.UpcallFrames(Keys, salt: 97), resident);
        for (int i = 0; i < Keys; i++)
        {
            Translator.Translate(_tables, in resident[i], _macs, _t);
            _cache.Install(resident + i, _t, _tables.Version, -1, 0);
        }

        NativeMemory.AlignedFree(resident);
        int outputs = 0;
        for (int i = 0; i < Keys; i++)
        {
            Translator.Translate(_tables, in _keys[i], _macs, _t);
            outputs += _t.OpCount != 0 ? 1 : 0;
        }

        // Shown in the benchmark's log: what the measured keys look like.
        Console.WriteLine($"// {_cache.Count} resident megaflows in {_cache.SubtableCount} subtables; {outputs} of {Keys} keys output, the rest drop");
    }

    private static void Extract(List<(byte[] Frame, ushort InPort)> frames, DpKey* keys)
    {
        HeaderOffsets off;
        for (int i = 0; i < frames.Count; i++)
        {
            fixed (byte* d = frames[i].Frame)
            {
                KeyExtractor.Extract(d, frames[i].Frame.Length, frames[i].InPort, keys + i, &off);
            }
        }
    }

    [Benchmark(OperationsPerInvoke = Keys)]
    public int Translate()
    {
        int ops = 0;
        for (int i = 0; i < Keys; i++)
        {
            Translator.Translate(_tables, in _keys[i], _macs, _t);
            ops += _t.OpCount;
        }

        return ops;
    }

    [Benchmark(OperationsPerInvoke = Keys)]
    public int Upcall()
    {
        MegaflowCache cache = _cache;
        long version = _tables.Version;
        int sum = 0;
        for (int i = 0; i < Keys; i++)
        {
            Translator.Translate(_tables, in _keys[i], _macs, _t);
            int e = cache.Install(_keys + i, _t, version, -1, 0);
            sum += e;
            cache.Remove(e);
        }

        return sum;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cache.Dispose();
        NativeMemory.AlignedFree(_keys);
    }
}
