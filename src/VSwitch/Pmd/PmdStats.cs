// PmdStats.cs - counters of one PMD thread: single writer (the PMD), many readers.
//
// Each counter is bumped once per burst, not per packet. The PMD's counters sit in their own
// cache lines (explicit 64-byte padding) so readers on other cores and neighbouring PMDs never
// false-share with the writer. 64-bit loads and stores are atomic on x86_64, so readers need no lock.
using System.Runtime.InteropServices;

namespace VSwitch.Pmd;

[StructLayout(LayoutKind.Explicit, Size = 320 + (GapBuckets * 8))]
public unsafe struct PmdCounters
{
    /// <summary>Gap histogram: 4 log-linear buckets per power of two of TSC cycles, up to 2^48.</summary>
    public const int GapBuckets = 48 * 4;

    /// <summary>Packets received from all rx queues.</summary>
    [FieldOffset(64)] public ulong RxPackets;

    /// <summary>Packets the output ports accepted.</summary>
    [FieldOffset(72)] public ulong TxPackets;

    /// <summary>Packets dropped because an output port's queue was full.</summary>
    [FieldOffset(80)] public ulong TxDrops;

    /// <summary>Packets dropped by the forwarding decision (no output, malformed, ...).</summary>
    [FieldOffset(88)] public ulong FwdDrops;

    /// <summary>Non-empty rx bursts.</summary>
    [FieldOffset(96)] public ulong RxBursts;

    /// <summary>tx_burst calls.</summary>
    [FieldOffset(104)] public ulong TxBursts;

    /// <summary>TSC cycles spent in rounds that received packets.</summary>
    [FieldOffset(112)] public ulong BusyCycles;

    /// <summary>TSC cycles spent in rounds that received nothing.</summary>
    [FieldOffset(120)] public ulong IdleCycles;

    /// <summary>Polling rounds over all assigned rx queues.</summary>
    [FieldOffset(128)] public ulong Rounds;

    /// <summary>Microseconds slept while idle (PMD sleep).</summary>
    [FieldOffset(136)] public ulong SleptMicros;

    /// <summary>Pipeline: packets whose verdict came from the microflow cache.</summary>
    [FieldOffset(144)] public ulong EmcHits;

    /// <summary>Pipeline: packets whose verdict came from the megaflow cache.</summary>
    [FieldOffset(152)] public ulong MegaflowHits;

    /// <summary>Pipeline: packets that went through the tables (cache miss).</summary>
    [FieldOffset(160)] public ulong Upcalls;

    /// <summary>Pipeline: malformed or truncated packets, dropped.</summary>
    [FieldOffset(168)] public ulong Malformed;

    /// <summary>Pipeline: stale megaflows re-checked against new tables (kept or replaced).</summary>
    [FieldOffset(176)] public ulong Revalidations;

    /// <summary>Pipeline: upcalls whose megaflow could not be installed (cache full).</summary>
    [FieldOffset(184)] public ulong MegaflowFull;

    /// <summary>Pipeline: packets copied to the punt ring (controller action).</summary>
    [FieldOffset(192)] public ulong Punted;

    /// <summary>Pipeline: punts dropped because the ring was full.</summary>
    [FieldOffset(200)] public ulong PuntDrops;

    /// <summary>Pipeline: packets dropped by actions (TTL expiry, no headroom for a tag, a full recirculation queue).</summary>
    [FieldOffset(208)] public ulong ActionDrops;

    /// <summary>Pipeline: TSC cycles spent in upcalls.</summary>
    [FieldOffset(216)] public ulong UpcallCycles;

    /// <summary>Pipeline: packets dropped because their translation failed (a bug or an unforeseen rule; logged).</summary>
    [FieldOffset(224)] public ulong TranslationErrors;

    /// <summary>
    /// Longest gap (TSC cycles) between the starts of two consecutive rounds, sleeps excluded: how
    /// long the PMD left its rx queues unpolled (a GC pause, a preemption, a long upcall). Reset by
    /// pmd-stats-clear writing 0 (a benign race with the PMD: either value is a real gap).
    /// </summary>
    [FieldOffset(232)] public ulong GapMaxCycles;

