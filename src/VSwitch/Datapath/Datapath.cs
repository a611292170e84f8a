// Datapath.cs - brings the switch up and down: EAL, mbuf pool, ports, PMD threads. Its other jobs
// are in DatapathState.cs (the state store writer), DatapathStats.cs (snapshots, link and fault
// events) and PortNumbers.cs (OpenFlow numbers).
//
// Start order: validate config -> EAL -> mempool -> probe and start ports -> build the forwarding
// tables -> start PMDs. Stop order: PMDs stop and flush -> ports drain their rx queues -> ports
// stop and close -> the pool's in-use count is compared with its value before the ports started.
using System.Globalization;
using VSwitch.Config;
using VSwitch.FlowText;
using VSwitch.Forwarding;
using VSwitch.Interop;
using VSwitch.Pipeline;
using VSwitch.Pmd;
using VSwitch.Ports;

namespace VSwitch.Datapath;

/// <summary>Totals for one port, summed over PMDs, plus the device's own counters.</summary>
public sealed record PortSnapshot(string Name, ulong RxPackets, ulong TxPackets, ulong TxDrops, PortHwStats Hw, int OfPort = 0);

/// <summary>A port's driver, link state (as last polled) and DPDK extended statistics.</summary>
public sealed record PortDetails(string Name, string Driver, bool LinkUp, IReadOnlyList<KeyValuePair<string, ulong>> Xstats);

/// <summary>One PMD's counters (<paramref name="Raw"/>; the pipeline's are 0 in l2fwd mode) and its installed megaflows.</summary>
public sealed record PmdSnapshot(int Index, int Core, PmdCounters Raw, int Megaflows)
{
    public ulong RxPackets => Raw.RxPackets;

    public ulong TxPackets => Raw.TxPackets;

    public ulong TxDrops => Raw.TxDrops;

    public ulong FwdDrops => Raw.FwdDrops;

    public ulong BusyCycles => Raw.BusyCycles;

    public ulong IdleCycles => Raw.IdleCycles;

    public ulong SleptMicros => Raw.SleptMicros;
}

public sealed record Snapshot(DateTime Time, IReadOnlyList<PortSnapshot> Ports, IReadOnlyList<PmdSnapshot> Pmds)
{
    public ulong RxPackets => Pmds.Aggregate(0UL, (a, p) => a + p.RxPackets);

    public ulong TxPackets => Pmds.Aggregate(0UL, (a, p) => a + p.TxPackets);

    public ulong Drops => Pmds.Aggregate(0UL, (a, p) => a + p.TxDrops + p.FwdDrops);
}

public sealed unsafe partial class SwitchDatapath : IDisposable
{
    private static readonly TimeSpan s_planTimeout = TimeSpan.FromSeconds(5);
    private readonly SwitchConfig _config;

    /// <summary>Slots, port configurations and OpenFlow numbers.</summary>
    private readonly PortRegistry _ports = new();

    /// <summary>Which PMD polls which rx queue (created at start, from the configuration).</summary>
    private RxqScheduler? _rxqs;
    private readonly PortCountersBaseline[] _baselines = new PortCountersBaseline[PmdState.MaxPorts];
    private readonly bool[] _linkUp = new bool[PmdState.MaxPorts];

    private readonly CancellationTokenSource _learnerStop = new();
    private Thread? _learner;

    /// <summary>The process's GC pauses (each one stopped every PMD).</summary>
    public GcWatch Gc { get; } = new();
    private readonly List<PmdThread> _pmds = [];

    /// <summary>The one quiescence mechanism: every change the PMDs see is torn down only after all passed its epoch.</summary>
    private Epoch? _epoch;
    private readonly List<string> _notices = [];
    private readonly object _control = new();
    private readonly List<FlowPmd> _flowPmds = [];
    private L2fwdTable? _l2fwd;
    private FlowControl? _flows;
    private Thread? _stateWriter;
    private readonly AutoResetEvent _stateDirty = new(false);
    private volatile bool _stateStop;
    private string? _stateError;
    private Mempool? _pool;
    private uint _inUseBaseline;
    private bool _ealUp;
    private bool _pmdsRunning;
    private long _planVersion;

