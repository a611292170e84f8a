// FlowTable.cs - one OpenFlow-like table: rules classified by tuple space search.
//
// Rules are grouped into subtables by their exact mask; each subtable is a hash map from the masked
// key to the rules with that match (highest priority first, then earliest). A lookup visits
// subtables in order of their highest priority and stops once no remaining subtable can beat the
// best rule found, so a table of 10 000 rules with a handful of masks costs a handful of hash
// probes. Every visited subtable's mask is ORed into the caller's wildcard mask: the verdict depends
// on exactly those bits, which is what the megaflow installed from this lookup may match on.
//
// Conjunctive matches (conjunction(id,k/n) clauses and conj_id=id rules) take a second path,
// FlowTableConjunctions.cs; a table without clause rules never enters it.
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

public sealed partial class FlowTable
{
    private sealed class Subtable(FlowKey mask, int capacity)
    {
        public readonly FlowKey Mask = mask;
        public int MaxPriority = int.MinValue;
        public readonly RuleMap Rules = new(capacity);
    }

    /// <summary>
    /// The rules of one match in a subtable: the best, and all of them best first when there are
    /// several or the best is a conjunction clause (the conjunctive path walks that array); a
    /// one-rule bucket, the common case, is no object of its own.
    /// </summary>
    private readonly struct Bucket(FlowRule best, FlowRule[]? all)
    {
        public readonly FlowRule Best = best;
        public readonly FlowRule[]? All = all;

        public static Bucket Of(FlowRule r) => new(r, r.IsConjunction ? [r] : null);

        public Bucket With(FlowRule r)
        {
            FlowRule[] all = [.. All ?? [Best], r];
            Array.Sort(all, FlowTable.Better);
            return new Bucket(all[0], all);
        }
    }

    private readonly Subtable[] _subtables;

    public FlowTable(int id, IEnumerable<FlowRule> rules, TableMissPolicy miss = TableMissPolicy.Drop)
    {
        Id = id;
        Miss = miss;

        // Rules by mask first (a table has few masks), then each subtable's map built at its final
        // size (FlowTableRuleMap.cs: keyed by the rules' own match values, no key copies): no
        // rehashing and no list per key while a big table is built (the garbage collector stops the
        // PMDs for what a build keeps alive, bench/GcLoad).
        var byMask = new Dictionary<FlowKey, List<FlowRule>>();
        int count = 0;
        var byConjId = new Dictionary<uint, List<FlowRule>>();
        foreach (var r in rules)
        {
            count++;
            HasConjunctions |= r.IsConjunction;
            if (r.Match.HasConjId)
            {
                // conj_id=id rules are looked up only after conjunction id matched: kept by id, not in a subtable
                if (!byConjId.TryGetValue(r.Match.ConjId, out var ids))
                {
                    byConjId[r.Match.ConjId] = ids = new List<FlowRule>(1);
                }

                ids.Add(r);
                continue;
            }

            if (!byMask.TryGetValue(r.Match.Mask, out var list))
            {
                byMask[r.Match.Mask] = list = [];
            }

            list.Add(r);
        }

        Count = count;
        foreach (var (conjId, list) in byConjId)
        {
            list.Sort(Better);
            _byConjId[conjId] = [.. list];
        }

        var subs = new List<Subtable>(byMask.Count);
        foreach (var (mask, list) in byMask)
        {
            var st = new Subtable(mask, list.Count);
            foreach (var r in list)
            {
                ref var same = ref st.Rules.GetOrAdd(r.Match.Value, out bool exists);
                same = exists ? same.With(r) : Bucket.Of(r); // several priorities of one match: rare, small

                st.MaxPriority = Math.Max(st.MaxPriority, r.Priority);
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

    /// <summary>The longest hash chain of any subtable (tests: lookups stay a few probes).</summary>
    internal int LongestChain() => _subtables.Length == 0 ? 0 : _subtables.Max(st => st.Rules.LongestChain());

    /// <summary>Orders rules best first: higher priority, then the earlier one.</summary>
    public static int Better(FlowRule a, FlowRule b) => a.Priority != b.Priority ? b.Priority.CompareTo(a.Priority) : a.Seq.CompareTo(b.Seq);

    /// <summary>
    /// The best rule matching <paramref name="key"/>, or null; ORs the bits it examined into <paramref name="wildcards"/>.
    /// <paramref name="scratch"/>: the caller's buffers for conjunctive matches (null: allocated when needed).
    /// </summary>
    public FlowRule? Lookup(in FlowKey key, ref FlowKey wildcards, ConjunctionScratch? scratch = null)
    {
        if (HasConjunctions)
        {
            return LookupConjunctive(key, ref wildcards, scratch ?? new ConjunctionScratch());
        }

        FlowRule? best = null;
        foreach (var st in _subtables)
        {
            if (best != null && st.MaxPriority < best.Priority)
            {
                break;
            }

            wildcards.Or(st.Mask);
            if (st.Rules.TryGetValue(key.MaskedBy(st.Mask), out var bucket))
            {
                var r = bucket.Best;
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
                foreach (var bucket in st.Rules.Values)
                {
                    if (bucket.All == null)
                    {
                        yield return bucket.Best;
                        continue;
                    }

                    foreach (var r in bucket.All)
                    {
                        yield return r;
                    }
                }
            }

            foreach (var list in _byConjId.Values)
            {
                foreach (var r in list)
                {
                    yield return r;
                }
            }
        }
    }

    /// <summary>The rule with exactly this match and priority, or null.</summary>
    public FlowRule? FindExact(in FlowMatch match, int priority)
    {
        if (match.HasConjId)
        {
            foreach (var r in _byConjId.GetValueOrDefault(match.ConjId) ?? [])
            {
                if (r.Priority == priority && r.Match.Equals(match))
                {
                    return r;
                }
            }

            return null;
        }

        foreach (var st in _subtables)
        {
            if (st.Mask.Equals(match.Mask) && st.Rules.TryGetValue(match.Value, out var bucket))
            {
                foreach (var r in bucket.All ?? [bucket.Best])
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
