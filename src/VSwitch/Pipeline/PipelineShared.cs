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

    /// <summary>ct(table=N)'s recirculation ids (interned by the upcalls, reclaimed by housekeeping).</summary>
    public FrozenStates Frozen { get; } = new();

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

    /// <summary>
    /// Makes <paramref name="v"/> current (the caller then synchronizes the epoch). The connection
    /// table is created (from its pool size) before the first tables with a ct action are published,
    /// so a PMD that runs a ct op always finds it.
    /// </summary>
    public void Publish(FlowTables v)
    {
        if (_conns == null && Array.Exists(v.Rules, r => Array.Exists(r.Actions, a => a.Kind == ActionKind.Ct)))
        {
            EnsureConntrack();
        }

        _current = v;
    }

    private volatile Ipsec.IpsecEngine? _ipsec;

    /// <summary>The IPsec stage (null until the first SA is added: Datapath's EnsureIpsec).</summary>
    public Ipsec.IpsecEngine? Ipsec { get => _ipsec; set => _ipsec = value; }

    private volatile Conntrack.ConnTable? _conns;
    private readonly Lock _connsGate = new();

    /// <summary>The connection table (null until a rule with ct is loaded or <see cref="EnsureConntrack"/> is called).</summary>
    public Conntrack.ConnTable? Conns => _conns;

    /// <summary>Connections the table holds when it is created (vswitchd --conntrack-size).</summary>
    public int ConntrackCapacity { get; set; } = Conntrack.ConnTable.DefaultCapacity;

    /// <summary>Cycles per second of the PMDs' clock (IPacketIo.Now; the TSC's rate in vswitchd), for conntrack timeouts.</summary>
    public ulong ClockHz { get; set; } = 1_000_000_000;

    /// <summary>The connection table, created on first use (control plane).</summary>
    public Conntrack.ConnTable EnsureConntrack()
    {
        lock (_connsGate)
        {
            if (_conns == null)
            {
                var t = new Conntrack.ConnTable(ConntrackCapacity, ClockHz);
                CtSettings.ApplyTo(t);
                _conns = t;
            }

            return _conns;
        }
    }

    /// <summary>Zone limits and timeouts (ct-set-limits, ct-set-timeouts; kept in the state file).</summary>
    public Conntrack.CtSettings CtSettings { get; set; } = new();

    /// <summary>Puts <see cref="CtSettings"/> in force on the table, if there is one.</summary>
    public void ApplyConntrackSettings()
    {
        lock (_connsGate)
        {
            if (_conns != null)
            {
                CtSettings.ApplyTo(_conns);
            }
        }
    }
}
