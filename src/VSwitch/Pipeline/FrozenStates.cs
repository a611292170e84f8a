// FrozenStates.cs - where a packet resumes after ct(...,table=N): the table and the pipeline-only
// fields (metadata, registers) it had, behind a recirculation id.
//
// Open vSwitch "freezes" a translation at ct(table=N): the packet goes through the connection tracker
// and back through the datapath with a new recirc_id, and the translation of that pass starts in
// table N with the metadata and registers the packet had (they are not packet bytes, so they cannot
// travel with it). Here the recirc_id is 8 bits of the datapath key: ids 1-127 are recirc(N)'s,
// 128-255 name frozen states (one table of them per pipeline, PipelineShared.Frozen). An id is
// interned by content on the upcall that needs it (a PMD, or the control thread for trace), so every
// packet with the same table/metadata/registers shares one id, and megaflows of the next pass match
// it exactly. A slot is claimed with a CAS and written before it is published: a PMD never reads a
// half-written state. Two upcalls interning the same state at once may claim two slots (both valid).
//
// 128 ids run out when many distinct register values reach a ct (a pipeline that keeps a port or
// datapath number in a register), so unused ones are reclaimed (Reclaim, from the housekeeping
// thread once a second) when three quarters are taken, in three steps an epoch apart:
//   1. a new generation starts, and every PMD is asked to empty its caches;
//   2. once every PMD has passed a round boundary (caches emptied, no packet of an earlier round
//      still recirculating), every megaflow alive was made by a translation that touched the slots
//      it names (Intern and Resume stamp a slot with the generation, by CAS): a slot still stamped
//      with an older generation is named by nothing, and is marked by CAS (a touch that loses to it
//      treats the slot as gone);
//   3. once every PMD has passed another round boundary (no Intern that began before the mark is
//      still comparing the slot's content), marked slots become free.
// A state still in use is touched again by the upcalls that follow the flush and keeps its id. A
// reclaim that frees little doubles the time to the next (up to MaxReclaimIntervalTicks); a trace,
// which interns off the PMDs, holds Gate so no step runs meanwhile.
using System.Runtime.InteropServices;
using VSwitch.Packets;

namespace VSwitch.Pipeline;

public sealed unsafe class FrozenStates : IDisposable
{
    /// <summary>The first recirc_id of a frozen state (recirc(N) takes 1 to First - 1).</summary>
    public const int First = 128;

    /// <summary>Frozen states a pipeline can hold at once.</summary>
    public const int Capacity = 256 - First;

    /// <summary>Reclaiming starts when this many are taken.</summary>
    public const int ReclaimAt = Capacity * 3 / 4;

    /// <summary>Least time between two reclaims (housekeeping ticks): each one empties every cache.</summary>
    public const int ReclaimIntervalTicks = 5;

    /// <summary>For translations not tied to a pipeline (tests, warm-up).</summary>
    public static readonly FrozenStates Default = new();

    private const long SlotFree = 0, SlotWriting = 1, SlotReady = 2;

    /// <summary>A slot's stamp while it is being reclaimed: nothing may use it.</summary>
    private const long Marked = -1;

    [StructLayout(LayoutKind.Sequential)]
    private struct Slot
    {
        public long State;

        /// <summary>The generation of the last Intern or Resume that used it; <see cref="Marked"/>.</summary>
        public long Stamp;
        public long Table;
        public fixed ulong Words[FlowKey.Words - DpKey.Words]; // metadata, xreg0..xreg7
    }

    private readonly Slot* _slots = (Slot*)NativeMemory.AllocZeroed((nuint)(Capacity * sizeof(Slot)));
    private long _generation = 1;

    // The reclaimer's state (the housekeeping thread only).
    private int _phase;
    private long _phaseGeneration;
    private long _phaseEpoch;
    private int _ticksSinceReclaim = ReclaimIntervalTicks;
    private int _interval = ReclaimIntervalTicks;

    /// <summary>Most ticks between reclaims once they free little (each one empties every cache).</summary>
    public const int MaxReclaimIntervalTicks = 320;

    /// <summary>
    /// Held by a translation off the PMDs (trace, on the control thread) for as long as it uses ids:
    /// the epoch that makes reclaiming safe covers the PMDs only, so a reclaim step waits for the next
    /// tick while a trace holds this.
    /// </summary>
    public Lock Gate { get; } = new();

    /// <summary>Reclaims finished, and slots they freed (for ct-stats-show).</summary>
    public long Reclaims { get; private set; }

    public long Reclaimed { get; private set; }

    /// <summary>The recirc_id of "table <paramref name="table"/> with <paramref name="key"/>'s metadata and registers"; -1 when every id is taken.</summary>
    public int Intern(int table, in FlowKey key)
    {
        long gen = Volatile.Read(ref _generation);
        for (int i = 0; i < Capacity; i++)
        {
            Slot* s = _slots + i;
            if (Volatile.Read(ref s->State) != SlotReady)
            {
                continue;
            }

            long v = Volatile.Read(ref s->Stamp); // read before the content, so Touch fails if the slot was marked meanwhile
            if (v != Marked && Same(s, table, key) && Touch(s, v, gen))
            {
                return First + i;
            }
        }

        for (int i = 0; i < Capacity; i++)
        {
            Slot* s = _slots + i;
            if (Volatile.Read(ref s->State) == SlotFree && Interlocked.CompareExchange(ref s->State, SlotWriting, SlotFree) == SlotFree)
            {
                s->Table = table;
                for (int w = 0; w < FlowKey.Words - DpKey.Words; w++)
                {
                    s->Words[w] = key.W[DpKey.Words + w];
                }

                Volatile.Write(ref s->Stamp, gen);
                Volatile.Write(ref s->State, SlotReady);
                return First + i;
            }
        }

        return -1;
    }

