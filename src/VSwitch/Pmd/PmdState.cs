// PmdState.cs - everything one PMD thread owns: its rx queues, tx buffers and counters.
//
// All arrays are native memory allocated once at start-up (or when the port set changes, off the
// PMD path), sized for MaxPorts datapath ports. Handlers call Enqueue/Drop; the loop does the I/O.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VSwitch.Interop;

namespace VSwitch.Pmd;

/// <summary>One rx queue polled by a PMD.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct RxQueueRef
{
    /// <summary>Datapath port number (index into the switch's port table).</summary>
    public int DpPort;

    /// <summary>DPDK port id.</summary>
    public ushort PortId;

    /// <summary>Queue id on that port.</summary>
    public ushort QueueId;

    /// <summary>The port's OpenFlow number (the packets' in_port in pipeline mode; numbers are sparse, slots dense).</summary>
    public ushort OfPort;

    /// <summary>Non-zero when the driver may block inside rx_burst (see <see cref="Ports.DpdkPort.MayBlock"/>).</summary>
    public ushort MayBlock;
}

public sealed unsafe class PmdState : IDisposable
{
    public const int Burst = 32;
    /// <summary>
    /// Drops a round may hold before they are freed: an rx burst's packets each dropped at most once,
    /// a round's IPsec completions (two bursts), and what a restarted pass left (a burst and its
    /// recirculation queue).
    /// </summary>
    public const int DropCapacity = 4 * Burst;

    public const int TxCapacity = 2 * Burst;
    public const int MaxPorts = 256;

    /// <summary>Rx queues this PMD polls.</summary>
    public RxQueueRef* RxQueues;

    /// <summary>Number of entries in <see cref="RxQueues"/>.</summary>
    public int RxQueueCount;

    /// <summary>Tx buffers indexed by datapath port number.</summary>
    public readonly TxBuffer* Tx;

    /// <summary>Datapath ports whose tx buffer is non-empty, in first-use order.</summary>
    public readonly int* Pending;

    /// <summary>Entries in <see cref="Pending"/>.</summary>
    public int PendingCount;

    /// <summary>Mbufs to free at the end of the current burst.</summary>
    public readonly nint* Drops;

    /// <summary>Entries in <see cref="Drops"/>.</summary>
    public int DropCount;

    /// <summary>Why each of <see cref="Drops"/> was dropped (a <see cref="DropReason"/> each).</summary>
    public readonly byte* DropReasons;

    /// <summary>
    /// Non-zero while a drop capture runs: dropped packets are copied into <see cref="DropTap"/>
    /// before they are freed. Read once per burst that dropped something; written by the control plane.
    /// </summary>
    public int DropTapOn;

    /// <summary>Copies of dropped packets for a drop capture (port = DPDK port id, code = reason).</summary>
    public Actions.PuntRing DropTap { get; } = new(2048);

    /// <summary>Drops a running capture could not copy (its ring was full).</summary>
    public ulong DropTapMissed;

    /// <summary>Per-port counters indexed by datapath port number.</summary>
    public readonly PmdPortCounters* PortCounters;

    /// <summary>This PMD's totals (cache-line padded).</summary>
    public readonly PmdCounters* Counters;

    /// <summary>Set by the control plane to end the loop at the next round.</summary>
    public volatile bool StopRequested;

    /// <summary>
    /// A plan waiting to be applied at the next round boundary (null: none). The PMD takes it with one
    /// exchange (<see cref="TakePlan"/>), so a newer plan published after a timeout replaces an
    /// unapplied one instead of racing with it.
    /// </summary>
    public volatile PmdPlan? PendingPlan;

    /// <summary>The quiescence mechanism this PMD reports to (shared by all PMDs of a switch).</summary>
    public Epoch Epoch { get; }

    /// <summary>This PMD's slot in <see cref="Epoch"/>.</summary>
    public int EpochIndex { get; }

    /// <summary>The global epoch and this PMD's slot, for the loop's round prologue.</summary>
    internal readonly long* EpochGlobal;
    internal readonly long* EpochSlot;

    private readonly bool _ownsEpoch;

    /// <summary>The epoch this PMD last passed a round boundary in (<see cref="Epoch.Offline"/> when not polling).</summary>
    public long QuiescentEpoch => Volatile.Read(ref *EpochSlot);

