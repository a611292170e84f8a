// CommandBatch.cs - "batch": several port and flow changes as one unit, all or nothing (what
// vswitchctl's `--` chains send, like ovs-vsctl's). Three phases:
//   1. Check every step against the switch as the steps before it will leave it (port names
//      added and deleted, the OpenFlow numbers new ports will get): argument syntax, flow text,
//      port names. Most refusals happen here, before anything changes.
//   2. Run the steps in order, through the same code as the single commands. Before each step,
//      record how to put back what it may change; the records undo to "as before the step", so
//      running one for a step that changed nothing (or only half) is harmless.
//   3. When a step is refused, run the records in reverse, the refused step's first, and refuse
//      the batch naming the step. The tables and ports are then as before the batch.
// Undo records: add-port -> del-port (if the port is there); del-port -> add-port with the same
// settings, OpenFlow number and l2fwd peer (the device starts afresh: its counters restart);
// set-port -> the old VLAN mode; flow changes and set-table-miss -> the previous version's rules
// and miss policies, the same rule objects, so counters are kept (FlowControl.Restore). OpenFlow
// numbers handed out to ports the undo removed again are handed out anew (RewindNextOfPort).
// A batch runs under the control server's one-command-at-a-time serialisation like any command:
// no other client's change interleaves with its steps. Packets see each step as it is applied.
using System.Text.Json.Nodes;

namespace VSwitch.Control;

public sealed partial class Commands
{
    /// <summary>The commands a batch may hold: those that change ports or tables.</summary>
    public static readonly string[] Chainable = ["add-port", "del-port", "set-port", "set-table-miss",
        "add-flow", "add-flows", "mod-flows", "del-flows", "replace-flows"];

    /// <summary>Most steps in one batch.</summary>
    public const int MaxBatchSteps = 1024;

    private JsonObject Batch(JsonObject args)
    {
        var steps = StepsOf(args);
        CheckSteps(steps);

        int nextOfPort = dp.NextOfPort;
        var undo = new Stack<(int Step, string Cmd, Action Undo)>();
        var results = new JsonArray();
        for (int i = 0; i < steps.Count; i++)
        {
            var (cmd, a) = steps[i];
            try
            {
                undo.Push((i, cmd, UndoOf(cmd, a)));
                results.Add((JsonNode)new JsonObject { ["cmd"] = cmd, ["result"] = Execute1(cmd, a) });
            }
            catch (VSwitchException e)
            {
                string outcome = i == 0 ? "nothing was changed" : $"{(i == 1 ? "step 1 was" : $"steps 1-{i} were")} undone: ports and tables are as before";
                if (RunUndo(undo, steps.Count) is string failed)
                {
                    outcome = failed;
                }
                else
                {
                    dp.RewindNextOfPort(nextOfPort);
                }

                throw new VSwitchException($"{StepName(i, steps.Count, cmd)}: {e.Message}; {outcome}");
            }
        }

        return new JsonObject { ["steps"] = results };
    }

    private static string StepName(int i, int count, string cmd) => $"step {i + 1} of {count} ({cmd})";

    /// <summary>The batch's steps from "steps": [{"cmd": ..., "args": {...}}, ...], only chainable commands.</summary>
    private static List<(string Cmd, JsonObject Args)> StepsOf(JsonObject args)
    {
        if (args["steps"] is not JsonArray list || list.Count == 0)
        {
            throw new VSwitchException("argument \"steps\" (a non-empty list of {\"cmd\": ..., \"args\": {...}}) is required");
        }

        if (list.Count > MaxBatchSteps)
        {
            throw new VSwitchException($"a batch of {list.Count} steps is over the limit of {MaxBatchSteps}");
        }

        var steps = new List<(string, JsonObject)>(list.Count);
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is not JsonObject step || step["cmd"] is not JsonValue c || !c.TryGetValue(out string? cmd) || string.IsNullOrEmpty(cmd))
            {
                throw new VSwitchException($"step {i + 1} of {list.Count}: expected {{\"cmd\": \"<command>\", \"args\": {{...}}}}; nothing was changed");
            }

            if (Array.IndexOf(Chainable, cmd) < 0)
            {
                throw new VSwitchException($"{StepName(i, list.Count, cmd)}: only commands that change ports or tables can be in a batch ({string.Join(", ", Chainable)}); nothing was changed");
            }

            var a = step["args"] switch
            {
                null => [],
                JsonObject o => o,
                _ => throw new VSwitchException($"{StepName(i, list.Count, cmd)}: \"args\" must be an object; nothing was changed"),
            };
            if (a.ContainsKey("file"))
            {
                throw new VSwitchException($"{StepName(i, list.Count, cmd)}: argument \"file\" is refused: vswitchd opens no path a client names; send the rules as \"flow\" text; nothing was changed");
            }

