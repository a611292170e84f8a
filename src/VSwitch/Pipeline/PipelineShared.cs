// PipelineShared.cs - what the PMDs share in pipeline mode: the current table version and the MAC table.
//
// The control plane is the only writer of Current: it builds a new FlowTables and publishes it with
// one reference store. Each PMD reads Current once per polling round, at its round boundary; a
// change is in force once every PMD has passed the epoch taken after the store (Pmd/Epoch.cs).
namespace VSwitch.Pipeline;

public sealed class PipelineShared
{
    private volatile FlowTables _current;
    private long _nextVersion;

    public PipelineShared(IEnumerable<PipelinePort> ports)
    {
        _current = FlowTables.Empty(NextVersion(), ports);
        Learner = new MacLearner(Macs);
    }

    /// <summary>The version PMDs classify with.</summary>
    public FlowTables Current => _current;

    /// <summary>The NORMAL action's learning table (PMDs read it; only <see cref="Learner"/> writes it).</summary>
    public MacTable Macs { get; } = new();

    /// <summary>The MAC table's single writer, fed by the PMDs' learn rings.</summary>
    public MacLearner Learner { get; }

    /// <summary>Most megaflows per PMD (as Open vSwitch's flow-limit).</summary>
    public int MegaflowLimit { get; init; } = 200_000;

    /// <summary>Megaflows unused this long are removed (TSC cycles).</summary>
    public ulong MegaflowIdleCycles { get; set; }

    /// <summary>Microflow cache insertion: one in this many misses.</summary>
    public int EmcInsertInvProb { get; init; } = 100;

    public long NextVersion() => Interlocked.Increment(ref _nextVersion);

    private long _cacheFlushes;

    /// <summary>
    /// Cache flushes requested so far (flush-megaflows). Each PMD compares it with the count it last
    /// acted on at its round boundary and, when it moved, empties its own megaflow and microflow
    /// caches: the owner stays the caches' only writer, and nothing a PMD may still read is freed by
    /// another thread. The control plane bumps it, then waits one epoch.
    /// </summary>
    public long CacheFlushes => Volatile.Read(ref _cacheFlushes);

    /// <summary>Asks every PMD to empty its caches at its next round boundary (the caller then synchronizes the epoch).</summary>
    public void RequestCacheFlush() => Interlocked.Increment(ref _cacheFlushes);

    /// <summary>Makes <paramref name="v"/> current (the caller then synchronizes the epoch).</summary>
    public void Publish(FlowTables v) => _current = v;
}