    /// <summary>PMD side: swaps in <paramref name="plan"/> (the caller has flushed every tx buffer).</summary>
    internal void Apply(PmdPlan plan)
    {
        plan.Retired = RxQueues;
        RxQueues = plan.RxQueues;
        RxQueueCount = plan.RxQueueCount;
        for (int i = 0; i < plan.TxCount; i++)
        {
            ref TxBuffer tb = ref Tx[plan.TxPorts[i]];
            tb.PortId = plan.TxTargets[i].PortId;
            tb.QueueId = plan.TxTargets[i].QueueId;
            tb.Enabled = plan.TxTargets[i].Enabled;
            tb.MayBlock = plan.TxTargets[i].MayBlock;
        }

        plan.Applied = true; // published by the epoch slot store at the end of the round prologue
    }

    /// <summary>PMD side: takes the pending plan, if any (one atomic exchange, only when a plan is pending).</summary>
    internal PmdPlan? TakePlan() => Interlocked.Exchange(ref PendingPlan, null);

    /// <summary>
    /// Control side: publishes <paramref name="plan"/> and waits (one epoch) until the PMD applied it,
    /// or, when <paramref name="pmdRunning"/> is false, applies it here. Returns false on timeout: the
    /// plan stays pending and what it replaces is released once the PMD has passed that epoch.
    /// </summary>
    public bool Publish(PmdPlan plan, bool pmdRunning, TimeSpan timeout)
    {
        if (!pmdRunning)
        {
            Apply(plan);
            plan.Release();
            return true;
        }

        Post(plan);
        long e = Epoch.Advance();
        if (Epoch.Synchronize(e, timeout))
        {
            ReleaseAfterEpoch(plan);
            return true;
        }

        Epoch.Defer(e, () => ReleaseAfterEpoch(plan));
        return false;
    }

    /// <summary>Control side: makes <paramref name="plan"/> the pending plan, replacing (and freeing) one the PMD has not taken.</summary>
    public void Post(PmdPlan plan)
    {
        if (Interlocked.Exchange(ref PendingPlan, plan) is PmdPlan superseded)
        {
            // never taken by the PMD (it takes plans only by exchange): nothing of it is in use
            superseded.ReleaseUnapplied();
        }
    }

    /// <summary>
    /// Control side, once every PMD passed the epoch taken after <see cref="Post"/>: frees what an
    /// applied plan replaced. A superseded plan was freed by <see cref="Post"/>; a plan still pending
    /// (its PMD stopped before taking it) stays with the PMD state.
    /// </summary>
    public static void ReleaseAfterEpoch(PmdPlan plan)
    {
        if (plan.Applied && !plan.Released)
        {
            plan.Release();
        }
    }

    /// <summary>Drain interval in cycles (0: flush at the end of every round).</summary>
    public ulong DrainCycles;

    /// <summary>Longest idle sleep in microseconds (0: never sleep, poll flat out).</summary>
    public uint SleepMaxMicros;

    /// <summary>Current idle sleep; grows by <see cref="SleepStepMicros"/> per empty round, 0 after traffic.</summary>
    public uint SleepMicros;

    public const uint SleepStepMicros = 10;

    /// <param name="index">PMD number (its tx queue on every port).</param>
    /// <param name="epoch">The switch's epoch (null: a private one, for a PMD driven alone, as in tests).</param>
    public PmdState(int index, Epoch? epoch = null)
    {
        Index = index;
        _ownsEpoch = epoch == null;
        Epoch = epoch ?? new Epoch(1);
        EpochIndex = Epoch.Register();
        EpochGlobal = Epoch.Global;
        EpochSlot = Epoch.Slot(EpochIndex);
        RxQueues = (RxQueueRef*)NativeMemory.AllocZeroed(MaxPorts * 16, (nuint)sizeof(RxQueueRef));
        Tx = (TxBuffer*)NativeMemory.AllocZeroed(MaxPorts, (nuint)sizeof(TxBuffer));
        for (int p = 0; p < MaxPorts; p++)
        {
            Tx[p].Slots = (nint*)NativeMemory.AlignedAlloc(TxCapacity * (nuint)sizeof(nint), 64);
        }

        Pending = (int*)NativeMemory.AllocZeroed(MaxPorts, sizeof(int));
        Drops = (nint*)NativeMemory.AlignedAlloc(DropCapacity * (nuint)sizeof(nint), 64);
        DropReasons = (byte*)NativeMemory.AllocZeroed(DropCapacity);
        PortCounters = (PmdPortCounters*)NativeMemory.AlignedAlloc(MaxPorts * (nuint)sizeof(PmdPortCounters), 64);
        NativeMemory.Clear(PortCounters, MaxPorts * (nuint)sizeof(PmdPortCounters));
        Counters = (PmdCounters*)NativeMemory.AlignedAlloc((nuint)sizeof(PmdCounters), 64);
        NativeMemory.Clear(Counters, (nuint)sizeof(PmdCounters));
    }

