// FlowControl.cs - the control plane's flow-table operations: add, modify, delete, replace, dump,
// trace, expire. Every change builds a complete new FlowTables off the PMD path, publishes it with
// one reference store, and returns only when every running PMD has passed the epoch taken after
// it (Pmd/Epoch.cs): from then on no packet is classified by an older verdict (stale megaflows are revalidated on
// their next hit). A change that fails validation throws before anything is published, so the
// running tables are untouched. Operations are serialised by one lock (control thread only).
using VSwitch.FlowText;
using VSwitch.Packets;

namespace VSwitch.Pipeline;

/// <summary>What del-flows / mod-flows select: a match (non-strict: rules at least as specific), optional table, priority and cookie.</summary>
public sealed record FlowFilter(FlowMatch Match, int? Table, int? Priority, ulong? Cookie, ulong? CookieMask, bool Strict)
{
    public static FlowFilter All => new(default, null, null, null, null, false);

    public unsafe bool Selects(FlowRule r)
    {
        if (Table is int t && r.Table != t)
        {
            return false;
        }

        if (Cookie is ulong c && (r.Cookie & (CookieMask ?? ulong.MaxValue)) != (c & (CookieMask ?? ulong.MaxValue)))
        {
            return false;
        }

        if (Strict)
        {
            return r.Match.Equals(Match) && (Priority ?? 32768) == r.Priority;
        }

        FlowMatch f = Match;
        FlowMatch rm = r.Match;
        if (f.HasConjId && (!rm.HasConjId || rm.ConjId != f.ConjId))
        {
            return false;
        }

        for (int i = 0; i < FlowKey.Words; i++)
        {
            // The rule must constrain at least the filter's bits, to the filter's values.
            if ((f.Mask.W[i] & ~rm.Mask.W[i]) != 0 || (rm.Value.W[i] & f.Mask.W[i]) != f.Value.W[i])
            {
                return false;
            }
        }

        return true;
    }
}

public sealed partial class FlowControl
{
    private readonly object _lock = new();
    private readonly PipelineShared _shared;
    private readonly Func<bool> _waitForPmds;
    private long _seq;

    /// <param name="waitForPmds">Waits (one epoch) until every running PMD classifies with <see cref="PipelineShared.Current"/>; false on timeout.</param>
    public FlowControl(PipelineShared shared, Func<bool> waitForPmds)
    {
        _shared = shared;
        _waitForPmds = waitForPmds;
    }

    public PipelineShared Shared => _shared;

    public FlowTables Current => _shared.Current;

    /// <summary>Called after every published change (persistence hooks here).</summary>
    public event Action<FlowTables>? Changed;

    private void Publish(FlowTables v, bool checkGroups = true, bool wait = true)
    {
        if (checkGroups)
        {
            CheckGroupReferences(v); // FlowControlGroups.cs: a rule naming a missing group is refused
        }

        _shared.Publish(v);
        if (wait && !_waitForPmds())
        {
            throw new VSwitchException("a PMD did not pass a round boundary with the new flow tables within 5 s (the change is published and will take effect when it does)");
        }

        Changed?.Invoke(v);
    }

    private void Stamp(IEnumerable<FlowRule> rules, ulong now)
    {
        foreach (var r in rules)
        {
            r.Seq = ++_seq;
            r.InstalledTsc = now;
        }
    }

    /// <summary>
    /// Rules as keys by their identity (table, priority, match), the rule object itself the key: a key
    /// of the identity's value would copy the 440-byte match into every entry (90 MB of dictionary for
    /// 200 000 rules, and as many collections to pay for it while PMDs run).
    /// </summary>
    private sealed class IdentityComparer : IEqualityComparer<FlowRule>
    {
        public static readonly IdentityComparer Instance = new();

        public bool Equals(FlowRule? a, FlowRule? b) => ReferenceEquals(a, b) || (a != null && b != null && a.SameIdentity(b));