    private record struct PortCountersBaseline(ulong Rx, ulong Tx, ulong TxDrops);

    public SwitchDatapath(SwitchConfig config) => _config = config;

    public EalInfo? Eal { get; private set; }

    /// <summary>Active ports in datapath port order.</summary>
    public IReadOnlyList<DpdkPort> Ports => _ports.Ports;

    public IReadOnlyList<PmdThread> Pmds => _pmds;

    /// <summary>Flow-table operations (pipeline mode), else null.</summary>
    public FlowControl? Flows => _flows;

    /// <summary>Per-PMD pipeline state (caches, punt rings), in PMD order; empty in l2fwd mode.</summary>
    public IReadOnlyList<FlowPmd> FlowPmds => _flowPmds;

    public SwitchConfig Config => _config;

    public Mempool? Pool => _pool;

    public uint InUseBaseline => _inUseBaseline;

    /// <summary>Start-up notices (stale sockets removed, ...).</summary>
    public IReadOnlyList<string> Notices => _notices;

    /// <summary>Datapath port number of <paramref name="port"/>.</summary>
    public int DpPortOf(DpdkPort port) => _ports.SlotOf(port);

    /// <summary>Port name -> OpenFlow number, for flow text that names ports (a snapshot).</summary>
    public IReadOnlyDictionary<string, int> PortNames()
    {
        lock (_control)
        {
            return _ports.Names();
        }
    }

    /// <summary>OpenFlow port number of a port (pipeline mode).</summary>
    public int OfPortOf(DpdkPort port) => _ports.OfPortAt(DpPortOf(port));

