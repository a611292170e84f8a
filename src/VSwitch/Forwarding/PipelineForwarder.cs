// PipelineForwarder.cs - the flow pipeline as a PMD burst handler: key extraction, microflow cache,
// megaflow cache, upcall, then the compiled actions once per group of packets that share a megaflow.
//
// The walk of a burst (all state per PMD, in native scratch sized for one burst):
//   1. extract every packet's key and hash; malformed packets are counted and dropped here;
//   2. microflow (EMC) lookup; an entry is trusted only if its megaflow is current;
//   3. megaflow lookup for the misses; a stale megaflow (older tables or MAC generation) is
//      revalidated on the spot: kept with new actions when the new verdict needs no more key bits,
//      else removed;
//   4. upcall for what is left: translate through the tables, install the megaflow;
//   5. group packets by megaflow (first-seen order; packet order within a group is kept) and run each
//      group's action list once: rewrites per packet, outputs into the tx buffers.
// A burst that is one group whose only action is one output is handed back whole (zero copy).
// The actions themselves run in Actions/ActionExecutor.cs.
// Steady state allocates nothing; the table version is read once per round (Round), at the round
// boundary (Pmd/Epoch.cs).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VSwitch.Actions;
using VSwitch.Caches;
using VSwitch.Interop;
using VSwitch.Packets;
using VSwitch.Pipeline;
using VSwitch.Pmd;
using VSwitch.Ports;

namespace VSwitch.Forwarding;

/// <summary>One PMD's pipeline state: caches, per-burst scratch, the version in use.</summary>
public sealed unsafe class FlowPmd : IDisposable
{
    public const int Burst = PmdState.Burst;

    public FlowPmd(PipelineShared shared)
    {
        Shared = shared;
        Megaflows = new MegaflowCache(shared.MegaflowLimit);
        Emc = new Emc(shared.EmcInsertInvProb);
        Keys = (DpKey*)NativeMemory.AlignedAlloc(Burst * (nuint)sizeof(DpKey), 64);
        Offsets = (HeaderOffsets*)NativeMemory.AlignedAlloc(Burst * (nuint)sizeof(HeaderOffsets), 64);
        Hashes = (uint*)NativeMemory.AlignedAlloc(Burst * sizeof(uint), 64);
        MegaflowHashes = (uint*)NativeMemory.AlignedAlloc(Burst * sizeof(uint), 64);
        EntryOf = (int*)NativeMemory.AlignedAlloc(Burst * sizeof(int), 64);
        GroupEntry = (int*)NativeMemory.AlignedAlloc(Burst * sizeof(int), 64);
        GroupSize = (int*)NativeMemory.AlignedAlloc(Burst * sizeof(int), 64);
        Members = (byte*)NativeMemory.AlignedAlloc(Burst * Burst, 64);
        GroupPkts = (nint*)NativeMemory.AlignedAlloc(Burst * (nuint)sizeof(nint), 64);
        GroupOffs = (HeaderOffsets*)NativeMemory.AlignedAlloc(Burst * (nuint)sizeof(HeaderOffsets), 64);
        Copies = (nint*)NativeMemory.AlignedAlloc(Burst * (nuint)sizeof(nint), 64);
        RecircPkts = (nint*)NativeMemory.AlignedAlloc(Burst * (nuint)sizeof(nint), 64);
        RecircWork = (nint*)NativeMemory.AlignedAlloc(Burst * (nuint)sizeof(nint), 64);
        RecircIds = (byte*)NativeMemory.AlignedAlloc(Burst, 64);
        RecircWorkIds = (byte*)NativeMemory.AlignedAlloc(Burst, 64);
        GroupCt = (ulong*)NativeMemory.AlignedAlloc(Burst * sizeof(ulong), 64);
        RecircCt = (ulong*)NativeMemory.AlignedAlloc(Burst * sizeof(ulong), 64);
        RecircWorkCt = (ulong*)NativeMemory.AlignedAlloc(Burst * sizeof(ulong), 64);
        CtParsed = (Conntrack.CtParsed*)NativeMemory.AlignedAlloc(Burst * (nuint)sizeof(Conntrack.CtParsed), 64);
        GroupExt = (ulong*)NativeMemory.AlignedAlloc(Burst * DpKey.CtExtWords * sizeof(ulong), 64);
        RecircExt = (ulong*)NativeMemory.AlignedAlloc(Burst * DpKey.CtExtWords * sizeof(ulong), 64);
        RecircWorkExt = (ulong*)NativeMemory.AlignedAlloc(Burst * DpKey.CtExtWords * sizeof(ulong), 64);
        Translation = new Translation { Frozen = shared.Frozen };
        IpsecScratch = new Ipsec.IpsecScratch();
        Current = shared.Current;
        CacheFlushes = shared.CacheFlushes;
        shared.Learner.Register(Learns);
    }

