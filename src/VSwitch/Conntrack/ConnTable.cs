// ConnTable.cs - the connection table: tracked connections in native memory, looked up and created
// by the PMDs' ct actions without locks, expired by one sweeper on the control thread.
//
// Shape (all native, sized once at start-up; nothing here allocates after the constructor):
//   - a pool of ConnEntry (256 bytes each); an entry holds the connection's two tuples: Orig, as its
//     first packet came, and Reply, the tuple its replies carry (the reverse of Orig after NAT);
//   - a hash table of buckets holding the first node of a chain; a node is (entry << 1 | direction),
//     each entry being on two chains (its Orig and its Reply tuple), linked through NextOrig/NextReply;
//   - a bounded MPMC queue of free entry indexes (Vyukov's: a sequence number per cell, no ABA).
// Writers, and why no lock is needed:
//   - a PMD creates a connection: it takes a free entry, fills it completely (state Creating, which
//     lookups and the sweeper pass over), links its two nodes at their buckets' heads with a CAS each,
//     then takes a ticket (a global counter) and looks along both chains for a twin: a node with an
//     equal tuple whose entry is Live or Creating and has a lower ticket. Found, it yields (Dead, never
//     live) and uses that connection (the same connection, created by another PMD at the same time,
//     possibly from its other direction) or picks another NAT port; otherwise it becomes Live. Linking
//     before taking the ticket makes the tickets agree with what each creator can see: of two twins,
//     the one with the higher ticket took it after the other linked, so it finds the other and yields;
//   - a connection's per-direction state (TCP half, seen bits, counters, last-seen time) is written
//     only by the packets of that direction (TcpTracker's design): two PMDs may track one connection;
//   - only the sweeper (control thread) unlinks nodes and returns entries to the free queue, and only
//     after every PMD has passed an epoch taken after the unlink (Pmd/Epoch.cs), so a PMD walking a
//     chain never reads a reused entry.
// Limits: a global one (the pool) and one per zone; a commit over a limit is refused (the packet is
// +inv, counted) and never evicts a connection.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VSwitch.Packets;

namespace VSwitch.Conntrack;

/// <summary>ct_state bits (Open vSwitch's).</summary>
public static class CtState
{
    public const ulong New = 0x01, Est = 0x02, Rel = 0x04, Rpl = 0x08, Inv = 0x10, Trk = 0x20, Snat = 0x40, Dnat = 0x80;
}

/// <summary>
/// A connection's tuple in one direction (ConnTuple: addresses, ports or echo id, protocol) with its
/// zone: the connection table's key, 48 bytes (six words compared, CRC32C seeded by the zone).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
public unsafe struct CtTuple : IEquatable<CtTuple>
{
    /// <summary>The 5-tuple.</summary>
    [FieldOffset(0)]
    public ConnTuple T;

    /// <summary>The conntrack zone.</summary>
    [FieldOffset(40)]
    public ushort Zone;

    public CtTuple(in ConnTuple t, ushort zone)
    {
        T = t;
        Zone = zone;
    }

    /// <summary>ICMP/ICMPv6 echo (the id is both ports).</summary>
    public readonly bool IsIcmp => T.Protocol is KeyExtractor.ProtoIcmp or KeyExtractor.ProtoIcmpv6;

