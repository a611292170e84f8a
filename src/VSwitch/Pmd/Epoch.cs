// Epoch.cs - the one quiescence mechanism between the control plane and the PMDs.
//
// A change of anything the PMDs read (flow tables, port plans, shared state) is made in two steps:
// the control plane publishes the new version (one reference store, or a pending plan), then takes
// an epoch E = Advance() and waits with Synchronize(E) -- or hands the teardown to Defer(E, ..) --
// before it frees, stops or reuses what the change replaced.
//
// Each PMD, at the start of every round (a round boundary: it holds nothing from the previous
// round), reads the global epoch FIRST, then takes its pending plan and the current tables, and at
// the end of that prologue stores the epoch it read in its own slot. A slot >= E therefore means
// the PMD read the global counter after E was taken, so it saw every publication made before
// Advance() returned E, and dropped everything older. A PMD whose thread is not running is offline
// (slot = Offline) and never holds a synchronization up; PmdThread puts its slot online before the
// thread starts, so a plan posted in between is waited for.
//
// PMD cost per round: one read of a read-mostly cache line, and a store to the PMD's own cache line
// only when the epoch moved. No lock, no allocation.
using System.Runtime.InteropServices;

namespace VSwitch.Pmd;

public sealed unsafe class Epoch : IDisposable
{
    /// <summary>The slot value of a PMD that is not running: it holds nothing.</summary>
    public const long Offline = long.MaxValue;

    private const int LongsPerLine = 8;
    private readonly long* _mem; // line 0: the global epoch; line 1 + i: slot i
    private readonly int _capacity;
    private int _count;
    private readonly Lock _gate = new();
    private readonly List<(long Epoch, Action Release)> _deferred = [];

    /// <param name="capacity">Most PMDs (slots) that will register.</param>
    public Epoch(int capacity)
    {
        _capacity = Math.Max(1, capacity);
        nuint bytes = (nuint)(_capacity + 1) * LongsPerLine * sizeof(long);
        _mem = (long*)NativeMemory.AlignedAlloc(bytes, 64);
        NativeMemory.Clear(_mem, bytes);
        for (int i = 0; i < _capacity; i++)
        {
            *Slot(i) = Offline;
        }
    }

    /// <summary>The global epoch (PMDs read it with one volatile load).</summary>
    public long* Global => _mem;

    /// <summary>Current global epoch.</summary>
    public long Current => Volatile.Read(ref *_mem);

    /// <summary>Registered slots.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Teardowns waiting for their epoch.</summary>
    public int DeferredCount
    {
        get
        {
            lock (_gate)
            {
                return _deferred.Count;
            }
        }
    }

    /// <summary>Adds a PMD's slot (offline until <see cref="SetOnline"/> or its first round).</summary>
    public int Register()
    {
        lock (_gate)
        {
            if (_count == _capacity)
            {
                throw new VSwitchException($"epoch: more than {_capacity} PMDs registered");
            }

            return _count++;
        }
    }

    /// <summary>Slot <paramref name="index"/>: the epoch its PMD last passed a round boundary in.</summary>
    public long* Slot(int index) => _mem + (index + 1) * LongsPerLine;

    /// <summary>Control side, before a PMD thread starts: from now on, synchronizations wait for it.</summary>
    public void SetOnline(int index) => Volatile.Write(ref *Slot(index), Current);

    /// <summary>A PMD that stopped polling: it holds nothing any more.</summary>
    public void SetOffline(int index) => Volatile.Write(ref *Slot(index), Offline);

    /// <summary>Ends the current epoch: returns the epoch every PMD must reach to have seen what was published before the call.</summary>
    public long Advance() => Interlocked.Increment(ref *_mem);

    /// <summary>True when every registered PMD is offline or has passed a round boundary in epoch <paramref name="epoch"/> or later.</summary>
    public bool Passed(long epoch)
    {
        int n = Count;
        for (int i = 0; i < n; i++)
        {
            if (Volatile.Read(ref *Slot(i)) < epoch)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The slots still short of <paramref name="epoch"/>.</summary>
    public List<int> Lagging(long epoch)
    {
        var late = new List<int>();
        for (int i = 0; i < Count; i++)
        {
            if (Volatile.Read(ref *Slot(i)) < epoch)
            {
                late.Add(i);
            }
        }

        return late;
    }

    /// <summary>
    /// Waits until every PMD passed <paramref name="epoch"/>; false after <paramref name="timeout"/>.
    /// Allocates nothing while it waits (a GC here would wait for the PMDs too). Runs the deferred
    /// teardowns that became due.
    /// </summary>
    public bool Synchronize(long epoch, TimeSpan timeout)
    {
        long start = Environment.TickCount64;
        long limit = (long)timeout.TotalMilliseconds;
        int spins = 0;
        while (!Passed(epoch))
        {
            if (Environment.TickCount64 - start > limit)
            {
                return false;
            }

            // A busy PMD passes a boundary every few microseconds: yield first, sleep only if it is slow.
            if (++spins < 1000)
            {
                Thread.Sleep(0);
            }
            else
            {
                Thread.Sleep(1);
            }
        }

        RunDeferred();
        return true;
    }

    /// <summary>Publish-and-wait in one: <see cref="Advance"/>, then <see cref="Synchronize(long, TimeSpan)"/>.</summary>
    public bool Synchronize(TimeSpan timeout) => Synchronize(Advance(), timeout);

    /// <summary>Runs <paramref name="release"/> once every PMD passed <paramref name="epoch"/> (now, if they have).</summary>
    public void Defer(long epoch, Action release)
    {
        if (Passed(epoch))
        {
            release();
            return;
        }

        lock (_gate)
        {
            _deferred.Add((epoch, release));
        }
    }

    /// <summary>Runs every deferred teardown whose epoch every PMD has passed; returns how many ran.</summary>
    public int RunDeferred()
    {
        List<Action>? due = null;
        lock (_gate)
        {
            for (int i = _deferred.Count - 1; i >= 0; i--)
            {
                if (Passed(_deferred[i].Epoch))
                {
                    (due ??= []).Add(_deferred[i].Release);
                    _deferred.RemoveAt(i);
                }
            }
        }

        if (due == null)
        {
            return 0;
        }

        for (int i = due.Count - 1; i >= 0; i--)
        {
            due[i]();
        }

        return due.Count;
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(_mem);
        GC.SuppressFinalize(this);
    }
}
