// GroupCommands.cs - the group commands of the control socket: add-group(s), mod-group, del-groups,
// dump-groups, dump-group-stats (docs/CONTROL.md). Each change returns after every PMD sees it
// (FlowControl's epoch wait), as flow changes do.
using System.Text.Json.Nodes;
using VSwitch.FlowText;
using VSwitch.Interop;
using VSwitch.Pipeline;

namespace VSwitch.Control;

public sealed partial class Commands
{
    /// <summary>Groups from "group" (one per line; "origin" and "line" name the text for errors).</summary>
    private List<FlowGroup> GroupsFrom(JsonObject args)
    {
        var origin = Str(args, "origin", required: false);
        int line = Int(args, "line", 1, 1, int.MaxValue);
        var groups = GroupText.ParseGroups(Str(args, "group"), origin.Length == 0 ? "group" : origin, line, dp.PortNames());
        return groups.Count > 0 ? groups : throw new VSwitchException("no group in the text (expected group_id=N,type=...,bucket=...)");
    }

    private JsonObject AddGroups(JsonObject args)
    {
        var f = Flows;
        int n = f.AddGroups(GroupsFrom(args), Native.Rdtsc());
        return new JsonObject { ["added"] = n, ["groups"] = f.Current.Groups.Count, ["version"] = f.Current.Version };
    }

    private JsonObject ModGroup(JsonObject args)
    {
        var f = Flows;
        int n = f.ModifyGroups(GroupsFrom(args));
        return new JsonObject { ["modified"] = n, ["version"] = f.Current.Version };
    }

    /// <summary>"group": "group_id=N", "group_id=all" or absent (all).</summary>
    private static uint? GroupIdFrom(JsonObject args)
    {
        var text = Str(args, "group", required: false).Trim();
        if (text.Length == 0 || text.Equals("group_id=all", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        const string Prefix = "group_id=";
        if (!text.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase)
            || !uint.TryParse(text.AsSpan(Prefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint id)
            || id > FlowGroup.MaxId)
        {
            throw new VSwitchException($"expected 'group_id=N' (N from 0 to {FlowGroup.MaxId}) or 'group_id=all', found '{text}'");
        }

        return id;
    }

    private JsonObject DelGroups(JsonObject args)
    {
        var f = Flows;
        var (groups, rules) = f.DeleteGroups(GroupIdFrom(args));
        return new JsonObject { ["deleted"] = groups, ["rules_deleted"] = rules, ["groups"] = f.Current.Groups.Count, ["version"] = f.Current.Version };
    }

    private IEnumerable<FlowGroup> SelectedGroups(JsonObject args)
    {
        uint? id = GroupIdFrom(args);
        return Flows.Current.Groups.Values.Where(g => id == null || g.Id == id).OrderBy(g => g.Id);
    }

    private JsonObject DumpGroups(JsonObject args)
    {
        bool counters = !(args["counters"] is JsonValue v && v.TryGetValue(out bool b) && !b);
        return new JsonObject
        {
            ["groups"] = new JsonArray(SelectedGroups(args).Select(g => (JsonNode?)GroupText.Format(g, counters)).ToArray()),
        };
    }

    private JsonObject DumpGroupStats(JsonObject args)
    {
        var refs = FlowControl.ReferenceCounts(Flows.Current);
        ulong now = Native.Rdtsc();
        ulong hz = dp.Eal?.TscHz ?? 1;
        return new JsonObject
        {
            ["stats"] = new JsonArray(SelectedGroups(args).Select(g => (JsonNode?)GroupText.FormatStats(g, refs.GetValueOrDefault(g.Id), now, hz)).ToArray()),
        };
    }
}
