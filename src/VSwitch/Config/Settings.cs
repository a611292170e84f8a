// Settings.cs - the one table of vswitchd's settings.
//
// Every setting the JSON config file takes is a row here, with its command-line option, help text,
// default and range. SwitchConfig.FromJson reads the file through these rows, vswitchd's command
// line (src/VSwitch.Daemon/Options.cs) builds its options and its --help from them, and the
// control socket's add-port checks a port's numbers against the same ranges: a range is written
// once, so the file and the command line cannot disagree. docs/CONFIG.md describes each row (a test
// checks that every key and option appears there and in --help).
using System.Text.Json;

namespace VSwitch.Config;

public static class Settings
{
    /// <summary>PMD cores and rx queue numbers (pmd_cores, rxq_assign).</summary>
    public static readonly ValueRange Cores = ValueRange.Ints(0, 1023);

    // Per-port settings: keys of a port object, options NAME=VALUE. Named so add-port shares them.
    public static readonly Setting RxQueues = PortInt("rxq", "--rxq", "N", 1, 128, "1",
        "rx queues of port NAME (one tx queue per PMD is created on every port)", (p, v) => p.RxQueues = v);

    public static readonly Setting RxDescriptors = PortInt("rxd", "--rxd", "N", 32, 32768, "1024",
        "rx descriptors per queue of port NAME", (p, v) => p.RxDescriptors = v);

    public static readonly Setting TxDescriptors = PortInt("txd", "--txd", "N", 32, 32768, "1024",
        "tx descriptors per queue of port NAME", (p, v) => p.TxDescriptors = v);

    public static readonly Setting Mtu = PortInt("mtu", "--port-mtu", "MTU", 68, 65535, "the device's",
        "the device MTU of port NAME, as ovs-vsctl's mtu_request; refused at start if outside the device's range", (p, v) => p.Mtu = v);

    public static readonly Setting OfPort = PortInt("ofport", "--ofport", "N", 1, PortConfig.MaxOfPort, "the next number never used, from 1 (kept in the state file)",
        "OpenFlow port number of port NAME; two ports with one number are refused", (p, v) => p.OfPort = v);

    public static readonly Setting Vlan = new()
    {
        Key = "vlan",
        Option = "--port-vlan",
        ValueName = "NAME=SPEC",
        Scope = SettingScope.Port,
        Repeatable = true,
        JsonType = "string",
        Choices = ["none", "access:TAG", "trunk[:V1,V2,...]"],
        Default = "none",
        Help = "pipeline: how NORMAL treats VLANs on port NAME (TAG and V: 0 to 4095; a trunk without a list carries every VLAN)",
        ReadPortJson = (p, e, where) => p.SetVlan(JsonRead.Str(e, where), where),
        ReadText = PortText("--port-vlan", spec =>
        {
            new PortConfig { Name = "", DevArgs = "" }.SetVlan(spec, "--port-vlan"); // checked now, applied with the other per-port values
            return p => p.SetVlan(spec, "--port-vlan");
        }),
    };

