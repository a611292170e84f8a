// FlowGroup.cs - OpenFlow groups as the control plane holds them: a type, buckets, counters.
//
// A group is what the group:N action runs (docs/FLOWS.md, "Groups"). Groups are immutable managed
// objects owned by a FlowTables version, like rules; a change builds new FlowGroup objects and a new
// version. Each bucket keeps the actions as written (dump-groups prints them) and, computed once
// here, the list translation runs: a bucket's actions are an OpenFlow action set, so they run in the
// action-set order (pop_vlan, push_vlan, dec_ttl, the set actions in order, then the last group,
// else the last output, else the last resubmit), as Open vSwitch does. Counters are RuleCounters
// (native slots) so a megaflow bumps a group's and its buckets' counts exactly as it bumps a rule's.
using VSwitch.FlowText;

namespace VSwitch.Pipeline;

public enum GroupType : byte
{
    /// <summary>Every bucket runs, each on a copy of the packet.</summary>
    All,

    /// <summary>One live bucket, chosen by a hash of the selection fields, in proportion to the weights.</summary>
    Select,

    /// <summary>The one bucket.</summary>
    Indirect,

    /// <summary>The first bucket whose watch port's link is up.</summary>
    FastFailover,
}

/// <summary>One bucket of a group.</summary>
public sealed class GroupBucket
{
    /// <summary>No watch port (OpenFlow's OFPP_ANY): the bucket is always live.</summary>
    public const int NoWatchPort = 0;

    /// <summary>The bucket's id (its position, unless bucket_id: gave one).</summary>
    public int BucketId { get; init; }

    /// <summary>select: the share of flows (0: never chosen).</summary>
    public int Weight { get; init; } = 1;

    /// <summary>The port whose link decides liveness (fast_failover; select honours it too), or <see cref="NoWatchPort"/>.</summary>
    public int WatchPort { get; init; } = NoWatchPort;

    /// <summary>The actions as written.</summary>
    public FlowAction[] Actions
    {
        get => _actions;
        init
        {
            _actions = value;
            Executed = ActionSetOrder(value); // here, not on first use: translation runs on the PMDs
        }
    }

    private readonly FlowAction[] _actions = [];

    /// <summary>The actions as translation runs them (action-set order; see the file comment).</summary>
    public FlowAction[] Executed { get; private init; } = [];

    public RuleCounters Counters { get; set; } = new();

    /// <summary>Same weight, watch port and actions (mod-group keeps the counters of such a bucket).</summary>
    public bool SameAs(GroupBucket o) => BucketId == o.BucketId && Weight == o.Weight && WatchPort == o.WatchPort
        && Actions.AsSpan().SequenceEqual(o.Actions);

    /// <summary>Whether the bucket may be used: no watch port, or a present port whose link is up.</summary>
    public bool Live(FlowTables v) => WatchPort == NoWatchPort || v.Port(WatchPort) is { LinkUp: true };

    /// <summary>
    /// OpenFlow's action-set order (Open vSwitch's ofpacts_execute_action_set): the last pop_vlan, the
    /// last push_vlan, the last dec_ttl, every set action in order, then the last group, or else the
    /// last output (output, in_port, flood, all, normal), or else the last resubmit. Anything else
    /// (controller, ct_clear, drop) does nothing in an action set.
    /// </summary>
    public static FlowAction[] ActionSetOrder(FlowAction[] actions)
    {
        var list = new List<FlowAction>(actions.Length);
        void Last(Func<FlowAction, bool> which)
        {
            for (int i = actions.Length - 1; i >= 0; i--)
            {
                if (which(actions[i]))
                {
                    list.Add(actions[i]);
                    return;
                }
            }
        }

        Last(a => a.Kind == ActionKind.PopVlan);
        Last(a => a.Kind == ActionKind.PushVlan);
        Last(a => a.Kind == ActionKind.DecTtl);
        list.AddRange(actions.Where(a => a.Kind is ActionKind.SetField or ActionKind.SetVlanVid or ActionKind.SetVlanPcp or ActionKind.Move));
        int before = list.Count;
        Last(a => a.Kind == ActionKind.Group);
        if (list.Count == before)
        {
            Last(a => a.Kind is ActionKind.Output or ActionKind.InPort or ActionKind.Flood or ActionKind.Normal);
        }

        if (list.Count == before)
        {
            Last(a => a.Kind == ActionKind.Resubmit);
        }

        return list.Count == before ? [] : [.. list]; // nothing sent: the rewrites would change nothing seen
    }
}

/// <summary>An OpenFlow group (add-group, group:N).</summary>
public sealed class FlowGroup
{
    /// <summary>Highest group id (OpenFlow's OFPG_MAX).</summary>
    public const uint MaxId = 0xFFFFFF00;

    public uint Id { get; init; }

    public GroupType Type { get; init; }

    public GroupBucket[] Buckets { get; init; } = [];

    /// <summary>select: "selection_method=hash" was written (the hash is the same either way).</summary>
    public bool HashMethod { get; init; }

    /// <summary>select: the fields the hash reads (empty: the default 5-tuple, <see cref="DefaultSelectionFields"/>).</summary>
    public FieldDef[] SelectionFields { get; init; } = [];

    /// <summary>The fields the bucket choice hashes.</summary>
    public FieldDef[] HashFields => SelectionFields.Length > 0 ? SelectionFields : DefaultSelectionFields;

    /// <summary>The default hash: the IPv4 or IPv6 addresses, the protocol and the L4 ports.</summary>
    public static readonly FieldDef[] DefaultSelectionFields =
        [Fields.NwSrc, Fields.NwDst, Fields.Ipv6Src, Fields.Ipv6Dst, Fields.NwProto, Fields.TpSrc, Fields.TpDst];

    public RuleCounters Counters { get; set; } = new();

    /// <summary>When the group was added (TSC), for dump-group-stats' duration.</summary>
    public ulong InstalledTsc { get; set; }

    /// <summary>Where the group came from (file and line), for messages.</summary>
    public string? Origin { get; init; }

    /// <summary>Same type, selection and buckets (mod-group and add-groups keep the counters of such a group).</summary>
    public bool SameAs(FlowGroup o) => Type == o.Type && HashMethod == o.HashMethod
        && SelectionFields.AsSpan().SequenceEqual(o.SelectionFields)
        && Buckets.Length == o.Buckets.Length && Buckets.Zip(o.Buckets).All(p => p.First.SameAs(p.Second));

    /// <summary>The group ids that <paramref name="actions"/> name.</summary>
    public static IEnumerable<uint> Referenced(FlowAction[] actions) =>
        actions.Where(a => a.Kind == ActionKind.Group).Select(a => (uint)a.Value);
}
