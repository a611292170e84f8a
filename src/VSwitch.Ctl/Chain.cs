// Chain.cs - `vswitchctl A -- B -- C`: several port and flow changes sent as one "batch" request,
// which the switch applies all or nothing (src/VSwitch/Control/CommandBatch.cs). Only commands
// that change ports or tables may be chained. Flow files are read here, as for a single command,
// and each file's text travels in its step, so the whole chain must fit one request.
using System.Text;
using System.Text.Json.Nodes;

namespace VSwitch.Ctl;

internal static class Chain
{
    /// <summary>What a chain may send in its one request: the switch's limit (1 MiB) less room for the framing.</summary>
    public const int MaxRequestBytes = (1 << 20) - 4096;

    /// <summary>The links of a chain: the arguments between `--` separators (one link without any).</summary>
    public static List<List<string>> Split(IReadOnlyList<string> args)
    {
        var links = new List<List<string>> { new() };
        foreach (var a in args)
        {
            if (a == "--")
            {
                links.Add([]);
            }
            else
            {
                links[^1].Add(a);
            }
        }

        if (links.Count > 1 && links.Skip(1).Any(l => l.Count == 0))
        {
            throw new UsageException("a -- must be followed by a COMMAND (vswitchctl help, CHAINING)");
        }

        return links;
    }

    /// <summary>The "batch" arguments for a chain of several requests (nothing to do for one).</summary>
    public static JsonObject Batch(CtlCommandLine cli, List<CtlRequest> requests)
    {
        if (requests.Count < 2)
        {
            return [];
        }

        var steps = new JsonArray();
        bool stdinUsed = false;
        foreach (var r in requests)
        {
            if (cli.Find(r.Cmd) is not { Chainable: true })
            {
                var chainable = string.Join(", ", cli.Commands.Where(c => c.Chainable).Select(c => c.Name));
                throw new UsageException($"{r.Cmd} cannot be chained: only commands that change ports or tables can ({chainable})");
            }

            var a = r.Args.DeepClone().AsObject();
            if (r.FlowSource is string source)
            {
                if (source == "-" && stdinUsed)
                {
                    throw new UsageException($"{r.Cmd}: standard input (-) can be read by only one command of a chain");
                }

                stdinUsed |= source == "-";
                a["flow"] = FlowFile.ReadAll(source);
                a["origin"] = source == "-" ? "stdin" : source;
            }

            steps.Add((JsonNode)new JsonObject { ["cmd"] = r.Cmd, ["args"] = a });
        }

        var batch = new JsonObject { ["steps"] = steps };
        int bytes = Encoding.UTF8.GetByteCount(batch.ToJsonString());
        if (bytes > MaxRequestBytes)
        {
            throw new UsageException($"the chain is {bytes} bytes, over the {MaxRequestBytes} one request may be: load large flow files on their own (add-flows FILE streams them)");
        }

        return batch;
    }
}