    /// <summary>The tuple of the other direction, same zone.</summary>
    public readonly CtTuple Reverse() => new(T.Reverse(), Zone);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool Equals(CtTuple o)
    {
        fixed (CtTuple* a = &this)
        {
            ulong* x = (ulong*)a, y = (ulong*)&o;
            return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4]) | (x[5] ^ y[5])) == 0;
        }
    }

    public override readonly bool Equals(object? obj) => obj is CtTuple t && Equals(t);

    public override readonly int GetHashCode() => (int)Hash();

    /// <summary>The tuple's CRC32C seeded with the zone.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly uint Hash() => ConnTuple.Hash(T, 0x9E3779B9u ^ Zone);

    public override readonly string ToString() => IsIcmp
        ? $"src={Addr(T.Family, T.SrcHi, T.SrcLo)},dst={Addr(T.Family, T.DstHi, T.DstLo)},id={T.SrcPort},type={T.IcmpType}"
        : T.Protocol is KeyExtractor.ProtoTcp or KeyExtractor.ProtoUdp or KeyExtractor.ProtoSctp
            ? $"src={Addr(T.Family, T.SrcHi, T.SrcLo)},dst={Addr(T.Family, T.DstHi, T.DstLo)},sport={T.SrcPort},dport={T.DstPort}"
            : $"src={Addr(T.Family, T.SrcHi, T.SrcLo)},dst={Addr(T.Family, T.DstHi, T.DstLo)},proto={T.Protocol}";

    /// <summary>An address of a tuple as text.</summary>
    public static string Addr(byte family, ulong hi, ulong lo)
    {
        if (family == ConnTuple.V4)
        {
            return new System.Net.IPAddress(BinaryPrimitives.ReverseEndianness((uint)lo)).ToString();
        }

        Span<byte> b = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(b, hi);
        BinaryPrimitives.WriteUInt64BigEndian(b[8..], lo);
        return new System.Net.IPAddress(b).ToString();
    }
}

/// <summary>One tracked connection (native; see the file comment for who writes what).</summary>
[StructLayout(LayoutKind.Sequential, Size = 256)]
public struct ConnEntry
{
    /// <summary>The tuple of the first packet (before NAT).</summary>
    public CtTuple Orig;

    /// <summary>The tuple replies carry: the reverse of Orig after NAT.</summary>
    public CtTuple Reply;

    /// <summary>Chain links of the entry's two nodes (-1: end).</summary>
    public int NextOrig, NextReply;

    /// <summary><see cref="ConnTable.Free"/>, <see cref="ConnTable.Live"/>, <see cref="ConnTable.Dead"/> (linked, waiting for the sweeper) or <see cref="ConnTable.Retired"/> (unlinked, waiting for an epoch).</summary>
    public int State;

    /// <summary>ct_mark.</summary>
    public uint Mark;

    /// <summary>ct_label.</summary>
    public ulong LabelHi, LabelLo;

    /// <summary>TCP: both sides' halves.</summary>
    public TcpConn Tcp;

    /// <summary>Last packet of each direction (TSC), written by that direction.</summary>
    public ulong LastOrig, LastReply;

    /// <summary>Packets and bytes of each direction, written by that direction.</summary>
    public ulong PacketsOrig, BytesOrig, PacketsReply, BytesReply;

    /// <summary>Creation time (TSC).</summary>
    public ulong Created;

    /// <summary>The creation ticket: of two twins created at once the lower one stays (0: not yet taken).</summary>
    public ulong Ticket;

    /// <summary>Non-TCP: what each side sent (UdpIcmpTracker; each side's byte written by that direction).</summary>
    public DatagramConn Dgram;

    /// <summary>CtState.Snat / CtState.Dnat: the NAT the connection applies.</summary>
    public byte Nat;
}

/// <summary>Timeouts by zone (see <see cref="ConnTable.Timeouts"/>): never changed once built.</summary>
public sealed class TimeoutPolicies
{
    /// <summary>Linux's defaults for every zone.</summary>
    public static readonly TimeoutPolicies Defaults = new([.. TcpTracker.DefaultTimeoutSeconds, .. UdpIcmpTracker.DefaultTimeoutSeconds], new Dictionary<int, int[]>());

    private readonly int[][] _seconds;
    private readonly int[]? _zoneIndex;

    /// <param name="defaults">seconds per timeout name for zones without a policy</param>
    /// <param name="zones">zones with their own (every name's seconds)</param>
    public TimeoutPolicies(int[] defaults, IReadOnlyDictionary<int, int[]> zones)
    {
        var all = new List<int[]> { defaults };
        if (zones.Count != 0)
        {
            _zoneIndex = new int[65536];
            foreach (var (z, secs) in zones)
            {
                _zoneIndex[z] = all.Count;
                all.Add(secs);
            }
        }

        _seconds = [.. all];
    }

