// FlowTableConjunctions.cs - conjunctive matches in the classifier, as Open vSwitch 3.1 does them.
//
// A rule whose actions are conjunction(id,k/n) is a "soft" match: matching it says only that
// dimension k of conjunction id holds. The lookup walks the subtables as usual, but a soft match
// does not end the walk: only an ordinary ("hard") match does, so every subtable that could hold a
// better rule is probed and its mask lands in the wildcards. Then, highest priority first, the soft
// matches above the hard one are checked: when, among those of one priority, every dimension of
// some id has a match, the rules with conj_id=id (kept by id, outside the subtables: no packet
// carries a conj_id) are searched; the best of them that matches, or else the hard match, is the
// result. When nothing comes of a priority, a lower-priority rule with the identical match under
// each of its soft matches takes its place (a hard one may become the hard match), and the next
// priority is tried. The conj_id rules examined add their masks to the wildcards, so every field
// the decision read is in the megaflow: a cached verdict covers only packets classified the same.
//
// Quirks kept from Open vSwitch (lib/classifier.c) so the two switches agree:
// - A soft match hides lower-priority rules with the same match until its priority fails.
// - Only conjunctions with n no greater than the number of soft matches at that priority count.
// - The conj_id search competes with the first pass's hard match only (not one found under a
//   failed soft match), and its result is final even if lower soft matches remain.
// One difference: n=64 needs all 64 clauses here (Open vSwitch's mask arithmetic takes any one).
//
// Runs at upcall time only. ConjunctionScratch (one per Translation) holds the buffers, so a lookup
// allocates nothing once they have grown to the table's needs.
using System.Runtime.InteropServices;
using VSwitch.Packets;

namespace VSwitch.Pipeline;

/// <summary>Per-translation buffers of a conjunctive lookup: soft matches and per-id clause bits (reused).</summary>
public sealed class ConjunctionScratch
{
    /// <summary>Each soft match: the rule list of its match (best first) and the index of the rule in it (list null: gone).</summary>
    internal FlowRule[]?[] Lists = new FlowRule[]?[16];
    internal int[] Index = new int[16];
    internal int Count;

    /// <summary>Clause bits seen per conjunction id at the priority being checked (bits above n preset).</summary>
    internal readonly Dictionary<uint, ulong> Clauses = new();

    internal void Add(FlowRule[] list, int index)
    {
        if (Count == Lists.Length)
        {
            Array.Resize(ref Lists, Count * 2);
            Array.Resize(ref Index, Count * 2);
        }

        Lists[Count] = list;
        Index[Count++] = index;
    }

    internal FlowRule Rule(int i) => Lists[i]![Index[i]];
}

public sealed partial class FlowTable
{
    /// <summary>conj_id=id rules by id, best first.</summary>
    private readonly Dictionary<uint, FlowRule[]> _byConjId = new();

    /// <summary>Some rule is a conjunction clause: lookups take the conjunctive path.</summary>
    public bool HasConjunctions { get; }

    private FlowRule? LookupConjunctive(in FlowKey key, ref FlowKey wildcards, ConjunctionScratch s)
    {
        FlowRule? hard = null;
        s.Count = 0;
        foreach (var st in _subtables)
        {
            if (hard != null && st.MaxPriority < hard.Priority)
            {
                break; // soft matches do not end the walk: only a hard one does
            }

            wildcards.Or(st.Mask);
            if (!st.Rules.TryGetValue(key.MaskedBy(st.Mask), out var bucket))
            {
                continue;
            }

            var r = bucket.Best;
            if (r.IsConjunction)
            {
                if (hard == null || r.Priority > hard.Priority)
                {
                    s.Add(bucket.All!, 0); // a bucket whose best is a clause keeps its array
                }
            }
            else if (hard == null || Better(r, hard) < 0)
            {
                hard = r;
            }
        }

        return s.Count == 0 ? hard : ResolveSoft(hard, key, ref wildcards, s);
    }

