// Commands.cs - what the control socket can do to a running switch. Each command validates its
// arguments completely before changing anything, and throws VSwitchException (-> an error
// response) with a message saying what and where.
using System.Text.Json.Nodes;
using VSwitch.Config;
using VSwitch.Actions;
using VSwitch.Caches;
using VSwitch.Datapath;
using VSwitch.FlowText;
using VSwitch.Interop;
using VSwitch.Pipeline;
using VSwitch.Pmd;

namespace VSwitch.Control;

public sealed partial class Commands(SwitchDatapath dp)
{
    public static readonly string[] Names = ["show", "dump-ports", "add-port", "del-port", "pmd-stats-show", "pmd-stats-clear", "pmd-rxq-show",
        "add-flow", "add-flows", "mod-flows", "del-flows", "replace-flows", "dump-flows", "dump-aggregate", "dump-megaflows", "flush-megaflows",
        "fdb-show", "fdb-flush", "trace", "set-port", "set-table-miss", "flows-begin", "flows-chunk", "flows-commit", "flows-abort",
        "punt-read", "drops-read", "drops-stop", "vlog-list", "vlog-set", "batch",
        "add-group", "add-groups", "mod-group", "del-groups", "dump-groups", "dump-group-stats",
        "dump-conntrack", "flush-conntrack", "ct-stats-show", "ct-set-limits", "ct-del-limits", "ct-get-limits", "ct-set-timeouts", "ct-del-timeouts", "ct-get-timeouts",
        "add-sa", "del-sa", "dump-sa"];

    /// <summary>Most rules one flow transaction may hold (its parsed rules stay in memory until the commit).</summary>
    public const int MaxTransactionRules = 2_000_000;

    private readonly Dictionary<int, PmdCounters> _statsBaseline = [];
    private long _lastTransaction;

    /// <summary>Runs one command for a connection without session state (tests, one-shot callers).</summary>
    public JsonNode? Execute(string cmd, JsonObject args) => Execute(cmd, args, new ControlSession());

    /// <summary>Runs one command; <paramref name="session"/> carries the connection's open flow transaction.</summary>
    public JsonNode? Execute(string cmd, JsonObject args, ControlSession session)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(session);
        if (args.ContainsKey("file"))
        {
            // The daemon runs as root: a path from a client would let anyone who may use the socket
            // make it open (and quote in errors) any file. Flow files are read by the client.
            throw new VSwitchException("argument \"file\" is refused: vswitchd opens no path a client names; send the rules as \"flow\" text, "
                + "or in chunks with flows-begin / flows-chunk / flows-commit (vswitchctl add-flows FILE reads the file itself)");
        }

        if (!Mutating.Contains(cmd))
        {
            return Dispatch(cmd, args, session);
        }

