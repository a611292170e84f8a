// SwitchConfig.cs - the daemon's configuration: EAL arguments, ports, PMD cores, forwarding mode.
//
// Read from JSON (docs/CONFIG.md) and/or command-line options, both through the one table of
// settings (Settings.cs); every error names the file, the JSON path or option, and what was expected. Validation happens before the EAL starts, so a bad
// config never leaves half-started ports behind.
using System.Text.Json;

namespace VSwitch.Config;

public sealed class PortConfig
{
    public required string Name { get; init; }

    public required string DevArgs { get; set; }

    public int RxQueues { get; set; } = 1;

    public int RxDescriptors { get; set; } = 1024;

    public int TxDescriptors { get; set; } = 1024;

    /// <summary>The device MTU to request (as ovs-vsctl's mtu_request); 0 keeps the device's default.</summary>
    public int Mtu { get; set; }
    /// <summary>Highest OpenFlow port number (OpenFlow's OFPP_MAX, as the flow syntax accepts).</summary>
    public const int MaxOfPort = 65280;

    /// <summary>
    /// The port's OpenFlow number: requested (ofport_request), or set by the switch when it adds the
    /// port and kept in the state file so flows keep naming the same port across restarts.
    /// </summary>
    public int? OfPort { get; set; }

    /// <summary>Pipeline mode: how NORMAL treats VLANs on this port (none, access, trunk).</summary>
    public Pipeline.VlanMode VlanMode { get; set; }

    /// <summary>Access port: its VLAN.</summary>
    public ushort Tag { get; set; }

    /// <summary>Trunk port: the VLANs it carries (empty: all).</summary>
    public List<ushort> Trunks { get; set; } = [];

    /// <summary>A copy (the switch keeps its own; an undone del-port re-adds the port from one).</summary>
    public PortConfig Clone() => new()
    {
        Name = Name, DevArgs = DevArgs, RxQueues = RxQueues, RxDescriptors = RxDescriptors, TxDescriptors = TxDescriptors,
        Mtu = Mtu, OfPort = OfPort, VlanMode = VlanMode, Tag = Tag, Trunks = [.. Trunks],
    };

    /// <summary>The VLAN mode as <see cref="SetVlan"/> reads it.</summary>
    public string VlanSpec => VlanMode switch
    {
        Pipeline.VlanMode.Access => $"access:{Tag}",
        Pipeline.VlanMode.Trunk => Trunks.Count == 0 ? "trunk" : "trunk:" + string.Join(',', Trunks),
        _ => "none",
    };

    /// <summary>The DPDK device a devargs string names (before the first comma; PCI addresses with their domain, lower case).</summary>
    public static string DeviceName(string devArgs)
    {
        var name = devArgs.Split(',')[0].Trim();
        if (Ports.DpdkPort.IsPciDevArgs(name))
        {
            name = name.ToLowerInvariant();
            return name.Length == 7 ? "0000:" + name : name;
        }

        return name;
    }

    /// <summary>Whether two devargs strings name the same DPDK device.</summary>
    public static bool SameDevice(string a, string b) => string.Equals(DeviceName(a), DeviceName(b), StringComparison.Ordinal);

    /// <summary>Parses "access:TAG" or "trunk:V1,V2,..." (or "none").</summary>
    public void SetVlan(string spec, string where)
    {
        var (mode, rest) = spec.IndexOf(':') is int i and >= 0 ? (spec[..i], spec[(i + 1)..]) : (spec, "");
        ushort Vid(string v) => ushort.TryParse(v, out ushort x) && x <= 4095
            ? x : throw new VSwitchException($"{where}: VLAN '{v}' is not a number from 0 to 4095");
        switch (mode)
        {
            case "none":
                VlanMode = Pipeline.VlanMode.None;
                break;
            case "access":
                VlanMode = Pipeline.VlanMode.Access;
                Tag = Vid(rest);
                break;
            case "trunk":
                VlanMode = Pipeline.VlanMode.Trunk;
                Trunks = rest.Length == 0 ? [] : rest.Split(',').Select(Vid).ToList();
                break;
            default:
                throw new VSwitchException($"{where}: VLAN mode '{mode}' is not one of none, access:TAG, trunk[:VLANS]");
        }
    }
}

/// <summary>Pins rx queue <see cref="Queue"/> of <see cref="Port"/> to the PMD on <see cref="Core"/>.</summary>
public sealed record RxqAssignment(string Port, int Queue, int Core);

public enum ForwardingMode
{
    L2fwd,

    /// <summary>The flow pipeline: microflow and megaflow caches over OpenFlow-like tables.</summary>
    Pipeline,
}

public sealed class SwitchConfig
{
    public List<string> EalArgs { get; } = [];

    public List<PortConfig> Ports { get; } = [];