    /// <summary>The seconds per timeout name in force for <paramref name="zone"/>.</summary>
    public int[] For(ushort zone) => _zoneIndex == null ? _seconds[0] : _seconds[_zoneIndex[zone]];
}

/// <summary>What the sweeper and the dump report of one connection.</summary>
public readonly record struct ConnInfo(CtTuple Orig, CtTuple Reply, string Protocol, string State, byte Nat, uint Mark, UInt128 Label,
    double SecondsLeft, ulong PacketsOrig, ulong BytesOrig, ulong PacketsReply, ulong BytesReply);

/// <summary>The connection table (see the file comment).</summary>
public sealed unsafe partial class ConnTable : IDisposable
{
    public const int Free = 0, Live = 1, Dead = 2, Retired = 3, Creating = 4;

    /// <summary>Most connections by default (264 bytes each with their buckets: 66 MB).</summary>
    public const int DefaultCapacity = 1 << 18;

    private readonly ConnEntry* _entries;
    private readonly int* _buckets;
    private readonly uint _bucketMask;
    private readonly FreeQueue _free;
    private readonly int* _zoneCounts;
    private readonly int* _zoneLimits;
    private long _count;
    private bool _disposed;

    /// <summary>Entries unlinked by the sweeper, waiting for an epoch before going back to the free queue.</summary>
    private readonly List<(long Epoch, int[] Entries)> _retired = [];

