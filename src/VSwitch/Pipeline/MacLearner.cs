// MacLearner.cs - the MAC table's single writer and the rings PMDs post learn events to.
//
// NORMAL runs on PMD threads (upcalls and revalidation) but never writes the MAC table: it records
// "source MAC m in VLAN v is behind port p" in its translation, and the PMD posts that to its own
// bounded single-producer ring (full: dropped and counted, never waits). One writer (vswitchd's
// learner thread, or a test calling Drain) takes every ring's events and applies them, so two PMDs
// can never overwrite each other's slot, and the table's generation moves only when a binding
// really changes (a new MAC, a moved MAC; a refresh of a known binding only updates last-seen).
// PMDs also re-post the sources of megaflows that keep being hit (MegaflowCache.RefreshLearning),
// so a host whose traffic only takes cached verdicts is not aged out.
using System.Runtime.InteropServices;

namespace VSwitch.Pipeline;

/// <summary>One learn event: a source MAC seen in a VLAN on a port, at a TSC time.</summary>
[StructLayout(LayoutKind.Sequential, Size = 24)]
public struct LearnEvent
{
    public ulong Mac;
    public ulong Tsc;
    public ushort Vlan;
    public ushort Port;
}

/// <summary>A PMD's bounded single-producer/single-consumer ring of learn events.</summary>
public sealed unsafe class LearnRing : IDisposable
{
    private readonly LearnEvent* _slots;
    private readonly long _mask;
    private long _head;
    private long _tail;

    public LearnRing(int capacity = 4096)
    {
        uint size = System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, capacity));
        _mask = size - 1;
        _slots = (LearnEvent*)NativeMemory.AllocZeroed(size, (nuint)sizeof(LearnEvent));
    }

    /// <summary>Producer (the PMD): false when the ring is full.</summary>
    public bool TryPut(ulong mac, int vlan, int port, ulong tsc)
    {
        long head = _head;
        if (head - Volatile.Read(ref _tail) > _mask)
        {
            return false;
        }

        LearnEvent* e = _slots + (head & _mask);
        e->Mac = mac;
        e->Vlan = (ushort)vlan;
        e->Port = (ushort)port;
        e->Tsc = tsc;
        Volatile.Write(ref _head, head + 1);
        return true;
    }

    /// <summary>Consumer (the learner): applies every event now in the ring to <paramref name="macs"/>; returns how many.</summary>
    public int DrainInto(MacTable macs)
    {
        long head = Volatile.Read(ref _head);
        long tail = _tail;
        int n = 0;
        for (; tail < head; tail++, n++)
        {
            LearnEvent e = _slots[tail & _mask];
            macs.Learn(e.Mac, e.Vlan, e.Port, e.Tsc);
        }

        Volatile.Write(ref _tail, tail);
        return n;
    }

    public void Dispose()
    {
        NativeMemory.Free(_slots);
        GC.SuppressFinalize(this);
    }
}

/// <summary>The MAC table's one writer: drains the PMDs' learn rings.</summary>
public sealed class MacLearner
{
    private readonly object _lock = new();
    private LearnRing[] _rings = [];

    public MacLearner(MacTable macs) => Macs = macs;

    public MacTable Macs { get; }

    /// <summary>Events applied so far.</summary>
    public long Applied { get; private set; }

    /// <summary>Adds a PMD's ring (control thread, before or while the learner runs).</summary>
    public void Register(LearnRing ring)
    {
        lock (_lock)
        {
            _rings = [.. _rings, ring];
        }
    }

    public void Unregister(LearnRing ring)
    {
        lock (_lock)
        {
            _rings = [.. _rings.Where(r => r != ring)];
        }
    }

    /// <summary>Applies every pending event of every ring (the single writer: one caller at a time).</summary>
    public int Drain()
    {
        lock (_lock)
        {
            int n = 0;
            foreach (var r in _rings)
            {
                n += r.DrainInto(Macs);
            }

            Applied += n;
            return n;
        }
    }

    /// <summary>Ages out bindings not refreshed since <paramref name="olderThan"/> (under the writer's lock).</summary>
    public int Age(ulong olderThan)
    {
        lock (_lock)
        {
            return Macs.Age(olderThan);
        }
    }

    /// <summary>Forgets the bindings on <paramref name="port"/>, or all of them (-1; fdb-flush), under the writer's lock; returns how many.</summary>
    public int Flush(int port)
    {
        lock (_lock)
        {
            return Macs.Flush(port);
        }
    }

    /// <summary>
    /// Runs the writer on its own thread until <paramref name="stop"/> is cancelled: a drain every
    /// <paramref name="periodMs"/> ms (a newly seen host is learned within about that; until then its
    /// replies flood, as in any learning switch).
    /// </summary>
    public Thread Start(CancellationToken stop, int periodMs = 1)
    {
        var t = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                Drain();
                stop.WaitHandle.WaitOne(periodMs);
            }

            Drain();
        })
        { IsBackground = true, Name = "mac-learner" };
        t.Start();
        return t;
    }
}