    public List<int> PmdCores { get; } = [];

    public List<RxqAssignment> RxqAssignments { get; } = [];

    public ForwardingMode Mode { get; set; } = ForwardingMode.L2fwd;

    /// <summary>l2fwd: rewrite source MAC to the output port's and destination to 02:00:00:00:00:&lt;port&gt;.</summary>
    public bool MacRewrite { get; set; } = true;

    /// <summary>l2fwd port pairs by name; empty means consecutive pairs (p0,p1), (p2,p3), ...</summary>
    public List<(string A, string B)> L2fwdPairs { get; } = [];

    /// <summary>Mbufs in the pool; 0 sizes it from the ports' descriptor counts.</summary>
    public uint Mbufs { get; set; }

    public uint MempoolCache { get; set; } = 256;

    /// <summary>Tx drain interval: a buffered packet waits at most this long for a full burst.</summary>
    public double TxDrainMicros { get; set; }

    public double StatsIntervalSeconds { get; set; } = 1;

    /// <summary>PMD sleep: longest sleep of an idle PMD in microseconds (0: never sleep).</summary>
    public int PmdSleepMaxMicros { get; set; }

    /// <summary>Stop after this many seconds (benchmarks, tests); null runs until SIGINT/SIGTERM.</summary>
    public double? DurationSeconds { get; set; }

    /// <summary>Control socket path; null disables the control socket.</summary>
    public string? ControlSocket { get; set; } = DefaultControlSocket;

    public const string DefaultControlSocket = "/run/vswitch/vswitchd.sock";

    /// <summary>Where /metrics (Prometheus text) is served; null (the default) serves nothing.</summary>
    public MetricsEndpoint? Metrics { get; set; }

    /// <summary>Use --no-huge automatically when no hugepages are usable and every port allows it.</summary>
    public bool NoHugeFallback { get; set; } = true;

    /// <summary>Pipeline mode: a flow file (ovs-ofctl syntax, docs/FLOWS.md) loaded at start.</summary>
    public string? FlowsFile { get; set; }

    /// <summary>Pipeline mode: most megaflows per PMD.</summary>
    public int MegaflowLimit { get; set; } = 200_000;

    /// <summary>Pipeline mode: megaflows unused this long are removed.</summary>
    public int MegaflowIdleMs { get; set; } = 10_000;

    /// <summary>Connections the connection table holds (its pool, allocated with the first ct rule).</summary>
    public int ConntrackSize { get; set; } = Conntrack.ConnTable.DefaultCapacity;

    /// <summary>The crypto device IPsec uses (a DPDK crypto vdev name, probed on the first add-sa).</summary>
    public string CryptoDevice { get; set; } = "crypto_aesni_mb0";

    /// <summary>Descriptors of each crypto queue pair (operations a PMD may have at the crypto device).</summary>
    public int CryptoQueueSize { get; set; } = 2048;

    /// <summary>Pipeline mode: a microflow entry is made for one in this many megaflow hits.</summary>
    public int EmcInsertInvProb { get; set; } = 100;

    /// <summary>Pipeline mode: where ports and flow tables are kept across restarts (null: not kept).</summary>
    public string? StateFile { get; set; }

    /// <summary>True when <see cref="Ports"/> holds only the embedded default (no port was configured); a state file's ports replace them.</summary>
    public bool PortsAreEmbeddedDefault { get; set; }

    /// <summary>The embedded default: l2fwd between two net_null ports, no NIC needed.</summary>
    public static SwitchConfig EmbeddedDefault()
    {
        var c = new SwitchConfig();
        c.Ports.Add(new PortConfig { Name = "null0", DevArgs = "net_null0,size=64" });
        c.Ports.Add(new PortConfig { Name = "null1", DevArgs = "net_null1,size=64" });
        return c;
    }

