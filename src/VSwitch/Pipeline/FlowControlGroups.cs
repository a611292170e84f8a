// FlowControlGroups.cs - the group operations of the control plane: add-group(s), mod-group,
// del-groups, and the check that every group:N a rule or bucket names exists.
//
// As flow changes: a new FlowTables (same rules, new group set) is built off the PMD path and
// published, and the call returns after every running PMD passed an epoch after it, so a group
// change is atomic and seen everywhere when the command returns. Deleting a group deletes the rules
// that name it, as Open vSwitch does (OpenFlow's group delete removes the flows that forward to it),
// in the same version; a group another group's bucket names cannot be deleted while that one stays.
namespace VSwitch.Pipeline;

public sealed partial class FlowControl
{
    /// <summary>Adds groups; an id that exists is refused (use mod-group), and so is the whole call.</summary>
    public int AddGroups(IReadOnlyList<FlowGroup> groups, ulong now)
    {
        ArgumentNullException.ThrowIfNull(groups);
        lock (_lock)
        {
            var cur = Current;
            var all = new Dictionary<uint, FlowGroup>(cur.Groups);
            foreach (var g in groups)
            {
                if (!all.TryAdd(g.Id, g))
                {
                    throw new VSwitchException($"{g.Origin}: group {g.Id} already exists (mod-group changes it)");
                }

                g.InstalledTsc = now;
            }

            Publish(cur.WithGroups(_shared.NextVersion(), all.Values));
            return groups.Count;
        }
    }

    /// <summary>
    /// Replaces existing groups' type and buckets; the group's counters are kept, and each bucket's
    /// when the bucket is unchanged. A missing id is refused.
    /// </summary>
    public int ModifyGroups(IReadOnlyList<FlowGroup> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        lock (_lock)
        {
            var cur = Current;
            var all = new Dictionary<uint, FlowGroup>(cur.Groups);
            foreach (var g in groups)
            {
                if (!all.TryGetValue(g.Id, out var old))
                {
                    throw new VSwitchException($"{g.Origin}: no group {g.Id} (add-group adds it)");
                }

                KeepCounters(old, g);
                all[g.Id] = g;
            }

            Publish(cur.WithGroups(_shared.NextVersion(), all.Values));
            return groups.Count;
        }
    }

    private static void KeepCounters(FlowGroup old, FlowGroup g)
    {
        g.Counters = old.Counters;
        g.InstalledTsc = old.InstalledTsc;
        foreach (var b in g.Buckets)
        {
            if (old.Buckets.FirstOrDefault(o => o.SameAs(b)) is { } ob)
            {
                b.Counters = ob.Counters;
            }
        }
    }

    /// <summary>
    /// Makes the groups exactly <paramref name="groups"/> and the rules exactly <paramref name="rules"/>
    /// in one version (a restart's restore); unchanged groups keep their counters.
    /// </summary>
    public void SetGroupsAndRules(IReadOnlyList<FlowGroup> groups, IReadOnlyList<FlowRule> rules, ulong now)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(rules);
        lock (_lock)
        {
            foreach (var g in groups)
            {
                g.InstalledTsc = now;
            }

            var cur = Current;
            var withGroups = cur.WithGroups(cur.Version, groups);
            Stamp(rules, now);
            Publish(withGroups.WithRules(_shared.NextVersion(), rules));
        }
    }

    /// <summary>Deletes group <paramref name="id"/> (null: every group) and the rules that name the deleted groups. Returns (groups, rules) deleted.</summary>
    public (int Groups, int Rules) DeleteGroups(uint? id)
    {
        lock (_lock)
        {
            var cur = Current;
            var gone = cur.Groups.Keys.Where(k => id == null || k == id).ToHashSet();
            if (gone.Count == 0)
            {
                return (0, 0);
            }

            var keepGroups = cur.Groups.Values.Where(g => !gone.Contains(g.Id)).ToList();
            foreach (var g in keepGroups)
            {
                foreach (var b in g.Buckets)
                {
                    foreach (uint r in FlowGroup.Referenced(b.Actions))
                    {
                        if (gone.Contains(r))
                        {
                            throw new VSwitchException($"group {r} is named by a bucket of group {g.Id}: delete or change group {g.Id} first");
                        }
                    }
                }
            }

            var keepRules = cur.Rules.Where(r => !FlowGroup.Referenced(r.Actions).Any(gone.Contains)).ToList();
            var next = cur.WithGroups(cur.Version, keepGroups).WithRules(_shared.NextVersion(), keepRules);
            Publish(next);
            return (gone.Count, cur.RuleCount - keepRules.Count);
        }
    }

    /// <summary>How many rules name each group (dump-group-stats' ref_count).</summary>
    public static Dictionary<uint, int> ReferenceCounts(FlowTables v)
    {
        ArgumentNullException.ThrowIfNull(v);
        var counts = new Dictionary<uint, int>();
        foreach (var r in v.Rules)
        {
            foreach (uint g in FlowGroup.Referenced(r.Actions).Distinct())
            {
                counts[g] = counts.GetValueOrDefault(g) + 1;
            }
        }

        return counts;
    }

    /// <summary>Throws when a rule or a bucket of <paramref name="v"/> names a group <paramref name="v"/> does not have.</summary>
    private static void CheckGroupReferences(FlowTables v)
    {
        foreach (var r in v.Rules)
        {
            foreach (var a in r.Actions)
            {
                if (a.Kind == ActionKind.Group && v.Group((uint)a.Value) == null)
                {
                    throw new VSwitchException($"{r.Origin ?? "rule"}: group:{a.Value} names no group (add the group first)");
                }
            }
        }

        foreach (var g in v.Groups.Values)
        {
            foreach (var b in g.Buckets)
            {
                foreach (uint r in FlowGroup.Referenced(b.Actions))
                {
                    if (v.Group(r) == null)
                    {
                        throw new VSwitchException($"{g.Origin ?? $"group {g.Id}"}: bucket {b.BucketId}: group:{r} names no group (add it first)");
                    }
                }
            }
        }
    }
}