    /// <summary>Pipeline: learn events dropped because the PMD's learn ring was full (the host is learned on a later packet).</summary>
    [FieldOffset(240)] public ulong LearnDrops;

    /// <summary>Pipeline: packets sent back through the caches by a recirc action (each pass counts).</summary>
    [FieldOffset(248)] public ulong Recirculations;

    /// <summary>Pipeline: packets dropped because they recirculated more than FlowPmd.MaxRecircDepth times.</summary>
    [FieldOffset(256)] public ulong RecircDrops;

    /// <summary>Pipeline: copies made for non-final outputs (each then sent or counted in tx_drops).
    /// Every received mbuf and every copy is accounted for: rx + clones = tx + tx_drops + fwd_drops.</summary>
    [FieldOffset(264)] public ulong Clones;

    /// <summary>Pipeline: packets whose verdict sent them nowhere (drop rules, table misses, outputs that all skipped).</summary>
    [FieldOffset(272)] public ulong NoOutputDrops;

    /// <summary>Pipeline: copies that could not be made (mempool empty); the output did not get that packet.</summary>
    [FieldOffset(280)] public ulong CopyFailures;

    /// <summary>Conntrack: packets a ct action looked up (IP, not a fragment or an ICMP error).</summary>
    [FieldOffset(288)] public ulong CtLookups;

    /// <summary>Conntrack: connections this PMD committed.</summary>
    [FieldOffset(296)] public ulong CtCommits;

    /// <summary>Conntrack: packets a ct action marked +inv (bad TCP, no connection to continue, fragments, truncated).</summary>
    [FieldOffset(304)] public ulong CtInvalid;

    /// <summary>Conntrack: commits refused (table or zone limit reached, no free NAT tuple); the packet is +inv.</summary>
    [FieldOffset(312)] public ulong CtFull;

    /// <summary>Rounds per gap length: bucket <see cref="GapBucket"/>(cycles); readers derive percentiles.</summary>
    [FieldOffset(320)] public fixed ulong GapHistogram[GapBuckets];

    /// <summary>The histogram bucket of a gap: 4 per octave (the value's top 3 bits), so a bucket spans at most 25 %.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static int GapBucket(ulong cycles)
    {
        int e = 63 - System.Numerics.BitOperations.LeadingZeroCount(cycles | 4);
        int b = (e << 2) | (int)((cycles >> (e - 2)) & 3);
        return b < GapBuckets ? b : GapBuckets - 1;
    }

    /// <summary>The largest gap (cycles) bucket <paramref name="b"/> can hold.</summary>
    public static ulong GapBucketUpper(int b) => ((4UL | (ulong)(b & 3)) + 1) << ((b >> 2) - 2);

    /// <summary>The gap (cycles, a bucket's upper bound) that <paramref name="quantile"/> of the rounds did not exceed, over <paramref name="h"/> minus <paramref name="baseline"/>.</summary>
    public static ulong GapQuantile(in PmdCounters h, in PmdCounters baseline, double quantile)
    {
        ulong total = 0;
        for (int b = 0; b < GapBuckets; b++)
        {
            total += h.GapHistogram[b] - baseline.GapHistogram[b];
        }

        if (total == 0)
        {
            return 0;
        }

        ulong want = (ulong)Math.Ceiling(total * quantile), seen = 0;
        for (int b = 0; b < GapBuckets; b++)
        {
            seen += h.GapHistogram[b] - baseline.GapHistogram[b];
            if (seen >= want)
            {
                return GapBucketUpper(b);
            }
        }

        return GapBucketUpper(GapBuckets - 1);
    }
}

/// <summary>Per-port counters kept by one PMD (index = datapath port number).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PmdPortCounters
{
    /// <summary>Packets received on this port by this PMD.</summary>
    public ulong RxPackets;

    /// <summary>Packets this PMD sent out of this port.</summary>
    public ulong TxPackets;

    /// <summary>Packets this PMD dropped because the port did not take them.</summary>
    public ulong TxDrops;

    /// <summary>Padding to 32 bytes (two ports a cache line).</summary>
    public ulong Reserved;
}