    /// <summary>Parses a JSON config; <paramref name="source"/> names the file in errors.</summary>
    public static SwitchConfig FromJson(string json, string source)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new VSwitchException($"{source}: invalid JSON at line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}: {e.Message.Split('.')[0]}");
        }

        using (doc)
        {
            var c = new SwitchConfig();
            JsonRead.Expect(doc.RootElement, JsonValueKind.Object, $"{source}: $");
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                Settings.ReadJson(c, prop.Name, prop.Value, $"{source}: $.{prop.Name}");
            }

            return c;
        }
    }

    public static ForwardingMode ParseMode(string s, string where) => s switch
    {
        "l2fwd" => ForwardingMode.L2fwd,
        "pipeline" => ForwardingMode.Pipeline,
        _ => throw new VSwitchException($"{where}: unknown forwarding mode '{s}' (known: l2fwd, pipeline)"),
    };

    /// <summary>Checks names, pairs, cores and queue assignments; fills in defaults. Throws on the first problem.</summary>
    public void Validate(int cpuCount)
    {
        if (Ports.Count == 0)
        {
            throw new VSwitchException("no ports configured (add one with --port NAME=DEVARGS or \"ports\" in the config file)");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in Ports)
        {
            if (!names.Add(p.Name))
            {
                throw new VSwitchException($"port '{p.Name}' is defined twice");
            }

            VSwitch.Ports.DevArgFiles.Check(p.Name, p.DevArgs); // before EAL and the probe: name a missing file
        }

        for (int i = 0; i < Ports.Count; i++)
        {
            for (int j = 0; j < i; j++)
            {
                if (PortConfig.SameDevice(Ports[i].DevArgs, Ports[j].DevArgs))
                {
                    throw new VSwitchException($"ports '{Ports[j].Name}' and '{Ports[i].Name}' both use device '{PortConfig.DeviceName(Ports[i].DevArgs)}'; a device can back one port only");
                }

                if (Ports[i].OfPort is int n && Ports[j].OfPort == n)
                {
                    throw new VSwitchException($"ports '{Ports[j].Name}' and '{Ports[i].Name}' both have OpenFlow port {n}");
                }
            }
        }

        if (Ports.Count > Pmd.PmdState.MaxPorts)
        {
            throw new VSwitchException($"{Ports.Count} ports configured; at most {Pmd.PmdState.MaxPorts} are supported");
        }

        if (PmdCores.Count == 0)
        {
            PmdCores.Add(cpuCount > 1 ? cpuCount - 1 : 0);
        }

        foreach (int core in PmdCores)
        {
            if (core < 0 || core >= cpuCount)
            {
                throw new VSwitchException($"PMD core {core} does not exist: this machine has cores 0 to {cpuCount - 1}");
            }
        }

        if (PmdCores.Distinct().Count() != PmdCores.Count)
        {
            throw new VSwitchException($"PMD cores {string.Join(',', PmdCores)}: a core is listed twice");
        }

        foreach (var a in RxqAssignments)
        {
            var port = Ports.FirstOrDefault(p => p.Name == a.Port)
                ?? throw new VSwitchException($"rx queue assignment names unknown port '{a.Port}'");
            if (a.Queue >= port.RxQueues)
            {
                throw new VSwitchException($"rx queue assignment: port '{a.Port}' has {port.RxQueues} rx queue(s), queue {a.Queue} does not exist");
            }

            if (!PmdCores.Contains(a.Core))
            {
                throw new VSwitchException($"rx queue assignment of {a.Port}:{a.Queue} names core {a.Core}, which is not a PMD core ({string.Join(',', PmdCores)})");
            }
        }

        if (Mode == ForwardingMode.Pipeline && L2fwdPairs.Count != 0)
        {
            throw new VSwitchException("l2fwd pairs are given but the forwarding mode is pipeline (flows decide where packets go)");
        }

        if (Mode != ForwardingMode.Pipeline && FlowsFile != null)
        {
            throw new VSwitchException("a flow file is given but the forwarding mode is l2fwd; add --mode pipeline");
        }

        if (Mode == ForwardingMode.L2fwd)
        {
            if (L2fwdPairs.Count == 0)
            {
                if (Ports.Count % 2 != 0)
                {
                    throw new VSwitchException($"l2fwd pairs ports two by two, but {Ports.Count} ports are configured; add a port or give l2fwd_pairs");
                }

                for (int i = 0; i < Ports.Count; i += 2)
                {
                    L2fwdPairs.Add((Ports[i].Name, Ports[i + 1].Name));
                }
            }

            var used = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (a, b) in L2fwdPairs)
            {
                foreach (var n in new[] { a, b })
                {
                    if (!names.Contains(n))
                    {
                        throw new VSwitchException($"l2fwd pair ({a}, {b}) names unknown port '{n}'");
                    }
                }

                if (a == b || !used.Add(a) || !used.Add(b))
                {
                    throw new VSwitchException($"l2fwd pair ({a}, {b}): each port may appear in one pair only, with another port");
                }
            }
        }
    }

    /// <summary>Rx queue to PMD core: explicit assignments first, the rest round-robin over the PMD cores.</summary>
    public Dictionary<(string Port, int Queue), int> AssignRxQueues()
    {
        var map = new Dictionary<(string, int), int>();
        foreach (var a in RxqAssignments)
        {
            map[(a.Port, a.Queue)] = a.Core;
        }

        int next = 0;
        foreach (var p in Ports)
        {
            for (int q = 0; q < p.RxQueues; q++)
            {
                if (!map.ContainsKey((p.Name, q)))
                {
                    map[(p.Name, q)] = PmdCores[next++ % PmdCores.Count];
                }
            }
        }

        return map;
    }
}