    public PipelineShared Shared { get; }

    /// <summary>Whether the IPsec stage exists (read once per round): passes then read and write ipsec_sa in the mbufs.</summary>
    public bool IpsecOn;

    /// <summary>Scratch of the IPsec hand-off (Ipsec/IpsecEngine.cs).</summary>
    public Ipsec.IpsecScratch IpsecScratch { get; }

    public MegaflowCache Megaflows { get; }

    public Emc Emc { get; }

    public PuntRing Punts { get; } = new();

    /// <summary>First fragments' conntrack verdicts, for their later fragments (this PMD's; Conntrack/FragmentTable.cs).</summary>
    public Conntrack.FragmentTable Frags { get; } = new();

    /// <summary>Sources NORMAL saw, for the MAC table's single writer (PipelineShared.Learner).</summary>
    public LearnRing Learns { get; } = new();

    /// <summary>Reused by every upcall on this PMD.</summary>
    public Translation Translation { get; }

    /// <summary>The version this PMD classifies with (read once per round).</summary>
    public FlowTables Current;

    /// <summary>
    /// The last translation failure's text (written by the PMD, read by the control thread, which
    /// logs it when <see cref="PmdCounters.TranslationErrors"/> grows). Only failures allocate it.
    /// </summary>
    public volatile string? LastTranslationError;

    /// <summary>The MAC generation read at the start of the round.</summary>
    public long MacGeneration;

    /// <summary>The cache-flush count (PipelineShared.CacheFlushes) this PMD last emptied its caches for.</summary>
    public long CacheFlushes;

    public ulong Rounds;

    /// <summary>TSC at the start of the current round: the time a hit stamps on its megaflow (aging and learning need no finer clock, and a TSC read costs about 17 ns in this VM).</summary>
    public ulong RoundTsc;

    /// <summary>Sequence number of the current burst (megaflow entries remember the burst they were grouped in).</summary>
    public uint BurstSeq;

    // Per-burst scratch (one slot per received packet).
    public readonly DpKey* Keys;
    public readonly HeaderOffsets* Offsets;
    public readonly uint* Hashes;

    /// <summary>Per packet of the burst: the top megaflow subtable's hash (prefetch stage).</summary>
    public readonly uint* MegaflowHashes;
    public readonly int* EntryOf;
    public readonly int* GroupEntry;
    public readonly int* GroupSize;
    public readonly byte* Members;
    public readonly nint* GroupPkts;
    public readonly HeaderOffsets* GroupOffs;
    public readonly nint* Copies;

    /// <summary>Per packet of the group being executed: its connection-tracking word (FlowKey word 9 without recirc_id), which ct ops set and recirculation carries.</summary>
    public readonly ulong* GroupCt;

    /// <summary>Most passes a packet makes through the caches (the first plus recirculations).</summary>
    public const int MaxRecircDepth = 8;

    /// <summary>Packets a recirc action queued for the next pass, their recirc ids, and how many.</summary>
    public readonly nint* RecircPkts;
    public readonly byte* RecircIds;

    /// <summary>The queued packets' connection-tracking words (ct_state, ct_zone, ct_mark), restored into their keys on the next pass.</summary>
    public readonly ulong* RecircCt;
    public int RecircCount;

    /// <summary>The pass being run (a copy of the queue, so the pass can queue the next one).</summary>
    public readonly nint* RecircWork;
    public readonly byte* RecircWorkIds;
    public readonly ulong* RecircWorkCt;

    /// <summary>
    /// While the tables in use match the connection's words (FlowTables.MatchesCtTuple, read once per
    /// round): per packet of the group, of the recirculation queue and of the pass being run, its
    /// DpKey.CtExtWords connection words (ct_label, original tuple), which ct ops write and the next
    /// pass puts in the key. Untouched otherwise.
    /// </summary>
    public readonly ulong* GroupExt;
    public readonly ulong* RecircExt;
    public readonly ulong* RecircWorkExt;

