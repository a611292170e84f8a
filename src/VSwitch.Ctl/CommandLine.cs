// CommandLine.cs - vswitchctl's command line, declared with System.CommandLine: one subcommand per
// control command, each with its arguments and options, its manual page text (ManPage.cs renders
// it for `--help` and `help COMMAND`) and how a parsed command line becomes the request sent to the
// switch. Checks the switch would make anyway are left to it; what is checked here is what only the
// command line knows (numbers, which arguments go together), as a usage error (exit 2).
using System.CommandLine;
using System.CommandLine.Help;
using System.Globalization;
using System.Text.Json.Nodes;

namespace VSwitch.Ctl;

/// <summary>One request for the switch: a control command and its JSON arguments.</summary>
/// <param name="FlowSource">add-flows / replace-flows: the file (or - for stdin) the client reads and sends.</param>
/// <param name="Capture">capture / monitor: what to capture, for Capture.Run.</param>
internal sealed record CtlRequest(string Cmd, JsonObject Args, string? FlowSource = null, CaptureOptions? Capture = null);

/// <summary>A vswitchctl command: its System.CommandLine declaration, its manual page, and its request.</summary>
internal sealed class CtlCommand
{
    public required Command Command { get; init; }

    /// <summary>The synopsis after "vswitchctl" (arguments and options as typed).</summary>
    public required string Usage { get; init; }

    /// <summary>DESCRIPTION, as lines (a blank line between paragraphs).</summary>
    public required string Description { get; init; }

    public required string[] Examples { get; init; }

    /// <summary>May be chained with `--` (it changes ports or tables; the switch's batch command takes it).</summary>
    public bool Chainable { get; init; }

    public required Func<ParseResult, CtlRequest> Bind { get; init; }

    public string Name => Command.Name;
}

/// <summary>A command line the switch never sees: wrong arguments, an unreadable flow file (exit 2).</summary>
internal sealed class UsageException(string message) : Exception(message);

internal sealed class CtlCommandLine
{
    public const string DefaultSocket = "/run/vswitch/vswitchd.sock";

    /// <summary>The order of the manual's COMMANDS: ports, flows, statistics, packets.</summary>
    private static readonly string[] s_order = ["show", "dump-ports", "add-port", "del-port", "set-port", "pmd-stats-show", "pmd-stats-clear",
        "pmd-rxq-show", "add-flow", "add-flows", "replace-flows", "mod-flows", "del-flows", "set-table-miss", "dump-flows", "dump-aggregate",
        "add-group", "add-groups", "mod-group", "del-groups", "dump-groups", "dump-group-stats", "dump-megaflows", "flush-megaflows", "fdb-show", "fdb-flush",
        "dump-conntrack", "flush-conntrack", "ct-stats-show", "ct-set-limits", "ct-del-limits", "ct-get-limits", "ct-set-timeouts", "ct-del-timeouts", "ct-get-timeouts",
        "add-sa", "del-sa", "dump-sa", "trace", "capture", "monitor", "vlog-list", "vlog-set"];

    public CtlCommandLine()
    {
        Root = new RootCommand("control a running vswitchd: ports, flow tables, statistics, packet capture");
        Root.Directives.Clear(); // [suggest] and friends: a flow text in brackets is an argument, not a directive
        foreach (var v in Root.Options.OfType<VersionOption>().ToList())
        {
            Root.Options.Remove(v);
        }

        Root.Add(SocketOption);
        Root.Add(JsonOption);
        Help = Root.Options.OfType<HelpOption>().Single();
        Help.Description = "show this manual (after a COMMAND: that command's)";
        Commands = [.. Declare().OrderBy(c => Array.IndexOf(s_order, c.Name))];
        foreach (var c in Commands)
        {
            Root.Add(c.Command);
        }

        HelpCommand = new Command("help", "the manual of vswitchctl, or of COMMAND");
        HelpCommand.Add(HelpTopic);
        Root.Add(HelpCommand);
    }

    public RootCommand Root { get; }

    public HelpOption Help { get; }

    public Command HelpCommand { get; }

    public Argument<string?> HelpTopic { get; } = new("COMMAND") { Arity = ArgumentArity.ZeroOrOne, Description = "a command name" };

    public Option<string> SocketOption { get; } = new("--socket")
    {
        Recursive = true, HelpName = "PATH",
        Description = $"the switch's control socket (default: $VSWITCH_SOCKET, else {DefaultSocket})",
    };

    public Option<bool> JsonOption { get; } = new("--json")
    {
        Recursive = true,
        Description = "print the switch's JSON result instead of tables (for scripts; a chain prints {\"steps\": [...]})",
    };

    public IReadOnlyList<CtlCommand> Commands { get; }

    public CtlCommand? Find(string name) => Commands.FirstOrDefault(c => c.Name == name);

