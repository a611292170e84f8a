// FlowTable.cs - one OpenFlow-like table: rules classified by tuple space search.
//
// Rules are grouped into subtables by their exact mask; each subtable is a hash map from the masked
// key to the rules with that match (highest priority first, then earliest). A lookup visits
// subtables in order of their highest priority and stops once no remaining subtable can beat the
// best rule found, so a table of 10 000 rules with a handful of masks costs a handful of hash
// probes. Every visited subtable's mask is ORed into the caller's wildcard mask: the verdict depends
// on exactly those bits, which is what the megaflow installed from this lookup may match on.
//
// A FlowTable is immutable once built; changing rules builds a new table (control plane only).
using VSwitch.Packets;

namespace VSwitch.Pipeline;

public enum TableMissPolicy
{
    /// <summary>No rule matched: drop (OpenFlow 1.3's default).</summary>
    Drop,

    /// <summary>No rule matched: punt to the slow path.</summary>
    Controller,

    /// <summary>No rule matched: continue in the next table.</summary>
    Continue,
}

public sealed class FlowTable
{
    private sealed class Subtable
    {
        public FlowKey Mask;
        public int MaxPriority;
        public readonly Dictionary<FlowKey, FlowRule[]> Rules = new();
    }

    private readonly Subtable[] _subtables;

    public FlowTable(int id, IEnumerable<FlowRule> rules, TableMissPolicy miss = TableMissPolicy.Drop)
    {
        Id = id;
        Miss = miss;
        var byMask = new Dictionary<FlowKey, Dictionary<FlowKey, List<FlowRule>>>();
        int count = 0;
        foreach (var r in rules)
        {
            if (!byMask.TryGetValue(r.Match.Mask, out var map))
            {
                byMask[r.Match.Mask] = map = new Dictionary<FlowKey, List<FlowRule>>();
            }

            if (!map.TryGetValue(r.Match.Value, out var list))
            {
                map[r.Match.Value] = list = new List<FlowRule>(1);
            }

            list.Add(r);
            count++;
        }

        Count = count;
        var subs = new List<Subtable>(byMask.Count);
        foreach (var (mask, map) in byMask)
        {
            var st = new Subtable { Mask = mask, MaxPriority = int.MinValue };
            st.Rules.EnsureCapacity(map.Count);
            foreach (var (value, list) in map)
            {
                if (list.Count > 1)
                {
                    list.Sort(Better);
                }

                st.Rules[value] = [.. list];
                st.MaxPriority = Math.Max(st.MaxPriority, list[0].Priority);
            }

            subs.Add(st);
        }

        subs.Sort((a, b) => b.MaxPriority.CompareTo(a.MaxPriority));
        _subtables = [.. subs];
    }

    public int Id { get; }

    public TableMissPolicy Miss { get; }

    public int Count { get; }

    public int SubtableCount => _subtables.Length;

    /// <summary>Orders rules best first: higher priority, then the earlier one.</summary>
    public static int Better(FlowRule a, FlowRule b) => a.Priority != b.Priority ? b.Priority.CompareTo(a.Priority) : a.Seq.CompareTo(b.Seq);

    /// <summary>The best rule matching <paramref name="key"/>, or null; ORs the bits it examined into <paramref name="wildcards"/>.</summary>
    public FlowRule? Lookup(in FlowKey key, ref FlowKey wildcards)
    {
        FlowRule? best = null;
        foreach (var st in _subtables)
        {
            if (best != null && st.MaxPriority < best.Priority)
            {
                break;
            }

            wildcards.Or(st.Mask);
            if (st.Rules.TryGetValue(key.MaskedBy(st.Mask), out var list))
            {
                var r = list[0];
                if (best == null || Better(r, best) < 0)
                {
                    best = r;
                }
            }
        }

        return best;
    }

    /// <summary>Every rule, in no particular order.</summary>
    public IEnumerable<FlowRule> Rules
    {
        get
        {
            foreach (var st in _subtables)
            {
                foreach (var list in st.Rules.Values)
                {
                    foreach (var r in list)
                    {
                        yield return r;
                    }
                }
            }
        }
    }

    /// <summary>The rule with exactly this match and priority, or null.</summary>
    public FlowRule? FindExact(in FlowMatch match, int priority)
    {
        foreach (var st in _subtables)
        {
            if (st.Mask.Equals(match.Mask) && st.Rules.TryGetValue(match.Value, out var list))
            {
                foreach (var r in list)
                {
                    if (r.Priority == priority)
                    {
                        return r;
                    }
                }
            }
        }

        return null;
    }
}
