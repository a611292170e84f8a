// PmdLoop.cs - the poll-mode forwarding loop of one PMD thread.
//
// A round starts at a round boundary: the PMD reads the global epoch, applies a pending plan, lets
// the handler pick up the current tables, and stores the epoch in its slot (Epoch.cs).
// One round = for each assigned rx queue: rx_burst(32) -> handler -> send every tx buffer that
// holds a full burst -> free the burst's drops. At the end of the round, buffers whose oldest
// packet has waited DrainCycles are flushed (all of them when DrainCycles is 0), and the round's
// TSC cycles are booked as busy (it received packets) or idle.
//
// Shaped for speed: TIo and THandler are struct type parameters, so the JIT emits a specialised
// copy with direct calls; state lives in native memory reached through raw pointers (no bounds
// checks, no GC barriers); counters are bumped once per burst. Nothing here allocates.
using System.Runtime.CompilerServices;
using VSwitch.Ports;

namespace VSwitch.Pmd;

public sealed unsafe class PmdLoop<TIo, THandler> : IPmdRunner
    where TIo : struct, IPacketIo
    where THandler : struct, IBurstHandler
{
    private readonly PmdState _state;
    private readonly nint* _rx;
    private TIo _io;
    private THandler _handler;
    private ulong _lastTsc;

    public PmdLoop(PmdState state, TIo io, THandler handler)
    {
        _state = state;
        _io = io;
        _handler = handler;
        _rx = (nint*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(PmdState.Burst * (nuint)sizeof(nint), 64);
        _lastTsc = _io.Now();
    }

    public PmdState State => _state;

    /// <summary>Allocated managed bytes on the PMD thread between the warm-up and the end of <see cref="Run"/>.</summary>
    public long AllocatedBytesDuringRun { get; private set; } = -1;

    /// <summary>Polls until <see cref="PmdState.StopRequested"/>, then flushes every tx buffer.</summary>
    public void Run()
    {
        const int warmupRounds = 4096;
        long allocBase = 0;
        long rounds = 0;
        _lastTsc = _io.Now(); // the loop was built before the thread started: gaps count from here
        if (_state.DropCount != 0)
        {
            FreeDrops(); // a pass that ended in an exception (the loop restarts) left its drops
        }

        while (!_state.StopRequested)
        {
            Poll();
            if (++rounds == warmupRounds)
            {
                allocBase = GC.GetAllocatedBytesForCurrentThread();
            }
        }

        FlushAll();
        Volatile.Write(ref *_state.EpochSlot, Epoch.Offline); // holds nothing from here on
        if (rounds >= warmupRounds)
        {
            AllocatedBytesDuringRun = GC.GetAllocatedBytesForCurrentThread() - allocBase;
        }
    }

    /// <summary>One round over all assigned rx queues. Returns the number of packets received.</summary>
    public int Poll()
    {
        PmdState st = _state;

        // Round boundary (Epoch.cs): read the global epoch first, then take what was published
        // before it (plan, tables), then report the epoch as passed.
        long epoch = Volatile.Read(ref *st.EpochGlobal);
        if (st.PendingPlan != null && st.TakePlan() is PmdPlan plan)
        {
            // nothing buffered may outlive the old plan's ports
            FlushAll();
            st.Apply(plan);
        }

        _handler.Round(st, _lastTsc);
        if (st.DropCount != 0)
        {
            FreeDrops(); // what the round's own work dropped (IPsec completions)
        }

        if (*st.EpochSlot != epoch)
        {
            Volatile.Write(ref *st.EpochSlot, epoch);
        }

        PmdCounters* c = st.Counters;
        nint* rx = _rx;
        int total = 0;
        int queues = st.RxQueueCount;
        for (int q = 0; q < queues; q++)
        {
            ref RxQueueRef rq = ref st.RxQueues[q];
            int n = rq.MayBlock == 0
                ? _io.RxBurst(rq.PortId, rq.QueueId, rx, PmdState.Burst)
                : _io.RxBurstMayBlock(rq.PortId, rq.QueueId, rx, PmdState.Burst);
            if (n == 0)
            {
                continue;
            }

            total += n;
            st.PortCounters[rq.DpPort].RxPackets += (ulong)n;
            int whole = _handler.Handle(st, rq, rx, n);
            if (whole >= 0)
            {
                ref TxBuffer tb = ref st.Tx[whole];
                if (tb.Count == 0 && n == PmdState.Burst)
                {
                    Transmit(whole, ref tb, rx, n); // straight from the rx array: no copy
                    continue;
                }

                st.EnqueueBurst(whole, rx, n);
            }

            FlushFull();
            if (st.DropCount != 0)
            {
                FreeDrops();
            }
        }

        ulong now = _io.Now();
        if (st.PendingCount != 0)
        {
            FlushAged(now);
        }

        ulong spent = now - _lastTsc;
        _lastTsc = now;
        c->Rounds++;
        c->GapHistogram[PmdCounters.GapBucket(spent)]++;
        if (spent > c->GapMaxCycles)
        {
            c->GapMaxCycles = spent;
        }

        if (total != 0)
        {
            c->RxPackets += (ulong)total;
            c->RxBursts++;
            c->BusyCycles += spent;
        }
        else
        {
            c->IdleCycles += spent;
        }

        if (st.SleepMaxMicros != 0)
        {
            IdleBackoff(st, total);
        }

        return total;
    }

    /// <summary>
    /// PMD sleep (as Open vSwitch's pmd-sleep-max): each empty round lengthens the sleep by a step, up
    /// to the maximum; any packet ends it. Nothing is buffered while asleep: tx buffers were flushed
    /// at the end of the round (a drain interval longer than the sleep still applies afterwards).
    /// The first packet after idle waits at most the maximum sleep in the rx ring.
    /// </summary>
    private void IdleBackoff(PmdState st, int received)
    {
        if (received != 0)
        {
            st.SleepMicros = 0;
            return;
        }

        st.SleepMicros = Math.Min(st.SleepMicros + PmdState.SleepStepMicros, st.SleepMaxMicros);
        _io.Sleep(st.SleepMicros);
        _lastTsc = _io.Now(); // the sleep is not idle polling: keep it out of the cycle accounts
        st.Counters->SleptMicros += st.SleepMicros;
    }

    /// <summary>Sends every pending buffer that holds at least a full burst.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FlushFull()
    {
        PmdState st = _state;
        int pending = st.PendingCount;
        if (pending == 0)
        {
            return;
        }

        for (int i = 0; i < pending; i++)
        {
            ref TxBuffer tb = ref st.Tx[st.Pending[i]];
            if (tb.Count >= PmdState.Burst)
            {
                Send(st.Pending[i], ref tb);
            }
            else if (tb.FirstTsc == 0)
            {
                tb.FirstTsc = _lastTsc | 1;
            }
        }

        Compact();
    }

    /// <summary>Sends buffers whose first packet has waited the drain interval.</summary>
    private void FlushAged(ulong now)
    {
        PmdState st = _state;
        ulong drain = st.DrainCycles;
        int pending = st.PendingCount;
        for (int i = 0; i < pending; i++)
        {
            ref TxBuffer tb = ref st.Tx[st.Pending[i]];
            if (drain == 0 || tb.FirstTsc == 0 || now - tb.FirstTsc >= drain)
            {
                Send(st.Pending[i], ref tb);
            }
        }

        Compact();
    }

    /// <summary>Sends everything still buffered (shutdown, reconfiguration).</summary>
    public void FlushAll()
    {
        PmdState st = _state;
        for (int i = 0; i < st.PendingCount; i++)
        {
            Send(st.Pending[i], ref st.Tx[st.Pending[i]]);
        }

        st.PendingCount = 0;
    }

    /// <summary>Frees (and counts, and taps) the mbufs dropped since the last call: at most a burst's worth.</summary>
    private void FreeDrops()
    {
        PmdState st = _state;
        if (st.DropTapOn != 0)
        {
            st.TapDrops(st.Drops, st.DropReasons, st.DropCount);
        }

        st.Counters->FwdDrops += (ulong)st.DropCount;
        _io.Free(st.Drops, (uint)st.DropCount);
        st.DropCount = 0;
    }

    /// <summary>Drops emptied buffers from the pending list.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Compact()
    {
        PmdState st = _state;
        int kept = 0;
        for (int i = 0; i < st.PendingCount; i++)
        {
            int p = st.Pending[i];
            if (st.Tx[p].Count != 0)
            {
                st.Pending[kept++] = p;
            }
        }

        st.PendingCount = kept;
    }

    /// <summary>Sends the buffer's mbufs and empties it.</summary>
    private void Send(int dpPort, ref TxBuffer tb)
    {
        Transmit(dpPort, ref tb, tb.Slots, tb.Count);
        tb.Count = 0;
        tb.FirstTsc = 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Transmit(int dpPort, ref TxBuffer tb, nint* mbufs, int n) => TxPath.Transmit(_state, _io, dpPort, ref tb, mbufs, n);
}

/// <summary>The one way mbufs leave a PMD: tx_burst in burst-sized pieces, counted per PMD and port.</summary>
public static unsafe class TxPath
{
    /// <summary>
    /// tx_burst of <paramref name="n"/> mbufs (a tx buffer's, or a whole rx burst sent without a copy)
    /// in burst-sized pieces; whatever the port does not take is freed and counted as tx drops.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transmit<TIo>(PmdState st, TIo io, int dpPort, ref TxBuffer tb, nint* mbufs, int n)
        where TIo : struct, IPacketIo
    {
        int sent = 0;
        if (tb.Enabled)
        {
            while (sent < n)
            {
                int chunk = Math.Min(n - sent, PmdState.Burst);
                int took = !tb.MayBlock
                    ? io.TxBurst(tb.PortId, tb.QueueId, mbufs + sent, (ushort)chunk)
                    : io.TxBurstMayBlock(tb.PortId, tb.QueueId, mbufs + sent, (ushort)chunk);
                st.Counters->TxBursts++;
                sent += took;
                if (took < chunk)
                {
                    break;
                }
            }
        }

        if (sent < n)
        {
            if (st.DropTapOn != 0)
            {
                st.TapDrops(mbufs + sent, null, n - sent, DropReason.TxFull);
            }

            io.Free(mbufs + sent, (uint)(n - sent));
            st.Counters->TxDrops += (ulong)(n - sent);
            st.PortCounters[dpPort].TxDrops += (ulong)(n - sent);
        }

        st.Counters->TxPackets += (ulong)sent;
        st.PortCounters[dpPort].TxPackets += (ulong)sent;
    }
}