    public void Start()
    {
        StoredState? stored = null;
        if (_config.Mode == ForwardingMode.Pipeline && _config.StateFile is string stateFile)
        {
            stored = StateStore.Load(stateFile); // a corrupt store stops us here, before anything starts
            if (stored != null)
            {
                if (_config.PortsAreEmbeddedDefault && stored.Ports.Count > 0)
                {
                    // The embedded default stands in for "no ports given"; the store gives ports, so
                    // it must not add its own devices next to them (the same net_nullN twice).
                    _config.Ports.Clear();
                    _config.PortsAreEmbeddedDefault = false;
                }

                _ports.NextOfPort = stored.NextOfPort;
                foreach (var cp in _config.Ports)
                {
                    // a port given again on the command line keeps its stored number unless it asks for another
                    if (cp.OfPort == null && stored.Ports.FirstOrDefault(sp => sp.Name == cp.Name) is { OfPort: int kept })
                    {
                        cp.OfPort = kept;
                    }
                }

                foreach (var pc in stored.Ports.Where(sp => _config.Ports.All(cp => cp.Name != sp.Name)))
                {
                    if (pc.OfPort is int n && _config.Ports.FirstOrDefault(cp => cp.OfPort == n) is PortConfig taken)
                    {
                        throw new VSwitchException($"state file {stateFile}: port '{pc.Name}' has OpenFlow port {n}, which the configuration gives to port '{taken.Name}'; give one of them another number (--ofport NAME=N)");
                    }

                    if (_config.Ports.FirstOrDefault(cp => PortConfig.SameDevice(cp.DevArgs, pc.DevArgs)) is PortConfig clash)
                    {
                        throw new VSwitchException($"state file {stateFile}: port '{pc.Name}' ({pc.DevArgs}) uses device '{PortConfig.DeviceName(pc.DevArgs)}', which the configuration gives to port '{clash.Name}'; rename or remove one of them");
                    }

                    _config.Ports.Add(pc);
                }
            }
        }

        _config.Validate(Environment.ProcessorCount);
        bool anyPci = _config.Ports.Any(p => DpdkPort.IsPciDevArgs(p.DevArgs));
        int mainCore = Enumerable.Range(0, Environment.ProcessorCount).FirstOrDefault(c => !_config.PmdCores.Contains(c));
        Eal = Interop.Eal.Init(_config.EalArgs, anyPci, _config.NoHugeFallback, mainCore, _config.PmdCores,
            Interop.Eal.DefaultPrefix(_config.ControlSocket));
        _ealUp = true;

        uint mbufs = _config.Mbufs != 0 ? _config.Mbufs : SizePool();
        _pool = Mempool.Create("vsw_pool", mbufs, _config.MempoolCache, 2048 + Mbuf.Headroom);
        _inUseBaseline = _pool.InUse;
        _l2fwd = new L2fwdTable();
        if (_config.Mode == ForwardingMode.Pipeline)
        {
            var shared = new PipelineShared([])
            {
                MegaflowLimit = _config.MegaflowLimit,
                EmcInsertInvProb = _config.EmcInsertInvProb,
                MegaflowIdleCycles = (ulong)(_config.MegaflowIdleMs * (Eal!.TscHz / 1000.0)),
                ConntrackCapacity = _config.ConntrackSize,
                ClockHz = Eal.TscHz,
            };
            if (stored?.Conntrack is Conntrack.CtSettings cts)
            {
                shared.CtSettings = cts;
            }

            _flows = new FlowControl(shared, SynchronizePmds);
        }

        _epoch = new Epoch(_config.PmdCores.Count);
        for (int pi = 0; pi < _config.PmdCores.Count; pi++)
        {
            _pmds.Add(NewPmd(pi, _config.PmdCores[pi]));
        }

        _rxqs = new RxqScheduler(_config.PmdCores, _config.AssignRxQueues());

        foreach (var pc in _config.Ports)
        {
            if (pc.OfPort is int n)
            {
                _ports.Reserve(n);
            }
        }

        foreach (var pc in _config.Ports)
        {
            OpenPort(pc);
        }

        _ports.ClearReservations();

        foreach (var (a, b) in _config.L2fwdPairs)
        {
            Pair(a, b);
        }

        PublishPlans(); // applied in place: the PMDs are not running yet
        if (_flows != null)
        {
            _flows.SetPorts(PipelinePorts());
            if (stored != null)
            {
                if (_config.FlowsFile != null)
                {
                    _notices.Add($"flow file {_config.FlowsFile} not loaded: {stored.Rules.Count} rules restored from state file {_config.StateFile}");
                }

                _flows.SetGroupsAndRules(stored.Groups, stored.Rules, Native.Rdtsc());
                foreach (var sa in stored.Sas)
                {
                    EnsureIpsec().Add(sa, restored: stored.SasWereInUse); // before the PMDs start; outbound ones a previous run used stay stopped (IpsecEngine.Add)
                }
            }
            else if (_config.FlowsFile is string file)
            {
                string text;
                try
                {
                    text = File.ReadAllText(file);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new VSwitchException($"flow file {file}: {e.Message}");
                }

                _flows.Add(FlowParser.ParseRules(text, file, 1, PortNames()), Native.Rdtsc());
            }

            WarmUpUpcallPath();
            try
            {
                FlowControl.WarmUp(PipelinePorts(), PortNames(), Native.Rdtsc()); // the first add-flows then pays no JIT
            }
            catch (Exception e)
            {
                _notices.Add($"flow-table warm-up failed (the first flow change will be slower): {e.Message}");
            }

            if (_config.StateFile != null)
            {
                _stateWriter = new Thread(StateWriterBody) { IsBackground = true, Name = "state-writer" };
                _stateWriter.Start();
                _flows.Changed += _ => RequestStateSave();
                RequestStateSave();
            }
        }
        WarmNativeCalls();
        if (_flows == null)
        {
            PmdCode.CompileL2fwd<DpdkIo>();
        }

        foreach (var pmd in _pmds)
        {
            pmd.Start();
        }

        _pmdsRunning = true;
        if (_flows != null)
        {
            _learner = _flows.Shared.Learner.Start(_learnerStop.Token);
        }

        Interop.Eal.ConfineThreads(_pmds.Select(p => p.Tid).ToList(), _config.PmdCores);
        Interop.Eal.ShowLog();
        if (Eal.Capture)
        {
            s_captureEpoch = _epoch;
            Native.CaptureSetQuiesce(&QuiesceForCapture);
        }
    }

