// Commands.cs - what the control socket can do to a running switch. Each command validates its
// arguments completely before changing anything, and throws VSwitchException (-> an error
// response) with a message saying what and where.
using System.Text.Json.Nodes;
using VSwitch.Config;
using VSwitch.Datapath;

namespace VSwitch.Control;

public sealed class Commands(SwitchDatapath dp)
{
    public static readonly string[] Names = ["show", "dump-ports", "add-port", "del-port", "pmd-stats-show", "pmd-rxq-show"];

    public JsonNode? Execute(string cmd, JsonObject args) => cmd switch
    {
        "show" => Show(),
        "dump-ports" => DumpPorts(),
        "add-port" => AddPort(args),
        "del-port" => DelPort(args),
        "pmd-stats-show" => PmdStats(),
        "pmd-rxq-show" => PmdRxq(),
        _ => throw new VSwitchException($"unknown command '{cmd}' (known: {string.Join(", ", Names)})"),
    };

    private static string Str(JsonObject args, string name, bool required = true)
    {
        if (args[name] is JsonValue v && v.TryGetValue(out string? s) && !string.IsNullOrEmpty(s))
        {
            return s;
        }

        return required ? throw new VSwitchException($"argument \"{name}\" (a non-empty string) is required") : "";
    }

    private static int Int(JsonObject args, string name, int dflt, int min, int max)
    {
        if (args[name] is null)
        {
            return dflt;
        }

        if (args[name] is JsonValue v && v.TryGetValue(out int i) && i >= min && i <= max)
        {
            return i;
        }

        throw new VSwitchException($"argument \"{name}\" must be an integer from {min} to {max}");
    }

    private JsonObject Show()
    {
        var ports = new JsonArray();
        foreach (var p in dp.Ports)
        {
            ports.Add((JsonNode)new JsonObject
            {
                ["name"] = p.Name, ["number"] = dp.DpPortOf(p), ["dpdk_port"] = p.PortId, ["driver"] = p.Driver,
                ["devargs"] = p.DevArgs, ["mac"] = p.MacString, ["rxq"] = p.RxQueues, ["txq"] = p.TxQueues,
                ["link"] = dp.LinkUp(p) ? "up" : "down",
            });
        }

        var pmds = new JsonArray();
        foreach (var t in dp.Pmds)
        {
            pmds.Add((JsonNode)new JsonObject { ["index"] = t.State.Index, ["core"] = t.Core, ["lcore"] = t.LcoreId });
        }

        return new JsonObject { ["ports"] = ports, ["pmds"] = pmds };
    }

    private JsonObject DumpPorts()
    {
        var s = dp.TakeSnapshot();
        var ports = new JsonArray();
        foreach (var p in s.Ports)
        {
            ports.Add((JsonNode)new JsonObject
            {
                ["name"] = p.Name, ["rx_packets"] = p.RxPackets, ["tx_packets"] = p.TxPackets, ["tx_drops"] = p.TxDrops,
                ["hw_ipackets"] = p.Hw.IPackets, ["hw_opackets"] = p.Hw.OPackets, ["hw_ibytes"] = p.Hw.IBytes,
                ["hw_obytes"] = p.Hw.OBytes, ["hw_imissed"] = p.Hw.IMissed, ["hw_ierrors"] = p.Hw.IErrors,
                ["hw_oerrors"] = p.Hw.OErrors, ["hw_rx_nombuf"] = p.Hw.RxNoMbuf,
            });
        }

        return new JsonObject { ["ports"] = ports };
    }

    private JsonObject AddPort(JsonObject args)
    {
        var pc = new PortConfig
        {
            Name = Str(args, "name"),
            DevArgs = Str(args, "devargs"),
            RxQueues = Int(args, "rxq", 1, 1, 128),
            RxDescriptors = Int(args, "rxd", 1024, 32, 32768),
            TxDescriptors = Int(args, "txd", 1024, 32, 32768),
        };
        var pair = Str(args, "pair", required: false);
        var port = dp.AddPort(pc, pair.Length == 0 ? null : pair);
        return new JsonObject { ["name"] = port.Name, ["number"] = dp.DpPortOf(port), ["dpdk_port"] = port.PortId };
    }

    private JsonObject DelPort(JsonObject args)
    {
        var name = Str(args, "name");
        dp.RemovePort(name);
        return new JsonObject { ["removed"] = name };
    }

    private JsonObject PmdStats()
    {
        var s = dp.TakeSnapshot();
        var pmds = new JsonArray();
        foreach (var p in s.Pmds)
        {
            pmds.Add((JsonNode)new JsonObject
            {
                ["index"] = p.Index, ["core"] = p.Core, ["rx_packets"] = p.RxPackets, ["tx_packets"] = p.TxPackets,
                ["tx_drops"] = p.TxDrops, ["fwd_drops"] = p.FwdDrops, ["busy_cycles"] = p.BusyCycles, ["idle_cycles"] = p.IdleCycles,
                ["cycles_per_packet"] = p.RxPackets > 0 ? Math.Round((double)p.BusyCycles / p.RxPackets, 1) : 0,
                ["slept_us"] = p.SleptMicros,
                ["idle_share"] = p.BusyCycles + p.IdleCycles > 0 ? Math.Round((double)p.IdleCycles / (p.BusyCycles + p.IdleCycles), 4) : 1,
            });
        }

        return new JsonObject { ["pmds"] = pmds };
    }

    private JsonObject PmdRxq()
    {
        var pmds = new JsonArray();
        foreach (var (core, queues) in dp.RxQueueAssignment())
        {
            pmds.Add((JsonNode)new JsonObject { ["core"] = core, ["rxqs"] = new JsonArray(queues.Select(q => (JsonNode?)q).ToArray()) });
        }

        return new JsonObject { ["pmds"] = pmds };
    }
}
