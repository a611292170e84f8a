// MegaflowCache.cs - one PMD's wildcard cache: tuple space search over the masks upcalls produced.
//
// A megaflow is (masked key, mask) -> compiled actions. Megaflows with the same mask live in one
// subtable, a chained hash table keyed by CRC32C over only the words that mask uses (most masks use
// 2-4 of the datapath key's 10 words). A lookup tries the subtables in rank order (most hits first, re-ranked
// as traffic shifts) and returns the first entry whose masked key equals the packet's masked key;
// megaflows never disagree where they overlap, so the first hit is the verdict.
//
// Everything is native memory sized at construction: entries come from a free list, so installing
// a megaflow allocates nothing managed; the count is bounded by the limit (a full cache still
// forwards, through a scratch entry that is not installed, and counts it). Entries carry the table
// version and MAC generation they were computed for; the PMD revalidates a stale entry on its next
// hit. Idle entries age out by a sweep of a few entries per PMD round. Owned by one PMD thread; the
// control plane only reads it (dump-megaflows), accepting a racy snapshot.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using VSwitch.Actions;
using VSwitch.Packets;
using VSwitch.Pipeline;

namespace VSwitch.Caches;

[StructLayout(LayoutKind.Sequential, Size = 576)] // a whole number of cache lines (the array is 64-aligned)
public unsafe struct MegaflowEntry
{
    // Laid out for the hit path: the first cache line holds everything a hit reads or writes
    // besides the key (chain, validity, batch grouping, counters); the key follows, then the
    // rule ids and the actions.

    /// <summary>Hash of the masked key (over the subtable's words).</summary>
    public uint Hash;

    /// <summary>Subtable (mask) index; -1 when the slot is free.</summary>
    public int Subtable;

    /// <summary>Next entry in the bucket chain, -1 at the end (free list link when free).</summary>
    public int Next;

    /// <summary>Bumped whenever the slot is freed, so microflow entries pointing here notice reuse.</summary>
    public int Serial;

    /// <summary>FlowTables version the actions were computed for.</summary>
    public long Version;

    /// <summary>MAC table generation for verdicts that used NORMAL; -1 when they did not.</summary>
    public long MacGeneration;

    /// <summary>Packets and bytes that took this megaflow.</summary>
    public ulong Packets;
    public ulong Bytes;

    /// <summary>TSC of the last hit (aging).</summary>
    public ulong LastUsed;

    /// <summary>The burst this entry was last grouped in (per-PMD burst sequence) ...</summary>
    public uint BatchSeq;

    /// <summary>Number of DpActions at <see cref="Program"/>.</summary>
    public ushort OpCount;

    /// <summary>... and its group index in that burst.</summary>
    public byte BatchGroup;

    /// <summary>Number of rules in <see cref="RuleSlots"/>.</summary>
    public byte RuleCount;

    /// <summary>The masked key this entry matches (bytes 64 to 207).</summary>
    public DpKey Key;

    /// <summary>Sources NORMAL learned for this verdict, re-posted to the learner while the megaflow is hit.</summary>
    public int LearnCount;

    /// <summary>When the learn records were last posted (TSC).</summary>
    public ulong LearnStamp;

    /// <summary>Counter slots (RuleCounterSlot*) of the rules taken, valid while Version is current.</summary>
    public fixed long RuleSlots[Translation.MaxRules];

    /// <summary>The compiled actions: <see cref="Inline"/> when they fit, else a block from the cache's pool.
    /// After the OpCount actions come LearnCount learn records (Ext: C = MAC, A = VLAN, B = OpenFlow port).</summary>
    public DpAction* Program;

    /// <summary>Room for short action lists (DpAction[InlineOps] as raw words); longer ones live out of line.
    /// It starts in the cache line that holds <see cref="Program"/>, so a hit with a short list reads one line for both.</summary>
    public fixed ulong Inline[InlineOps * 2];