    /// <summary>
    /// Calls each fast-path shim function once, with nothing to do, on this thread before the PMDs
    /// start. The runtime builds a P/Invoke's stub at its first call, on the calling thread, and
    /// allocates doing so; a PMD would otherwise pay that when it first meets a rare case long after
    /// its warm-up (an l2fwd PMD's first send to a net_pcap port, through the GC-safe call, when a VM
    /// starts sending: 40 bytes allocated on the PMD, seen in a test). Queue 0 of the first port is
    /// safe to touch: no PMD runs yet.
    /// </summary>
    private void WarmNativeCalls()
    {
        nint none = 0;
        ushort port = Ports.Count > 0 ? Ports[0].PortId : (ushort)0;
        if (Ports.Count > 0)
        {
            _ = Native.RxBurst(port, 0, &none, 0);
            _ = Native.TxBurst(port, 0, &none, 0);
            _ = Native.RxBurstGcSafe(port, 0, &none, 0);
            _ = Native.TxBurstGcSafe(port, 0, &none, 0);
        }

        Native.MbufFreeBulk(&none, 0);
        _ = Native.MbufCopyBulk(&none, &none, 0);
        _ = Native.Rdtsc();
        Native.SleepMicros(0);
    }

    /// <summary>The epoch a capture's teardown waits on (one datapath per process).</summary>
    private static Epoch? s_captureEpoch;

    /// <summary>Held while the capture server waits on <see cref="s_captureEpoch"/>, so Dispose cannot free it meanwhile.</summary>
    private static readonly Lock s_captureGate = new();

    /// <summary>
    /// Called by the shim's capture server on DPDK's multi-process thread after it unlinked a
    /// capture's callbacks: returns once every running PMD has finished a round, so none is still
    /// copying into the ring and mempool the capture client frees next.
    /// </summary>
    [System.Runtime.InteropServices.UnmanagedCallersOnly]
    private static void QuiesceForCapture()
    {
        lock (s_captureGate)
        {
            s_captureEpoch?.Synchronize(TimeSpan.FromSeconds(5)); // PMDs that stopped are offline: no wait
        }
    }

    private PmdThread NewPmd(int index, int core)
    {
        var state = new PmdState(index, _epoch)
        {
            DrainCycles = (ulong)(_config.TxDrainMicros * Eal!.TscHz / 1e6),
            SleepMaxMicros = (uint)_config.PmdSleepMaxMicros,
        };
        if (_flows != null)
        {
            var f = new FlowPmd(_flows.Shared);
            _flowPmds.Add(f);
            return new PmdThread(core, state, new PmdLoop<DpdkIo, PipelineForwarder<DpdkIo>>(state, default, new PipelineForwarder<DpdkIo>(f, default)));
        }

        var loop = new PmdLoop<DpdkIo, L2Forwarder>(state, default, new L2Forwarder(_l2fwd!, _config.MacRewrite));
        return new PmdThread(core, state, loop);
    }

    /// <summary>
    /// Compiles the upcall path (translation, megaflow install) on this thread before traffic: with
    /// tiered compilation off, the first upcall on a PMD would otherwise wait for the JIT (about
    /// 10 ms), which is the first packet's latency.
    /// </summary>
    private unsafe void WarmUpUpcallPath()
    {
        PmdCode.CompilePipeline<DpdkIo>();
        var t = new Translation { NoLearn = true, Frozen = _flows!.Shared.Frozen };
        using var cache = new Caches.MegaflowCache(4);
        Packets.DpKey key = default;
        key.W[0] = (ulong)Packets.KeyExtractor.EthIp << 16; // dl_type
        Translator.Translate(_flows!.Current, key, new MacTable(16), t);
        int e = cache.Install(&key, t, 0, -1, 0);
        cache.Lookup(&key);
        cache.Remove(e);
    }