    /// <summary>Scratch of a ct op's prefetch (ConnTable.Prefetch): the group's parsed tuples.</summary>
    public readonly Conntrack.CtParsed* CtParsed;

    /// <summary>Whether this round's tables match the connection's words (FlowTables.MatchesCtTuple).</summary>
    public bool CtTuple => Current.MatchesCtTuple;

    public void Dispose()
    {
        Shared.Learner.Unregister(Learns);
        Megaflows.Dispose();
        Emc.Dispose();
        Punts.Dispose();
        Learns.Dispose();
        Frags.Dispose();
        NativeMemory.AlignedFree(Keys);
        NativeMemory.AlignedFree(Offsets);
        NativeMemory.AlignedFree(Hashes);
        NativeMemory.AlignedFree(MegaflowHashes);
        NativeMemory.AlignedFree(EntryOf);
        NativeMemory.AlignedFree(GroupEntry);
        NativeMemory.AlignedFree(GroupSize);
        NativeMemory.AlignedFree(Members);
        NativeMemory.AlignedFree(GroupPkts);
        NativeMemory.AlignedFree(GroupOffs);
        NativeMemory.AlignedFree(Copies);
        IpsecScratch.Dispose();
        NativeMemory.AlignedFree(RecircPkts);
        NativeMemory.AlignedFree(RecircWork);
        NativeMemory.AlignedFree(RecircIds);
        NativeMemory.AlignedFree(RecircWorkIds);
        NativeMemory.AlignedFree(GroupCt);
        NativeMemory.AlignedFree(RecircCt);
        NativeMemory.AlignedFree(GroupExt);
        NativeMemory.AlignedFree(CtParsed);
        NativeMemory.AlignedFree(RecircExt);
        NativeMemory.AlignedFree(RecircWorkExt);
        NativeMemory.AlignedFree(RecircWorkCt);
        GC.SuppressFinalize(this);
    }
}