    /// <summary>Parses one command line (one link of a chain); response files are off: '@' begins no file name here.</summary>
    public ParseResult Parse(IReadOnlyList<string> args) => Root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });

    private static Option<bool> Strict(string what) => new("--strict") { Description = $"select only the rules whose match and priority are exactly {what}'s (default: every rule at least as specific)" };

    private static int Number(string? text, string what, int min, int max) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= min && n <= max
            ? n : throw new UsageException($"{what} needs a number from {min} to {max}, not '{text}'");

    private static IEnumerable<CtlCommand> Declare()
    {
        // Commands that only read, without arguments.
        foreach (var (name, usage, summary, description, example) in new (string, string, string, string, string)[]
        {
            ("show", "show", "ports, their links, and PMD threads",
                """
                The switch's ports (name; datapath slot; OpenFlow number, what flows name; DPDK port, driver,
                devargs, MAC, queues, link state), its PMD threads (core, lcore) and forwarding mode; in
                pipeline mode also the number of rules and the table version; with a state file its path and
                the last error writing it.
                """, "vswitchctl show"),
            ("pmd-stats-show", "pmd-stats-show", "per-PMD packets, drops, cycles per packet, idle share, cache hits",
                """
                Per PMD thread: packets received and sent, drops, busy cycles per packet, idle share, slept
                time, the gaps between polling rounds (max, p99.9, p99); pipeline mode adds microflow and
                megaflow cache hits, upcalls and every drop reason. Also the .NET garbage collector's pauses.
                Counts are since the last pmd-stats-clear.
                """, "vswitchctl pmd-stats-show"),
            ("pmd-stats-clear", "pmd-stats-clear", "start pmd-stats-show's counts from zero",
                """
                Starts pmd-stats-show's counts from zero (the PMDs' own counters are not touched; the round
                gap maximum and the GC pause figures restart).
                """, "vswitchctl pmd-stats-clear"),
            ("pmd-rxq-show", "pmd-rxq-show", "which rx queues each PMD polls",
                "Which rx queues (port:queue) each PMD core polls.", "vswitchctl pmd-rxq-show"),
            ("dump-megaflows", "dump-megaflows", "the PMDs' cached megaflows, with masks and hits",
                """
                Every PMD's cached megaflows: the bits each matches (field=value/mask), packets, bytes, seconds
                since last use, and the compiled datapath actions (pipeline mode).
                """, "vswitchctl dump-megaflows"),
            ("flush-megaflows", "flush-megaflows", "empty every PMD's megaflow and microflow caches",
                """
                Empties every PMD's megaflow and microflow caches; the tables are unchanged, so the next packet
                of each flow takes an upcall and installs a fresh megaflow. Returns once every PMD has.
                """, "vswitchctl flush-megaflows"),
            ("fdb-show", "fdb-show", "NORMAL's MAC table: port, VLAN, MAC, age",
                """
                The MAC learning table of the NORMAL action: one row per binding with its port (OpenFlow
                number and name), VLAN, MAC and seconds since last seen (bindings age out after 300 s).
                """, "vswitchctl fdb-show"),
            ("fdb-flush", "fdb-flush", "forget every learned MAC",
                "Forgets every learned MAC binding; NORMAL floods until traffic teaches it again.", "vswitchctl fdb-flush"),
            ("vlog-list", "vlog-list", "the log level of each module, and DPDK's",
                """
                The level of each of the switch's log modules (events: link changes, PMD faults, translation
                errors; stats: the periodic line; control: changes made over the control socket) and DPDK's
                global log level.
                """, "vswitchctl vlog-list"),
        })
        {
            var command = new Command(name, summary);
            yield return new CtlCommand
            {
                Command = command, Usage = usage, Description = description, Examples = [example],
                Bind = _ => new CtlRequest(name, []),
            };
        }

        {
            var settings = new Argument<string[]>("SETTING")
            {
                Arity = ArgumentArity.OneOrMore,
                Description = "MODULE:LEVEL (events, stats, control, or any for all) or dpdk:[PATTERN:]LEVEL; levels off, err, warn, info, dbg",
            };
            var c = new Command("vlog-set", "change log levels while the switch runs") { settings };
            yield return new CtlCommand
            {
                Command = c, Usage = "vlog-set SETTING...",
                Description = """
                    Sets log levels at run time, as ovs-appctl vlog/set: a module of the switch, every module
                    (any), or DPDK's log types matching a glob (dpdk:pmd.net.vhost*:dbg; dpdk:LEVEL sets DPDK's
                    global level). Every setting is checked before any is applied.
                    """,
                Examples = ["vswitchctl vlog-set stats:off control:info", "vswitchctl vlog-set dpdk:pmd.net.vhost*:dbg"],
                Bind = p => new CtlRequest("vlog-set", new JsonObject { ["settings"] = new JsonArray(p.GetValue(settings)!.Select(s => (JsonNode)s).ToArray()) }),
            };
        }

        {
            var xstats = new Option<bool>("--xstats") { Description = "also the device's extended counters, as the driver names them (per queue: rx_q0_packets, ...)" };
            var c = new Command("dump-ports", "per-port packet counters (switch and device)") { xstats };
            yield return new CtlCommand
            {
                Command = c, Usage = "dump-ports [--xstats]",
                Description = """
                    Per port: packets received, sent and dropped on transmit by this switch since the port was
                    added, and the device's own counters (hw_ipackets, hw_imissed, hw_rx_nombuf, ...).
                    """,
                Examples = ["vswitchctl dump-ports", "vswitchctl dump-ports --xstats"],
                Bind = p => new CtlRequest("dump-ports", p.GetValue(xstats) ? new JsonObject { ["xstats"] = true } : []),
            };
        }

        {
            var name = new Argument<string>("NAME") { Description = "the port's name (what show lists, what flows may use instead of its number)" };
            var devargs = new Argument<string>("DEVARGS") { Description = "the DPDK device and its arguments: a PCI address, net_vhost0,iface=/run/vm1.sock, net_tap0,iface=t0, net_null3,no-rx=1, ..." };
            var rxq = new Option<string>("--rxq") { HelpName = "N", Description = "rx queues (default 1); the PMDs poll them spread over their cores" };
            var pair = new Option<string>("--pair") { HelpName = "PEER", Description = "l2fwd mode: forward between this port and the existing unpaired port PEER" };
            var vlan = new Option<string>("--vlan") { HelpName = "SPEC", Description = "pipeline mode: the port's VLAN mode for NORMAL: none, access:TAG or trunk[:V1,V2,...]" };
            var ofport = new Option<string>("--ofport") { HelpName = "N", Description = $"the OpenFlow number to give it (1 to {65280}; refused if another port has it); default: the lowest never handed out" };
            var c = new Command("add-port", "add a port while traffic runs") { name, devargs, rxq, pair, vlan, ofport };
            yield return new CtlCommand
            {
                Command = c, Usage = "add-port NAME DEVARGS [--rxq N] [--pair PEER] [--vlan SPEC] [--ofport N]", Chainable = true,
                Description = """
                    Probes and starts the DPDK device DEVARGS as port NAME while traffic flows on the others; the
                    PMDs start polling it at their next round. Its OpenFlow number is --ofport's, else the lowest
                    number this switch never handed out (numbers are not reused, so a rule written for a removed
                    port never reaches a new one). Refused, changing nothing, when the name, device or number is
                    taken or the device cannot be started.
                    """,
                Examples = ["vswitchctl add-port vm1 net_vhost0,iface=/run/vswitch/vm1.sock,queues=2 --rxq 2 --ofport 10"],
                Bind = p =>
                {
                    var a = new JsonObject { ["name"] = p.GetValue(name), ["devargs"] = p.GetValue(devargs) };
                    if (p.GetValue(rxq) is string q)
                    {
                        a["rxq"] = Number(q, "add-port --rxq", 1, 128);
                    }

                    if (p.GetValue(pair) is string peer)
                    {
                        a["pair"] = peer;
                    }

                    if (p.GetValue(vlan) is string v)
                    {
                        a["vlan"] = v;
                    }

                    if (p.GetValue(ofport) is string of)
                    {
                        a["ofport"] = Number(of, "add-port --ofport", 1, 65280);
                    }

                    return new CtlRequest("add-port", a);
                },
            };
        }

        {
            var name = new Argument<string>("NAME") { Description = "the port" };
            var c = new Command("del-port", "remove a port while traffic runs on the others") { name };
            yield return new CtlCommand
            {
                Command = c, Usage = "del-port NAME", Chainable = true,
                Description = """
                    Removes port NAME: it is unrouted, every PMD lets go of it at a round boundary (its buffered
                    packets are sent first), then it is stopped and detached. Rules that name its OpenFlow number
                    stay (they match nothing until a port has the number again).
                    """,
                Examples = ["vswitchctl del-port vm1"],
                Bind = p => new CtlRequest("del-port", new JsonObject { ["name"] = p.GetValue(name) }),
            };
        }

        {
            var name = new Argument<string>("NAME") { Description = "the port" };
            var setting = new Argument<string>("vlan=SPEC") { Description = "the VLAN mode: none, access:TAG or trunk[:V1,V2,...]" };
            var c = new Command("set-port", "change a port's VLAN mode while traffic runs") { name, setting };
            yield return new CtlCommand
            {
                Command = c, Usage = "set-port NAME vlan=SPEC", Chainable = true,
                Description = """
                    Pipeline mode: changes how NORMAL treats VLANs on port NAME. Takes effect in a new table
                    version, so cached verdicts follow at once.
                    """,
                Examples = ["vswitchctl set-port vm1 vlan=access:10", "vswitchctl set-port uplink vlan=trunk:10,20"],
                Bind = p =>
                {
                    var s = p.GetValue(setting)!;
                    if (!s.StartsWith("vlan=", StringComparison.Ordinal))
                    {
                        throw new UsageException("set-port needs NAME vlan=SPEC (none, access:TAG, trunk[:V1,V2])");
                    }

                    return new CtlRequest("set-port", new JsonObject { ["name"] = p.GetValue(name), ["vlan"] = s["vlan=".Length..] });
                },
            };
        }

        {
            var table = new Argument<string>("TABLE") { Description = "the table number, 0 to 254" };
            var policy = new Argument<string>("POLICY") { Description = "drop (the default), controller (punt to monitor), or continue (go on to the next table)" };
            var c = new Command("set-table-miss", "what a table does with a packet no rule matches") { table, policy };
            yield return new CtlCommand
            {
                Command = c, Usage = "set-table-miss TABLE drop|controller|continue", Chainable = true,
                Description = "Pipeline mode: what table TABLE does with a packet that no rule of it matches.",
                Examples = ["vswitchctl set-table-miss 0 controller"],
                Bind = p => new CtlRequest("set-table-miss", new JsonObject { ["table"] = Number(p.GetValue(table), "set-table-miss TABLE", 0, 254), ["policy"] = p.GetValue(policy) }),
            };
        }

        {
            var flow = new Argument<string>("FLOW") { Description = "one rule in ovs-ofctl syntax: [table=N,][priority=N,]MATCH,actions=ACTIONS (docs/FLOWS.md)" };
            var c = new Command("add-flow", "add one rule") { flow };
            yield return new CtlCommand
            {
                Command = c, Usage = "add-flow FLOW", Chainable = true,
                Description = """
                    Adds one rule. A rule with the same table, priority and match replaces the old one (its
                    counters are kept when the actions are the same). Returns once every PMD classifies with it.
                    """,
                Examples = ["vswitchctl add-flow 'table=0,priority=10,in_port=1,tcp,tp_dst=80,actions=output:2'"],
                Bind = p => new CtlRequest("add-flow", new JsonObject { ["flow"] = p.GetValue(flow) }),
            };
        }

        foreach (var (name, summary, description, examples) in new (string, string, string, string[])[]
        {
            ("add-flows", "add every rule of FILE or stdin (all or nothing)",
                """
                Adds every rule of FILE (one per line; # comments and blank lines are skipped), or of standard
                input for -, all in one table version or none: a bad line refuses the whole file, naming its
                line and column. vswitchctl reads the file (the switch opens no path a client names) and sends
                it in chunks of about 16 KB.
                """, ["vswitchctl add-flows /etc/vswitch/acl.flows"]),
            ("replace-flows", "make the tables exactly FILE's rules, atomically",
                """
                Makes the tables exactly the rules of FILE (or standard input for -) in one version switch:
                rules whose table, priority, match and actions are unchanged keep their counters. All or
                nothing, as add-flows.
                """, ["vswitchctl replace-flows /etc/vswitch/tables.flows", "generate-rules | vswitchctl replace-flows -"]),
        })
        {
            var file = new Argument<string>("FILE") { Description = "the rule file, or - for standard input" };
            var c = new Command(name, summary) { file };
            yield return new CtlCommand
            {
                Command = c, Usage = $"{name} FILE|-", Chainable = true, Description = description, Examples = examples,
                Bind = p =>
                {
                    var f = p.GetValue(file)!;
                    if (f != "-" && !File.Exists(f))
                    {
                        throw new UsageException($"{name}: no such file: {f}");
                    }

                    return new CtlRequest(name, [], FlowSource: f);
                },
            };
        }

        {
            var strict = Strict("FLOW");
            var flow = new Argument<string>("FLOW") { Description = "MATCH,actions=ACTIONS: the rules MATCH selects get ACTIONS" };
            var c = new Command("mod-flows", "new actions for the rules FLOW's match selects") { strict, flow };
            yield return new CtlCommand
            {
                Command = c, Usage = "mod-flows [--strict] FLOW", Chainable = true,
                Description = """
                    Gives the rules FLOW's match selects the actions of FLOW; their counters are kept. Non-strict:
                    every rule at least as specific as the match (in its table if it says table=N).
                    """,
                Examples = ["vswitchctl mod-flows 'udp,tp_dst=53,actions=output:3'"],
                Bind = p =>
                {
                    var a = new JsonObject { ["flow"] = p.GetValue(flow) };
                    if (p.GetValue(strict))
                    {
                        a["strict"] = true;
                    }

                    return new CtlRequest("mod-flows", a);
                },
            };
        }

        {
            var strict = Strict("MATCH");
            var match = new Argument<string?>("MATCH") { Arity = ArgumentArity.ZeroOrOne, Description = "the rules to delete (all without it): fields as in a rule, optionally table=N, priority=N, cookie=V/MASK" };
            var c = new Command("del-flows", "delete the rules MATCH selects") { strict, match };
            yield return new CtlCommand
            {
                Command = c, Usage = "del-flows [--strict] [MATCH]", Chainable = true,
                Description = """
                    Deletes the rules MATCH selects, or every rule without MATCH. Non-strict: every rule at least
                    as specific as MATCH (in its table if it says table=N); --strict: exactly that match and
                    priority.
                    """,
                Examples = ["vswitchctl del-flows 'table=0,tcp'", "vswitchctl del-flows --strict 'priority=10,in_port=1,tcp'"],
                Bind = p =>
                {
                    var a = new JsonObject();
                    if (p.GetValue(strict))
                    {
                        a["strict"] = true;
                    }

                    if (p.GetValue(match) is string m)
                    {
                        a["match"] = m;
                    }

                    return new CtlRequest("del-flows", a);
                },
            };
        }

        foreach (var (name, summary, usage, description, examples) in new (string, string, string, string, string[])[]
        {
            ("dump-flows", "rules with their counters", "dump-flows [--strict] [TABLE|MATCH]",
                """
                The rules, one ovs-ofctl-style line each with cookie, duration, table, n_packets and n_bytes:
                all, those of table TABLE (a number), or those MATCH selects as del-flows does.
                """, ["vswitchctl dump-flows", "vswitchctl dump-flows 1", "vswitchctl dump-flows 'table=0,tcp'"]),
            ("dump-aggregate", "packet, byte and rule counts of the selected rules", "dump-aggregate [--strict] [MATCH]",
                """
                The packet_count, byte_count and flow_count of the rules MATCH selects (all without it), as
                ovs-ofctl dump-aggregate.
                """, ["vswitchctl dump-aggregate tcp"]),
        })
        {
            var strict = Strict("MATCH");
            bool flows = name == "dump-flows";
            var match = new Argument<string?>(flows ? "TABLE|MATCH" : "MATCH")
            {
                Arity = ArgumentArity.ZeroOrOne,
                Description = (flows ? "a table number, or " : "") + "the rules to show, selected as del-flows does (all without it)",
            };
            var c = new Command(name, summary) { strict, match };
            yield return new CtlCommand
            {
                Command = c, Usage = usage, Description = description, Examples = examples,
                Bind = p =>
                {
                    var a = new JsonObject();
                    if (p.GetValue(strict))
                    {
                        a["strict"] = true;
                    }

                    if (p.GetValue(match) is string m)
                    {
                        if (flows && int.TryParse(m, NumberStyles.Integer, CultureInfo.InvariantCulture, out int t))
                        {
                            a["table"] = t; // dump-flows 1: as "table=1"
                        }
                        else
                        {
                            a["match"] = m;
                        }
                    }

                    return new CtlRequest(name, a);
                },
            };
        }

        foreach (var c in GroupCommands())
        {
            yield return c;
        }

        foreach (var c in IpsecCommands())
        {
            yield return c;
        }

        foreach (var c in ConntrackCommands())
        {
            yield return c;
        }

        {
            var packet = new Argument<string>("PACKET") { Description = "the packet's fields as in a match, exact values (in_port=N or a port name, then any of eth, ip, tcp, ... fields); with HEX only its in_port" };
            var hex = new Argument<string?>("HEX") { Arity = ArgumentArity.ZeroOrOne, Description = "the frame in hex digits, parsed by the switch's own packet parser (as ofproto/trace takes one)" };
            var ctNext = new Option<string[]>("--ct-next") { HelpName = "FLAGS", Description = "the ct_state after each ct(...,table=N) the trace passes (for example trk,est; default trk,new), once per recirculation", AllowMultipleArgumentsPerToken = false };
            var c = new Command("trace", "the tables and rules a packet would take") { packet, hex, ctNext };
            yield return new CtlCommand
            {
                Command = c, Usage = "trace PACKET | trace in_port=N HEX",
                Description = """
                    The tables a packet would visit and the rules it would take, the resulting datapath actions,
                    and the megaflow: the bits of the packet the verdict depends on. Trace does not teach the MAC
                    table. After a ct(...,table=N) (or recirc) it follows the packet's next pass with the
                    ct_state --ct-next gives (one per recirculation; default trk,new), as ofproto/trace does.
                    """,
                Examples = ["vswitchctl trace in_port=1,tcp,nw_dst=192.0.2.9,tp_dst=80", "vswitchctl trace in_port=vm1 ffffffffffff0200000000010806...",
                    "vswitchctl trace --ct-next trk,est in_port=2,tcp,nw_src=203.0.113.2,tp_src=80"],
                Bind = p =>
                {
                    var a = new JsonObject { ["packet"] = p.GetValue(packet) };
                    if (p.GetValue(hex) is string h)
                    {
                        a["hex"] = h;
                    }

                    if (p.GetValue(ctNext) is { Length: > 0 } next)
                    {
                        a["ct_next"] = new JsonArray([.. next.Select(x => (JsonNode?)x)]);
                    }

                    return new CtlRequest("trace", a);
                },
            };
        }

        foreach (var name in new[] { "capture", "monitor" })
        {
            bool capture = name == "capture";
            var port = new Argument<string?>("PORT") { Arity = ArgumentArity.ZeroOrOne, Description = "the port whose received and sent packets to capture" };
            var filter = new Argument<string[]>("FILTER")
            {
                Arity = ArgumentArity.ZeroOrMore,
                Description = "a tcpdump (libpcap) filter expression, in one or several words: only the packets it accepts",
            };
            var count = new Option<string>("-c") { HelpName = "N", Description = "stop after N packets" };
            var write = new Option<string>("-w") { HelpName = "FILE", Description = "write pcapng to FILE (- for standard output) instead of one line per packet" };
            var seconds = new Option<string>("--seconds") { HelpName = "S", Description = "stop after S seconds (default: at Ctrl-C, -c or the end of time)" };
            var drops = new Option<bool>("--drops") { Description = "the packets the switch drops instead of a port's, each with its reason as the pcapng packet comment" };
            var c = capture
                ? new Command(name, "packets on a port, rx and tx, or the packets the switch drops") { port, filter, count, write, seconds, drops }
                : new Command(name, "the packets the controller action punts") { filter, count, write, seconds };
            yield return new CtlCommand
            {
                Command = c,
                Usage = capture ? "capture PORT|--drops [FILTER] [-c N] [-w FILE] [--seconds S]" : "monitor [FILTER] [-c N] [-w FILE] [--seconds S]",
                Description = capture
                    ? """
                      Captures the packets a port receives and sends, through DPDK's capture framework: vswitchctl
                      runs dpdk-dumpcap attached to the switch, which compiles FILTER and runs it inside the switch.
                      With --drops: the packets the switch drops (malformed, table_miss, rule_drop, action_failed,
                      tx_full, ...), copied by a drop tap before they are freed, FILTER applied by vswitchctl.
                      Prints one decoded line per packet, or writes pcapng (-w); stops at Ctrl-C, -c or --seconds.
                      """
                    : """
                      The packets the controller action (and a table-miss policy of controller) punts, with their
                      table and in_port; one decoded line each, or pcapng (-w). FILTER as for capture.
                      """,
                Examples = capture
                    ? ["vswitchctl capture vm1 udp and dst port 53 -c 10", "vswitchctl capture --drops -w drops.pcapng --seconds 30"]
                    : ["vswitchctl monitor arp -c 5"],
                Bind = p =>
                {
                    var words = new List<string>();
                    var o = new CaptureOptions { Drops = capture && p.GetValue(drops) };
                    if (capture && p.GetValue(port) is string first)
                    {
                        if (o.Drops)
                        {
                            var tokens = p.Tokens.Select(t => t.Value).ToList();
                            if (tokens.IndexOf(first) < tokens.IndexOf("--drops"))
                            {
                                throw new UsageException("capture takes PORT or --drops, not both");
                            }

                            words.Add(first); // after --drops every word is the filter's
                        }
                        else
                        {
                            o.Port = first;
                        }
                    }

                    words.AddRange(p.GetValue(filter) ?? []);
                    if (words.Count > 0 && words[0].StartsWith('-'))
                    {
                        throw new UsageException($"{name}: unknown option '{words[0]}'");
                    }

                    if (o.Port?.StartsWith('-') == true)
                    {
                        throw new UsageException($"{name}: unknown option '{o.Port}'");
                    }

                    if (capture && o.Port == null && !o.Drops)
                    {
                        throw new UsageException("capture needs PORT or --drops");
                    }

                    o.Filter = words.Count > 0 ? string.Join(' ', words) : null;
                    if (p.GetValue(count) is string n)
                    {
                        o.Count = long.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out long v) && v > 0
                            ? v : throw new UsageException($"{name}: -c needs a packet count above 0, not '{n}'");
                    }

                    o.Output = p.GetValue(write);
                    if (p.GetValue(seconds) is string s)
                    {
                        o.Seconds = double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v > 0
                            ? v : throw new UsageException($"{name}: --seconds needs a number above 0, not '{s}'");
                    }

                    return new CtlRequest(name, [], Capture: o);
                },
            };
        }
    }

    /// <summary>The group commands (docs/CONTROL.md, docs/FLOWS.md "Groups").</summary>
    /// <summary>The connection tracker's commands: words as ovs-appctl dpctl/... takes them, sent as "args".</summary>
    private static IEnumerable<CtlCommand> IpsecCommands()
    {
        foreach (var (name, usage, summary, description, example) in new (string, string, string, string, string)[]
        {
            ("add-sa", "add-sa id=N dir=in|out spi=N alg=ALG key=HEX|key-file=F [auth-key=HEX|auth-key-file=F] src=IP dst=IP [inner=ipv4|ipv6] [esn=on|off] [replay-window=N] [natt=SPORT:DPORT] [ttl=N] [df=on|off] [dscp=copy|N] [lifetime-packets=SOFT:HARD] [lifetime-bytes=SOFT:HARD]",
                "add an ESP tunnel-mode security association",
                """
                Adds an ESP (RFC 4303) tunnel-mode SA that rules name with ipsec(sa=N,table=T) (outbound)
                or that ipsec(decrypt,table=T) finds by SPI and destination (inbound). ALG: aes-gcm-128,
                aes-gcm-256 (key: the AES key followed by the 4-byte salt, RFC 4106), aes-cbc-128-sha256,
                aes-cbc-256-sha256 (key: the AES key; auth-key: 32 bytes, HMAC-SHA-256-128). key-file=F and
                auth-key-file=F are read by vswitchctl (hex text, or raw bytes), never by vswitchd. src/dst:
                the tunnel's outer addresses. esn: 64-bit sequence numbers; replay-window: up to 4096
                packets (inbound, default 64); natt: RFC 3948 UDP encapsulation; lifetimes: the soft one is
                reported by dump-sa, at the hard one the SA stops. Keys are never printed; SAs are kept in
                the state file (written 0600).
                """, "vswitchctl add-sa id=1 dir=out spi=0x1001 alg=aes-gcm-128 key-file=/etc/vswitch/sa1.key src=198.51.100.1 dst=203.0.113.1"),
            ("del-sa", "del-sa id=N...", "delete security associations",
                "Deletes SAs: when it returns no PMD hands packets to them and their queued operations have completed. Rules naming them then drop (counted).",
                "vswitchctl del-sa id=1"),
            ("dump-sa", "dump-sa [id=N]", "the security associations and their counters",
                """
                Every SA (or one) without its keys, and its counters: packets and bytes, the sequence number
                (outbound), authentication failures, replay drops, other check drops, full crypto queue,
                lifetime drops, packets not for it, operations in flight; soft_expired / hard_expired.
                """, "vswitchctl dump-sa"),
        })
        {
            var words = new Argument<string[]>("ARGS") { Arity = ArgumentArity.ZeroOrMore, Description = usage };
            var c = new Command(name, summary) { words };
            yield return new CtlCommand
            {
                Command = c, Usage = usage, Description = description, Examples = [example],
                Bind = p => new CtlRequest(name, new JsonObject { ["args"] = new JsonArray([.. (p.GetValue(words) ?? []).Select(w => (JsonNode?)KeyFileWord(w))]) }),
            };
        }
    }

    /// <summary>key-file=F / auth-key-file=F become key=HEX / auth-key=HEX: the client reads the file (hex text, or raw bytes).</summary>
    private static string KeyFileWord(string w)
    {
        foreach (var (file, key) in new[] { ("key-file=", "key="), ("auth-key-file=", "auth-key=") })
        {
            if (w.StartsWith(file, StringComparison.Ordinal))
            {
                byte[] bytes;
                try
                {
                    bytes = File.ReadAllBytes(w[file.Length..]);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new UsageException($"{file[..^1]}: cannot read '{w[file.Length..]}': {e.Message}");
                }

                string text = new([.. System.Text.Encoding.ASCII.GetString(bytes).Where(ch => !char.IsWhiteSpace(ch) && ch != ':')]);
                if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
                {
                    text = text[2..];
                }

                bool hex = text.Length > 0 && text.Length % 2 == 0 && text.All(Uri.IsHexDigit);
                return key + (hex ? text : Convert.ToHexString(bytes));
            }
        }

        return w;
    }

    private static IEnumerable<CtlCommand> ConntrackCommands()
    {
        foreach (var (name, usage, summary, description, example) in new (string, string, string, string, string)[]
        {
            ("dump-conntrack", "dump-conntrack [zone=N]", "the tracked connections",
                """
                Every tracked connection (or those of one zone): protocol, zone, the original and reply
                tuples, state, NAT, ct_mark, ct_label, seconds until it expires, packets and bytes each way.
                """, "vswitchctl dump-conntrack zone=1"),
            ("flush-conntrack", "flush-conntrack [zone=N] [TUPLE]", "remove tracked connections",
                """
                Removes every connection, those of one zone, or those whose original tuple matches TUPLE
                (ct_nw_src=A,ct_nw_dst=B,ct_nw_proto=P,ct_tp_src=S,ct_tp_dst=D; ct_ipv6_src/dst for IPv6).
                Their next packets are new connections.
                """, "vswitchctl flush-conntrack zone=1 ct_nw_src=198.51.100.2,ct_nw_proto=6"),
            ("ct-stats-show", "ct-stats-show", "connection counts by protocol, state and zone; refusals, invalids",
                """
                Connections in the table and its capacity, native bytes per connection, counts by protocol,
                by protocol state and by zone; since start: lookups, commits, packets marked +inv, and commits
                refused because a limit was reached.
                """, "vswitchctl ct-stats-show"),
            ("ct-set-limits", "ct-set-limits [default=N] [zone=Z,limit=N]...", "limit the connections of zones",
                """
                Sets the most connections a zone may hold (zone=Z,limit=N), or every zone without its own
                (default=N; 0: no limit). A zone at its limit refuses new connections (the packet is +inv,
                counted as refused); established ones are never evicted. Kept in the state file.
                """, "vswitchctl ct-set-limits default=100000 zone=1,limit=5000"),
            ("ct-del-limits", "ct-del-limits zone=Z...", "remove zones' own limits",
                "Removes the own limit of each zone named (it takes the default again).", "vswitchctl ct-del-limits zone=1"),
            ("ct-get-limits", "ct-get-limits", "the zone limits and each zone's connections",
                "The default limit and each zone's own limit with its connection count.", "vswitchctl ct-get-limits"),
            ("ct-set-timeouts", "ct-set-timeouts [zone=Z] NAME=SECONDS...", "set the timeouts of protocol states",
                """
                Sets how long a connection in a state lives without packets: tcp_syn_sent, tcp_syn_recv,
                tcp_established, tcp_fin_wait, tcp_last_ack, tcp_time_wait, tcp_close, udp_first, udp_stream,
                icmp, other (Linux's nf_conntrack defaults), for every zone; with zone=Z first, for that zone
                only (its timeout policy: the states it names; the others keep the default). Kept in the
                state file.
                """, "vswitchctl ct-set-timeouts zone=7 tcp_established=3600 udp_first=10"),
            ("ct-del-timeouts", "ct-del-timeouts zone=Z...", "remove zones' timeout policies",
                "Removes the timeout policy of each zone named (it takes the default timeouts again).", "vswitchctl ct-del-timeouts zone=7"),
            ("ct-get-timeouts", "ct-get-timeouts [zone=Z]", "the timeouts of protocol states",
                "The timeout of each protocol state in seconds (with zone=Z: in force for that zone), and each zone's own policy.", "vswitchctl ct-get-timeouts zone=7"),
        })
        {
            var words = new Argument<string[]>("ARGS") { Arity = ArgumentArity.ZeroOrMore, Description = usage };
            var c = new Command(name, summary) { words };
            yield return new CtlCommand
            {
                Command = c, Usage = usage, Description = description, Examples = [example],
                Bind = p => new CtlRequest(name, new JsonObject { ["args"] = new JsonArray([.. (p.GetValue(words) ?? []).Select(w => (JsonNode?)w)]) }),
            };
        }
    }

    private static IEnumerable<CtlCommand> GroupCommands()
    {
        foreach (var (name, summary, description, example) in new (string, string, string, string)[]
        {
            ("add-group", "add one group",
                """
                Adds one group in ovs-ofctl syntax: group_id=N,type=all|select|indirect|fast_failover, for
                select optionally selection_method=hash and fields(F1,F2,...), then bucket=[bucket_id:N,]
                [weight:W,][watch_port:P,]actions=ACTIONS for each bucket. A group id that exists is refused
                (mod-group changes it). Returns once every PMD sees it; rules may then name it with group:N.
                """, "vswitchctl add-group 'group_id=1,type=select,bucket=weight:2,actions=output:2,bucket=actions=output:3'"),
            ("mod-group", "change an existing group",
                """
                Replaces the type and buckets of an existing group (same syntax as add-group); the group's
                counters are kept, and each unchanged bucket's. A missing group id is refused.
                """, "vswitchctl mod-group 'group_id=1,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3'"),
        })
        {
            var group = new Argument<string>("GROUP") { Description = "group_id=N,type=TYPE,bucket=...,bucket=... (docs/FLOWS.md, Groups)" };
            var c = new Command(name, summary) { group };
            yield return new CtlCommand
            {
                Command = c, Usage = $"{name} GROUP", Description = description, Examples = [example],
                Bind = p => new CtlRequest(name, new JsonObject { ["group"] = p.GetValue(group) }),
            };
        }

        {
            var file = new Argument<string>("FILE") { Description = "the group file (one group per line), or - for standard input" };
            var c = new Command("add-groups", "add every group of FILE or stdin (all or nothing)") { file };
            yield return new CtlCommand
            {
                Command = c, Usage = "add-groups FILE|-",
                Description = """
                    Adds every group of FILE (one per line; # comments and blank lines are skipped), or of
                    standard input for -, in one version or none: a bad line refuses the whole file, naming its
                    line and column. vswitchctl reads the file and sends its text.
                    """,
                Examples = ["vswitchctl add-groups /etc/vswitch/groups.txt"],
                Bind = p =>
                {
                    var f = p.GetValue(file)!;
                    string text;
                    try
                    {
                        text = f == "-" ? Console.In.ReadToEnd() : File.ReadAllText(f);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        throw new UsageException($"add-groups: {(e is FileNotFoundException ? $"no such file: {f}" : e.Message)}");
                    }

                    return new CtlRequest("add-groups", new JsonObject { ["group"] = text, ["origin"] = f == "-" ? "stdin" : f });
                },
            };
        }

        foreach (var (name, summary, usage, description, example) in new (string, string, string, string, string)[]
        {
            ("del-groups", "delete a group (or all) and the rules that use it", "del-groups [group_id=N]",
                """
                Deletes group N (every group without an argument, or with group_id=all), and, as Open
                vSwitch does, every rule whose actions name a deleted group, in the same version. A group that
                another group's bucket names is not deleted while that group stays.
                """, "vswitchctl del-groups group_id=1"),
            ("dump-groups", "groups with their counters", "dump-groups [group_id=N]",
                """
                The groups (or group N), one line each in add-group syntax with n_packets and n_bytes of the
                group and of each bucket (add-group skips them, so a line loads back).
                """, "vswitchctl dump-groups"),
            ("dump-group-stats", "group and bucket counters, as ovs-ofctl", "dump-group-stats [group_id=N]",
                """
                Per group: duration, ref_count (the rules that name it), packet_count and byte_count, and
                each bucket's packet_count and byte_count, as ovs-ofctl dump-group-stats prints them.
                """, "vswitchctl dump-group-stats group_id=1"),
        })
        {
            var id = new Argument<string?>("GROUP_ID") { Arity = ArgumentArity.ZeroOrOne, Description = "group_id=N (or a bare N), or group_id=all; all without it" };
            var c = new Command(name, summary) { id };
            yield return new CtlCommand
            {
                Command = c, Usage = usage, Description = description, Examples = [example],
                Bind = p =>
                {
                    var a = new JsonObject();
                    if (p.GetValue(id) is string g)
                    {
                        a["group"] = g.Contains('=', StringComparison.Ordinal) ? g : "group_id=" + g;
                    }

                    return new CtlRequest(name, a);
                },
            };
        }
    }
}