    /// <summary>Waits (one epoch) until every running PMD classifies with the current flow tables.</summary>
    private bool SynchronizePmds()
    {
        if (!_pmdsRunning || _flows == null)
        {
            return true;
        }

        // The tables were published before this call: one epoch covers them.
        return _epoch!.Synchronize(s_planTimeout);
    }

    /// <summary>The ports as the pipeline sees them: OpenFlow number, and the slot the PMDs send to.</summary>
    private List<PipelinePort> PipelinePorts(int exceptSlot = -1) => _ports.PipelinePorts(exceptSlot, _linkUp);

    /// <summary>Once a second from the control thread: rule timeouts, MAC aging, connection expiry.</summary>
    public void Housekeep()
    {
        if (_flows == null || Eal == null)
        {
            return;
        }

        lock (_control)
        {
            ulong now = Native.Rdtsc();
            _flows.Expire(now, Eal.TscHz);
            SweepConntrack();
            ReclaimFrozenStates();
            const ulong macAgingSeconds = 300;
            if (now > macAgingSeconds * Eal.TscHz)
            {
                _flows!.Shared.Learner.Age(now - (macAgingSeconds * Eal.TscHz));
            }
        }
    }

    /// <summary>Probes, configures and starts one port in the lowest free slot; vhost-user ports get their socket handling.</summary>
    private DpdkPort OpenPort(PortConfig pc)
    {
        DevArgFiles.Check(pc.Name, pc.DevArgs); // add-port: a missing file is named, not DPDK's EPERM
        var (slot, ofPort) = _ports.Admit(pc);

        int pmdCount = _pmds.Count;
        var vhost = VhostUserArgs.Parse(pc.DevArgs);
        if (vhost != null)
        {
            if (pc.RxQueues > vhost.Queues || pmdCount > vhost.Queues)
            {
                throw new VSwitchException($"port '{pc.Name}': {Math.Max(pc.RxQueues, pmdCount)} queue pairs needed ({pc.RxQueues} rx, one tx per PMD) but the device has queues={vhost.Queues}; add queues=N to its devargs");
            }

            if (!vhost.Client && VhostUser.PrepareServerSocket(pc.Name, vhost.SocketPath) is string notice)
            {
                _notices.Add(notice);
            }
        }

        DpdkPort Create()
        {
            // The probe refuses a device that is already a port, so the port removed on failure
            // is always the one just probed, never one a PMD polls. The slot (what PMD plans are
            // built from) is taken only once the port is configured and started.
            var port = DpdkPort.Probe(pc.Name, pc.DevArgs);
            if (Ports.FirstOrDefault(p => p.PortId == port.PortId) is DpdkPort other)
            {
                throw new VSwitchException($"port '{pc.Name}': device '{pc.DevArgs}' resolved to DPDK port {port.PortId}, which is port '{other.Name}'");
            }

            try
            {
                port.ConfigureAndStart(pc.RxQueues, pmdCount, pc.RxDescriptors, pc.TxDescriptors, _pool!, pc.Mtu);
            }
            catch (VSwitchException)
            {
                port.Remove();
                throw;
            }

            _ports.Occupy(slot, port);
            return port;
        }

        var created = vhost == null ? Create() : UnixSocketFile.CreateWithMode(vhost.SocketPath, enforce: !vhost.Client, Create);
        _l2fwd!.SetRewrite(slot, created.Mac);
        _ports.Bind(slot, pc, ofPort);
        _linkUp[slot] = false; // the first link poll reports the port's state
        _baselines[slot] = CurrentCounters(slot);
        _rxqs!.Place(pc.Name, created.RxQueues);

        return created;
    }

    private int SlotOf(string name) => _ports.SlotOf(name);

