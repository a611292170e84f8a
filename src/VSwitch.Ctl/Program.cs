// vswitchctl - the operator's command line over vswitchd's control socket. Parses the command line
// (CommandLine.cs, System.CommandLine), sends one request, or a chain of changes (`A -- B -- C`) as
// one "batch" request the switch applies all or nothing, and prints the answer as tables (default)
// or the raw JSON result (--json). Exit codes: 0 ok, 1 refused by the switch, 2 usage error, 3
// cannot reach the switch. The manual is ManPage.cs (`vswitchctl --help`, `vswitchctl help CMD`).
using System.CommandLine;
using System.CommandLine.Help;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using VSwitch.Ctl;

var cli = new CtlCommandLine();
string? socketOption = null;
bool json = false;
var requests = new List<CtlRequest>();
try
{
    var links = Chain.Split(args);
    for (int i = 0; i < links.Count; i++)
    {
        var pr = cli.Parse(links[i]);
        var command = pr.CommandResult.Command;
        if (pr.Action is HelpAction)
        {
            Console.Write(cli.Find(command.Name) is CtlCommand c ? ManPage.Command(c) : ManPage.Tool(cli));
            return 0;
        }

        if (pr.Errors.FirstOrDefault(e => e.SymbolResult is System.CommandLine.Parsing.OptionResult) is { } optionError)
        {
            string where = command == cli.Root ? "" : $"{command.Name}: ";
            throw new UsageException($"{where}{optionError.Message} (vswitchctl help {(command == cli.Root ? "" : command.Name)})".Replace("help )", "--help)", StringComparison.Ordinal));
        }

        socketOption = pr.GetValue(cli.SocketOption) ?? socketOption;
        json |= pr.GetValue(cli.JsonOption);
        if (command == cli.HelpCommand && pr.Errors.Count == 0)
        {
            if (pr.GetValue(cli.HelpTopic) is not string topic)
            {
                Console.Write(ManPage.Tool(cli));
                return 0;
            }

            Console.Write(ManPage.Command(cli.Find(topic) ?? throw new UsageException($"help: no command '{topic}' (vswitchctl --help lists them)")));
            return 0;
        }

        if (command == cli.Root)
        {
            var unmatched = pr.UnmatchedTokens;
            if (unmatched.Count == 0)
            {
                // Only global options: fine before a chain (vswitchctl --json -- add-port ...).
                if (i == 0 && links.Count > 1)
                {
                    continue;
                }

                throw new UsageException("a COMMAND is needed (vswitchctl --help lists them)");
            }

            if (unmatched[0].StartsWith('-'))
            {
                throw new UsageException($"unknown option '{unmatched[0]}' (vswitchctl --help)");
            }

            if (unmatched.Count > 1)
            {
                throw new UsageException($"{unmatched[0]}: not a command this vswitchctl knows, and so it takes no arguments (vswitchctl --help lists them)");
            }

            requests.Add(new CtlRequest(unmatched[0], [])); // a newer switch's command: the switch decides
            continue;
        }

        if (pr.Errors.Count > 0)
        {
            throw new UsageException($"{command.Name}: {pr.Errors[0].Message} (vswitchctl help {command.Name})");
        }

        requests.Add(cli.Find(command.Name)!.Bind(pr));
    }
}
catch (UsageException e)
{
    Console.Error.WriteLine($"vswitchctl: {e.Message}");
    return 2;
}

string socketPath = socketOption ?? Environment.GetEnvironmentVariable("VSWITCH_SOCKET") ?? CtlCommandLine.DefaultSocket;
JsonObject batch;
try
{
    batch = Chain.Batch(cli, requests);
}
catch (Exception e) when (e is UsageException or FlowFileException)
{
    Console.Error.WriteLine($"vswitchctl: {e.Message}");
    return 2;
}

var req = requests[0];
JsonObject response;
try
{
    using var conn = new ControlConnection(socketPath);
    if (requests.Count > 1)
    {
        response = conn.Call("batch", batch);
    }
    else if (req.Capture is CaptureOptions co)
    {
        return Capture.Run(req.Cmd, co, conn.Call);
    }
    else
    {
        response = req.FlowSource == null ? conn.Call(req.Cmd, req.Args) : FlowFile.Send(conn.Call, req.Cmd == "replace-flows" ? "replace" : "add", req.FlowSource);
    }
}
catch (Exception e) when (e is SocketException or IOException)
{
    Console.Error.WriteLine($"vswitchctl: cannot talk to vswitchd at {socketPath}: {e.Message}");
    return 3;
}
catch (FlowFileException e)
{
    Console.Error.WriteLine($"vswitchctl: {req.Cmd}: {e.Message}");
    return 2;
}
catch (CaptureException e)
{
    Console.Error.WriteLine($"vswitchctl: {req.Cmd}: {e.Message}");
    return 1;
}

if (response["ok"]?.GetValue<bool>() != true)
{
    // A chain's error names its step (step 2 of 3 (add-flows): ...).
    Console.Error.WriteLine(requests.Count > 1 ? $"vswitchctl: {response["error"]}" : $"vswitchctl: {req.Cmd}: {response["error"]}");
    return 1;
}

var result = response["result"];
if (json)
{
    Console.WriteLine(result?.ToJsonString() ?? "null");
}
else if (requests.Count > 1)
{
    Output.Steps(result);
}
else
{
    Output.Human(result);
}

return 0;