            steps.Add((cmd, a));
        }

        return steps;
    }

    /// <summary>
    /// Checks every step without changing anything, each against the port names the steps before it
    /// leave (a port added earlier in the batch may be named by a later rule, and gets the OpenFlow
    /// number the switch will give it).
    /// </summary>
    private void CheckSteps(List<(string Cmd, JsonObject Args)> steps)
    {
        var names = new Dictionary<string, int>(dp.PortNames(), StringComparer.Ordinal);
        int next = dp.NextOfPort;
        for (int i = 0; i < steps.Count; i++)
        {
            var (cmd, a) = steps[i];
            try
            {
                CheckStep(cmd, a, names, ref next);
            }
            catch (VSwitchException e)
            {
                throw new VSwitchException($"{StepName(i, steps.Count, cmd)}: {e.Message}; nothing was changed");
            }
        }
    }

    private void CheckStep(string cmd, JsonObject a, Dictionary<string, int> names, ref int next)
    {
        switch (cmd)
        {
            case "add-port":
            {
                var pc = PortConfigFrom(a);
                if (names.ContainsKey(pc.Name))
                {
                    throw new VSwitchException($"port '{pc.Name}' already exists");
                }

                int of;
                if (pc.OfPort is int want)
                {
                    if (names.FirstOrDefault(kv => kv.Value == want).Key is string holder)
                    {
                        throw new VSwitchException($"port '{pc.Name}': OpenFlow port {want} is taken by port '{holder}'");
                    }

                    of = want;
                }
                else
                {
                    of = next;
                    while (names.ContainsValue(of))
                    {
                        of++;
                    }
                }

                names[pc.Name] = of;
                next = Math.Max(next, of + 1);
                break;
            }

            case "del-port":
            {
                var name = Str(a, "name");
                if (!names.Remove(name))
                {
                    throw new VSwitchException($"no port named '{name}'");
                }

                break;
            }

            case "set-port":
            {
                var name = Str(a, "name");
                _ = Flows;
                if (!names.ContainsKey(name))
                {
                    throw new VSwitchException($"no port named '{name}'");
                }

                new Config.PortConfig { Name = name, DevArgs = "" }.SetVlan(Str(a, "vlan"), "vlan");
                break;
            }

            case "set-table-miss":
                _ = Flows;
                _ = TableMissFrom(a);
                break;
            case "add-flow" or "add-flows" or "replace-flows":
                _ = Flows;
                _ = RulesFrom(a, names);
                break;
            case "mod-flows":
                _ = Flows;
                _ = ModFlowsFrom(a, names);
                break;
            case "del-flows":
                _ = Flows;
                _ = DelFlowsFrom(a, names);
                break;
        }
    }

    /// <summary>How to put back what <paramref name="cmd"/> may change, taken before it runs.</summary>
    private Action UndoOf(string cmd, JsonObject a)
    {
        switch (cmd)
        {
            case "add-port":
            {
                var name = Str(a, "name");
                return () =>
                {
                    if (dp.PortNames().ContainsKey(name))
                    {
                        dp.RemovePort(name);
                    }
                };
            }

            case "del-port":
            {
                var name = Str(a, "name");
                var (pc, peer) = dp.PortSettings(name);
                return () =>
                {
                    if (!dp.PortNames().ContainsKey(name))
                    {
                        dp.AddPort(pc.Clone(), peer);
                    }
                };
            }

            case "set-port":
            {
                var name = Str(a, "name");
                var vlan = dp.PortSettings(name).Config.VlanSpec;
                return () => dp.SetPortVlan(name, vlan);
            }

            default:
            {
                var f = Flows;
                var before = f.Current; // rules and miss policies; the port set is the ports' own undo's business
                return () => f.Restore(before);
            }
        }
    }

    /// <summary>Runs the undo records, newest first; null when all ran, else what went wrong.</summary>
    private static string? RunUndo(Stack<(int Step, string Cmd, Action Undo)> undo, int count)
    {
        while (undo.TryPop(out var u))
        {
            try
            {
                u.Undo();
            }
            catch (VSwitchException e)
            {
                int left = undo.Count;
                return $"undoing {StepName(u.Step, count, u.Cmd)} failed: {e.Message}; "
                    + (left == 0 ? "the switch may keep part of that step" : $"steps 1-{left} were not undone")
                    + " (compare show and dump-flows)";
            }
        }

        return null;
    }
}