    private void Pair(string a, string b)
    {
        int ia = SlotOf(a), ib = SlotOf(b);
        if (_l2fwd!.OutPort[ia] >= 0 || _l2fwd.OutPort[ib] >= 0)
        {
            throw new VSwitchException($"l2fwd pair ({a}, {b}): a port is already paired");
        }

        _l2fwd.SetRoute(ia, ib);
        _l2fwd.SetRoute(ib, ia);
    }

    /// <summary>Builds every PMD's plan from the current slots and waits until all applied it.</summary>
    private void PublishPlans()
    {
        var plans = _rxqs!.BuildPlans(++_planVersion, _ports, _pmds);

        if (!_pmdsRunning)
        {
            for (int i = 0; i < _pmds.Count; i++)
            {
                _pmds[i].State.Publish(plans[i], pmdRunning: false, s_planTimeout); // applied in place
            }

            return;
        }

        // Every PMD gets its plan before the epoch is taken, so one epoch covers them all: one that
        // does not answer leaves no other PMD on an older plan.
        for (int i = 0; i < _pmds.Count; i++)
        {
            _pmds[i].State.Post(plans[i]);
        }

        var ep = _epoch!;
        long epoch = ep.Advance();
        if (!ep.Synchronize(epoch, s_planTimeout))
        {
            // What the plans replace stays in use until the late PMD passes the epoch.
            foreach (var plan in plans)
            {
                ep.Defer(epoch, () => PmdState.ReleaseAfterEpoch(plan));
            }

            var late = _pmds.Where(p => p.State.QuiescentEpoch < epoch).Select(p => p.Core);
            throw new VSwitchException($"PMD on core {string.Join(", ", late)} did not take the new port assignment within {s_planTimeout.TotalSeconds} s");
        }

        foreach (var plan in plans)
        {
            PmdState.ReleaseAfterEpoch(plan);
        }
    }

    /// <summary>Adds a port while traffic flows; PMDs pick it up at their next round. Optionally pairs it (l2fwd).</summary>
    public DpdkPort AddPort(PortConfig pc, string? pairWith)
    {
        lock (_control)
        {
            if (pairWith != null)
            {
                int peer = SlotOf(pairWith);
                if (_l2fwd!.OutPort[peer] >= 0)
                {
                    throw new VSwitchException($"cannot pair '{pc.Name}' with '{pairWith}': '{pairWith}' is already paired");
                }
            }

            var port = OpenPort(pc);
            try
            {
                PublishPlans();
            }
            catch (VSwitchException e)
            {
                // Some PMDs may poll the port already: take it out of their plans again, and stop it
                // only once every PMD passed the epoch of that plan; otherwise it stays (started) in the switch.
                int slot = DpPortOf(port);
                _ports.Occupy(slot, null);
                try
                {
                    PublishPlans();
                }
                catch (VSwitchException)
                {
                    // kept: in the slots, the tables and the store alike (a late PMD takes the newest plan)
                    _ports.Occupy(slot, port);
                    try
                    {
                        PublishPlans();
                        _flows?.SetPorts(PipelinePorts());
                    }
                    catch (VSwitchException)
                    {
                        // published; the late PMD takes the newest plan and tables at its next round
                    }

                    RequestStateSave();
                    throw new VSwitchException($"port '{pc.Name}': {e.Message}; the port stays added (a PMD may be using it)");
                }

                _ports.Unbind(slot);
                _rxqs!.Forget(pc.Name);

                port.Remove();
                throw;
            }

            if (pairWith != null)
            {
                Pair(pc.Name, pairWith); // after every PMD knows the new port's tx queue
            }

            _flows?.SetPorts(PipelinePorts()); // flows may output to it once every PMD has its tx queue
            RequestStateSave();

            return port;
        }
    }

    /// <summary>Changes a port's VLAN mode for NORMAL (pipeline mode); cached verdicts follow at once.</summary>
    public void SetPortVlan(string name, string spec)
    {
        lock (_control)
        {
            int slot = SlotOf(name);
            var pc = _ports.ConfigAt(slot)!;
            var (mode, tag, trunks) = (pc.VlanMode, pc.Tag, pc.Trunks);
            pc.SetVlan(spec, "vlan"); // validates completely before anything changes
            try
            {
                _flows!.SetPorts(PipelinePorts());
            }
            catch (VSwitchException)
            {
                (pc.VlanMode, pc.Tag, pc.Trunks) = (mode, tag, trunks);
                throw;
            }

            RequestStateSave();
        }
    }

