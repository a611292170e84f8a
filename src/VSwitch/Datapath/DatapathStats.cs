// DatapathStats.cs - what the switch reports: per-port and per-PMD counter snapshots, link state
// changes and PMD faults for the log, and the rx queue assignment.
using VSwitch.Config;
using VSwitch.Pmd;
using VSwitch.Ports;

namespace VSwitch.Datapath;

public sealed partial class SwitchDatapath
{
    /// <summary>
    /// Reads every port's link state and returns one line per change (for the operator's log); a
    /// change is published to the pipeline (group buckets watch ports' links).
    /// Tx is not gated on it: a link seen up 100 ms late would drop a VM's first packets. Drivers
    /// refuse tx while down (net_vhost takes nothing until a guest attaches), and what they refuse
    /// is freed and counted as tx drops by the PMD.
    /// </summary>
    public IReadOnlyList<string> PollLinks()
    {
        lock (_control)
        {
            var events = new List<string>();
            for (int dp = 0; dp < PmdState.MaxPorts; dp++)
            {
                var port = _ports[dp];
                if (port == null)
                {
                    continue;
                }

                bool up = port.Link().Up != 0;
                if (up != _linkUp[dp])
                {
                    _linkUp[dp] = up;
                    events.Add($"port {port.Name} link {(up ? "up" : "down")}");
                }
            }

            if (events.Count > 0 && _flows != null)
            {
                // fast_failover's watch ports: a new version with the link states makes cached verdicts revalidate.
                _flows.PublishLinkStates(PipelinePorts());
            }

            return events;
        }
    }

    public bool LinkUp(DpdkPort port) => _linkUp[DpPortOf(port)];

    /// <summary>
    /// Lines to log about PMD faults since the last call: packets dropped because their translation
    /// threw (with the last error's text), and exceptions that escaped a PMD loop (it was restarted).
    /// </summary>
    public unsafe IReadOnlyList<string> PollPmdFaults()
    {
        lock (_control)
        {
            List<string>? events = null;
            for (int i = 0; i < _pmds.Count; i++)
            {
                var pmd = _pmds[i];
                ulong errors = pmd.State.Counters->TranslationErrors;
                if (i < _flowPmds.Count && errors != pmd.TranslationErrorsLogged)
                {
                    (events ??= []).Add($"pmd {i}: {errors - pmd.TranslationErrorsLogged} packet(s) dropped: translation failed: {_flowPmds[i].LastTranslationError}");
                    pmd.TranslationErrorsLogged = errors;
                }

                if (pmd.LastFault is { } fault && pmd.Faults != pmd.FaultsLogged)
                {
                    (events ??= []).Add($"pmd {i}: {pmd.Faults - pmd.FaultsLogged} fault(s), loop restarted: {fault}");
                    pmd.FaultsLogged = pmd.Faults;
                }
            }

            return events ?? (IReadOnlyList<string>)[];
        }
    }

    private unsafe PortCountersBaseline CurrentCounters(int dp)
    {
        ulong rx = 0, tx = 0, drops = 0;
        foreach (var pmd in _pmds)
        {
            var c = pmd.State.PortCounters[dp];
            rx += c.RxPackets;
            tx += c.TxPackets;
            drops += c.TxDrops;
        }

        return new PortCountersBaseline(rx, tx, drops);
    }

    public Snapshot TakeSnapshot()
    {
        lock (_control)
        {
            var ports = new List<PortSnapshot>();
            for (int dp = 0; dp < PmdState.MaxPorts; dp++)
            {
                if (_ports[dp] is not DpdkPort port)
                {
                    continue;
                }

                var now = CurrentCounters(dp);
                var b = _baselines[dp];
                ports.Add(new PortSnapshot(port.Name, now.Rx - b.Rx, now.Tx - b.Tx, now.TxDrops - b.TxDrops, port.Stats(), _ports.OfPortAt(dp)));
            }

            var pmds = new List<PmdSnapshot>();
            foreach (var pmd in _pmds)
            {
                unsafe
                {
                    var c = *pmd.State.Counters;
                    int pi = _pmds.IndexOf(pmd);
                    pmds.Add(new PmdSnapshot(pmd.State.Index, pmd.Core, c, pi < _flowPmds.Count ? _flowPmds[pi].Megaflows.Count : 0));
                }
            }

            return new Snapshot(DateTime.UtcNow, ports, pmds);
        }
    }

    /// <summary>
    /// Each port's driver, link state and DPDK extended statistics, read under the control lock so
    /// a port removed meanwhile is not asked (its DPDK port id may already name another device).
    /// Control-plane only: xstats are read from the driver with plain loads, as dump-ports reads
    /// the basic counters.
    /// </summary>
    public IReadOnlyList<PortDetails> TakePortDetails()
    {
        lock (_control)
        {
            var list = new List<PortDetails>();
            for (int dp = 0; dp < PmdState.MaxPorts; dp++)
            {
                if (_ports[dp] is DpdkPort port)
                {
                    list.Add(new PortDetails(port.Name, port.Driver, _linkUp[dp], port.ExtendedStats()));
                }
            }

            return list;
        }
    }

    /// <summary>Rx queues per PMD core, as "port:queue" names.</summary>
    public IReadOnlyDictionary<int, List<string>> RxQueueAssignment()
    {
        lock (_control)
        {
            return _rxqs?.ByCore() ?? [];
        }
    }
}
