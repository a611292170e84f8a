// vswitchctl - sends one command to vswitchd's control socket and prints the answer as human
// tables (default) or the raw JSON result (--json). Exit codes: 0 ok, 1 refused by the switch,
// 2 usage error, 3 cannot reach the switch.
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

const string usage = """
    usage: vswitchctl [--socket PATH] [--json] COMMAND [ARGS]
      show                                   ports, their links, and PMD threads
      add-port NAME DEVARGS [--rxq N] [--pair PEER] [--vlan SPEC] [--ofport N]
                                             add a port while traffic runs (l2fwd: pair it with PEER;
                                             pipeline: VLAN mode none, access:TAG or trunk[:V1,V2];
                                             OpenFlow number N, default: the next never used)
      set-port NAME vlan=SPEC                change a port's VLAN mode while traffic runs
      set-table-miss TABLE drop|controller|continue
                                             what a table does with a packet no rule matches
      del-port NAME                          remove a port while traffic runs on the others
      dump-ports [--xstats]                  per-port packet counters (switch and device); --xstats adds
                                             the device's extended counters (per queue: rx_q0_packets, ...)
      pmd-stats-show                         per-PMD packets, drops, busy cycles per packet, idle share,
                                             cache hits and upcalls (pipeline mode)
      pmd-stats-clear                        start pmd-stats-show's counts from zero
      pmd-rxq-show                           which rx queues each PMD polls
      add-flow FLOW                          add one rule (ovs-ofctl syntax, docs/FLOWS.md)
      add-flows FILE|-                       add every rule of FILE or stdin (all or nothing);
                                             vswitchctl reads the file and sends it in chunks
      replace-flows FILE|-                   make the tables exactly FILE's rules, atomically
                                             (unchanged rules keep their counters)
      mod-flows [--strict] FLOW              new actions for the rules FLOW's match selects
      del-flows [--strict] [MATCH]           delete the rules MATCH selects (all without MATCH)
      dump-flows [--strict] [TABLE|MATCH]    rules with counters; MATCH selects as del-flows does (rules at
                                             least as specific, table=N for one table; --strict: exactly)
      dump-aggregate [--strict] [MATCH]      packet_count, byte_count and flow_count of those rules
      dump-megaflows                         the PMDs' cached megaflows, with masks and hits
      flush-megaflows                        empty every PMD's megaflow and microflow caches (the next
                                             packets take upcalls; the tables are unchanged)
      fdb-show                               NORMAL's MAC table: port, VLAN, MAC, seconds since last seen
      fdb-flush                              forget every learned MAC (until traffic teaches them again)
      trace PACKET                           the tables and rules a packet would take, e.g.
                                             trace in_port=1,tcp,nw_dst=192.0.2.9,tp_dst=80
      trace in_port=N HEX                    the same for a frame given in hex, parsed by the
                                             switch's own packet parser
      capture PORT [FILTER] [-c N] [-w FILE] [--seconds S]
                                             packets on a port, rx and tx (dpdk-dumpcap attached to
                                             the switch; FILTER in tcpdump syntax); one line each,
                                             or pcapng to FILE (- for stdout)
      capture --drops [FILTER] [-c N] [-w FILE] [--seconds S]
                                             the packets the switch drops, each with its reason
                                             (malformed, table_miss, rule_drop, action_failed,
                                             tx_full, ...) as the pcapng packet comment
      monitor [FILTER] [-c N] [-w FILE] [--seconds S]
                                             the packets the controller action punts
    default socket: /run/vswitch/vswitchd.sock (or $VSWITCH_SOCKET)
    """;

string socketPath = Environment.GetEnvironmentVariable("VSWITCH_SOCKET") ?? "/run/vswitch/vswitchd.sock";
bool json = false;
var rest = new List<string>();
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--socket" when i + 1 < args.Length:
            socketPath = args[++i];
            break;
        case "--json":
            json = true;
            break;
        case "-h" or "--help":
            Console.WriteLine(usage);
            return 0;
        default:
            rest.Add(args[i]);
            break;
    }
}

if (rest.Count == 0)
{
    Console.Error.WriteLine(usage);
    return 2;
}

var cmd = rest[0];
if (cmd is "capture" or "monitor")
{
    VSwitch.Ctl.CaptureOptions co;
    try
    {
        co = VSwitch.Ctl.CaptureOptions.Parse(cmd, rest.Skip(1).ToList());
    }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"vswitchctl: {e.Message}");
        return 2;
    }

    try
    {
        using var conn = new VSwitch.Ctl.ControlConnection(socketPath);
        return VSwitch.Ctl.Capture.Run(cmd, co, conn.Call);
    }
    catch (Exception e) when (e is SocketException or IOException)
    {
        Console.Error.WriteLine($"vswitchctl: cannot talk to vswitchd at {socketPath}: {e.Message}");
        return 3;
    }
    catch (VSwitch.Ctl.CaptureException e)
    {
        Console.Error.WriteLine($"vswitchctl: {cmd}: {e.Message}");
        return 1;
    }
}