    /// <summary>
    /// Removes a port while traffic flows on the others: unroute, every PMD lets go (one epoch passed),
    /// then stop and detach. If a PMD does not pass the epoch in time the port is put back as it was,
    /// still started (a PMD may yet use it), and the removal is refused with the reason.
    /// </summary>
    public void RemovePort(string name)
    {
        lock (_control)
        {
            int slot = SlotOf(name);
            var port = _ports[slot]!;
            var pc = _ports.ConfigAt(slot)!;
            int ofPort = _ports.OfPortAt(slot);
            int peer = _l2fwd!.OutPort[slot];
            bool mutual = peer >= 0 && _l2fwd.OutPort[peer] == slot;
            _l2fwd.SetRoute(slot, -1);
            if (mutual)
            {
                _l2fwd.SetRoute(peer, -1);
            }

            void Restore(string why)
            {
                _ports.Occupy(slot, port);
                _ports.Bind(slot, pc, ofPort);
                string pending = "";
                try
                {
                    PublishPlans(); // the newest plan wins: a late PMD takes this one, with the port
                }
                catch (VSwitchException)
                {
                    pending = " (its PMD will take the port back when it next runs a round)";
                }

                if (peer >= 0)
                {
                    _l2fwd.SetRoute(slot, peer);
                    if (mutual)
                    {
                        _l2fwd.SetRoute(peer, slot);
                    }
                }

                try
                {
                    _flows?.SetPorts(PipelinePorts());
                }
                catch (VSwitchException)
                {
                    // published; the late PMD takes the newest tables when it next runs a round
                }

                throw new VSwitchException($"port '{name}' was not removed: {why}; it is kept, still started and in the switch{pending}");
            }

            if (_flows != null)
            {
                // No verdict may send to the port once its tx queue goes away: publish the port set
                // without it and wait for every PMD.
                try
                {
                    _flows.SetPorts(PipelinePorts(exceptSlot: slot));
                }
                catch (VSwitchException e)
                {
                    Restore(e.Message);
                }
            }

            _ports.Occupy(slot, null);
            _ports.Unbind(slot);
            try
            {
                PublishPlans();
            }
            catch (VSwitchException e)
            {
                Restore(e.Message);
            }

            // Every PMD passed the epoch: none polls the port or holds a packet for it.
            _flows?.Shared.Learner.Flush(ofPort);
            _rxqs!.Forget(name);

            port.DrainRx();
            port.Remove();
            RequestStateSave();
        }
    }

    /// <summary>
    /// A copy of the port's settings (devargs, queues, descriptors, MTU, OpenFlow number, VLAN mode)
    /// and its l2fwd peer when the two are paired with each other: what re-adds it as it was.
    /// </summary>
    public (PortConfig Config, string? Peer) PortSettings(string name)
    {
        lock (_control)
        {
            int slot = SlotOf(name);
            var pc = _ports.ConfigAt(slot)!.Clone();
            pc.OfPort = _ports.OfPortAt(slot);
            int peer = _l2fwd!.OutPort[slot];
            bool mutual = peer >= 0 && _l2fwd.OutPort[peer] == slot;
            return (pc, mutual ? _ports[peer]?.Name : null);
        }
    }

    /// <summary>The lowest OpenFlow number never handed out (what a port added without one gets, unless it is taken).</summary>
    public int NextOfPort
    {
        get
        {
            lock (_control)
            {
                return _ports.NextOfPort;
            }
        }
    }