        try
        {
            var result = Dispatch(cmd, args, session);
            Vlog.Write(VlogModule.Control, VlogLevel.Info, $"vswitchd: control: {cmd} {Summary(args)}");
            return result;
        }
        catch (VSwitchException e)
        {
            Vlog.Write(VlogModule.Control, VlogLevel.Warn, $"vswitchd: control: {cmd} refused: {e.Message}");
            throw;
        }
    }

    /// <summary>Commands that change ports, tables or settings: logged by the control module.</summary>
    private static readonly HashSet<string> Mutating = ["add-port", "del-port", "set-port", "set-table-miss", "add-flow", "add-flows", "mod-flows",
        "del-flows", "replace-flows", "flows-commit", "fdb-flush", "flush-megaflows", "vlog-set", "batch",
        "add-group", "add-groups", "mod-group", "del-groups", "flush-conntrack", "ct-set-limits", "ct-del-limits", "ct-set-timeouts", "ct-del-timeouts", "add-sa", "del-sa"];

    /// <summary>The arguments for a log line, without flow text (only its size).</summary>
    private static string Summary(JsonObject args) => string.Join(' ', args.Select(kv => kv.Key == "flow" && kv.Value is JsonValue fv
        ? $"flow=<{fv.ToString().Length} bytes>" : kv.Key == "args" && kv.Value is JsonArray words
        ? $"args={string.Join(' ', words.Select(w => w?.ToString() is { } t && (t.StartsWith("key=", StringComparison.Ordinal) || t.StartsWith("auth-key=", StringComparison.Ordinal)) ? t[..(t.IndexOf('=', StringComparison.Ordinal) + 1)] + "<hidden>" : w?.ToString()))}"
        : $"{kv.Key}={kv.Value?.ToJsonString()}"));

    private JsonNode? Dispatch(string cmd, JsonObject args, ControlSession session)
    {
        return cmd switch
        {
            "flows-begin" => FlowsBegin(args, session),
            "flows-chunk" => FlowsChunk(args, session),
            "flows-commit" => FlowsCommit(args, session),
            "flows-abort" => FlowsAbort(args, session),
            "drops-read" => DropsRead(args, session),
            "drops-stop" => DropsStop(session),
            "batch" => Batch(args),
            _ => Execute1(cmd, args),
        };
    }

    private JsonNode? Execute1(string cmd, JsonObject args) => cmd switch
    {
        "show" => Show(),
        "dump-ports" => DumpPorts(args),
        "add-port" => AddPort(args),
        "del-port" => DelPort(args),
        "pmd-stats-show" => PmdStats(),
        "pmd-stats-clear" => PmdStatsClear(),
        "pmd-rxq-show" => PmdRxq(),
        "add-flow" or "add-flows" => AddFlows(args),
        "replace-flows" => ReplaceFlows(args),
        "mod-flows" => ModFlows(args),
        "del-flows" => DelFlows(args),
        "dump-flows" => DumpFlows(args),
        "add-group" or "add-groups" => AddGroups(args), // GroupCommands.cs
        "mod-group" => ModGroup(args),
        "del-groups" => DelGroups(args),
        "dump-groups" => DumpGroups(args),
        "dump-group-stats" => DumpGroupStats(args),
        "dump-conntrack" => DumpConntrack(args), // ConntrackCommands.cs
        "flush-conntrack" => FlushConntrack(args),
        "ct-stats-show" => CtStatsShow(),
        "ct-set-limits" => CtSetLimits(args),
        "ct-del-limits" => CtDelLimits(args),
        "ct-get-limits" => CtGetLimits(),
        "ct-set-timeouts" => CtSetTimeouts(args),
        "ct-del-timeouts" => CtDelTimeouts(args),
        "ct-get-timeouts" => CtGetTimeouts(args),
        "add-sa" => AddSa(args), // IpsecCommands.cs
        "del-sa" => DelSa(args),
        "dump-sa" => DumpSa(args),
        "dump-aggregate" => DumpAggregate(args),
        "dump-megaflows" => DumpMegaflows(),
        "flush-megaflows" => FlushMegaflows(),
        "fdb-show" => FdbShow(),
        "fdb-flush" => FdbFlush(),
        "trace" => Trace(args),
        "punt-read" => PuntRead(args),
        "vlog-list" => VlogList(),
        "vlog-set" => VlogSet(args),
        "set-port" => SetPort(args),
        "set-table-miss" => SetTableMiss(args),
        _ => throw new VSwitchException($"unknown command '{cmd}' (known: {string.Join(", ", Names)})"),
    };

    private static JsonObject VlogList() => new()
    {
        ["modules"] = new JsonArray(Vlog.List().Select(m => (JsonNode)new JsonObject { ["module"] = m.Module, ["level"] = m.Level }).ToArray()),
    };

    /// <summary>vlog-set: every setting is checked before any is applied.</summary>
    private static JsonObject VlogSet(JsonObject args)
    {
        var specs = args["settings"] is JsonArray a ? a.Select(n => n?.GetValue<string>() ?? "").ToList()
            : throw new VSwitchException("argument \"settings\": expected a list such as [\"events:dbg\", \"dpdk:pmd.net.*:info\"]");
        if (specs.Count == 0)
        {
            throw new VSwitchException("argument \"settings\": give at least one MODULE:LEVEL");
        }

        foreach (var s in specs)
        {
            Vlog.Set(s, apply: false);
        }

        return new JsonObject { ["set"] = new JsonArray(specs.Select(s => (JsonNode)Vlog.Set(s)).ToArray()) };
    }

    private ControlSession? _dropCapture;

    /// <summary>
    /// A drop capture: the first call on a connection turns on every PMD's drop tap (dropped packets
    /// are copied, with their reason, before they are freed); each call returns what was copied
    /// since. It stops with drops-stop or when the connection ends. One at a time.
    /// </summary>
    private JsonObject DropsRead(JsonObject args, ControlSession session)
    {
        int max = args["max"] is JsonNode m ? Math.Clamp(m.GetValue<int>(), 1, 65536) : 4096;
        if (_dropCapture != session)
        {
            if (Interlocked.CompareExchange(ref _dropCapture, session, null) != null)
            {
                throw new VSwitchException("a drop capture is already running on another connection (one at a time)");
            }

            foreach (var t in dp.Pmds)
            {
                t.State.DropTap.Clear();
                t.State.DropTapMissed = 0;
                Volatile.Write(ref t.State.DropTapOn, 1);
            }

            session.OnClose = () => StopDropCapture(session);
        }

        var byId = dp.Ports.ToDictionary(p => (int)p.PortId, p => p.Name);
        var packets = new JsonArray();
        ulong missed = 0;
        foreach (var t in dp.Pmds)
        {
            foreach (var p in t.State.DropTap.Drain(max - packets.Count))
            {
                packets.Add((JsonNode)new JsonObject
                {
                    ["port"] = byId.TryGetValue(p.InPort, out var name) ? name : $"dpdk{p.InPort}",
                    ["reason"] = DropReasons.Name((DropReason)p.Code),
                    ["pmd"] = t.State.Index,
                    ["length"] = p.Length,
                    ["time_ns"] = (p.Time - DateTime.UnixEpoch).Ticks * 100,
                    ["data"] = Convert.ToBase64String(p.Data),
                });
            }

            missed += t.State.DropTapMissed;
        }

        return new JsonObject { ["packets"] = packets, ["missed"] = missed };
    }

    private JsonObject DropsStop(ControlSession session)
    {
        bool was = _dropCapture == session;
        StopDropCapture(session);
        session.OnClose = null;
        return new JsonObject { ["stopped"] = was };
    }

    private void StopDropCapture(ControlSession session)
    {
        if (Interlocked.CompareExchange(ref _dropCapture, null, session) == session)
        {
            foreach (var t in dp.Pmds)
            {
                Volatile.Write(ref t.State.DropTapOn, 0);
            }
        }
    }

    /// <summary>Takes what the controller action punted (every PMD's punt ring), oldest first per PMD.</summary>
    private JsonObject PuntRead(JsonObject args)
    {
        int max = args["max"] is JsonNode m ? Math.Clamp(m.GetValue<int>(), 1, 65536) : 4096;
        var byOf = dp.PortNames().ToDictionary(kv => kv.Value, kv => kv.Key);
        var packets = new JsonArray();
        for (int i = 0; i < dp.FlowPmds.Count; i++)
        {
            foreach (var p in dp.FlowPmds[i].Punts.Drain(max - packets.Count))
            {
                packets.Add((JsonNode)new JsonObject
                {
                    ["port"] = byOf.TryGetValue(p.InPort, out var name) ? name : p.InPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["in_port"] = p.InPort,
                    ["table"] = p.Table,
                    ["pmd"] = i,
                    ["length"] = p.Length,
                    ["time_ns"] = (p.Time - DateTime.UnixEpoch).Ticks * 100,
                    ["data"] = Convert.ToBase64String(p.Data),
                });
            }
        }

        return new JsonObject { ["packets"] = packets };
    }

    private JsonObject FlowsBegin(JsonObject args, ControlSession session)
    {
        _ = Flows;
        bool replace = Str(args, "op") switch
        {
            "add" => false,
            "replace" => true,
            var other => throw new VSwitchException($"argument \"op\": '{other}' is not one of add, replace"),
        };
        if (session.Transaction is FlowTransaction open)
        {
            throw new VSwitchException($"flow transaction {open.Id} is still open on this connection (flows-commit or flows-abort it first)");
        }

        var origin = Str(args, "origin", required: false);
        var t = new FlowTransaction(++_lastTransaction, replace, origin.Length == 0 ? "flows" : origin);
        session.Transaction = t;
        return new JsonObject { ["txn"] = t.Id };
    }

    /// <summary>The connection's open transaction, which <paramref name="args"/>' "txn" must name.</summary>
    private static FlowTransaction OpenTransaction(JsonObject args, ControlSession session)
    {
        long id = args["txn"] is JsonValue v && v.TryGetValue(out long x) ? x : throw new VSwitchException("argument \"txn\" (the number flows-begin returned) is required");
        return session.Transaction is FlowTransaction t && t.Id == id
            ? t : throw new VSwitchException($"no open flow transaction {id} on this connection (flows-begin starts one; a refused chunk ends it)");
    }

    private JsonObject FlowsChunk(JsonObject args, ControlSession session)
    {
        var t = OpenTransaction(args, session);
        try
        {
            int line = Int(args, "line", 1, 1, int.MaxValue);
            var text = args["flow"] is JsonValue v && v.TryGetValue(out string? f) ? f : throw new VSwitchException("argument \"flow\" (rule text) is required");
            var rules = FlowParser.ParseRules(text, t.Origin, line, dp.PortNames());
            if (t.Rules.Count + rules.Count > MaxTransactionRules)
            {
                throw new VSwitchException($"{t.Origin}: more than {MaxTransactionRules} rules in one transaction");
            }

            t.Rules.AddRange(rules);
            t.Chunks++;
            return new JsonObject { ["txn"] = t.Id, ["rules"] = t.Rules.Count };
        }
        catch (VSwitchException e)
        {
            session.Transaction = null; // all or nothing: the batch is refused as a whole
            throw new VSwitchException($"{e.Message} (transaction {t.Id} aborted; the tables are unchanged)");
        }
    }

    private JsonObject FlowsCommit(JsonObject args, ControlSession session)
    {
        var t = OpenTransaction(args, session);
        session.Transaction = null;
        return t.Replace ? ApplyReplace(t.Rules) : ApplyAdd(t.Rules);
    }

    private static JsonObject FlowsAbort(JsonObject args, ControlSession session)
    {
        var t = OpenTransaction(args, session);
        session.Transaction = null;
        return new JsonObject { ["aborted"] = t.Id, ["rules"] = t.Rules.Count };
    }

    private static string Str(JsonObject args, string name, bool required = true)
    {
        if (args[name] is JsonValue v && v.TryGetValue(out string? s) && !string.IsNullOrEmpty(s))
        {
            return s;
        }

        return required ? throw new VSwitchException($"argument \"{name}\" (a non-empty string) is required") : "";
    }

    private static int Int(JsonObject args, Setting setting, int dflt) =>
        Int(args, setting.Key, dflt, (int)setting.Range!.Min, (int)setting.Range.Max);

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
                ["name"] = p.Name, ["number"] = dp.DpPortOf(p), ["ofport"] = dp.OfPortOf(p), ["dpdk_port"] = p.PortId, ["driver"] = p.Driver,
                ["devargs"] = p.DevArgs, ["device"] = VSwitch.Config.PortConfig.DeviceName(p.DevArgs), ["mac"] = p.MacString, ["rxq"] = p.RxQueues, ["txq"] = p.TxQueues,
                ["link"] = dp.LinkUp(p) ? "up" : "down",
            });
        }

        var pmds = new JsonArray();
        foreach (var t in dp.Pmds)
        {
            pmds.Add((JsonNode)new JsonObject { ["index"] = t.State.Index, ["core"] = t.Core, ["lcore"] = t.LcoreId });
        }

        var o = new JsonObject { ["ports"] = ports, ["pmds"] = pmds, ["mode"] = dp.Config.Mode.ToString().ToLowerInvariant() };
        if (dp.Eal != null)
        {
            o["file_prefix"] = dp.Eal.FilePrefix;
            o["capture"] = dp.Eal.Capture;
        }

        if (dp.Flows != null)
        {
            o["rules"] = dp.Flows.Current.RuleCount;
            o["flow_version"] = dp.Flows.Current.Version;
        }

        if (dp.Config.StateFile != null)
        {
            o["state_file"] = dp.Config.StateFile;
            o["state_error"] = dp.StateError ?? "none";
        }

        return o;
    }

    private JsonObject DumpPorts(JsonObject args)
    {
        bool xstats = Bool(args, "xstats");
        var s = dp.TakeSnapshot();
        var ports = new JsonArray();
        foreach (var p in s.Ports)
        {
            ports.Add((JsonNode)new JsonObject
            {
                ["name"] = p.Name, ["ofport"] = p.OfPort, ["rx_packets"] = p.RxPackets, ["tx_packets"] = p.TxPackets, ["tx_drops"] = p.TxDrops,
                ["hw_ipackets"] = p.Hw.IPackets, ["hw_opackets"] = p.Hw.OPackets, ["hw_ibytes"] = p.Hw.IBytes,
                ["hw_obytes"] = p.Hw.OBytes, ["hw_imissed"] = p.Hw.IMissed, ["hw_ierrors"] = p.Hw.IErrors,
                ["hw_oerrors"] = p.Hw.OErrors, ["hw_rx_nombuf"] = p.Hw.RxNoMbuf,
            });
        }

        var o = new JsonObject { ["ports"] = ports };
        if (xstats)
        {
            // The device's extended statistics, as DPDK names them: per-queue counters
            // (rx_q0_packets, ...) and whatever else the driver keeps.
            var rows = new JsonArray();
            foreach (var p in dp.Ports)
            {
                foreach (var (name, value) in p.ExtendedStats())
                {
                    rows.Add((JsonNode)new JsonObject { ["port"] = p.Name, ["name"] = name, ["value"] = value });
                }
            }

            o["xstats"] = rows;
        }

        return o;
    }

    private JsonObject AddPort(JsonObject args)
    {
        var pc = PortConfigFrom(args);
        var pair = Str(args, "pair", required: false);
        var port = dp.AddPort(pc, pair.Length == 0 ? null : pair);
        return new JsonObject { ["name"] = port.Name, ["number"] = dp.DpPortOf(port), ["ofport"] = dp.OfPortOf(port), ["dpdk_port"] = port.PortId };
    }

    /// <summary>add-port's settings from its arguments, checked completely (nothing changes).</summary>
    private static PortConfig PortConfigFrom(JsonObject args)
    {
        var pc = new PortConfig
        {
            Name = Str(args, "name"),
            DevArgs = Str(args, "devargs"),
            // The ranges of the config file and the command line (Settings.cs).
            RxQueues = Int(args, Settings.RxQueues, 1),
            RxDescriptors = Int(args, Settings.RxDescriptors, 1024),
            TxDescriptors = Int(args, Settings.TxDescriptors, 1024),
            OfPort = args["ofport"] is null ? null : Int(args, Settings.OfPort, 0),
        };
        if (Str(args, "vlan", required: false) is { Length: > 0 } vlan)
        {
            pc.SetVlan(vlan, "argument \"vlan\"");
        }

        return pc;
    }

    private JsonObject SetPort(JsonObject args)
    {
        var name = Str(args, "name");
        var vlan = Str(args, "vlan");
        _ = Flows; // VLAN modes are a pipeline (NORMAL) setting
        dp.SetPortVlan(name, vlan);
        return new JsonObject { ["name"] = name, ["vlan"] = vlan };
    }

    private JsonObject SetTableMiss(JsonObject args)
    {
        var (table, policy) = TableMissFrom(args);
        Flows.SetTableMiss(table, policy);
        return new JsonObject { ["table"] = table, ["policy"] = policy.ToString().ToLowerInvariant() };
    }

    /// <summary>set-table-miss's table and policy, checked.</summary>
    private static (int Table, TableMissPolicy Policy) TableMissFrom(JsonObject args)
    {
        int table = Int(args, "table", -1, 0, FlowTables.MaxTables - 1);
        if (table < 0)
        {
            throw new VSwitchException("argument \"table\" (0..254) is required");
        }

        var policy = Str(args, "policy") switch
        {
            "drop" => TableMissPolicy.Drop,
            "controller" => TableMissPolicy.Controller,
            "continue" => TableMissPolicy.Continue,
            var other => throw new VSwitchException($"argument \"policy\": '{other}' is not one of drop, controller, continue"),
        };
        return (table, policy);
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
        double tscMhz = (dp.Eal?.TscHz ?? 1_000_000) / 1e6;
        var pmds = new JsonArray();
        foreach (var p in s.Pmds)
        {
            var b = _statsBaseline.GetValueOrDefault(p.Index);
            var c = p.Raw;
            ulong rx = c.RxPackets - b.RxPackets, busy = c.BusyCycles - b.BusyCycles, idle = c.IdleCycles - b.IdleCycles;
            var o = new JsonObject
            {
                ["index"] = p.Index, ["core"] = p.Core, ["rx_packets"] = rx, ["tx_packets"] = c.TxPackets - b.TxPackets,
                ["tx_drops"] = c.TxDrops - b.TxDrops, ["fwd_drops"] = c.FwdDrops - b.FwdDrops, ["busy_cycles"] = busy, ["idle_cycles"] = idle,
                ["cycles_per_packet"] = rx > 0 ? Math.Round((double)busy / rx, 1) : 0,
                ["slept_us"] = c.SleptMicros - b.SleptMicros,
                ["idle_share"] = busy + idle > 0 ? Math.Round((double)idle / (busy + idle), 4) : 1,
                ["gap_max_us"] = Math.Round(c.GapMaxCycles / tscMhz, 1),
                ["gap_p999_us"] = Math.Round(PmdCounters.GapQuantile(c, b, 0.999) / tscMhz, 1),
                ["gap_p99_us"] = Math.Round(PmdCounters.GapQuantile(c, b, 0.99) / tscMhz, 1),
            };
            if (dp.Flows != null)
            {
                o["emc_hits"] = c.EmcHits - b.EmcHits;
                o["megaflow_hits"] = c.MegaflowHits - b.MegaflowHits;
                o["upcalls"] = c.Upcalls - b.Upcalls;
                o["malformed"] = c.Malformed - b.Malformed;
                o["revalidations"] = c.Revalidations - b.Revalidations;
                o["megaflow_full"] = c.MegaflowFull - b.MegaflowFull;
                o["punted"] = c.Punted - b.Punted;
                o["punt_drops"] = c.PuntDrops - b.PuntDrops;
                o["action_drops"] = c.ActionDrops - b.ActionDrops;
                o["translation_errors"] = c.TranslationErrors - b.TranslationErrors;
                o["learn_drops"] = c.LearnDrops - b.LearnDrops;
                o["recirculations"] = c.Recirculations - b.Recirculations;
                o["recirc_drops"] = c.RecircDrops - b.RecircDrops;
                o["clones"] = c.Clones - b.Clones;
                o["no_output_drops"] = c.NoOutputDrops - b.NoOutputDrops;
                o["copy_failures"] = c.CopyFailures - b.CopyFailures;
                o["ct_lookups"] = c.CtLookups - b.CtLookups;
                o["ct_commits"] = c.CtCommits - b.CtCommits;
                o["ct_invalid"] = c.CtInvalid - b.CtInvalid;
                o["ct_refused"] = c.CtFull - b.CtFull;
                o["megaflows"] = p.Megaflows;
                ulong up = c.Upcalls - b.Upcalls;
                o["cycles_per_upcall"] = up > 0 ? Math.Round((double)(c.UpcallCycles - b.UpcallCycles) / up, 0) : 0;
            }

            pmds.Add((JsonNode)o);
        }

        var gc = dp.Gc;
        var recent = new JsonArray(gc.RecentCollections.Select(g => (JsonNode?)new JsonObject
        {
            ["gen"] = g.Generation, ["reason"] = g.Reason, ["pause_ms"] = Math.Round(g.PauseMs, 3), ["suspend_ms"] = Math.Round(g.SuspendMs, 3),
            ["at"] = g.At.ToString("HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture),
        }).ToArray());
        return new JsonObject
        {
            ["pmds"] = pmds,
            ["gc"] = new JsonObject
            {
                ["collections"] = gc.Pauses, ["pause_total_ms"] = Math.Round(gc.PauseTotalMs, 3), ["pause_max_ms"] = Math.Round(gc.PauseMaxMs, 3),
                ["suspend_max_ms"] = Math.Round(gc.SuspendMaxMs, 3), ["heap_mb"] = Math.Round(GC.GetTotalMemory(false) / 1048576.0, 1), ["recent"] = recent,
            },
        };
    }

    private unsafe JsonObject PmdStatsClear()
    {
        foreach (var p in dp.TakeSnapshot().Pmds)
        {
            _statsBaseline[p.Index] = p.Raw;
        }

        foreach (var pmd in dp.Pmds)
        {
            pmd.State.Counters->GapMaxCycles = 0; // see PmdCounters.GapMaxCycles
        }

        dp.Gc.Reset();

        return new JsonObject { ["cleared"] = dp.Pmds.Count };
    }

    private FlowControl Flows => dp.Flows ?? throw new VSwitchException("flow commands need the pipeline forwarding mode (start vswitchd with --mode pipeline)");

    /// <summary>Rules from args "flow" (one or more lines of text; optional "origin" and "line" name them in errors).</summary>
    /// <param name="ports">Port names the text may use (default: the switch's ports now).</param>
    private List<FlowRule> RulesFrom(JsonObject args, IReadOnlyDictionary<string, int>? ports = null)
    {
        var origin = Str(args, "origin", required: false);
        int line = Int(args, "line", 1, 1, int.MaxValue);
        return FlowParser.ParseRules(Str(args, "flow"), origin.Length == 0 ? "flow" : origin, line, ports ?? dp.PortNames());
    }

    private JsonObject AddFlows(JsonObject args) => ApplyAdd(RulesFrom(args));

    private JsonObject ApplyAdd(List<FlowRule> rules)
    {
        var f = Flows;
        int n = f.Add(rules, Native.Rdtsc());
        return new JsonObject { ["added"] = n, ["rules"] = f.Current.RuleCount, ["version"] = f.Current.Version };
    }

    private JsonObject ReplaceFlows(JsonObject args) => ApplyReplace(RulesFrom(args));

    private JsonObject ApplyReplace(List<FlowRule> rules)
    {
        var f = Flows;
        var (added, removed, changed, kept) = f.Replace(rules, Native.Rdtsc());
        return new JsonObject
        {
            ["added"] = added, ["removed"] = removed, ["changed"] = changed, ["kept"] = kept,
            ["rules"] = f.Current.RuleCount, ["version"] = f.Current.Version,
        };
    }

    private FlowFilter Filter(string text, bool strict, IReadOnlyDictionary<string, int>? ports = null)
    {
        var (match, table, priority, cookie, cookieMask) = FlowParser.ParseMatch(text, "match", ports ?? dp.PortNames());
        return new FlowFilter(match, table, priority, cookie, cookieMask, strict);
    }

    private static bool Bool(JsonObject args, string name) =>
        args[name] is JsonValue v && v.TryGetValue(out bool b) ? b : args[name] is null ? false
            : throw new VSwitchException($"argument \"{name}\" must be true or false");

    private JsonObject DelFlows(JsonObject args)
    {
        var f = Flows;
        int n = f.Delete(DelFlowsFrom(args));
        return new JsonObject { ["deleted"] = n, ["rules"] = f.Current.RuleCount, ["version"] = f.Current.Version };
    }

    private FlowFilter DelFlowsFrom(JsonObject args, IReadOnlyDictionary<string, int>? ports = null) =>
        Filter(Str(args, "match", required: false), Bool(args, "strict"), ports);

    /// <summary>mod-flows' selection and new actions from its "flow" (match,actions=...), checked.</summary>
    private (FlowFilter Filter, FlowAction[] Actions) ModFlowsFrom(JsonObject args, IReadOnlyDictionary<string, int>? ports = null)
    {
        var text = Str(args, "flow");
        int at = text.IndexOf("actions=", StringComparison.Ordinal);
        if (at < 0)
        {
            throw new VSwitchException("mod-flows: the flow must end with actions=...");
        }

        ports ??= dp.PortNames();
        var filter = Filter(text[..at].TrimEnd(',', ' '), Bool(args, "strict"), ports);
        return (filter, FlowParser.ParseRule(text, "mod-flows", 1, ports).Actions);
    }

    private JsonObject ModFlows(JsonObject args)
    {
        var f = Flows;
        var (filter, actions) = ModFlowsFrom(args);
        int n = f.Modify(filter, actions);
        return new JsonObject { ["modified"] = n, ["version"] = f.Current.Version };
    }

    /// <summary>
    /// The rules dump-flows and dump-aggregate report: all, or those optional "match" selects as
    /// del-flows would (non-strict: rules at least as specific, in its table if it names one;
    /// "strict": that exact match and priority); an optional "table" narrows further.
    /// </summary>
    private IEnumerable<FlowRule> Selected(JsonObject args)
    {
        var f = Flows;
        int table = Int(args, "table", -1, 0, FlowTables.MaxTables - 1);
        var text = Str(args, "match", required: false);
        var filter = text.Length == 0 ? null : Filter(text, Bool(args, "strict"));
        if (table >= 0 && filter?.Table is int t && t != table)
        {
            throw new VSwitchException($"argument \"table\" ({table}) and the match's table={t} differ");
        }

        int? only = table >= 0 ? table : filter?.Table;
        return f.Current.Dump(only).Where(r => filter == null || filter.Selects(r));
    }

    private JsonObject DumpFlows(JsonObject args)
    {
        ulong now = Native.Rdtsc();
        ulong hz = dp.Eal?.TscHz ?? 1;
        var lines = new JsonArray();
        foreach (var r in Selected(args))
        {
            lines.Add((JsonNode?)FlowFormatter.Format(r, true, now, hz));
        }

        return new JsonObject { ["flows"] = lines };
    }

    /// <summary>ovs-ofctl dump-aggregate: the selected rules' packet and byte counts summed, and how many rules.</summary>
    private JsonObject DumpAggregate(JsonObject args)
    {
        long packets = 0, bytes = 0, flows = 0;
        foreach (var r in Selected(args))
        {
            packets += r.Counters.Packets;
            bytes += r.Counters.Bytes;
            flows++;
        }

        return new JsonObject { ["packet_count"] = packets, ["byte_count"] = bytes, ["flow_count"] = flows };
    }

    private JsonObject FlushMegaflows()
    {
        var f = Flows;
        int before = dp.FlowPmds.Sum(p => p.Megaflows.Count); // racy read of each PMD's count: a figure for the operator
        f.FlushCaches();
        return new JsonObject { ["flushed"] = before, ["pmds"] = dp.FlowPmds.Count };
    }

    /// <summary>ovs-appctl fdb/show: NORMAL's MAC table, one row per binding (port, VLAN, MAC, seconds since last seen).</summary>
    private JsonObject FdbShow()
    {
        var f = Flows;
        var names = f.Current.PortList.ToDictionary(p => p.OfPort, p => p.Name);
        ulong now = Native.Rdtsc();
        double hz = dp.Eal?.TscHz ?? 1;
        var rows = new JsonArray();
        foreach (var b in f.Shared.Macs.Entries().OrderBy(b => b.Port).ThenBy(b => b.Vlan).ThenBy(b => b.Mac))
        {
            rows.Add((JsonNode)new JsonObject
            {
                ["port"] = b.Port,
                ["name"] = names.TryGetValue(b.Port, out var n) ? n : "?",
                ["vlan"] = b.Vlan,
                ["mac"] = FlowFormatter.FormatMac(b.Mac),
                ["age"] = now > b.SeenTsc ? (long)((now - b.SeenTsc) / hz) : 0,
            });
        }

        return new JsonObject { ["fdb"] = rows };
    }

    /// <summary>ovs-appctl fdb/flush: forgets every binding (NORMAL verdicts cached from them are revalidated).</summary>
    private JsonObject FdbFlush() => new() { ["flushed"] = Flows.Shared.Learner.Flush(-1) };

    /// <summary>Datapath slot -> OpenFlow number, for showing compiled outputs as the numbers rules use.</summary>
    private static Func<int, int> OfPortOfSlot(FlowTables v)
    {
        var map = v.PortList.ToDictionary(p => p.Slot, p => p.OfPort);
        return slot => map.TryGetValue(slot, out int of) ? of : -1;
    }

    private unsafe JsonObject DumpMegaflows()
    {
        var ofPortOfSlot = OfPortOfSlot(Flows.Current);
        var lines = new JsonArray();
        ulong now = Native.Rdtsc();
        double hz = dp.Eal?.TscHz ?? 1;
        for (int pi = 0; pi < dp.FlowPmds.Count; pi++)
        {
            var mfc = dp.FlowPmds[pi].Megaflows;
            for (int i = 0; i < mfc.Limit; i++)
            {
                var e = mfc.Entry(i);
                int st = e->Subtable;
                if (st < 0)
                {
                    continue;
                }

                var ops = MegaflowCache.ProgramOf(e).ToArray();
                var shown = ops.Where(o => o.Op is not (DpOp.Ext or DpOp.MissNote)).ToList();
                string actions = shown.Count == 0 ? "drop" : string.Join(",", shown.Select(o => o.Format(ofPortOfSlot)));
                double used = now > e->LastUsed ? (now - e->LastUsed) / hz : 0;
                lines.Add((JsonNode?)string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"pmd={pi} {FlowFormatter.FormatKeyMask(e->Key.ToFlowKey(), mfc.Subtable(st)->Mask.ToFlowKey())}, packets:{e->Packets}, bytes:{e->Bytes}, used:{used:F3}s, actions:{actions}"));
            }
        }

        return new JsonObject { ["megaflows"] = lines };
    }

    private JsonObject Trace(JsonObject args)
    {
        var f = Flows;
        var key = FlowParser.ParsePacket(Str(args, "packet"), "packet", dp.PortNames());
        if (args["hex"] is JsonNode hexNode)
        {
            key = KeyOfFrame(hexNode.GetValue<string>(), key.InPort);
        }

        // After a ct(...,table=N) or recirc, the trace follows the packet's next pass, as
        // ofproto/trace does: "ct_next" gives the ct_state of each recirculation after a ct
        // (default trk,new); the packet's NAT, if any, is not applied to the traced key.
        var ctNext = args["ct_next"] is JsonArray cn ? cn.Select(x => CtStateOf(x?.GetValue<string>() ?? "")).ToList() : [];
        var ofPortOfSlot = OfPortOfSlot(f.Current);
        var trace = new JsonArray();
        var passes = new JsonArray();
        string actions = "drop", megaflowText = "";
        // The trace interns and resumes frozen states off the PMDs, outside the epoch that protects
        // their reclaiming: no reclaim step runs while it does (FrozenStates.Gate).
        using var frozenGate = f.Shared.Frozen.Gate.EnterScope();
        for (int pass = 0, ct = 0; pass < Forwarding.FlowPmd.MaxRecircDepth; pass++)
        {
            var (lines, t, megaflow) = f.Trace(key);
            var ops = t.Ops.Take(t.OpCount).Where(o => o.Op is not (DpOp.Ext or DpOp.MissNote)).ToList();
            if (pass > 0)
            {
                trace.Add((JsonNode?)$"--- recirculation: recirc_id={key.RecircId}, ct_state=0x{key.CtState:x2}, ct_zone={key.CtZone} ---");
            }

            foreach (var l in lines)
            {
                trace.Add((JsonNode?)l);
            }

            string passActions = ops.Count == 0 ? "drop" : string.Join(",", ops.Select(o => o.Format(ofPortOfSlot)));
            passes.Add((JsonNode)new JsonObject { ["recirc_id"] = key.RecircId, ["datapath_actions"] = passActions, ["megaflow"] = megaflow });
            if (pass == 0)
            {
                actions = passActions;
                megaflowText = megaflow;
            }

            var last = ops.Count == 0 ? default : ops[^1];
            var next = t.Key;
            if (last.Op == DpOp.Ct && (last.Flags & DpAction.CtRecirc) != 0)
            {
                next.CtState = ct < ctNext.Count ? ctNext[ct] : (byte)(Conntrack.CtState.Trk | Conntrack.CtState.New);
                ct++;
                unsafe
                {
                    next.CtZone = Conntrack.CtSpecs.At(last.A)->Zone;
                }

                next.RecircId = (byte)last.B;
                TraceTupleWords(ref next);
            }
            else if (last.Op == DpOp.Recirc)
            {
                next.RecircId = (byte)last.A;
            }
            else
            {
                break;
            }

            unsafe
            {
                for (int w = Packets.DpKey.Words; w < Packets.FlowKey.Words; w++)
                {
                    next.W[w] = 0; // metadata and registers: a frozen state restores them, a recirc starts from zero
                }
            }

            key = next;
        }

        return new JsonObject
        {
            ["trace"] = trace,
            ["datapath_actions"] = actions,
            ["megaflow"] = megaflowText,
            ["passes"] = passes,
        };
    }

    /// <summary>
    /// The connection words a traced packet carries after ct (Packets/DpKey.cs): those of the live
    /// connection the packet's tuple belongs to in its zone, if there is one; else the trace takes the
    /// packet as its connection's first (the original tuple is the packet's own, reversed when ct_next
    /// says +rpl) with label 0. +inv leaves them 0. NAT is not applied to the traced key, so a
    /// connection is found by the headers the packet arrived with.
    /// </summary>
    private unsafe void TraceTupleWords(ref Packets.FlowKey k)
    {
        fixed (ulong* w = k.W)
        {
            ulong* x = w + Packets.FlowKey.CtExtWord;
            new Span<ulong>(x, Packets.DpKey.CtExtWords).Clear();
            bool v6 = k.DlType == Packets.KeyExtractor.EthIpv6;
            if ((k.CtState & Conntrack.CtState.Inv) == 0 && (v6 || k.DlType == Packets.KeyExtractor.EthIp))
            {
                var t = v6 ? Conntrack.ConnTuple.Ipv6(k.Ipv6Src, k.Ipv6Dst, k.NwProto, k.TpSrc, k.TpDst) : Conntrack.ConnTuple.Ipv4(k.NwSrc, k.NwDst, k.NwProto, k.TpSrc, k.TpDst);
                if (k.NwProto is Packets.KeyExtractor.ProtoIcmp or Packets.KeyExtractor.ProtoIcmpv6)
                {
                    t.IcmpType = (byte)k.TpSrc;
                    t.IcmpCode = (byte)k.TpDst;
                }

                if (dp.Conns is not { } conns || !conns.TryTupleWords(new Conntrack.CtTuple(t, k.CtZone), x))
                {
                    Conntrack.ConnTable.WriteTupleWords(x, (k.CtState & Conntrack.CtState.Rpl) != 0 ? t.Reverse() : t, 0, 0);
                }
            }
        }
    }

    /// <summary>A ct_state for trace's ct_next: flag names (new, est, rel, rpl, inv, trk, snat, dnat) joined by ',', '+' or '|'.</summary>
    private static byte CtStateOf(string text)
    {
        byte s = 0;
        foreach (var name in text.Split([',', '+', '|'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // the match syntax's own flag table (Fields.CtState)
            int i = Array.FindIndex(Fields.CtState.FlagNames!, f => f.Name == name);
            s |= i >= 0 ? (byte)Fields.CtState.FlagNames![i].Bit
                : throw new VSwitchException($"argument \"ct_next\": expected ct_state flags ({string.Join(", ", Fields.CtState.FlagNames!.Select(f => f.Name))}), found '{name}' in '{text}'");
        }

        return s;
    }

    /// <summary>The flow key of a frame given in hex (as ofproto/trace takes one): the switch's own parser decides, as for a received packet.</summary>
    private static unsafe Packets.FlowKey KeyOfFrame(string hex, ushort inPort)
    {
        var digits = new string(hex.Where(ch => !char.IsWhiteSpace(ch) && ch != ':' && ch != '-').ToArray());
        if (digits.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            digits = digits[2..];
        }

        byte[] frame;
        try
        {
            frame = Convert.FromHexString(digits);
        }
        catch (FormatException)
        {
            throw new VSwitchException($"argument \"hex\": not a frame in hex digits ({digits.Length} characters; pairs of 0-9a-f expected)");
        }

        if (frame.Length < 14 || frame.Length > 65535)
        {
            throw new VSwitchException($"argument \"hex\": a frame of {frame.Length} bytes (14 to 65535 expected)");
        }

        var key = Packets.KeyExtractor.PipelineKeyOf(frame, inPort, out ushort parse);
        if ((parse & Packets.ParseFlags.Errors) != 0)
        {
            throw new VSwitchException($"argument \"hex\": the frame of {frame.Length} bytes is malformed: the switch drops it before any table (counted as malformed)");
        }

        return key;
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