        public int GetHashCode(FlowRule r) => HashCode.Combine(r.Table, r.Priority, r.Match.GetHashCode());
    }

    /// <summary>Adds rules; a rule with the same table, priority and match replaces the old one (counters kept when the actions are equal).</summary>
    public int Add(IReadOnlyList<FlowRule> rules, ulong now)
    {
        lock (_lock)
        {
            var cur = Current;
            var map = new Dictionary<FlowRule, FlowRule>(cur.RuleCount + rules.Count, IdentityComparer.Instance);
            foreach (var r in cur.Rules)
            {
                map[r] = r;
            }

            Stamp(rules, now);
            foreach (var r in rules)
            {
                if (map.TryGetValue(r, out var old))
                {
                    if (old.SameActions(r))
                    {
                        r.Counters = old.Counters;
                    }

                    r.Seq = old.Seq;
                }

                map[r] = r;
            }

            Publish(cur.WithRules(_shared.NextVersion(), map.Values));
            return rules.Count;
        }
    }

    /// <summary>Makes the tables exactly <paramref name="rules"/>; unchanged rules keep their counters. Returns (added, removed, changed, kept).</summary>
    public (int Added, int Removed, int Changed, int Kept) Replace(IReadOnlyList<FlowRule> rules, ulong now)
    {
        lock (_lock)
        {
            var cur = Current;
            var old = new HashSet<FlowRule>(cur.RuleCount, IdentityComparer.Instance);
            foreach (var r in cur.Rules)
            {
                old.Add(r);
            }

            var seen = new HashSet<FlowRule>(rules.Count, IdentityComparer.Instance);
            int added = 0, changed = 0, kept = 0;
            Stamp(rules, now);
            foreach (var r in rules)
            {
                if (!seen.Add(r))
                {
                    throw new VSwitchException($"{r.Origin}: the same table, priority and match appear twice");
                }

                if (old.TryGetValue(r, out var o))
                {
                    r.Seq = o.Seq;
                    if (o.SameActions(r))
                    {
                        r.Counters = o.Counters;
                        r.InstalledTsc = o.InstalledTsc;
                        kept++;
                    }
                    else
                    {
                        changed++;
                    }
                }
                else
                {
                    added++;
                }
            }

            int removed = old.Count(k => !seen.Contains(k));
            Publish(cur.WithRules(_shared.NextVersion(), rules));
            return (added, removed, changed, kept);
        }
    }

    /// <summary>Deletes the selected rules; returns how many.</summary>
    public int Delete(FlowFilter f)
    {
        lock (_lock)
        {
            var cur = Current;
            var keep = cur.Rules.Where(r => !f.Selects(r)).ToList();
            int n = cur.RuleCount - keep.Count;
            if (n != 0)
            {
                Publish(cur.WithRules(_shared.NextVersion(), keep));
            }

            return n;
        }
    }

    /// <summary>Gives the selected rules new actions (counters kept); returns how many.</summary>
    public int Modify(FlowFilter f, FlowAction[] actions)
    {
        lock (_lock)
        {
            var cur = Current;
            int n = 0;
            var rules = cur.Rules.Select(r =>
            {
                if (!f.Selects(r))
                {
                    return r;
                }

                n++;
                return new FlowRule
                {
                    Table = r.Table, Priority = r.Priority, Match = r.Match, Actions = actions, Cookie = r.Cookie,
                    IdleTimeout = r.IdleTimeout, HardTimeout = r.HardTimeout, Counters = r.Counters,
                    InstalledTsc = r.InstalledTsc, Seq = r.Seq, OriginFile = r.OriginFile, OriginLine = r.OriginLine,
                };
            }).ToList();
            if (n != 0)
            {
                Publish(cur.WithRules(_shared.NextVersion(), rules));
            }

            return n;
        }
    }

