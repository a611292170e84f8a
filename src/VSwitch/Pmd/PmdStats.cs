// PmdStats.cs - counters of one PMD thread: single writer (the PMD), many readers.
//
// Each counter is bumped once per burst, not per packet. The PMD's counters sit in their own
// cache lines (explicit 64-byte padding) so readers on other cores and neighbouring PMDs never
// false-share with the writer. 64-bit loads and stores are atomic on x86_64, so readers need no lock.
using System.Runtime.InteropServices;

namespace VSwitch.Pmd;

[StructLayout(LayoutKind.Explicit, Size = 192)]
public struct PmdCounters
{
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
