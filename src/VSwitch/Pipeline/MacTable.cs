// MacTable.cs - the NORMAL action's learning table: (MAC, VLAN) -> port, with aging.
//
// One writer (MacLearner, fed by the PMDs' learn rings; aging and port removal also go through the
// control thread that runs it) and many lock-free readers (PMD upcalls): a fixed array of slots,
// open addressing over a short probe window, each slot's key and port written as separate words
// with the key last. A reader that races the writer can see a stale port for one upcall, which a
// learning switch tolerates (the megaflow it installs carries the generation read before, so it is
// revalidated); it never sees a torn key. Any change of a binding (new MAC, moved MAC, aged-out MAC)
// bumps Generation, which invalidates the megaflows that NORMAL compiled, so cached verdicts follow
// the table; refreshing a known binding does not.
namespace VSwitch.Pipeline;

public sealed class MacTable
{
    private const int Probe = 8;
    private const ulong Valid = 1UL << 63;
    private readonly ulong[] _keys;
    private readonly int[] _ports;
    private readonly ulong[] _seen;
    private readonly int _mask;
    private long _generation;

    public MacTable(int capacity = 8192)
    {
        int size = 1;
        while (size < capacity)
        {
            size <<= 1;
        }

        _keys = new ulong[size];
        _ports = new int[size];
        _seen = new ulong[size];
        _mask = size - 1;
    }

    /// <summary>Bumped on every change of a binding.</summary>
    public long Generation => Volatile.Read(ref _generation);

    private static ulong Key(ulong mac, int vlan) => mac | ((ulong)(vlan & 0xFFF) << 48) | Valid;

    private int Home(ulong key)
    {
        ulong h = key * 0x9E3779B97F4A7C15UL;
        return (int)(h >> 40) & _mask;
    }

    /// <summary>The port (OpenFlow number) <paramref name="mac"/> was last seen on in <paramref name="vlan"/>, or -1.</summary>
    public int Lookup(ulong mac, int vlan)
    {
        ulong k = Key(mac, vlan);
        int h = Home(k);
        for (int i = 0; i < Probe; i++)
        {
            int s = (h + i) & _mask;
            if (Volatile.Read(ref _keys[s]) == k)
            {
                int port = Volatile.Read(ref _ports[s]);
                return Volatile.Read(ref _keys[s]) == k ? port : -1;
            }
        }

        return -1;
    }

    /// <summary>Records that <paramref name="mac"/> in <paramref name="vlan"/> is behind <paramref name="port"/>.</summary>
    public void Learn(ulong mac, int vlan, int port, ulong now)
    {
        if ((mac & 0x0100_0000_0000UL) != 0)
        {
            return; // multicast/broadcast sources are not learned
        }

        ulong k = Key(mac, vlan);
        int h = Home(k);
        int victim = -1;
        ulong oldest = ulong.MaxValue;
        for (int i = 0; i < Probe; i++)
        {
            int s = (h + i) & _mask;
            ulong cur = Volatile.Read(ref _keys[s]);
            if (cur == k)
            {
                _seen[s] = now;
                if (Volatile.Read(ref _ports[s]) != port)
                {
                    Volatile.Write(ref _keys[s], 0);
                    Volatile.Write(ref _ports[s], port);
                    Volatile.Write(ref _keys[s], k);
                    Interlocked.Increment(ref _generation);
                }

                return;
            }

            if (cur == 0)
            {
                victim = s;
                oldest = 0;
            }
            else if (victim < 0 || (oldest != 0 && _seen[s] < oldest))
            {
                victim = s;
                oldest = _seen[s];
            }
        }

        Volatile.Write(ref _keys[victim], 0);
        Volatile.Write(ref _ports[victim], port);
        _seen[victim] = now;
        Volatile.Write(ref _keys[victim], k);
        Interlocked.Increment(ref _generation);
    }

    /// <summary>Forgets bindings not refreshed since <paramref name="olderThan"/>; returns how many.</summary>
    public int Age(ulong olderThan)
    {
        int n = 0;
        for (int s = 0; s <= _mask; s++)
        {
            if (_keys[s] != 0 && _seen[s] < olderThan)
            {
                Volatile.Write(ref _keys[s], 0);
                n++;
            }
        }

        if (n != 0)
        {
            Interlocked.Increment(ref _generation);
        }

        return n;
    }

    /// <summary>Forgets every binding on <paramref name="port"/> (the port was removed), or every binding (-1); returns how many.</summary>
    public int Flush(int port = -1)
    {
        int n = 0;
        for (int s = 0; s <= _mask; s++)
        {
            if (_keys[s] != 0 && (port < 0 || _ports[s] == port))
            {
                Volatile.Write(ref _keys[s], 0);
                n++;
            }
        }

        Interlocked.Increment(ref _generation);
        return n;
    }

    /// <summary>One binding as fdb-show lists it.</summary>
    public readonly record struct Binding(ulong Mac, int Vlan, int Port, ulong SeenTsc);

    /// <summary>
    /// The bindings now in the table (a reader like the PMDs: a slot the writer changes meanwhile is
    /// read again or left out, never torn). For fdb-show; off the PMD path.
    /// </summary>
    public List<Binding> Entries()
    {
        var list = new List<Binding>();
        for (int s = 0; s <= _mask; s++)
        {
            ulong k = Volatile.Read(ref _keys[s]);
            if (k == 0)
            {
                continue;
            }

            int port = Volatile.Read(ref _ports[s]);
            ulong seen = Volatile.Read(ref _seen[s]);
            if (Volatile.Read(ref _keys[s]) == k)
            {
                list.Add(new Binding(k & 0xFFFF_FFFF_FFFFUL, (int)((k >> 48) & 0xFFF), port, seen));
            }
        }

        return list;
    }
}
