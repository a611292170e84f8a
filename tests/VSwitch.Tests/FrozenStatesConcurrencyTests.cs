// FrozenStatesConcurrencyTests.cs - the reclaiming of ct(table=N)'s recirculation ids under
// concurrency: worker threads stand in for PMDs (rounds with a boundary between them; a per-worker
// cache of ids stands in for their megaflows, emptied at the first boundary after a flush request,
// used without touching the slot, as a megaflow hit does), a reclaimer thread runs the housekeeping
// ticks with an epoch made of the workers' round counts. What must hold: an id a worker holds always
// names the state it was interned for (never marked, freed or reused under it), and ids do get
// reclaimed and reused.
using VSwitch.Packets;
using VSwitch.Pipeline;
using Xunit;

namespace VSwitch.Tests;

public sealed class FrozenStatesConcurrencyTests
{
    [Fact]
    public void Ids_a_worker_still_caches_are_never_reclaimed_while_unused_ones_are()
    {
        using var frozen = new FrozenStates();
        const int Workers = 2, States = 200; // more distinct states than ids: reclaiming must make room
        long[] rounds = new long[Workers];
        long flushes = 0, epochs = 0, interned = 0;
        var snapshots = new System.Collections.Concurrent.ConcurrentDictionary<long, long[]>();
        string? failure = null;
        bool stop = false;

        void Worker(int w)
        {
            var rng = new Random(w + 1);
            var cache = new Dictionary<int, int>();
            long seen = 0;
            while (!Volatile.Read(ref stop) && failure == null)
            {
                long f = Volatile.Read(ref flushes);
                if (f != seen)
                {
                    seen = f;
                    cache.Clear(); // a PMD empties its caches at the round boundary
                }

                for (int op = 0; op < 64; op++)
                {
                    int state = rng.Next(w * (States / 4), (w * (States / 4)) + (States * 3 / 4)); // overlapping ranges
                    if (cache.TryGetValue(state, out int id))
                    {
                        if (!frozen.Peek(id, out long table, out ulong reg) || table != 1 || reg != (ulong)state << 32)
                        {
                            failure = $"worker {w}: cached id {id} for state {state} now reads table {table}, reg0 {reg >> 32}";
                            return;
                        }

                        continue;
                    }

                    FlowKey key = default;
                    key.Reg0 = (uint)state;
                    id = frozen.Intern(1, key);
                    if (id < 0)
                    {
                        continue; // every id taken for now
                    }

                    FlowKey back = default;
                    if (frozen.Resume(id, ref back) != 1 || back.Reg0 != (uint)state)
                    {
                        failure = $"worker {w}: id {id} interned for state {state} resumes with reg0 {back.Reg0}";
                        return;
                    }

                    cache[state] = id;
                    Interlocked.Increment(ref interned);
                }

                Volatile.Write(ref rounds[w], rounds[w] + 1); // the round boundary
            }
        }

        var threads = Enumerable.Range(0, Workers).Select(w => new Thread(() => Worker(w))).ToList();
        threads.ForEach(t => t.Start());
        long reclaimed = 0;
        var deadline = DateTime.UtcNow.AddSeconds(3);
        while (DateTime.UtcNow < deadline && failure == null)
        {
            reclaimed += frozen.Reclaim(
                () => Interlocked.Increment(ref flushes),
                () =>
                {
                    long e = Interlocked.Increment(ref epochs);
                    snapshots[e] = [.. rounds.Select(r => Volatile.Read(ref r))];
                    return e;
                },
                e => Enumerable.Range(0, Workers).All(w => Volatile.Read(ref rounds[w]) > snapshots[e][w]));
        }

        Volatile.Write(ref stop, true);
        threads.ForEach(t => t.Join());
        Assert.Null(failure);
        Assert.True(frozen.Reclaims >= 3 && reclaimed > 100, $"{frozen.Reclaims} reclaims freed {reclaimed} ids; {interned} interned");
    }

    [Fact]
    public void Reclaims_that_free_little_back_off_and_none_runs_while_a_trace_holds_the_gate()
    {
        using var frozen = new FrozenStates();
        void InternAll()
        {
            for (int i = 0; i < 100; i++)
            {
                FlowKey key = default;
                key.Reg0 = (uint)i;
                Assert.True(frozen.Intern(1, key) >= 0);
            }
        }

        InternAll();
        int flushes = 0;
        long epoch = 0;
        for (int tick = 0; tick < 200; tick++)
        {
            InternAll(); // every state stays in use: nothing to free
            Assert.Equal(0, frozen.Reclaim(() => flushes++, () => ++epoch, _ => true));
        }

        // Intervals of 5, 10, 20, 40, 80 ticks (each reclaim takes 3): without the back-off, 25 flushes.
        Assert.InRange(flushes, 3, 6);

        // A trace holds the gate on another thread: no step runs, so nothing is flushed or marked.
        using var held = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var tracer = new Thread(() =>
        {
            using (frozen.Gate.EnterScope())
            {
                held.Set();
                release.Wait();
            }
        });
        tracer.Start();
        held.Wait();
        int before = flushes;
        for (int tick = 0; tick < 400; tick++)
        {
            Assert.Equal(0, frozen.Reclaim(() => flushes++, () => ++epoch, _ => true));
        }

        Assert.Equal(before, flushes);
        Assert.Equal(100, frozen.Count);
        release.Set();
        tracer.Join();
    }
}