    /// <summary>Actions stored in the entry itself; most verdicts need a handful (the entry is 576 bytes).</summary>
    public const int InlineOps = 16;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct MegaflowSubtable
{
    /// <summary>The mask of every entry in this subtable.</summary>
    public DpKey Mask;

    /// <summary>Bucket heads (entry index or -1); length BucketMask + 1.</summary>
    public int* Buckets;

    public int BucketMask;

    /// <summary>Entries in this subtable; 0 with Buckets null means the slot is unused.</summary>
    public int Count;

    /// <summary>Indices of the mask's non-zero words, WordCount of them.</summary>
    public fixed byte Words[DpKey.Words];

    public int WordCount;

    /// <summary>Lookups that hit here since the last re-rank (decayed).</summary>
    public ulong Hits;
}

public sealed unsafe class MegaflowCache : IDisposable
{
    public const int MaxSubtables = 512;
    private readonly MegaflowEntry* _entries;
    private readonly MegaflowSubtable* _subtables;
    private readonly int* _rank;
    private int _rankCount;
    private int _subtableSlots;
    private int _free;
    private int _sweep;
    private int _refresh;

    /// <summary>Free out-of-line action blocks per size class (linked through their first word).</summary>
    private readonly nint[] _blockFree = new nint[BlockClasses];
    private int _blocks;
    private const int BlockClasses = 16;

    public MegaflowCache(int limit)
    {
        Limit = Math.Max(1, limit);
        // cache-line aligned, so each entry's first line holds everything a hit reads before its key
        nuint bytes = (nuint)(Limit + 1) * (nuint)sizeof(MegaflowEntry);
        _entries = (MegaflowEntry*)NativeMemory.AlignedAlloc(bytes, 64);
        NativeMemory.Clear(_entries, bytes);
        _subtables = (MegaflowSubtable*)NativeMemory.AllocZeroed(MaxSubtables, (nuint)sizeof(MegaflowSubtable));
        _rank = (int*)NativeMemory.AllocZeroed(MaxSubtables, sizeof(int));
        for (int i = 0; i < Limit; i++)
        {
            _entries[i].Subtable = -1;
            _entries[i].Next = i + 1 < Limit ? i + 1 : -1;
        }

        _entries[Limit].Subtable = -1;
        for (int i = 0; i <= Limit; i++)
        {
            _entries[i].Program = (DpAction*)_entries[i].Inline;
        }

        _free = 0;
    }

    /// <summary>Most megaflows installed at once.</summary>
    public int Limit { get; }

    /// <summary>Megaflows installed now.</summary>
    public int Count { get; private set; }

    /// <summary>Subtables (distinct masks) in use.</summary>
    public int SubtableCount => _rankCount;

    /// <summary>Index of the scratch entry used when the cache is full (never installed).</summary>
    public int ScratchIndex => Limit;

    public MegaflowEntry* Entry(int index) => _entries + index;