    public ConnTable(int capacity, ulong tscHz)
    {
        if (capacity < 16 || capacity > (1 << 26))
        {
            throw new ArgumentOutOfRangeException(nameof(capacity), $"conntrack size {capacity}: expected 16 to {1 << 26}");
        }

        Capacity = capacity;
        TscHz = tscHz == 0 ? 1 : tscHz;
        _entries = (ConnEntry*)HugeAlloc((nuint)capacity * (nuint)sizeof(ConnEntry));
        NativeMemory.Clear(_entries, (nuint)capacity * (nuint)sizeof(ConnEntry));
        int buckets = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)capacity * 2);
        _bucketMask = (uint)buckets - 1;
        _buckets = (int*)HugeAlloc((nuint)buckets * sizeof(int));
        new Span<int>(_buckets, buckets).Fill(-1);
        _free = new FreeQueue(capacity);
        for (int i = 0; i < capacity; i++)
        {
            _free.TryPush(i);
        }

        _zoneCounts = (int*)NativeMemory.AllocZeroed(65536 * sizeof(int));
        _zoneLimits = (int*)NativeMemory.AllocZeroed(65536 * sizeof(int));
        BucketCount = buckets;
    }

    /// <summary>
    /// Native memory for the pool and the buckets, 2 MiB aligned and marked for transparent huge pages
    /// (madvise: this machine's default is "madvise"): a lookup touches a random bucket and a random
    /// entry, and with 4 KiB pages each would also miss the TLB.
    /// </summary>
    private static void* HugeAlloc(nuint bytes)
    {
        const nuint Huge = 2 << 20;
        nuint size = (bytes + Huge - 1) & ~(Huge - 1);
        void* p = NativeMemory.AlignedAlloc(size, Huge);
        _ = madvise(p, size, 14); // MADV_HUGEPAGE; a kernel without THP refuses, and 4 KiB pages serve
        return p;
    }

    [LibraryImport("libc", SetLastError = false)]
    private static partial int madvise(void* addr, nuint length, int advice);

    /// <summary>Most connections (the pool).</summary>
    public int Capacity { get; }

    public int BucketCount { get; }

    public ulong TscHz { get; }

    /// <summary>Native bytes per connection: the entry and its share of the buckets.</summary>
    public int BytesPerConnection => sizeof(ConnEntry) + (BucketCount * sizeof(int) / Capacity);

    /// <summary>Connections in the table (live, not yet swept).</summary>
    public long Count => Volatile.Read(ref _count);

    /// <summary>
    /// The timeouts in force (seconds, CtSettings.TimeoutNames order: the TCP classes, then the
    /// others): <see cref="TimeoutPolicies.Seconds"/>[0] for every zone without a policy of its own,
    /// ZoneIndex[zone] for those with one. Replaced whole (ct-set-timeouts), read by the sweeper and
    /// the dump, never by a PMD.
    /// </summary>
    public TimeoutPolicies Timeouts { get => Volatile.Read(ref _timeouts); set => Volatile.Write(ref _timeouts, value); }

    private TimeoutPolicies _timeouts = TimeoutPolicies.Defaults;

    /// <summary>Commits refused because the table or the zone was full.</summary>
    public long Refused => Volatile.Read(ref _refused);

    private long _refused;

    /// <summary>The limit of zones without their own (0: none but the table's).</summary>
    public int DefaultZoneLimit { get; set; }

    /// <summary>The limit of <paramref name="zone"/> (0: <see cref="DefaultZoneLimit"/>).</summary>
    public int ZoneLimit(ushort zone) => Volatile.Read(ref _zoneLimits[zone]);

    public void SetZoneLimit(ushort zone, int limit) => Volatile.Write(ref _zoneLimits[zone], Math.Max(0, limit));

    /// <summary>Connections in <paramref name="zone"/>.</summary>
    public int ZoneCount(ushort zone) => Volatile.Read(ref _zoneCounts[zone]);

    /// <summary>The entry <paramref name="i"/> (tests, dumps).</summary>
    public ConnEntry* Entry(int i) => _entries + i;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref int Link(int node) => ref (node & 1) == 0 ? ref _entries[node >> 1].NextOrig : ref _entries[node >> 1].NextReply;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref CtTuple TupleOf(int node) => ref (node & 1) == 0 ? ref _entries[node >> 1].Orig : ref _entries[node >> 1].Reply;

    /// <summary>The live node whose tuple is <paramref name="t"/> (-1: none).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(in CtTuple t, uint hash)
    {
        int node = Volatile.Read(ref _buckets[hash & _bucketMask]);
        while (node >= 0)
        {
            ConnEntry* e = _entries + (node >> 1);
            if (Volatile.Read(ref e->State) == Live && TupleOf(node).Equals(t))
            {
                return node;
            }

            node = Volatile.Read(ref Link(node));
        }

        return -1;
    }

    /// <summary>
    /// Control plane (trace): the connection words (DpKey.cs) of the live connection one of whose
    /// directions is <paramref name="t"/>, written to <paramref name="ext"/>; false when there is none.
    /// A read of entries the PMDs may be writing: good enough to explain a packet, not to act on.
    /// </summary>
    public bool TryTupleWords(in CtTuple t, ulong* ext)
    {
        int node = Find(t, t.Hash());
        if (node < 0)
        {
            return false;
        }

        ConnEntry* e = _entries + (node >> 1);
        WriteTupleWords(ext, e->Orig.T, e->LabelHi, e->LabelLo);
        return true;
    }

    /// <summary>Links <paramref name="node"/> at the head of its bucket.</summary>
    private void Insert(int node, uint hash)
    {
        ref int head = ref _buckets[hash & _bucketMask];
        while (true)
        {
            int h = Volatile.Read(ref head);
            Volatile.Write(ref Link(node), h);
            if (Interlocked.CompareExchange(ref head, node, h) == h)
            {
                return;
            }
        }
    }

    /// <summary>
    /// A node of another entry, Live or Creating, with <paramref name="node"/>'s tuple and a ticket below
    /// <paramref name="ticket"/> (anywhere on the chain), or -1.
    /// </summary>
    private int Twin(int node, uint hash, ulong ticket)
    {
        ref CtTuple t = ref TupleOf(node);
        int n = Volatile.Read(ref _buckets[hash & _bucketMask]);
        while (n >= 0)
        {
            ConnEntry* o = _entries + (n >> 1);
            if ((n >> 1) != (node >> 1) && Volatile.Read(ref o->State) is Live or Creating && TupleOf(n).Equals(t))
            {
                ulong ot = Volatile.Read(ref o->Ticket);
                if (ot != 0 && ot < ticket)
                {
                    return n;
                }
            }

            n = Volatile.Read(ref Link(n));
        }

        return -1;
    }

    /// <summary>
    /// Stores a new connection built in <paramref name="entry"/> (tuples, trackers, NAT, mark, counters:
    /// complete before anything can see it). Returns the entry's orig node; the node of an equal
    /// connection another PMD stored at the same time, for this packet's tuple; -1 when a limit refused
    /// it; or -2 when the reply tuple is another connection's (the caller picks another NAT port).
    /// </summary>
    internal int Create(in ConnEntry entry, uint origHash, uint replyHash, out bool created)
    {
        created = false;
        ushort zone = entry.Orig.Zone;
        int zl = _zoneLimits[zone];
        zl = zl != 0 ? zl : DefaultZoneLimit;
        if (Interlocked.Increment(ref _zoneCounts[zone]) > zl && zl != 0)
        {
            Interlocked.Decrement(ref _zoneCounts[zone]);
            Interlocked.Increment(ref _refused);
            return -1;
        }

        if (!_free.TryPop(out int i))
        {
            Interlocked.Decrement(ref _zoneCounts[zone]);
            Interlocked.Increment(ref _refused);
            return -1;
        }

        Interlocked.Increment(ref _count);
        ConnEntry* e = _entries + i;
        *e = entry;
        e->Ticket = 0;
        e->State = Creating; // published by the CAS of the first insert
        int on = i << 1, rn = (i << 1) | 1;
        Insert(on, origHash);
        Insert(rn, replyHash);
        ulong ticket = (ulong)Interlocked.Increment(ref _tickets);
        Volatile.Write(ref e->Ticket, ticket);
        int twin = Twin(on, origHash, ticket);
        int replyTwin = twin < 0 ? Twin(rn, replyHash, ticket) : -1;
        if (twin < 0 && replyTwin < 0)
        {
            Volatile.Write(ref e->State, Live); // only the creator writes a Creating entry's state
            created = true;
            return on;
        }

        Volatile.Write(ref e->State, Dead); // yields: never live, uncounted here, unlinked by the sweeper
        Interlocked.Decrement(ref _count);
        Interlocked.Decrement(ref _zoneCounts[zone]);
        if (twin >= 0)
        {
            return twin; // the same connection, this packet's tuple
        }

        // Our reply tuple is another entry's: the same connection seen from its other direction (its
        // other node has our orig tuple), or another connection on that NAT tuple.
        return TupleOf(replyTwin ^ 1).Equals(entry.Orig) ? replyTwin ^ 1 : -2;
    }

    private long _tickets;

    /// <summary>
    /// Ends a live connection (a TCP port reused after a close, expiry, a flush): whoever moves it from
    /// Live to Dead first uncounts it; the sweeper unlinks it. False when it was not live.
    /// </summary>
    internal bool TryKill(ConnEntry* e)
    {
        if (Interlocked.CompareExchange(ref e->State, Dead, Live) != Live)
        {
            return false;
        }

        Interlocked.Decrement(ref _count);
        Interlocked.Decrement(ref _zoneCounts[e->Orig.Zone]);
        return true;
    }

    /// <summary>The timeout left of <paramref name="e"/> at <paramref name="now"/> (TSC cycles; 0: expired).</summary>
    public ulong Remaining(ConnEntry* e, ulong now)
    {
        ulong last = Math.Max(Volatile.Read(ref e->LastOrig), Volatile.Read(ref e->LastReply));
        ulong t = (ulong)TimeoutSeconds(e) * TscHz;
        ulong end = last + t;
        return end > now ? end - now : 0;
    }

    private int TimeoutSeconds(ConnEntry* e)
    {
        int[] t = Timeouts.For(e->Orig.Zone);
        return e->Orig.T.Protocol == KeyExtractor.ProtoTcp
            ? t[(int)TcpTracker.TimeoutOf(e->Tcp)]
            : t[TcpTracker.DefaultTimeoutSeconds.Length + (int)UdpIcmpTracker.TimeoutOf(e->Dgram)];
    }

    /// <summary>
    /// The sweeper (control thread): unlinks expired and dead connections (and, with
    /// <paramref name="flush"/>, those it selects), then frees the entries of earlier sweeps whose epoch
    /// every PMD has passed. <paramref name="advance"/> takes an epoch after the unlinks;
    /// <paramref name="passed"/> says whether every PMD has passed one. Returns the connections removed.
    /// </summary>
    public int Sweep(ulong now, Func<long> advance, Func<long, bool> passed, Func<ConnInfo, bool>? flush = null)
    {
        var removed = new List<int>();
        for (int i = 0; i < Capacity; i++)
        {
            ConnEntry* e = _entries + i;
            int st = Volatile.Read(ref e->State);
            if (st is Free or Retired or Creating)
            {
                continue; // a Creating entry belongs to its PMD until it is Live or Dead
            }

            bool go = st == Dead || Remaining(e, now) == 0 || (flush != null && flush(Info(e, now)));
            if (!go)
            {
                continue;
            }

            TryKill(e); // a live one is uncounted here (unless a PMD ended it first)
            Unlink(i << 1, e->Orig.Hash());
            Unlink((i << 1) | 1, e->Reply.Hash());
            Volatile.Write(ref e->State, Retired); // unlinked: freed after the epoch, never swept again
            removed.Add(i);
        }

        if (removed.Count != 0)
        {
            _retired.Add((advance(), [.. removed]));
        }

        ReleaseRetired(passed);
        return removed.Count;
    }

    /// <summary>Returns retired entries to the free queue once every PMD passed their epoch.</summary>
    public void ReleaseRetired(Func<long, bool> passed)
    {
        for (int r = 0; r < _retired.Count;)
        {
            if (!passed(_retired[r].Epoch))
            {
                r++;
                continue;
            }

            foreach (int i in _retired[r].Entries)
            {
                Volatile.Write(ref _entries[i].State, Free);
                _free.TryPush(i);
            }

            _retired.RemoveAt(r);
        }
    }

    /// <summary>The free queue's entries, taken and put back (tests: each entry is there once, none lost).</summary>
    internal List<int> FreeEntries()
    {
        var list = new List<int>();
        while (_free.TryPop(out int i))
        {
            list.Add(i);
        }

        foreach (int i in list)
        {
            _free.TryPush(i);
        }

        return list;
    }

    /// <summary>Entries unlinked and waiting for their epoch.</summary>
    public int RetiredCount => _retired.Sum(r => r.Entries.Length);

    /// <summary>Removes <paramref name="node"/> from its chain (the sweeper is the only unlinker; PMDs only push at the head).</summary>
    private void Unlink(int node, uint hash)
    {
        ref int head = ref _buckets[hash & _bucketMask];
        int next = Volatile.Read(ref Link(node));
        if (Interlocked.CompareExchange(ref head, next, node) == node)
        {
            return;
        }

        int prev = Volatile.Read(ref head);
        while (prev >= 0)
        {
            int n = Volatile.Read(ref Link(prev));
            if (n == node)
            {
                Volatile.Write(ref Link(prev), next);
                return;
            }

            prev = n;
        }
    }

    /// <summary>What a dump shows of <paramref name="e"/>.</summary>
    public ConnInfo Info(ConnEntry* e, ulong now)
    {
        string proto = e->Orig.T.Protocol switch
        {
            KeyExtractor.ProtoTcp => "tcp",
            KeyExtractor.ProtoUdp => "udp",
            KeyExtractor.ProtoIcmp => "icmp",
            KeyExtractor.ProtoIcmpv6 => "icmpv6",
            KeyExtractor.ProtoSctp => "sctp",
            byte p => p.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        string state = e->Orig.T.Protocol == KeyExtractor.ProtoTcp
            ? TcpTracker.TimeoutOf(e->Tcp) switch
            {
                TcpTimeout.SynSent => "SYN_SENT",
                TcpTimeout.SynRecv => "SYN_RECV",
                TcpTimeout.Established => "ESTABLISHED",
                TcpTimeout.FinWait => "FIN_WAIT",
                TcpTimeout.LastAck => "LAST_ACK",
                TcpTimeout.TimeWait => "TIME_WAIT",
                _ => "CLOSE",
            }
            : UdpIcmpTracker.Replied(e->Dgram) ? "REPLIED" : "UNREPLIED";
        return new ConnInfo(e->Orig, e->Reply, proto, state, e->Nat, e->Mark, new UInt128(e->LabelHi, e->LabelLo),
            Remaining(e, now) / (double)TscHz, e->PacketsOrig, e->BytesOrig, e->PacketsReply, e->BytesReply);
    }

    /// <summary>The live connections (control thread; a snapshot that may miss concurrent changes).</summary>
    public List<ConnInfo> Dump(ulong now, int? zone = null)
    {
        var list = new List<ConnInfo>();
        for (int i = 0; i < Capacity; i++)
        {
            ConnEntry* e = _entries + i;
            if (Volatile.Read(ref e->State) == Live && (zone == null || e->Orig.Zone == zone))
            {
                list.Add(Info(e, now));
            }
        }

        return list;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        NativeMemory.AlignedFree(_entries);
        NativeMemory.AlignedFree(_buckets);
        NativeMemory.Free(_zoneCounts);
        NativeMemory.Free(_zoneLimits);
        _free.Dispose();
    }

    /// <summary>A bounded multi-producer multi-consumer queue of ints (Dmitry Vyukov's), in native memory.</summary>
    private sealed class FreeQueue : IDisposable
    {
        private readonly long* _cells; // per cell: sequence (even index), value (odd)
        private readonly long _mask;
        private readonly long* _pos;   // [0] enqueue position, [8] dequeue position (own cache lines)

        public FreeQueue(int capacity)
        {
            long size = (long)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)capacity);
            _mask = size - 1;
            _cells = (long*)NativeMemory.AlignedAlloc((nuint)(size * 2 * sizeof(long)), 64);
            for (long i = 0; i < size; i++)
            {
                _cells[2 * i] = i;
            }

            _pos = (long*)NativeMemory.AlignedAlloc(128, 64);
            _pos[0] = 0;
            _pos[8] = 0;
        }

        public bool TryPush(int value)
        {
            long pos = Volatile.Read(ref _pos[0]);
            while (true)
            {
                long* cell = _cells + (2 * (pos & _mask));
                long seq = Volatile.Read(ref cell[0]);
                long dif = seq - pos;
                if (dif == 0)
                {
                    if (Interlocked.CompareExchange(ref _pos[0], pos + 1, pos) == pos)
                    {
                        cell[1] = value;
                        Volatile.Write(ref cell[0], pos + 1);
                        return true;
                    }
                }
                else if (dif < 0)
                {
                    return false;
                }

                pos = Volatile.Read(ref _pos[0]);
            }
        }

        public bool TryPop(out int value)
        {
            long pos = Volatile.Read(ref _pos[8]);
            while (true)
            {
                long* cell = _cells + (2 * (pos & _mask));
                long seq = Volatile.Read(ref cell[0]);
                long dif = seq - (pos + 1);
                if (dif == 0)
                {
                    if (Interlocked.CompareExchange(ref _pos[8], pos + 1, pos) == pos)
                    {
                        value = (int)cell[1];
                        Volatile.Write(ref cell[0], pos + _mask + 1);
                        return true;
                    }
                }
                else if (dif < 0)
                {
                    value = -1;
                    return false;
                }

                pos = Volatile.Read(ref _pos[8]);
            }
        }

        public void Dispose()
        {
            NativeMemory.AlignedFree(_cells);
            NativeMemory.AlignedFree(_pos);
        }
    }
}