    /// <summary>PMD number (also its tx queue id on every port).</summary>
    public int Index { get; }

    /// <summary>Appends one mbuf to the tx buffer of datapath port <paramref name="dpPort"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Enqueue(int dpPort, nint mbuf)
    {
        ref TxBuffer tb = ref Tx[dpPort];
        if (tb.Count == 0)
        {
            Pending[PendingCount++] = dpPort;
        }

        tb.Slots[tb.Count++] = mbuf;
    }

    /// <summary>Appends <paramref name="n"/> (at most one burst) mbufs to one port's tx buffer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void EnqueueBurst(int dpPort, nint* mbufs, int n)
    {
        ref TxBuffer tb = ref Tx[dpPort];
        if (tb.Count == 0)
        {
            Pending[PendingCount++] = dpPort;
        }

        Buffer.MemoryCopy(mbufs, tb.Slots + tb.Count, (TxCapacity - tb.Count) * sizeof(nint), n * sizeof(nint));
        tb.Count += n;
    }

    /// <summary>Marks one mbuf as dropped by the forwarding decision; freed at the end of the burst.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Drop(nint mbuf, DropReason why)
    {
        DropReasons[DropCount] = (byte)why;
        Drops[DropCount++] = mbuf;
    }

    /// <summary>Copies the burst's drops (or <paramref name="n"/> unsent mbufs) into the drop tap; PMD thread, only while a capture runs.</summary>
    public void TapDrops(nint* mbufs, byte* reasons, int n, DropReason all = DropReason.None)
    {
        long stamp = Actions.PuntRing.Stamp();
        for (int i = 0; i < n; i++)
        {
            nint m = mbufs[i];
            if (!DropTap.TryPut(m, Mbuf.Port(m), all != DropReason.None ? (ushort)all : reasons[i], stamp))
            {
                DropTapMissed++;
            }
        }
    }

    /// <summary>Sets the rx queues this PMD polls (control plane, while the PMD is stopped or before start).</summary>
    public void SetRxQueues(IReadOnlyList<RxQueueRef> queues)
    {
        if (queues.Count > MaxPorts * 16)
        {
            throw new VSwitchException($"PMD {Index}: too many rx queues ({queues.Count})");
        }

        for (int i = 0; i < queues.Count; i++)
        {
            RxQueues[i] = queues[i];
        }

        RxQueueCount = queues.Count;
    }

    /// <summary>Points the tx buffer of datapath port <paramref name="dpPort"/> at a DPDK port and queue.</summary>
    public void SetTxPort(int dpPort, ushort portId, ushort queueId, bool enabled, bool mayBlock = false)
    {
        ref TxBuffer tb = ref Tx[dpPort];
        tb.PortId = portId;
        tb.QueueId = queueId;
        tb.Enabled = enabled;
        tb.MayBlock = mayBlock;
    }

    public void Dispose()
    {
        for (int p = 0; p < MaxPorts; p++)
        {
            NativeMemory.AlignedFree(Tx[p].Slots);
        }

        NativeMemory.Free(RxQueues);
        NativeMemory.Free(Tx);
        NativeMemory.Free(Pending);
        NativeMemory.AlignedFree(Drops);
        NativeMemory.Free(DropReasons);
        DropTap.Dispose();
        NativeMemory.AlignedFree(PortCounters);
        NativeMemory.AlignedFree(Counters);
        if (PendingPlan is PmdPlan left)
        {
            left.ReleaseUnapplied();
        }

        if (_ownsEpoch)
        {
            Epoch.Dispose();
        }

        GC.SuppressFinalize(this);
    }
}