var cmdArgs = new JsonObject();
string? flowSource = null;
try
{
    switch (cmd)
    {
        case "add-port":
            if (rest.Count < 3)
            {
                throw new ArgumentException("add-port needs NAME and DEVARGS");
            }

            cmdArgs["name"] = rest[1];
            cmdArgs["devargs"] = rest[2];
            for (int i = 3; i < rest.Count; i++)
            {
                switch (rest[i])
                {
                    case "--rxq" when i + 1 < rest.Count && int.TryParse(rest[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int q):
                        cmdArgs["rxq"] = q;
                        i++;
                        break;
                    case "--pair" when i + 1 < rest.Count:
                        cmdArgs["pair"] = rest[++i];
                        break;
                    case "--vlan" when i + 1 < rest.Count:
                        cmdArgs["vlan"] = rest[++i];
                        break;
                    case "--ofport" when i + 1 < rest.Count && int.TryParse(rest[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int of):
                        cmdArgs["ofport"] = of;
                        i++;
                        break;
                    default:
                        throw new ArgumentException($"add-port: unexpected '{rest[i]}'");
                }
            }

            break;
        case "del-port":
            if (rest.Count != 2)
            {
                throw new ArgumentException("del-port needs NAME");
            }

            cmdArgs["name"] = rest[1];
            break;
        case "set-port":
            if (rest.Count != 3 || !rest[2].StartsWith("vlan=", StringComparison.Ordinal))
            {
                throw new ArgumentException("set-port needs NAME vlan=SPEC (none, access:TAG, trunk[:V1,V2])");
            }

            cmdArgs["name"] = rest[1];
            cmdArgs["vlan"] = rest[2]["vlan=".Length..];
            break;
        case "set-table-miss":
            if (rest.Count != 3 || !int.TryParse(rest[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int tbl))
            {
                throw new ArgumentException("set-table-miss needs TABLE and drop|controller|continue");
            }

            cmdArgs["table"] = tbl;
            cmdArgs["policy"] = rest[2];
            break;
        case "trace" when rest.Count == 3:
            cmdArgs["packet"] = rest[1]; // in_port=N (or a port name)
            cmdArgs["hex"] = rest[2];
            break;
        case "add-flow" or "trace":
            if (rest.Count != 2)
            {
                throw new ArgumentException($"{cmd} needs one argument ({(cmd == "trace" ? "PACKET" : "FLOW")})");
            }

            cmdArgs[cmd == "trace" ? "packet" : "flow"] = rest[1];
            break;
        case "add-flows" or "replace-flows":
            if (rest.Count != 2)
            {
                throw new ArgumentException($"{cmd} needs FILE");
            }

            if (rest[1] != "-" && !File.Exists(rest[1]))
            {
                throw new ArgumentException($"{cmd}: no such file: {rest[1]}");
            }

            flowSource = rest[1]; // read here, by the client, and sent in chunks (see FlowTransaction)
            break;
        case "mod-flows" or "del-flows":
        {
            var a = rest.Skip(1).ToList();
            if (a.Remove("--strict"))
            {
                cmdArgs["strict"] = true;
            }

            if (a.Count > 1 || (cmd == "mod-flows" && a.Count != 1))
            {
                throw new ArgumentException(cmd == "mod-flows" ? "mod-flows needs FLOW (match,actions=...)" : "del-flows takes at most one MATCH");
            }

            if (a.Count == 1)
            {
                cmdArgs[cmd == "mod-flows" ? "flow" : "match"] = a[0];
            }

            break;
        }

        case "dump-flows" or "dump-aggregate":
        {
            var a = rest.Skip(1).ToList();
            if (a.Remove("--strict"))
            {
                cmdArgs["strict"] = true;
            }

            if (a.Count > 1)
            {
                throw new ArgumentException($"{cmd} takes at most one {(cmd == "dump-flows" ? "TABLE number or " : "")}MATCH");
            }

            if (a.Count == 1 && cmd == "dump-flows" && int.TryParse(a[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int table))
            {
                cmdArgs["table"] = table; // dump-flows 1: as "table=1"
            }
            else if (a.Count == 1)
            {
                cmdArgs["match"] = a[0];
            }

            break;
        }

        case "dump-ports":
            if (rest.Count > 2 || (rest.Count == 2 && rest[1] != "--xstats"))
            {
                throw new ArgumentException("dump-ports takes only --xstats");
            }

            if (rest.Count == 2)
            {
                cmdArgs["xstats"] = true;
            }

            break;
        default:
            if (rest.Count != 1)
            {
                throw new ArgumentException($"{cmd} takes no arguments");
            }

            break;
    }
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"vswitchctl: {e.Message}");
    return 2;
}

JsonObject response;
try
{
    using var conn = new VSwitch.Ctl.ControlConnection(socketPath);
    response = flowSource == null ? conn.Call(cmd, cmdArgs) : FlowTransaction(conn.Call, cmd == "replace-flows" ? "replace" : "add", flowSource);
}
catch (Exception e) when (e is SocketException or IOException)
{
    Console.Error.WriteLine($"vswitchctl: cannot talk to vswitchd at {socketPath}: {e.Message}");
    return 3;
}
catch (FlowFileException e)
{
    Console.Error.WriteLine($"vswitchctl: {cmd}: {e.Message}");
    return 2;
}

if (response["ok"]?.GetValue<bool>() != true)
{
    Console.Error.WriteLine($"vswitchctl: {cmd}: {response["error"]}");
    return 1;
}

var result = response["result"];
if (json)
{
    Console.WriteLine(result?.ToJsonString() ?? "null");
    return 0;
}

// Human output: every array of objects in the result becomes a table.
void Table(string title, JsonArray rows)
{
    if (rows.Count == 0)
    {
        Console.WriteLine($"{title}: none");
        return;
    }

    var cols = rows[0]!.AsObject().Select(kv => kv.Key).ToList();
    var cells = rows.Select(r => cols.Select(c => r![c] is JsonArray a ? string.Join(",", a.Select(x => x?.ToString())) : r![c]?.ToString() ?? "").ToList()).ToList();
    var widths = cols.Select((c, i) => Math.Max(c.Length, cells.Max(r => r[i].Length))).ToList();
    Console.WriteLine($"{title}:");
    Console.WriteLine("  " + string.Join("  ", cols.Select((c, i) => c.PadRight(widths[i]))));
    foreach (var r in cells)
    {
        Console.WriteLine("  " + string.Join("  ", r.Select((v, i) => v.PadRight(widths[i]))));
    }
}

if (result is JsonObject o)
{
    foreach (var (key, value) in o)
    {
        if (value is JsonArray rows && rows.All(r => r is JsonObject))
        {
            Table(key, rows);
        }
        else if (value is JsonArray lines && lines.All(r => r is JsonValue))
        {
            foreach (var l in lines)
            {
                Console.WriteLine(l?.ToString());
            }
        }
        else
        {
            Console.WriteLine($"{key}: {value}");
        }
    }
}

return 0;

// Sends a flow file the way ovs-ofctl does: the client reads it (vswitchd opens no path a client
// names) and sends its lines in chunks of about ChunkChars characters, each request far below the
// 85 KB at which the daemon's per-request buffers would land in the large-object heap, inside one
// transaction: the switch parses each chunk as it arrives (errors name the file's own line) and
// applies all of them in one table version at flows-commit, or nothing.
static JsonObject FlowTransaction(Func<string, JsonObject, JsonObject> call, string op, string source)
{
    string origin = source == "-" ? "stdin" : source;
    var begin = call("flows-begin", new JsonObject { ["op"] = op, ["origin"] = origin });
    if (begin["ok"]?.GetValue<bool>() != true)
    {
        return begin;
    }

    long txn = begin["result"]!["txn"]!.GetValue<long>();
    TextReader text;
    try
    {
        text = source == "-" ? Console.In : new StreamReader(source, Encoding.UTF8);
    }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
    {
        throw new FlowFileException($"cannot read {source}: {e.Message}");
    }

    using (text)
    {
        var chunk = new StringBuilder();
        int first = 1, lineNo = 0;
        JsonObject? Send()
        {
            var r = call("flows-chunk", new JsonObject { ["txn"] = txn, ["line"] = first, ["flow"] = chunk.ToString() });
            chunk.Clear();
            return r["ok"]?.GetValue<bool>() == true ? null : r;
        }

        while (true)
        {
            string? line;
            try
            {
                line = text.ReadLine();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new FlowFileException($"cannot read {source}: {e.Message}");
            }

            if (line == null)
            {
                break;
            }

            lineNo++;
            if (chunk.Length > 0 && chunk.Length + line.Length >= ChunkLimits.ChunkChars)
            {
                if (Send() is JsonObject refused)
                {
                    return refused;
                }

                first = lineNo;
            }

            chunk.Append(line).Append('\n');
        }

        if (chunk.Length > 0 && Send() is JsonObject last)
        {
            return last;
        }
    }

    return call("flows-commit", new JsonObject { ["txn"] = txn });
}

internal static class ChunkLimits
{
    /// <summary>Characters of flow text per flows-chunk request (a request stays near 16 KB; a longer single line goes alone).</summary>
    public const int ChunkChars = 16 * 1024;
}

/// <summary>The flow file named on the command line cannot be read (exit code 2).</summary>
internal sealed class FlowFileException(string message) : Exception(message);