    /// <summary>
    /// Empties every PMD's megaflow and microflow caches (flush-megaflows): each PMD removes its own
    /// entries at its next round boundary (<see cref="PipelineShared.RequestCacheFlush"/>); returns
    /// once every running PMD has passed the epoch after the request. The tables do not change, so
    /// the next packet of each flow takes an upcall and installs a fresh megaflow.
    /// </summary>
    public void FlushCaches()
    {
        lock (_lock)
        {
            _shared.RequestCacheFlush();
            if (!_waitForPmds())
            {
                throw new VSwitchException("a PMD did not pass a round boundary within 5 s (its caches are emptied when it does)");
            }
        }
    }

    /// <summary>Sets a table's miss policy.</summary>
    public void SetTableMiss(int table, TableMissPolicy miss)
    {
        lock (_lock)
        {
            Publish(Current.WithMiss(_shared.NextVersion(), table, miss), checkGroups: false);
        }
    }

    /// <summary>
    /// Puts back the rules and table-miss policies of an earlier version (an undone command chain):
    /// the same rule objects, so their counters, cookies and durations are as they were and have
    /// counted on; the port set stays the current one.
    /// </summary>
    public void Restore(FlowTables earlier)
    {
        ArgumentNullException.ThrowIfNull(earlier);
        lock (_lock)
        {
            Publish(earlier.WithPorts(_shared.NextVersion(), Current.PortList));
        }
    }

    /// <summary>Publishes the port set (after a port was added, or before one is removed).</summary>
    public void SetPorts(IEnumerable<PipelinePort> ports)
    {
        lock (_lock)
        {
            Publish(Current.WithPorts(_shared.NextVersion(), ports), checkGroups: false);
        }
    }

    /// <summary>
    /// Publishes the ports' link states (fast_failover's watch ports) without waiting for the PMDs:
    /// a link change is an event, not a command someone waits on, and the link poll must not stall
    /// behind a PMD that is slow to reach a round boundary. PMDs revalidate at their next burst.
    /// </summary>
    public void PublishLinkStates(IEnumerable<PipelinePort> ports)
    {
        lock (_lock)
        {
            Publish(Current.WithPorts(_shared.NextVersion(), ports), checkGroups: false, wait: false);
        }
    }

    /// <summary>Removes rules whose idle or hard timeout passed; returns how many.</summary>
    public int Expire(ulong now, ulong tscHz)
    {
        lock (_lock)
        {
            var cur = Current;
            bool Expired(FlowRule r) =>
                (r.HardTimeout > 0 && now - r.InstalledTsc >= (ulong)r.HardTimeout * tscHz)
                || (r.IdleTimeout > 0 && now - Math.Max(r.InstalledTsc, r.Counters.LastUsedTsc) >= (ulong)r.IdleTimeout * tscHz);
            if (!cur.Rules.Any(r => (r.HardTimeout | r.IdleTimeout) != 0 && Expired(r)))
            {
                return 0;
            }

            var keep = cur.Rules.Where(r => !Expired(r)).ToList();
            Publish(cur.WithRules(_shared.NextVersion(), keep));
            return cur.RuleCount - keep.Count;
        }
    }

    /// <summary>ofproto/trace: the tables a packet would walk, the rules it would take, the datapath actions and megaflow.</summary>
    /// <returns>The trace lines, the translation, and the megaflow: the packet's own key (before any rewrite) under the mask.</returns>
    public (List<string> Lines, Translation Result, string Megaflow) Trace(in FlowKey key)
    {
        // Learning stays on: a NORMAL later in the same translation (or the same NORMAL, for a frame
        // addressed to its own source) sees the pending binding, as the upcall does. Nothing posts
        // the trace's bindings to the MAC table, so a trace still changes nothing.
        var t = new Translation { Trace = [], Frozen = _shared.Frozen };
        Translator.Translate(Current, key, _shared.Macs, t);
        return (t.Trace!, t, FlowFormatter.FormatKeyMask(key, DpKey.Of(t.Wildcards).ToFlowKey())); // the datapath words only, as installed
    }
}