    /// <summary>Every setting, in the order help lists them.</summary>
    public static IReadOnlyList<Setting> All { get; } =
    [
        Repeated("ports", "--port", "NAME=DEVARGS", "array of port objects",
            "net_null0 and net_null1 (l2fwd between them) when no port is given",
            "add a DPDK port, probed by its devargs (any DPDK device string), e.g. p0=net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap; "
            + "a device backs one port only",
            ReadPort,
            text =>
            {
                var (name, devargs) = TextRead.Split(text, '=', "--port");
                return new PortConfig { Name = name, DevArgs = devargs };
            },
            c => c.Ports),
        RxQueues,
        RxDescriptors,
        TxDescriptors,
        Mtu,
        OfPort,
        Vlan,
        new()
        {
            Key = "pmd_cores",
            Option = "--pmd-cores",
            ValueName = "LIST",
            JsonType = "array of ints",
            Range = Cores,
            Default = "the last core",
            Help = "the cores of the PMD threads, e.g. 1 or 1,2: one PMD thread per core, pinned",
            ReadJson = (c, e, where) =>
            {
                c.PmdCores.Clear();
                foreach (var (x, w) in JsonRead.Items(e, where))
                {
                    c.PmdCores.Add(Cores.Int(x, w));
                }
            },
            ReadText = text =>
            {
                var cores = text.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => Cores.Int(s, "--pmd-cores")).ToList();
                return c =>
                {
                    c.PmdCores.Clear();
                    c.PmdCores.AddRange(cores);
                };
            },
        },
        Repeated("rxq_assign", "--rxq-assign", "PORT:Q=CORE", "array of { \"port\", \"queue\" (0), \"core\" }",
            "round-robin over the PMD cores", "pin rx queue Q of port PORT to the PMD on CORE",
            (a, w) =>
            {
                JsonRead.Expect(a, JsonValueKind.Object, w);
                return new RxqAssignment(
                    JsonRead.Str(JsonRead.Get(a, "port", w), w + ".port"),
                    a.TryGetProperty("queue", out var q) ? Cores.Int(q, w + ".queue") : 0,
                    Cores.Int(JsonRead.Get(a, "core", w), w + ".core"));
            },
            text =>
            {
                var (pq, core) = TextRead.Split(text, '=', "--rxq-assign");
                var (port, queue) = TextRead.Split(pq, ':', "--rxq-assign");
                return new RxqAssignment(port, Cores.Int(queue, "--rxq-assign"), Cores.Int(core, "--rxq-assign"));
            },
            c => c.RxqAssignments, Cores),
        new()
        {
            Key = "mode",
            Option = "--mode",
            ValueName = "MODE",
            JsonType = "string",
            Choices = ["l2fwd", "pipeline"],
            Default = "l2fwd",
            Help = "forwarding mode: l2fwd (port pairs) or pipeline (flow tables, docs/FLOWS.md)",
            ReadJson = (c, e, where) => c.Mode = SwitchConfig.ParseMode(JsonRead.Str(e, where), where),
            ReadText = text =>
            {
                var mode = SwitchConfig.ParseMode(text, "--mode");
                return c => c.Mode = mode;
            },
        },
        PathSetting("flows", "--flows", "FILE", "none",
            "pipeline: load this flow file (ovs-ofctl syntax, docs/FLOWS.md) at start", (c, v) => c.FlowsFile = v),
        PathSetting("state_file", "--state", "FILE", "none",
            "pipeline: keep ports (with their OpenFlow numbers) and flow tables in FILE across restarts", (c, v) => c.StateFile = v),
        Int("megaflow_limit", "--megaflow-limit", "N", 1, 10_000_000, "200000",
            "pipeline: most megaflows per PMD (a full cache still forwards, by uncached upcalls)", (c, v) => c.MegaflowLimit = v),
        Int("megaflow_idle_ms", "--megaflow-idle-ms", "MS", 0, 86_400_000, "10000",
            "pipeline: megaflows unused this long are removed", (c, v) => c.MegaflowIdleMs = v),
        Int("conntrack_size", "--conntrack-size", "N", 16, 1 << 24, "262144",
            "pipeline: connections the connection table holds (256 B each, allocated when the first ct rule is loaded)", (c, v) => c.ConntrackSize = v),
        Name("crypto_device", "--crypto-dev", "NAME", "crypto_aesni_mb0",
            "pipeline: the DPDK crypto device IPsec uses (a vdev: crypto_aesni_mb0, crypto_openssl0), set up on the first add-sa",
            (c, v) => c.CryptoDevice = v),
        Int("crypto_queue_size", "--crypto-queue-size", "N", 32, 32768, "2048",
            "pipeline: descriptors of each PMD's crypto queue pair (IPsec operations in flight; a full queue drops and counts)", (c, v) => c.CryptoQueueSize = v),
        Int("emc_insert_inv_prob", "--emc-insert-inv-prob", "N", 0, 1_000_000, "100",
            "pipeline: a microflow-cache entry is made for 1 in N megaflow hits (0: never), as Open vSwitch's emc-insert-inv-prob", (c, v) => c.EmcInsertInvProb = v),
        Repeated("l2fwd_pairs", "--l2fwd-pair", "A,B", "array of [a, b]", "ports paired in order", "l2fwd: forward port A to B and B to A",
            (pair, w) => pair.ValueKind == JsonValueKind.Array && pair.GetArrayLength() == 2
                ? (JsonRead.Str(pair[0], w + "[0]"), JsonRead.Str(pair[1], w + "[1]"))
                : throw new VSwitchException($"{w}: each pair must be [\"portA\", \"portB\"]"),
            text => TextRead.Split(text, ',', "--l2fwd-pair"),
            c => c.L2fwdPairs),
        Flag("mac_rewrite", "--no-mac-rewrite", false, "true (rewrite)",
            "l2fwd: forward without rewriting MACs (plain io forwarding); with rewriting, the destination MAC becomes "
            + "02:00:00:00:00:<out port number> and the source MAC the output port's", (c, v) => c.MacRewrite = v),
        Int("mbufs", "--mbufs", "N", 1024, 16 * 1024 * 1024, "sized from the ports' descriptors",
            "mbuf pool size", (c, v) => c.Mbufs = (uint)v),
        Int("mempool_cache", "--mempool-cache", "N", 0, 512, "256",
            "per-lcore mempool cache", (c, v) => c.MempoolCache = (uint)v),
        Number("tx_drain_us", "--tx-drain-us", "US", 0, 1_000_000, "0",
            "longest wait of a buffered packet for a full tx burst (0: tx buffers flush at the end of every polling round)", (c, v) => c.TxDrainMicros = v),
        Int("pmd_sleep_max_us", "--pmd-sleep-max", "US", 0, 10_000, "0 (never)",
            "an idle PMD sleeps 10 us longer after each empty round, up to US microseconds (as Open vSwitch's pmd-sleep-max); the first packet ends it",
            (c, v) => c.PmdSleepMaxMicros = v),
        new()
        {
            Key = "eal",
            Option = "--eal",
            ValueName = "ARGS",
            Repeatable = true,
            JsonType = "array of strings",
            Default = "none (vswitchd adds --lcores, --in-memory or --file-prefix, --log-level=error and --no-pci unless set)",
            Help = "extra DPDK EAL arguments, space separated, e.g. \"--huge-dir /mnt/huge\"",
            ReadJson = (c, e, where) =>
            {
                foreach (var (a, w) in JsonRead.Items(e, where))
                {
                    c.EalArgs.Add(JsonRead.Str(a, w));
                }
            },
            ReadText = text =>
            {
                var args = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return c => c.EalArgs.AddRange(args);
            },
        },
        PathSetting("control_socket", "--control", "PATH", SwitchConfig.DefaultControlSocket,
            "the control socket vswitchctl talks to", (c, v) => c.ControlSocket = v),
        new()
        {
            Key = "metrics",
            Option = "--metrics",
            ValueName = "[ADDR:]PORT",
            Nullable = true,
            JsonType = "string, int or null",
            Default = "none (off)",
            Help = "serve Prometheus metrics at http://ADDR:PORT/metrics: PORT or :PORT listens on 127.0.0.1 only, "
                + "A.B.C.D:PORT on that IPv4 address only (0.0.0.0: all); PORT 1 to 65535",
            ReadJson = (c, e, where) => c.Metrics = e.ValueKind switch
            {
                JsonValueKind.Null => null,
                JsonValueKind.Number => Metrics(e.GetRawText(), where),
                JsonValueKind.String => Metrics(e.GetString()!, where),
                _ => throw new VSwitchException($"{where}: expected a string such as \"127.0.0.1:9100\", a port number or null"),
            },
            ReadText = text =>
            {
                var endpoint = Metrics(text, $"--metrics '{text}'");
                return c => c.Metrics = endpoint;
            },
        },
        Flag("no_huge_fallback", "--no-huge-fallback", false, "true (fall back)",
            "fail instead of running with --no-huge when no hugepages are usable (the fallback needs every port to be a virtual device)",
            (c, v) => c.NoHugeFallback = v),
        Number("stats_interval_s", "--stats-interval", "S", 0, 3600, "1",
            "print a stats line every S seconds (0: only the final report)", (c, v) => c.StatsIntervalSeconds = v),
        Number("duration_s", "--duration", "S", 0, 1e9, "none (run until SIGINT or SIGTERM)",
            "stop after S seconds", (c, v) => c.DurationSeconds = v),
    ];

    /// <summary>The setting with JSON key <paramref name="key"/> in <paramref name="scope"/>, or null.</summary>
    public static Setting? Find(string key, SettingScope scope) => All.FirstOrDefault(s => s.Key == key && s.Scope == scope);

    /// <summary>Applies the top-level JSON key <paramref name="key"/>; <paramref name="where"/> is "FILE: $.key".</summary>
    internal static void ReadJson(SwitchConfig c, string key, JsonElement value, string where)
    {
        var s = Find(key, SettingScope.Switch)
            ?? throw new VSwitchException($"{where}: unknown setting (known: {string.Join(", ", All.Where(x => x.Scope == SettingScope.Switch).Select(x => x.Key))})");
        s.ReadJson!(c, value, where);
    }

    /// <summary>A port object: "name" and "devargs", then the per-port settings.</summary>
    private static PortConfig ReadPort(JsonElement p, string where)
    {
        JsonRead.Expect(p, JsonValueKind.Object, where);
        var port = new PortConfig
        {
            Name = JsonRead.Str(JsonRead.Get(p, "name", where), where + ".name"),
            DevArgs = JsonRead.Str(JsonRead.Get(p, "devargs", where), where + ".devargs"),
        };
        foreach (var prop in p.EnumerateObject())
        {
            if (prop.Name is "name" or "devargs")
            {
                continue;
            }

            string w = where + "." + prop.Name;
            var s = Find(prop.Name, SettingScope.Port)
                ?? throw new VSwitchException($"{w}: unknown port setting (known: name, devargs, {string.Join(", ", All.Where(x => x.Scope == SettingScope.Port).Select(x => x.Key))})");
            s.ReadPortJson!(port, prop.Value, w);
        }

        return port;
    }

    private static MetricsEndpoint? Metrics(string text, string where) =>
        text == "none" ? null
            : MetricsEndpoint.TryParse(text, out var endpoint, out string error) ? endpoint
            : throw new VSwitchException($"{where}: {error}");

    private static Setting Int(string key, string option, string valueName, int min, int max, string def, string help, Action<SwitchConfig, int> set)
    {
        var r = ValueRange.Ints(min, max);
        return Ranged(key, option, valueName, r, "int", def, help, r.Int, t => r.Int(t, option), set);
    }

    private static Setting Number(string key, string option, string valueName, double min, double max, string def, string help, Action<SwitchConfig, double> set)
    {
        var r = ValueRange.Numbers(min, max);
        return Ranged(key, option, valueName, r, "number", def, help, r.Number, t => r.Number(t, option), set);
    }

    /// <summary>A numeric setting: <paramref name="json"/> and <paramref name="text"/> are the two readers of one range.</summary>
    private static Setting Ranged<T>(string key, string option, string valueName, ValueRange r, string jsonType, string def, string help,
        Func<JsonElement, string, T> json, Func<string, T> text, Action<SwitchConfig, T> set) => new()
    {
        Key = key, Option = option, ValueName = valueName, Default = def, Help = help, JsonType = jsonType, Range = r,
        ReadJson = (c, e, where) => set(c, json(e, where)),
        ReadText = t =>
        {
            T v = text(t);
            return c => set(c, v);
        },
    };

    /// <summary>A list: each element of the JSON array, and each occurrence of the option, adds one item.</summary>
    private static Setting Repeated<T>(string key, string option, string valueName, string jsonType, string def, string help,
        Func<JsonElement, string, T> json, Func<string, T> text, Func<SwitchConfig, List<T>> list, ValueRange? range = null) => new()
    {
        Key = key, Option = option, ValueName = valueName, JsonType = jsonType, Default = def, Help = help, Range = range, Repeatable = true,
        ReadJson = (c, e, where) => list(c).AddRange(JsonRead.Items(e, where).Select(x => json(x.Element, x.Where))),
        ReadText = t =>
        {
            T v = text(t);
            return c => list(c).Add(v);
        },
    };

    /// <summary>A name that cannot be turned off.</summary>
    private static Setting Name(string key, string option, string valueName, string def, string help, Action<SwitchConfig, string> set) => new()
    {
        Key = key, Option = option, ValueName = valueName, Default = def, Help = help, JsonType = "string",
        ReadJson = (c, e, where) => set(c, JsonRead.Str(e, where)),
        ReadText = text =>
        {
            var v = TextRead.NonEmpty(text, option);
            return c => set(c, v);
        },
    };

    /// <summary>A path (or name) that 'none' (JSON: null or "none") turns off.</summary>
    private static Setting PathSetting(string key, string option, string valueName, string def, string help, Action<SwitchConfig, string?> set) => new()
    {
        Key = key, Option = option, ValueName = valueName, Default = def, Help = help, JsonType = "string or null", Nullable = true,
        ReadJson = (c, e, where) => set(c, JsonRead.StrOrNone(e, where)),
        ReadText = text =>
        {
            var v = TextRead.OrNone(TextRead.NonEmpty(text, option));
            return c => set(c, v);
        },
    };

    /// <summary>A JSON bool whose option is a flag that sets it to <paramref name="flagValue"/>.</summary>
    private static Setting Flag(string key, string option, bool flagValue, string def, string help, Action<SwitchConfig, bool> set) => new()
    {
        Key = key, Option = option, FlagValue = flagValue, Default = def, Help = help, JsonType = "bool",
        ReadJson = (c, e, where) => set(c, JsonRead.Bool(e, where)),
        ReadText = _ => c => set(c, flagValue),
    };

    private static Setting PortInt(string key, string option, string valueName, int min, int max, string def, string help, Action<PortConfig, int> set)
    {
        var r = ValueRange.Ints(min, max);
        return new Setting
        {
            Key = key, Option = option, ValueName = "NAME=" + valueName, Default = def, Help = help, JsonType = "int", Range = r,
            Scope = SettingScope.Port, Repeatable = true,
            ReadPortJson = (p, e, where) => set(p, r.Int(e, where)),
            ReadText = PortText(option, text =>
            {
                int v = r.Int(text, option);
                return p => set(p, v);
            }),
        };
    }

    /// <summary>Reads "NAME=VALUE"; the value is checked at once, the port looked up when the options are applied.</summary>
    private static Func<string, Action<SwitchConfig>> PortText(string option, Func<string, Action<PortConfig>> read) => text =>
    {
        var (name, value) = TextRead.Split(text, '=', option);
        var apply = read(value);
        return c => apply(c.Ports.FirstOrDefault(p => p.Name == name) ?? throw new VSwitchException($"{option} names unknown port '{name}'"));
    };
}