    public MegaflowSubtable* Subtable(int index) => _subtables + index;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint MaskedHash(DpKey* key, MegaflowSubtable* st)
    {
        ulong h = 0x5bd1e995UL;
        ulong* w = key->W;
        ulong* m = st->Mask.W;
        int n = st->WordCount;
        for (int i = 0; i < n; i++)
        {
            int j = st->Words[i];
            h = Sse42.X64.IsSupported ? Sse42.X64.Crc32(h, w[j] & m[j]) : (h ^ (w[j] & m[j])) * 0x100000001B3UL;
        }

        return (uint)h ^ (uint)(h >> 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool MaskedEquals(DpKey* key, MegaflowSubtable* st, MegaflowEntry* e)
    {
        ulong* w = key->W;
        ulong* m = st->Mask.W;
        ulong* v = e->Key.W;
        int n = st->WordCount;
        for (int i = 0; i < n; i++)
        {
            int j = st->Words[i];
            if ((w[j] & m[j]) != v[j])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Batched lookups, stage 1 of 2 (prefetch only; Lookup stays the one answer): the top-ranked
    /// subtable's hash of <paramref name="key"/>, its bucket head prefetched.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint PrefetchBucket(DpKey* key)
    {
        if (_rankCount == 0)
        {
            return 0;
        }

        MegaflowSubtable* st = _subtables + _rank[0];
        uint h = MaskedHash(key, st);
        Sse.Prefetch0(st->Buckets + (h & (uint)st->BucketMask));
        return h;
    }

    /// <summary>
    /// Stage 2: prefetches the lines of the bucket's first entry that a hit reads (metadata, key,
    /// rule slots, first actions), so a burst's misses overlap instead of running one after another.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchEntry(uint h)
    {
        if (_rankCount == 0)
        {
            return;
        }

        MegaflowSubtable* st = _subtables + _rank[0];
        int e = st->Buckets[h & (uint)st->BucketMask];
        if (e >= 0)
        {
            byte* p = (byte*)(_entries + e);
            Sse.Prefetch0(p);
            Sse.Prefetch0(p + 64);
            Sse.Prefetch0(p + 128);
            Sse.Prefetch0(p + 192);
            Sse.Prefetch0(p + 256);
        }
    }

    /// <summary>The megaflow matching <paramref name="key"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Lookup(DpKey* key)
    {
        int n = _rankCount;
        for (int r = 0; r < n; r++)
        {
            MegaflowSubtable* st = _subtables + _rank[r];
            uint h = MaskedHash(key, st);
            int e = st->Buckets[h & (uint)st->BucketMask];
            while (e >= 0)
            {
                MegaflowEntry* en = _entries + e;
                if (en->Hash == h && MaskedEquals(key, st, en))
                {
                    st->Hits++;
                    return e;
                }

                e = en->Next;
            }
        }

        return -1;
    }

    /// <summary>
    /// Installs the translation's verdict for <paramref name="key"/> and returns its entry; returns the
    /// scratch entry (filled, not installed) when the cache is full or holds too many masks.
    /// </summary>
    public int Install(DpKey* key, Translation t, long version, long macGeneration, ulong now)
    {
        // The mask is the translation's wildcards on the datapath words: metadata and registers are
        // zero for every packet entering the pipeline, so a verdict never depends on their start.
        int si = FindOrAddSubtable(DpKey.Of(t.Wildcards));
        int idx = si >= 0 && _free >= 0 ? _free : Limit;
        MegaflowEntry* e = _entries + idx;
        Fill(e, key, t, version, macGeneration, now);
        if (idx == Limit)
        {
            e->Subtable = -1;
            if (si >= 0 && _subtables[si].Count == 0)
            {
                RemoveFromRank(si);
            }

            return idx;
        }

        MegaflowSubtable* st = _subtables + si;
        _free = e->Next;
        e->Subtable = si;
        for (int i = 0; i < DpKey.Words; i++)
        {
            e->Key.W[i] = key->W[i] & st->Mask.W[i];
        }

        e->Hash = MaskedHash(key, st);
        if (st->Count >= st->BucketMask + 1)
        {
            Grow(st);
        }

        int b = (int)(e->Hash & (uint)st->BucketMask);
        e->Next = st->Buckets[b];
        st->Buckets[b] = idx;
        st->Count++;
        Count++;
        return idx;
    }

    /// <summary>Rewrites an entry's actions in place (revalidation found a verdict within the same mask).</summary>
    public void Update(int idx, Translation t, long version, long macGeneration)
    {
        MegaflowEntry* e = _entries + idx;
        e->Version = version;
        e->MacGeneration = macGeneration;
        SetActions(e, t);
    }

    private void Fill(MegaflowEntry* e, DpKey* key, Translation t, long version, long macGeneration, ulong now)
    {
        e->Key = *key;
        e->Version = version;
        e->MacGeneration = macGeneration;
        e->Packets = 0;
        e->Bytes = 0;
        e->BatchSeq = 0;
        e->LastUsed = now;
        e->LearnStamp = now; // the upcall posts this verdict's sources itself
        SetActions(e, t);
    }

    /// <summary>
    /// Stores the verdict's actions: in the entry when they fit, else in a pooled native block
    /// (a flood to many ports). Blocks go back to this cache's pool, never to the OS, so a racy
    /// reader (dump-megaflows on the control thread) always reads mapped memory; it clamps the count
    /// to the block's capacity (<see cref="ProgramOf"/>).
    /// </summary>
    private void SetActions(MegaflowEntry* e, Translation t)
    {
        ReleaseProgram(e);
        int n = t.OpCount;
        int total = n + t.LearnCount;
        DpAction* dst = total > MegaflowEntry.InlineOps ? RentBlock(total) : (DpAction*)e->Inline;
        fixed (DpAction* src = t.Ops)
        {
            Buffer.MemoryCopy(src, dst, n * sizeof(DpAction), n * sizeof(DpAction));
        }

        for (int i = 0; i < t.LearnCount; i++)
        {
            dst[n + i] = new DpAction(DpOp.Ext, a: (ushort)t.LearnVlans[i], b: (uint)t.LearnPorts[i], c: t.LearnMacs[i]);
        }

        e->Program = dst;
        e->OpCount = (ushort)n;
        e->LearnCount = t.LearnCount;
        e->RuleCount = (byte)t.RuleCount;
        for (int i = 0; i < t.RuleCount; i++)
        {
            e->RuleSlots[i] = t.RuleSlots[i];
        }
    }

    /// <summary>Returns an out-of-line action block to the pool (a no-op for inline actions).</summary>
    private void ReleaseProgram(MegaflowEntry* e)
    {
        DpAction* p = e->Program;
        e->Program = (DpAction*)e->Inline;
        e->OpCount = 0;
        e->LearnCount = 0;
        if (p != null && p != (DpAction*)e->Inline)
        {
            int c = BlockClass(((long*)p)[-2]);
            ((nint*)p)[0] = _blockFree[c];
            _blockFree[c] = (nint)p;
        }
    }

    /// <summary>A block of at least <paramref name="n"/> actions (power-of-two classes; capacity in a 16-byte header).</summary>
    private DpAction* RentBlock(int n)
    {
        int c = BlockClass(n);
        nint p = _blockFree[c];
        if (p != 0)
        {
            _blockFree[c] = ((nint*)p)[0];
            return (DpAction*)p;
        }

        long cap = 1L << c;
        long* raw = (long*)NativeMemory.AlignedAlloc((nuint)(16 + (cap * sizeof(DpAction))), 64);
        raw[0] = cap;
        _blocks++;
        return (DpAction*)(raw + 2);
    }

    private static int BlockClass(long n) => Math.Max(5, 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)(n - 1)));

    /// <summary>An entry's actions, for readers on other threads: the count is clamped to the storage it points at.</summary>
    public static ReadOnlySpan<DpAction> ProgramOf(MegaflowEntry* e)
    {
        DpAction* p = e->Program;
        int n = e->OpCount;
        if (p == null)
        {
            return default;
        }

        long cap = p == (DpAction*)e->Inline ? MegaflowEntry.InlineOps : ((long*)p)[-2];
        return new ReadOnlySpan<DpAction>(p, (int)Math.Min(n, cap));
    }

    /// <summary>Out-of-line action blocks allocated (they are pooled, never freed before Dispose).</summary>
    public int ActionBlocks => _blocks;

    /// <summary>Removes an installed entry (stale, aged, or flushed).</summary>
    public void Remove(int idx)
    {
        MegaflowEntry* e = _entries + idx;
        int si = e->Subtable;
        if (si < 0 || idx == Limit)
        {
            return;
        }

        MegaflowSubtable* st = _subtables + si;
        int* link = st->Buckets + (e->Hash & (uint)st->BucketMask);
        while (*link != idx)
        {
            link = &_entries[*link].Next;
        }

        *link = e->Next;
        e->Subtable = -1;
        e->Serial++;
        ReleaseProgram(e);
        e->Next = _free;
        _free = idx;
        Count--;
        if (--st->Count == 0)
        {
            RemoveFromRank(si);
        }
    }

    /// <summary>Removes every installed entry (flush-megaflows; the owning PMD, at a round boundary); returns how many.</summary>
    public int RemoveAll()
    {
        int removed = 0;
        for (int i = 0; i < Limit && Count != 0; i++)
        {
            if (_entries[i].Subtable >= 0)
            {
                Remove(i);
                removed++;
            }
        }

        return removed;
    }

    /// <summary>
    /// Visits the next <paramref name="budget"/> entries (a cursor over the whole cache) and posts the
    /// learn records of those hit since their last post to <paramref name="ring"/>, so hosts whose
    /// traffic only takes cached verdicts stay learned. Returns the events posted; stops early when the
    /// ring is full (the entry is revisited on the next pass).
    /// </summary>
    public int RefreshLearning(int budget, Pipeline.LearnRing ring, ulong now)
    {
        int posted = 0;
        for (int k = 0; k < budget; k++)
        {
            int i = _refresh;
            _refresh = _refresh + 1 >= Limit ? 0 : _refresh + 1;
            MegaflowEntry* e = _entries + i;
            if (e->Subtable < 0 || e->LearnCount == 0 || e->LastUsed <= e->LearnStamp)
            {
                continue;
            }

            DpAction* l = e->Program + e->OpCount;
            for (int j = 0; j < e->LearnCount; j++)
            {
                if (!ring.TryPut(l[j].C, l[j].A, (int)l[j].B, e->LastUsed))
                {
                    return posted;
                }

                posted++;
            }

            e->LearnStamp = now;
        }

        return posted;
    }

    /// <summary>Removes up to <paramref name="budget"/> entries' worth of idle megaflows (unused since <paramref name="olderThan"/>).</summary>
    public int Sweep(int budget, ulong olderThan)
    {
        int removed = 0;
        for (int k = 0; k < budget; k++)
        {
            int i = _sweep;
            _sweep = _sweep + 1 >= Limit ? 0 : _sweep + 1;
            MegaflowEntry* e = _entries + i;
            if (e->Subtable >= 0 && e->LastUsed < olderThan)
            {
                Remove(i);
                removed++;
            }
        }

        return removed;
    }

    /// <summary>Re-orders subtables by hits (most first) and halves the counts, so the ranking follows traffic.</summary>
    public void Rerank()
    {
        for (int i = 1; i < _rankCount; i++)
        {
            int s = _rank[i];
            ulong h = _subtables[s].Hits;
            int j = i - 1;
            while (j >= 0 && _subtables[_rank[j]].Hits < h)
            {
                _rank[j + 1] = _rank[j];
                j--;
            }

            _rank[j + 1] = s;
        }

        for (int i = 0; i < _rankCount; i++)
        {
            _subtables[_rank[i]].Hits >>= 1;
        }
    }

    private int FindOrAddSubtable(in DpKey mask)
    {
        for (int r = 0; r < _rankCount; r++)
        {
            if (_subtables[_rank[r]].Mask.Equals(mask))
            {
                return _rank[r];
            }
        }

        int slot = -1;
        for (int i = 0; i < _subtableSlots; i++)
        {
            if (_subtables[i].Count == 0 && !InRank(i))
            {
                slot = i;
                break;
            }
        }

        if (slot < 0)
        {
            if (_subtableSlots == MaxSubtables)
            {
                return -1;
            }

            slot = _subtableSlots++;
        }

        MegaflowSubtable* st = _subtables + slot;
        st->Mask = mask;
        st->WordCount = 0;
        for (int w = 0; w < DpKey.Words; w++)
        {
            if (mask.W[w] != 0)
            {
                st->Words[st->WordCount++] = (byte)w;
            }
        }

        if (st->Buckets == null)
        {
            st->BucketMask = 15;
            st->Buckets = (int*)NativeMemory.Alloc(16, sizeof(int));
            new Span<int>(st->Buckets, 16).Fill(-1);
        }

        st->Hits = 0;
        _rank[_rankCount++] = slot;
        return slot;
    }

    private bool InRank(int s)
    {
        for (int r = 0; r < _rankCount; r++)
        {
            if (_rank[r] == s)
            {
                return true;
            }
        }

        return false;
    }

    private void RemoveFromRank(int s)
    {
        for (int r = 0; r < _rankCount; r++)
        {
            if (_rank[r] == s)
            {
                for (int k = r + 1; k < _rankCount; k++)
                {
                    _rank[k - 1] = _rank[k];
                }

                _rankCount--;
                return;
            }
        }
    }

    private void Grow(MegaflowSubtable* st)
    {
        int size = (st->BucketMask + 1) * 2;
        int* nb = (int*)NativeMemory.Alloc((nuint)size, sizeof(int));
        new Span<int>(nb, size).Fill(-1);
        for (int b = 0; b <= st->BucketMask; b++)
        {
            int e = st->Buckets[b];
            while (e >= 0)
            {
                int next = _entries[e].Next;
                int nbIdx = (int)(_entries[e].Hash & (uint)(size - 1));
                _entries[e].Next = nb[nbIdx];
                nb[nbIdx] = e;
                e = next;
            }
        }

        NativeMemory.Free(st->Buckets);
        st->Buckets = nb;
        st->BucketMask = size - 1;
    }

    public void Dispose()
    {
        for (int i = 0; i <= Limit; i++)
        {
            ReleaseProgram(_entries + i);
        }

        for (int c = 0; c < BlockClasses; c++)
        {
            for (nint p = _blockFree[c]; p != 0;)
            {
                nint next = ((nint*)p)[0];
                NativeMemory.AlignedFree((long*)p - 2);
                p = next;
            }
        }

        for (int i = 0; i < _subtableSlots; i++)
        {
            NativeMemory.Free(_subtables[i].Buckets);
        }

        NativeMemory.AlignedFree(_entries);
        NativeMemory.Free(_subtables);
        NativeMemory.Free(_rank);
        GC.SuppressFinalize(this);
    }
}
