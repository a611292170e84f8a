// RxqScheduler.cs - which PMD core polls which rx queue, and the per-PMD plans built from it.
//
// Queues named by --rxq-assign (PORT:Q=CORE) are pinned; every other queue goes to the PMD core
// with the fewest queues when its port is added (ties: the lower core), and keeps it until the port
// goes. Each PMD's plan lists its rx queues and a tx target for every slot (its own tx queue, the
// PMD index, on every port). Control thread only (the datapath's lock).
using VSwitch.Pmd;

namespace VSwitch.Datapath;

public sealed class RxqScheduler
{
    private readonly IReadOnlyList<int> _cores;
    private readonly Dictionary<(string Port, int Queue), int> _coreOf = [];

    /// <param name="pmdCores">The PMD cores, in PMD index order.</param>
    /// <param name="pinned">Queues the configuration assigns to a core.</param>
    public RxqScheduler(IReadOnlyList<int> pmdCores, IEnumerable<KeyValuePair<(string Port, int Queue), int>> pinned)
    {
        _cores = pmdCores;
        foreach (var (key, core) in pinned)
        {
            _coreOf[key] = core;
        }
    }

    /// <summary>Gives each of <paramref name="port"/>'s first <paramref name="queues"/> queues a core, unless pinned already.</summary>
    public void Place(string port, int queues)
    {
        for (int q = 0; q < queues; q++)
        {
            if (!_coreOf.ContainsKey((port, q)))
            {
                _coreOf[(port, q)] = LeastLoadedCore();
            }
        }
    }

    /// <summary>Drops every queue of a removed port.</summary>
    public void Forget(string port)
    {
        foreach (var key in _coreOf.Keys.Where(k => k.Port == port).ToList())
        {
            _coreOf.Remove(key);
        }
    }

    private int LeastLoadedCore() =>
        _cores.OrderBy(c => _coreOf.Values.Count(v => v == c)).ThenBy(c => c).First();

    /// <summary>Rx queues per PMD core, as "port:queue" names.</summary>
    public Dictionary<int, List<string>> ByCore() =>
        _cores.ToDictionary(c => c, c => _coreOf.Where(kv => kv.Value == c)
            .OrderBy(kv => kv.Key.Port, StringComparer.Ordinal).ThenBy(kv => kv.Key.Queue)
            .Select(kv => $"{kv.Key.Port}:{kv.Key.Queue}").ToList());

    /// <summary>Every PMD's plan for the ports in <paramref name="ports"/> (index i: the PMD on core <c>pmds[i].Core</c>).</summary>
    public List<PmdPlan> BuildPlans(long version, PortRegistry ports, IReadOnlyList<PmdThread> pmds)
    {
        var plans = new List<PmdPlan>(pmds.Count);
        foreach (var pmd in pmds)
        {
            var rx = new List<RxQueueRef>();
            var tx = new List<(int, ushort, ushort, bool, bool)>();
            for (int dp = 0; dp < PmdState.MaxPorts; dp++)
            {
                var port = ports[dp];
                tx.Add((dp, port?.PortId ?? 0, (ushort)pmd.State.Index, port != null, port?.MayBlock ?? false));
                if (port == null)
                {
                    continue;
                }

                for (int q = 0; q < port.RxQueues; q++)
                {
                    if (_coreOf[(port.Name, q)] == pmd.Core)
                    {
                        rx.Add(new RxQueueRef { DpPort = dp, PortId = port.PortId, QueueId = (ushort)q, OfPort = (ushort)ports.OfPortAt(dp), MayBlock = (ushort)(port.MayBlock ? 1 : 0) });
                    }
                }
            }

            plans.Add(new PmdPlan(version, rx, tx));
        }

        return plans;
    }
}