    /// <summary>
    /// The reference lookup (no subtables): every rule checked, rules with identical matches grouped
    /// (as a subtable bucket groups them), then the same soft-match resolution.
    /// </summary>
    internal FlowRule? LinearLookup(in FlowKey key, ConjunctionScratch s)
    {
        var groups = new Dictionary<FlowMatch, List<FlowRule>>();
        foreach (var r in Rules)
        {
            if (r.Match.Matches(key))
            {
                if (!groups.TryGetValue(r.Match, out var g))
                {
                    groups[r.Match] = g = [];
                }

                g.Add(r);
            }
        }

        FlowRule? hard = null;
        s.Count = 0;
        foreach (var g in groups.Values)
        {
            g.Sort(Better);
            var r = g[0];
            if (!r.IsConjunction && (hard == null || Better(r, hard) < 0))
            {
                hard = r;
            }
            else if (r.IsConjunction)
            {
                s.Add([.. g], 0);
            }
        }

        FlowKey ignored = default;
        return s.Count == 0 ? hard : ResolveSoft(hard, key, ref ignored, s);
    }

    /// <summary>Checks the soft matches above <paramref name="hard"/>, highest priority first (see the file comment).</summary>
    private FlowRule? ResolveSoft(FlowRule? hard, in FlowKey key, ref FlowKey wildcards, ConjunctionScratch s)
    {
        FlowRule? firstHard = hard;
        while (true)
        {
            int hardPri = hard?.Priority ?? int.MinValue;
            int n = 0, softPri = int.MinValue, atPri = 0;
            for (int i = 0; i < s.Count; i++)
            {
                if (s.Lists[i] == null || s.Rule(i).Priority <= hardPri)
                {
                    continue; // gone, or not above the hard match
                }

                s.Lists[n] = s.Lists[i];
                s.Index[n] = s.Index[i];
                int p = s.Rule(n++).Priority;
                if (p > softPri)
                {
                    softPri = p;
                    atPri = 1;
                }
                else if (p == softPri)
                {
                    atPri++;
                }
            }

            s.Count = n;
            if (n == 0)
            {
                return hard;
            }

            s.Clauses.Clear();
            for (int i = 0; i < n; i++)
            {
                var r = s.Rule(i);
                if (r.Priority == softPri && Completes(r, atPri, s, out uint id))
                {
                    var found = ConjIdLookup(id, firstHard, key, ref wildcards);
                    if (found != null)
                    {
                        return found;
                    }
                }
            }

            // Nothing at this priority: the next rule with the same match under each of its soft matches.
            for (int i = 0; i < n; i++)
            {
                var list = s.Lists[i]!;
                int next = s.Index[i] + 1;
                if (list[next - 1].Priority != softPri)
                {
                    continue;
                }

                if (next == list.Length)
                {
                    s.Lists[i] = null;
                }
                else if (list[next].IsConjunction)
                {
                    s.Index[i] = next;
                }
                else
                {
                    if (list[next].Priority > (hard?.Priority ?? int.MinValue))
                    {
                        hard = list[next];
                    }

                    s.Lists[i] = null;
                }
            }
        }
    }

    /// <summary>
    /// Adds rule <paramref name="r"/>'s clauses to the per-id bits; true (with the id) when one of its
    /// ids has all its clauses. Conjunctions of more than <paramref name="maxClauses"/> (the number of
    /// soft matches at this priority) are skipped, as in Open vSwitch.
    /// </summary>
    private static bool Completes(FlowRule r, int maxClauses, ConjunctionScratch s, out uint id)
    {
        foreach (var a in r.Actions)
        {
            if (a.Kind != ActionKind.Conjunction || a.ConjClauses > maxClauses)
            {
                continue;
            }

            ref ulong bits = ref CollectionsMarshal.GetValueRefOrAddDefault(s.Clauses, a.ConjId, out bool existed);
            if (!existed)
            {
                bits = a.ConjClauses >= 64 ? 0 : ulong.MaxValue << a.ConjClauses;
            }

            bits |= 1UL << (a.ConjClause - 1);
            if (bits == ulong.MaxValue)
            {
                id = a.ConjId;
                return true;
            }
        }

        id = 0;
        return false;
    }

    /// <summary>The best conj_id=<paramref name="id"/> rule matching <paramref name="key"/> if it beats <paramref name="hard"/>, else <paramref name="hard"/>.</summary>
    private FlowRule? ConjIdLookup(uint id, FlowRule? hard, in FlowKey key, ref FlowKey wildcards)
    {
        if (_byConjId.TryGetValue(id, out var rules))
        {
            foreach (var r in rules)
            {
                if (hard != null && Better(r, hard) > 0)
                {
                    break;
                }

                wildcards.Or(r.Match.Mask);
                if (!r.IsConjunction && r.Match.MatchesKey(key)) // a clause is never the answer (mod-flows could make one here)
                {
                    return r;
                }
            }
        }

        return hard;
    }
}