    /// <summary>
    /// Stamps a slot whose stamp was <paramref name="v"/> with <paramref name="gen"/>; false when it is
    /// being reclaimed. Only a toucher or the reclaimer's mark can change the stamp under it (a slot is
    /// freed and claimed again only an epoch after its mark, when no Intern that read it is running).
    /// </summary>
    private static bool Touch(Slot* s, long v, long gen)
    {
        while (true)
        {
            if (v == Marked)
            {
                return false;
            }

            if (v >= gen)
            {
                return true;
            }

            long seen = Interlocked.CompareExchange(ref s->Stamp, gen, v);
            if (seen == v)
            {
                return true;
            }

            v = seen;
        }
    }

    private static bool Same(Slot* s, int table, in FlowKey key)
    {
        if (s->Table != table)
        {
            return false;
        }

        for (int w = 0; w < FlowKey.Words - DpKey.Words; w++)
        {
            if (s->Words[w] != key.W[DpKey.Words + w])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The table a packet with recirc_id <paramref name="id"/> resumes in (its metadata and registers written into <paramref name="key"/>); -1 when the id is not a frozen state.</summary>
    public int Resume(int id, ref FlowKey key)
    {
        if (id < First || id >= First + Capacity)
        {
            return -1;
        }

        Slot* s = _slots + (id - First);
        if (Volatile.Read(ref s->State) != SlotReady || !Touch(s, Volatile.Read(ref s->Stamp), Volatile.Read(ref _generation)))
        {
            return -1;
        }

        for (int w = 0; w < FlowKey.Words - DpKey.Words; w++)
        {
            key.W[DpKey.Words + w] = s->Words[w];
        }

        return (int)s->Table;
    }

    /// <summary>Tests: whether id <paramref name="id"/> is a live (not marked, not free) state, its table and first register word, without touching it.</summary>
    internal bool Peek(int id, out long table, out ulong firstRegisterWord)
    {
        Slot* s = _slots + (id - First);
        table = s->Table;
        firstRegisterWord = s->Words[1]; // after metadata: xreg0 (reg0:reg1)
        return Volatile.Read(ref s->State) == SlotReady && Volatile.Read(ref s->Stamp) != Marked;
    }

    /// <summary>Frozen states in use (not those marked for reclaiming).</summary>
    public int Count
    {
        get
        {
            int n = 0;
            for (int i = 0; i < Capacity; i++)
            {
                n += Volatile.Read(ref _slots[i].State) == SlotReady && Volatile.Read(ref _slots[i].Stamp) != Marked ? 1 : 0;
            }

            return n;
        }
    }

    /// <summary>
    /// One housekeeping tick of reclaiming (see the file comment): <paramref name="requestFlush"/> asks
    /// the PMDs to empty their caches, <paramref name="advance"/> takes an epoch, <paramref name="passed"/>
    /// says whether every PMD has passed one. Returns the slots freed on this tick.
    /// </summary>
    public int Reclaim(Action requestFlush, Func<long> advance, Func<long, bool> passed)
    {
        _ticksSinceReclaim++;
        if (!Gate.TryEnter())
        {
            return 0; // a trace is using ids: next tick
        }

        try
        {
            return ReclaimStep(requestFlush, advance, passed);
        }
        finally
        {
            Gate.Exit();
        }
    }

    private int ReclaimStep(Action requestFlush, Func<long> advance, Func<long, bool> passed)
    {
        switch (_phase)
        {
            case 0:
                if (Count < ReclaimAt || _ticksSinceReclaim < _interval)
                {
                    return 0;
                }

                _phaseGeneration = Interlocked.Increment(ref _generation);
                requestFlush();
                _phaseEpoch = advance();
                _phase = 1;
                return 0;
            case 1:
                if (!passed(_phaseEpoch))
                {
                    return 0;
                }

                for (int i = 0; i < Capacity; i++)
                {
                    Slot* s = _slots + i;
                    long v = Volatile.Read(ref s->Stamp);
                    if (Volatile.Read(ref s->State) == SlotReady && v >= 0 && v < _phaseGeneration)
                    {
                        Interlocked.CompareExchange(ref s->Stamp, Marked, v);
                    }
                }

                _phaseEpoch = advance();
                _phase = 2;
                return 0;
            default:
                if (!passed(_phaseEpoch))
                {
                    return 0;
                }

                int freed = 0;
                for (int i = 0; i < Capacity; i++)
                {
                    Slot* s = _slots + i;
                    if (Volatile.Read(ref s->State) == SlotReady && Volatile.Read(ref s->Stamp) == Marked)
                    {
                        Volatile.Write(ref s->State, SlotFree); // the stamp stays Marked until a claim writes its own
                        freed++;
                    }
                }

                _phase = 0;
                _ticksSinceReclaim = 0;
                Reclaims++;
                Reclaimed += freed;

                // Little to free means the states are really in use: reclaim less often (each reclaim
                // costs every PMD its caches), back to the base interval once one frees a lot again.
                _interval = freed >= Capacity / 8 ? ReclaimIntervalTicks : Math.Min(_interval * 2, MaxReclaimIntervalTicks);
                return freed;
        }
    }

    public void Dispose()
    {
        if (this != Default)
        {
            NativeMemory.Free(_slots);
        }
    }
}
