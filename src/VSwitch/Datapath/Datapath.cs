// Datapath.cs - brings the switch up and down: EAL, mbuf pool, ports, PMD threads.
//
// Start order: validate config -> EAL -> mempool -> probe and start ports -> build the forwarding
// tables -> start PMDs. Stop order: PMDs stop and flush -> ports drain their rx queues -> ports
// stop and close -> the pool's in-use count is compared with its value before the ports started.
using System.Globalization;
using VSwitch.Config;
using VSwitch.Forwarding;
using VSwitch.Interop;
using VSwitch.Pmd;
using VSwitch.Ports;

namespace VSwitch.Datapath;

/// <summary>Totals for one port, summed over PMDs, plus the device's own counters.</summary>
public sealed record PortSnapshot(string Name, ulong RxPackets, ulong TxPackets, ulong TxDrops, PortHwStats Hw);

/// <summary>Totals for one PMD thread.</summary>
public sealed record PmdSnapshot(int Index, int Core, ulong RxPackets, ulong TxPackets, ulong TxDrops, ulong FwdDrops,
    ulong BusyCycles, ulong IdleCycles, ulong RxBursts, ulong Rounds);

public sealed record Snapshot(DateTime Time, IReadOnlyList<PortSnapshot> Ports, IReadOnlyList<PmdSnapshot> Pmds)
{
    public ulong RxPackets => Pmds.Aggregate(0UL, (a, p) => a + p.RxPackets);

    public ulong TxPackets => Pmds.Aggregate(0UL, (a, p) => a + p.TxPackets);

    public ulong Drops => Pmds.Aggregate(0UL, (a, p) => a + p.TxDrops + p.FwdDrops);
}

public sealed class SwitchDatapath : IDisposable
{
    private readonly SwitchConfig _config;
    private readonly List<DpdkPort> _ports = [];
    private readonly List<PmdThread> _pmds = [];
    private L2fwdTable? _l2fwd;
    private Mempool? _pool;
    private uint _inUseBaseline;
    private bool _ealUp;
    private bool[] _linkUp = [];
    private readonly List<string> _notices = [];

    public SwitchDatapath(SwitchConfig config) => _config = config;

    public EalInfo? Eal { get; private set; }

    public IReadOnlyList<DpdkPort> Ports => _ports;

    public IReadOnlyList<PmdThread> Pmds => _pmds;

    public Mempool? Pool => _pool;

    public uint InUseBaseline => _inUseBaseline;

    public void Start()
    {
        _config.Validate(Environment.ProcessorCount);
        bool anyPci = _config.Ports.Any(p => DpdkPort.IsPciDevArgs(p.DevArgs));
        int mainCore = Enumerable.Range(0, Environment.ProcessorCount).FirstOrDefault(c => !_config.PmdCores.Contains(c));
        Eal = Interop.Eal.Init(_config.EalArgs, anyPci, _config.NoHugeFallback, mainCore);
        _ealUp = true;

        int pmdCount = _config.PmdCores.Count;
        uint mbufs = _config.Mbufs != 0 ? _config.Mbufs : SizePool();
        _pool = Mempool.Create("vsw_pool", mbufs, _config.MempoolCache, 2048 + Mbuf.Headroom);
        _inUseBaseline = _pool.InUse;

        foreach (var pc in _config.Ports)
        {
            OpenPort(pc, pmdCount);
        }

        // Start from "down" so the first poll logs every link that is up, including a guest that
        // attached during start-up (client mode connects while the port starts).
        _linkUp = new bool[_ports.Count];

        // Datapath port number = index in _ports.
        var assignment = _config.AssignRxQueues();
        _l2fwd = new L2fwdTable();
        foreach (var (a, b) in _config.L2fwdPairs)
        {
            int ia = IndexOf(a), ib = IndexOf(b);
            _l2fwd.SetRoute(ia, ib);
            _l2fwd.SetRoute(ib, ia);
        }

        for (int i = 0; i < _ports.Count; i++)
        {
            _l2fwd.SetRewrite(i, _ports[i].Mac);
        }

        ulong tscHz = Eal.TscHz;
        for (int pi = 0; pi < pmdCount; pi++)
        {
            int core = _config.PmdCores[pi];
            var state = new PmdState(pi) { DrainCycles = (ulong)(_config.TxDrainMicros * tscHz / 1e6) };
            var queues = new List<RxQueueRef>();
            for (int dp = 0; dp < _ports.Count; dp++)
            {
                state.SetTxPort(dp, _ports[dp].PortId, (ushort)pi, enabled: true);
                for (int q = 0; q < _ports[dp].RxQueues; q++)
                {
                    if (assignment[(_ports[dp].Name, q)] == core)
                    {
                        queues.Add(new RxQueueRef { DpPort = dp, PortId = _ports[dp].PortId, QueueId = (ushort)q });
                    }
                }
            }

            state.SetRxQueues(queues);
            var handler = new L2Forwarder(_l2fwd, _config.MacRewrite);
            var pmd = new PmdThread(core, state, st =>
            {
                var loop = new PmdLoop<DpdkIo, L2Forwarder>(st, default, handler);
                loop.Run();
                return () => loop.AllocatedBytesDuringRun;
            });
            _pmds.Add(pmd);
            pmd.Start();
        }

        Interop.Eal.ShowLog();
    }