/// <summary>The pipeline burst handler (TIo for packet copies).</summary>
public readonly unsafe struct PipelineForwarder<TIo> : IBurstHandler
    where TIo : struct, IPacketIo
{
    private const int Invalid = -1;
    private const int Done = -2;
    private const int SweepBudget = 64;

    /// <summary>recirc_id's bits in the key's connection-tracking word.</summary>
    private const ulong RecircBits = 0xFFUL << 24;
    private readonly FlowPmd _f;
    private readonly TIo _io;
    private readonly ActionExecutor<TIo> _exec;

    public PipelineForwarder(FlowPmd f, TIo io)
    {
        _f = f;
        _io = io;
        _exec = new ActionExecutor<TIo>(f, io);
    }

    public void Round(PmdState state, ulong now)
    {
        FlowPmd f = _f;
        FlowTables v = f.Shared.Current;
        f.Current = v;
        f.RoundTsc = now;

        f.MacGeneration = f.Shared.Macs.Generation; // the loop then reports the round's epoch as passed

        // A pass that ended in an exception (the loop restarted) may have left packets queued for
        // recirculation: their recirc ids may name frozen states reclaimed since. Dropped, counted.
        if (f.RecircCount != 0)
        {
            for (int i = 0; i < f.RecircCount; i++)
            {
                state.Drop(f.RecircPkts[i], DropReason.RecircLimit);
            }

            state.Counters->RecircDrops += (ulong)f.RecircCount;
            f.RecircCount = 0;
        }

        // flush-megaflows: this PMD empties its own caches (it is their only writer), between bursts.
        long flushes = f.Shared.CacheFlushes;
        if (flushes != f.CacheFlushes)
        {
            f.CacheFlushes = flushes;
            f.Megaflows.RemoveAll();
            f.Emc.Clear();
        }

        // Aging: 64 entries every 256 rounds (a pass over 200 000 entries takes about a second or
        // two of busy polling), so the sweep stays out of the per-packet cost.
        ulong idle = f.Shared.MegaflowIdleCycles;
        if ((++f.Rounds & 0xFF) == 0 && f.Megaflows.Count != 0)
        {
            if (idle != 0 && now > idle)
            {
                f.Megaflows.Sweep(SweepBudget, now - idle);
            }

            f.Megaflows.RefreshLearning(SweepBudget, f.Learns, now);
        }

        if ((f.Rounds & 0x3FFF) == 0)
        {
            f.Megaflows.Rerank();
        }

        Ipsec.IpsecEngine? ipsec = f.Shared.Ipsec;
        f.IpsecOn = ipsec != null;
        if (ipsec != null)
        {
            // up to two bursts of completions a round (a PMD may submit two bursts a round: one port
            // encrypting, one decrypting); the drop list holds that (PmdState.DropCapacity)
            if (IpsecCompletions(state, ipsec) == FlowPmd.Burst)
            {
                IpsecCompletions(state, ipsec);
            }
        }
    }

    /// <summary>
    /// Runs what the crypto device finished for this PMD: each packet re-enters the caches with the
    /// recirc_id and in_port the ipsec action stamped in it (runs of equal stamps together), as a
    /// recirculated pass.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int IpsecCompletions(PmdState state, Ipsec.IpsecEngine ipsec)
    {
        FlowPmd f = _f;
        Ipsec.IpsecScratch sc = f.IpsecScratch;
        int n = ipsec.Poll(state, sc, out int got);
        if (n == 0)
        {
            return got;
        }

        state.Counters->Recirculations += (ulong)n;
        for (int start = 0; start < n;)
        {
            uint stamp = *(uint*)(sc.Done[start] + Mbuf.RssHashOffset);
            int end = start + 1;
            while (end < n && *(uint*)(sc.Done[end] + Mbuf.RssHashOffset) == stamp && end - start < FlowPmd.Burst)
            {
                end++;
            }

            ushort inPort = (ushort)(stamp >> 8);
            Process(state, sc.Done + start, end - start, inPort, (byte)stamp, null, null, allowWhole: false);
            if (f.RecircCount != 0)
            {
                Recirculate(state, inPort);
            }

            start = end;
        }

        return got;
    }

    public int Handle(PmdState state, in RxQueueRef rx, nint* mbufs, int n)
    {
        ushort inPort = rx.OfPort;
        int whole = Process(state, mbufs, n, inPort, 0, null, null, allowWhole: true);
        if (_f.RecircCount != 0)
        {
            Recirculate(state, inPort);
        }

        return whole;
    }

    /// <summary>
    /// Runs the packets a recirc action queued back through the caches, pass after pass, with their
    /// recirc_id in the key (packets of one id go together); a packet still recirculating after
    /// <see cref="FlowPmd.MaxRecircDepth"/> passes is dropped and counted.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Recirculate(PmdState state, ushort inPort)
    {
        FlowPmd f = _f;
        PmdCounters* c = state.Counters;
        for (int depth = 1; f.RecircCount != 0; depth++)
        {
            int n = f.RecircCount;
            Buffer.MemoryCopy(f.RecircPkts, f.RecircWork, FlowPmd.Burst * sizeof(nint), n * sizeof(nint));
            Buffer.MemoryCopy(f.RecircIds, f.RecircWorkIds, FlowPmd.Burst, n);
            Buffer.MemoryCopy(f.RecircCt, f.RecircWorkCt, FlowPmd.Burst * sizeof(ulong), n * sizeof(ulong));
            if (f.CtTuple)
            {
                Buffer.MemoryCopy(f.RecircExt, f.RecircWorkExt, FlowPmd.Burst * DpKey.CtExtWords * sizeof(ulong), n * DpKey.CtExtWords * sizeof(ulong));
            }

            f.RecircCount = 0;
            if (depth >= FlowPmd.MaxRecircDepth)
            {
                for (int i = 0; i < n; i++)
                {
                    state.Drop(f.RecircWork[i], DropReason.RecircLimit);
                }

                c->RecircDrops += (ulong)n;
                return;
            }

            c->Recirculations += (ulong)n;
            for (int start = 0; start < n;)
            {
                int end = start + 1;
                while (end < n && f.RecircWorkIds[end] == f.RecircWorkIds[start])
                {
                    end++;
                }

                Process(state, f.RecircWork + start, end - start, inPort, f.RecircWorkIds[start], f.RecircWorkCt + start,
                    f.CtTuple ? f.RecircWorkExt + (start * DpKey.CtExtWords) : null, allowWhole: false);
                start = end;
            }
        }
    }

    /// <summary>
    /// One pass of <paramref name="n"/> packets from <paramref name="inPort"/> (recirc_id <paramref name="recircId"/>)
    /// through the caches and actions (<paramref name="cts"/>: the packets' connection-tracking words on a
    /// recirculated pass, null on the first; <paramref name="exts"/>: their connection words, DpKey.CtExtWords
    /// each, on a recirculated pass while the tables match them, else null). With <paramref name="allowWhole"/>,
    /// a pass that is one group with one output returns that output's slot instead of buffering (the loop
    /// sends the burst as is).
    /// </summary>
    private int Process(PmdState state, nint* mbufs, int n, ushort inPort, byte recircId, ulong* cts, ulong* exts, bool allowWhole)
    {
        FlowPmd f = _f;
        PmdCounters* c = state.Counters;
        DpKey* keys = f.Keys;
        int* entryOf = f.EntryOf;
        long version = f.Current.Version;
        long macGen = f.MacGeneration;
        MegaflowCache mfc = f.Megaflows;
        Emc emc = f.Emc;
        int misses = 0;
        int emcHits = 0;

        // 1 + 2: keys, hashes, microflow cache.
        for (int i = 0; i < n; i++)
        {
            nint m = mbufs[i];
            if ((KeyExtractor.Extract(Mbuf.Data(m), Mbuf.DataLen(m), (int)Mbuf.PktLen(m), inPort, keys + i, f.Offsets + i) & ParseFlags.Errors) != 0)
            {
                c->Malformed++;
                state.Drop(m, DropReason.Malformed);
                entryOf[i] = Done;
                continue;
            }

            keys[i].W[FlowKey.CtWord] |= (cts == null ? 0 : cts[i] & ~RecircBits) | ((ulong)recircId << 24);
            if (f.IpsecOn)
            {
                // ipsec_sa travels in the mbuf (the upper half of its hash field) through every pass:
                // 0 from the port, the inbound SA once decrypted (Ipsec/IpsecEngine.cs).
                uint* sa = (uint*)(m + Mbuf.IpsecSaOffset);
                if (recircId == 0)
                {
                    *sa = 0;
                }
                else
                {
                    keys[i].W[3] |= (ulong)(*sa & 0xFFF) << FlowKey.IpsecSaShift;
                }
            }

            if (exts != null)
            {
                // The connection's words: this pass is classified by the megaflow cache alone (DpKey.cs).
                Buffer.MemoryCopy(exts + (i * DpKey.CtExtWords), keys[i].W + DpKey.PacketWords, DpKey.CtExtWords * sizeof(ulong), DpKey.CtExtWords * sizeof(ulong));
                entryOf[i] = Invalid;
                misses++;
                continue;
            }


            // Bursts often carry runs of one flow: a key equal to the previous packet's takes its
            // verdict without hashing or a cache lookup (the previous verdict was checked current).
            if (i > 0 && entryOf[i - 1] >= 0 && SameKey(keys + i, keys + i - 1))
            {
                entryOf[i] = entryOf[i - 1];
                f.Hashes[i] = f.Hashes[i - 1];
                emcHits++;
                continue;
            }

            uint h = KeyExtractor.Hash(keys + i);
            f.Hashes[i] = h;
            EmcEntry* ee = emc.Lookup(keys + i, h);
            if (ee != null)
            {
                MegaflowEntry* me = mfc.Entry(ee->Megaflow);
                if (me->Serial == ee->Serial && me->Subtable >= 0 && me->Version == version
                    && (me->MacGeneration < 0 || me->MacGeneration == macGen))
                {
                    entryOf[i] = ee->Megaflow;
                    emcHits++;
                    continue;
                }
            }

            entryOf[i] = Invalid;
            misses++;
        }

        c->EmcHits += (ulong)emcHits;

        // 3 + 4: megaflow cache, revalidation, upcalls.
        if (misses != 0)
        {
            Miss(state, mbufs, n, version, macGen, emc: exts == null);
        }

        // 5: group by megaflow and run each group's actions. The entry remembers the burst and
        // group it was last put in, so grouping is O(1) per packet whatever the number of flows.
        int groups = 0;
        int* ge = f.GroupEntry;
        int* gs = f.GroupSize;
        byte* members = f.Members;
        uint seq = ++f.BurstSeq == 0 ? ++f.BurstSeq : f.BurstSeq;
        for (int i = 0; i < n; i++)
        {
            int e = entryOf[i];
            if (e < 0)
            {
                continue;
            }

            MegaflowEntry* me = mfc.Entry(e);
            int g;
            if (me->BatchSeq == seq)
            {
                g = me->BatchGroup;
            }
            else
            {
                g = groups++;
                me->BatchSeq = seq;
                me->BatchGroup = (byte)g;
                ge[g] = e;
                gs[g] = 0;
            }

            members[(g * FlowPmd.Burst) + gs[g]++] = (byte)i;
        }

        ulong now = f.RoundTsc;

        if (allowWhole && groups == 1 && gs[0] == n)
        {
            MegaflowEntry* me = mfc.Entry(ge[0]);
            if (me->OpCount == 1 && me->Program->Op == DpOp.Output && me->Program->B == 0) // a truncating output edits the packets
            {
                Account(me, mbufs, n, now);
                return me->Program->A;
            }
        }

        for (int g = 0; g < groups; g++)
        {
            MegaflowEntry* me = mfc.Entry(ge[g]);
            int k = gs[g];
            byte* mem = members + (g * FlowPmd.Burst);
            for (int j = 0; j < k; j++)
            {
                f.GroupPkts[j] = mbufs[mem[j]];
                f.GroupOffs[j] = f.Offsets[mem[j]];
            }

            if (cts != null) // a recirculated pass: the packets carry connection state
            {
                for (int j = 0; j < k; j++)
                {
                    f.GroupCt[j] = keys[mem[j]].W[FlowKey.CtWord] & ~RecircBits;
                }

                if (exts != null)
                {
                    for (int j = 0; j < k; j++)
                    {
                        Buffer.MemoryCopy(keys[mem[j]].W + DpKey.PacketWords, f.GroupExt + (j * DpKey.CtExtWords), DpKey.CtExtWords * sizeof(ulong), DpKey.CtExtWords * sizeof(ulong));
                    }
                }
            }

            Account(me, f.GroupPkts, k, now);
            _exec.Execute(state, me, f.GroupPkts, f.GroupOffs, k, inPort, tracked: cts != null, tupled: exts != null);
        }

        return -1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SameKey(DpKey* a, DpKey* b) => Emc.KeyEquals(a->W, b->W);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Miss(PmdState state, nint* mbufs, int n, long version, long macGen, bool emc)
    {
        FlowPmd f = _f;
        PmdCounters* c = state.Counters;
        MegaflowCache mfc = f.Megaflows;
        int* entryOf = f.EntryOf;
        ulong mfHits = 0;

        // With many flows the megaflow array is far bigger than the caches: a lookup is a bucket
        // miss followed by entry misses. Prefetch every missed packet's bucket, then its entry, so
        // the misses of a burst overlap; the lookups below then mostly hit the cache.
        uint* mh = f.MegaflowHashes;
        for (int i = 0; i < n; i++)
        {
            if (entryOf[i] == Invalid)
            {
                mh[i] = mfc.PrefetchBucket(f.Keys + i);
            }
        }

        for (int i = 0; i < n; i++)
        {
            if (entryOf[i] == Invalid)
            {
                mfc.PrefetchEntry(mh[i]);
            }
        }

        for (int i = 0; i < n; i++)
        {
            if (entryOf[i] != Invalid)
            {
                continue;
            }

            DpKey* key = f.Keys + i;
            int e = mfc.Lookup(key);
            if (e >= 0)
            {
                MegaflowEntry* me = mfc.Entry(e);
                if (me->Version != version || (me->MacGeneration >= 0 && me->MacGeneration != macGen))
                {
                    e = Revalidate(state, e, key);
                }

                if (e >= 0)
                {
                    mfHits++;
                    entryOf[i] = e;
                    if (emc)
                    {
                        f.Emc.MaybeInsert(key, f.Hashes[i], e, me->Serial);
                    }

                    continue;
                }
            }

            ulong t0 = _io.Now();
            Translation t = f.Translation;
            // The generation is read before the tables are: a binding learned meanwhile makes this
            // verdict stale (revalidated), never stamped as current.
            long gen = f.Shared.Macs.Generation;
            if (!TryTranslate(key))
            {
                c->TranslationErrors++;
                state.Drop(mbufs[i], DropReason.TranslationError);
                entryOf[i] = Done;
                continue;
            }


            PostLearns(state, t, t0);
            e = mfc.Install(key, t, version, t.UsesMac ? gen : -1, t0);
            c->Upcalls++;
            if (e == mfc.ScratchIndex)
            {
                // Not installed (cache full): act on this packet now, before the scratch is reused.
                c->MegaflowFull++;
                MegaflowEntry* se = mfc.Entry(e);
                nint m = mbufs[i];
                HeaderOffsets off = f.Offsets[i];
                f.GroupCt[0] = key->W[FlowKey.CtWord] & ~RecircBits;
                if (!emc)
                {
                    Buffer.MemoryCopy(key->W + DpKey.PacketWords, f.GroupExt, DpKey.CtExtWords * sizeof(ulong), DpKey.CtExtWords * sizeof(ulong));
                }

                Account(se, &m, 1, t0);
                _exec.Execute(state, se, &m, &off, 1, (ushort)(key->InPort), tracked: true, tupled: !emc);
                entryOf[i] = Done;
            }
            else
            {
                entryOf[i] = e;
                if (mfc.Entry(e)->MacGeneration >= 0)
                {
                    f.MacGeneration = f.Shared.Macs.Generation;
                }
            }

            c->UpcallCycles += _io.Now() - t0;
        }

        c->MegaflowHits += mfHits;
    }

    /// <summary>
    /// Translates on the PMD. No exception may leave a PMD thread: a translation that throws (a
    /// bug, or a rule set nobody foresaw) is recorded for the control thread to log, and the caller
    /// drops the packet and counts it; the PMD keeps polling.
    /// </summary>
    private bool TryTranslate(DpKey* key)
    {
        FlowPmd f = _f;
        try
        {
            Translator.Translate(f.Current, *key, f.Shared.Macs, f.Translation);
            return true;
        }
        catch (Exception ex)
        {
            f.LastTranslationError = $"{ex.GetType().Name}: {ex.Message} (in_port={key->InPort}) at {ex.StackTrace?.Split('\n').FirstOrDefault()?.Trim()}";
            return false;
        }
    }

    /// <summary>
    /// Re-checks a stale megaflow against the current tables with the packet that hit it; returns it
    /// (updated) or -1 (removed). The packet's own key is translated, not the entry's masked key: a
    /// verdict that needs no bits beyond the entry's mask is the same for every packet it covers, and
    /// NORMAL learns the packet's real source, not a half-blanked one.
    /// </summary>
    private int Revalidate(PmdState state, int e, DpKey* key)
    {
        FlowPmd f = _f;
        MegaflowCache mfc = f.Megaflows;
        MegaflowEntry* me = mfc.Entry(e);
        state.Counters->Revalidations++;
        Translation t = f.Translation;
        long gen = f.Shared.Macs.Generation;
        ulong now = _io.Now();
        if (!TryTranslate(key))
        {
            mfc.Remove(e); // the caller translates again, which fails again: a counted drop
            return -1;
        }

        PostLearns(state, t, now);
        if (!t.Overflow && mfc.Subtable(me->Subtable)->Mask.Covers(t.Wildcards))
        {
            mfc.Update(e, t, f.Current.Version, t.UsesMac ? gen : -1);
            return e;
        }

        mfc.Remove(e);
        return -1;
    }

    /// <summary>Posts the sources a translation's NORMAL saw to the MAC table's writer (a full ring drops and counts).</summary>
    private void PostLearns(PmdState state, Translation t, ulong now)
    {
        for (int i = 0; i < t.LearnCount; i++)
        {
            if (!_f.Learns.TryPut(t.LearnMacs[i], t.LearnVlans[i], t.LearnPorts[i], now))
            {
                state.Counters->LearnDrops++;
            }
        }
    }

    /// <summary>Megaflow and rule counters for <paramref name="k"/> packets (once per group).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Account(MegaflowEntry* me, nint* pkts, int k, ulong stamp)
    {
        ulong bytes = 0;
        for (int j = 0; j < k; j++)
        {
            bytes += Mbuf.PktLen(pkts[j]);
        }

        me->Packets += (ulong)k;
        me->Bytes += bytes;
        me->LastUsed = stamp;
        // the entry's Version is current here, so its rules (and their slots) are alive
        int rc = me->RuleCount;
        for (int r = 0; r < rc; r++)
        {
            RuleCounterSlot* s = (RuleCounterSlot*)me->RuleSlots[r];
            s->Packets += k;
            s->Bytes += (long)bytes;
            s->LastUsedTsc = stamp;
        }
    }
}