    /// <summary>
    /// Takes back the numbers handed out since <paramref name="next"/> was <see cref="NextOfPort"/>,
    /// after the ports that got them were removed again (an undone command chain): the switch is as
    /// if they had never been added. Numbers still held by a port are never handed out twice.
    /// </summary>
    public void RewindNextOfPort(int next)
    {
        lock (_control)
        {
            int inUse = _ports.Names().Values.DefaultIfEmpty(0).Max();
            int rewound = Math.Max(next, inUse + 1);
            if (rewound < _ports.NextOfPort)
            {
                _ports.NextOfPort = rewound;
                RequestStateSave();
            }
        }
    }

    private void RemoveSlot(int slot)
    {
        var port = _ports[slot];
        _ports.Occupy(slot, null);
        port?.Remove();
    }

    private uint SizePool()
    {
        // Every rx and tx descriptor may hold an mbuf, plus per-lcore caches and in-flight bursts;
        // room for ports added later at the default size.
        long perPort = _config.Ports.Count == 0 ? 2048 : _config.Ports.Max(p => (long)p.RxQueues * p.RxDescriptors + (long)_config.PmdCores.Count * p.TxDescriptors);
        long n = _config.Ports.Sum(p => (long)p.RxQueues * p.RxDescriptors + (long)_config.PmdCores.Count * p.TxDescriptors)
                 + 4 * perPort
                 + (_config.PmdCores.Count + 1) * (_config.MempoolCache + 4L * PmdState.TxCapacity * _config.Ports.Count) + 8192;
        return (uint)Math.Clamp(n, 8192, 1 << 22);
    }

    /// <summary>Stops PMDs and ports (then <see cref="ReleasePorts"/> closes them and counts leaked mbufs).</summary>
    public void Stop()
    {
        if (_stateWriter != null)
        {
            _stateStop = true;
            _stateDirty.Set();
            _stateWriter.Join();
            _stateWriter = null;
            SaveStateNow();
        }

        lock (_control)
        {
            foreach (var pmd in _pmds)
            {
                pmd.RequestStop();
            }

            foreach (var pmd in _pmds)
            {
                pmd.Join();
            }

            _flows?.Shared.Ipsec?.Drain(); // packets still at the crypto device come back and are freed

            _learnerStop.Cancel();
            _learner?.Join();
            _learner = null;
            _pmdsRunning = false;
            _epoch?.RunDeferred(); // every PMD is offline: late teardowns are due
            foreach (var port in Ports)
            {
                port.DrainRx();
            }

            foreach (var port in Ports)
            {
                port.Stop();
            }
        }
    }

    /// <summary>After <see cref="Stop"/>: closes and detaches every port; returns the mbufs still in use above the baseline (leaked).</summary>
    public long ReleasePorts()
    {
        lock (_control)
        {
            for (int dp = 0; dp < PmdState.MaxPorts; dp++)
            {
                RemoveSlot(dp);
            }

            return _pool == null ? 0 : (long)_pool.InUse - _inUseBaseline;
        }
    }

    /// <summary>Closes ports and releases the EAL.</summary>
    public void Dispose()
    {
        Gc.Dispose();
        for (int dp = 0; dp < PmdState.MaxPorts; dp++)
        {
            RemoveSlot(dp);
        }

        foreach (var pmd in _pmds)
        {
            pmd.State.Dispose();
        }

        Native.CaptureSetQuiesce(null);
        lock (s_captureGate)
        {
            s_captureEpoch = null;
        }

        _epoch?.Dispose();
        _epoch = null;

        foreach (var f in _flowPmds)
        {
            f.Dispose();
        }

        _flowPmds.Clear();
        _pmds.Clear();
        if (_flows?.Shared.Ipsec is { } ipsec)
        {
            _flows.Shared.Ipsec = null;
            ipsec.Dispose(); // the SAs' sessions, then the crypto device (before the mbuf pool its queues drew from)
        }

        _l2fwd?.Dispose();
        _l2fwd = null;
        _pool?.Dispose();
        _pool = null;
        if (_ealUp)
        {
            Interop.Eal.Cleanup();
            _ealUp = false;
        }
    }

    public static string Mpps(double pps) => (pps / 1e6).ToString("F3", CultureInfo.InvariantCulture);
}