    /// <summary>Probes, configures and starts one port; vhost-user ports get their socket handling.</summary>
    private void OpenPort(PortConfig pc, int pmdCount)
    {
        var vhost = VhostUserArgs.Parse(pc.DevArgs);
        if (vhost == null)
        {
            var port = DpdkPort.Probe(pc.Name, pc.DevArgs);
            _ports.Add(port);
            port.ConfigureAndStart(pc.RxQueues, pmdCount, pc.RxDescriptors, pc.TxDescriptors, _pool!);
            return;
        }

        if (pc.RxQueues > vhost.Queues || pmdCount > vhost.Queues)
        {
            throw new VSwitchException($"port '{pc.Name}': {Math.Max(pc.RxQueues, pmdCount)} queue pairs needed ({pc.RxQueues} rx, one tx per PMD) but the device has queues={vhost.Queues}; add queues=N to its devargs");
        }

        if (!vhost.Client && VhostUser.PrepareServerSocket(pc.Name, vhost.SocketPath) is string notice)
        {
            _notices.Add(notice);
        }

        VhostUser.WithSocketMode(vhost.SocketPath, vhost.Client, () =>
        {
            var port = DpdkPort.Probe(pc.Name, pc.DevArgs);
            _ports.Add(port);
            port.ConfigureAndStart(pc.RxQueues, pmdCount, pc.RxDescriptors, pc.TxDescriptors, _pool!);
            return port;
        });
    }

    /// <summary>Start-up notices (stale sockets removed, ...).</summary>
    public IReadOnlyList<string> Notices => _notices;

    /// <summary>
    /// Reads every port's link state and returns one line per change (for the operator's log).
    /// Tx is not gated on it: a link seen up 100 ms late would drop a VM's first packets. Drivers
    /// refuse tx while down (net_vhost takes nothing until a guest attaches), and what they refuse
    /// is freed and counted as tx drops by the PMD.
    /// </summary>
    public IReadOnlyList<string> PollLinks()
    {
        var events = new List<string>();
        for (int dp = 0; dp < _ports.Count; dp++)
        {
            bool up = _ports[dp].Link().Up != 0;
            if (up == _linkUp[dp])
            {
                continue;
            }

            _linkUp[dp] = up;
            events.Add($"port {_ports[dp].Name} link {(up ? "up" : "down")}");
        }

        return events;
    }

    private uint SizePool()
    {
        // Every rx and tx descriptor may hold an mbuf, plus per-lcore caches and in-flight bursts.
        long n = _config.Ports.Sum(p => (long)p.RxQueues * p.RxDescriptors + (long)_config.PmdCores.Count * p.TxDescriptors)
                 + (_config.PmdCores.Count + 1) * (_config.MempoolCache + 4L * PmdState.TxCapacity * _config.Ports.Count) + 8192;
        return (uint)Math.Clamp(n, 8192, 1 << 22);
    }

    private int IndexOf(string name) => _ports.FindIndex(p => p.Name == name);

    public Snapshot TakeSnapshot()
    {
        var ports = new List<PortSnapshot>();
        for (int dp = 0; dp < _ports.Count; dp++)
        {
            ulong rx = 0, tx = 0, drops = 0;
            foreach (var pmd in _pmds)
            {
                unsafe
                {
                    var c = pmd.State.PortCounters[dp];
                    rx += c.RxPackets;
                    tx += c.TxPackets;
                    drops += c.TxDrops;
                }
            }

            ports.Add(new PortSnapshot(_ports[dp].Name, rx, tx, drops, _ports[dp].Stats()));
        }

        var pmds = new List<PmdSnapshot>();
        foreach (var pmd in _pmds)
        {
            unsafe
            {
                var c = *pmd.State.Counters;
                pmds.Add(new PmdSnapshot(pmd.State.Index, pmd.Core, c.RxPackets, c.TxPackets, c.TxDrops, c.FwdDrops,
                    c.BusyCycles, c.IdleCycles, c.RxBursts, c.Rounds));
            }
        }

        return new Snapshot(DateTime.UtcNow, ports, pmds);
    }

    /// <summary>Stops PMDs and ports; returns the number of mbufs still in use above the baseline (leaked).</summary>
    public long Stop()
    {
        foreach (var pmd in _pmds)
        {
            pmd.RequestStop();
        }

        foreach (var pmd in _pmds)
        {
            pmd.Join();
        }

        foreach (var port in _ports)
        {
            port.DrainRx();
        }

        foreach (var port in _ports)
        {
            port.Stop();
        }

        long leaked = _pool == null ? 0 : (long)_pool.InUse - _inUseBaseline;
        return leaked;
    }

    /// <summary>Closes ports and releases the EAL.</summary>
    public void Dispose()
    {
        foreach (var port in _ports)
        {
            port.Remove();
        }

        _ports.Clear();
        foreach (var pmd in _pmds)
        {
            pmd.State.Dispose();
        }

        _pmds.Clear();
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
