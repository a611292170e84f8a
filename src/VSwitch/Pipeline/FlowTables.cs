// FlowTables.cs - one immutable version of everything a verdict depends on: the tables, the port
// set with its VLAN modes, and the table-miss policies.
//
// The control plane builds a new FlowTables for every change and publishes it with one reference
// store (PipelineShared.Publish); PMDs read PipelineShared.Current once per burst and revalidate
// any cached verdict whose Version differs. A megaflow names the rules it took by their native
// counter slots (RuleCounters.Slot), valid while the version it was computed for is current.
using VSwitch.FlowText;
using VSwitch.Packets;

namespace VSwitch.Pipeline;

public enum VlanMode : byte
{
    /// <summary>No VLAN processing: NORMAL treats tagged and untagged frames as they come (trunk of all).</summary>
    None,

    /// <summary>Untagged port in one VLAN: untagged frames join Tag; tagged frames are dropped; egress is untagged.</summary>
    Access,

    /// <summary>Carries the allowed VLANs tagged (VLAN 0 = untagged).</summary>
    Trunk,
}

/// <summary>
/// A datapath port as the pipeline sees it: its OpenFlow number (what rules and in_port name; stable,
/// sparse) and its datapath slot (the PMDs' tx buffer index; reused, dense). Slot defaults to
/// OfPort - 1 for callers that number densely (tests).
/// </summary>
public sealed record PipelinePort(int OfPort, string Name, VlanMode Mode = VlanMode.None, ushort Tag = 0, IReadOnlyList<ushort>? Trunks = null)
{
    /// <summary>Trunk VLANs as a 4096-bit set (null: every VLAN), built once off the PMD path.</summary>
    private readonly ulong[]? _trunkSet = Trunks is { Count: > 0 } ? TrunkSet(Trunks) : null;

    /// <summary>Datapath slot (index of the tx buffer) the translation outputs to.</summary>
    public int Slot { get; init; } = OfPort - 1;

    /// <summary>Whether the port's link is up (fast_failover's watch_port; a change publishes a new version).</summary>
    public bool LinkUp { get; init; } = true;

    /// <summary>Whether this port carries <paramref name="vlan"/> (0: untagged) for NORMAL.</summary>
    public bool Carries(int vlan) => Mode switch
    {
        VlanMode.Access => vlan == Tag,
        VlanMode.Trunk => _trunkSet == null || (_trunkSet[(vlan & 0xFFF) >> 6] & (1UL << (vlan & 63))) != 0,
        _ => true,
    };

    private static ulong[] TrunkSet(IReadOnlyList<ushort> vlans)
    {
        var set = new ulong[64];
        foreach (ushort v in vlans)
        {
            set[(v & 0xFFF) >> 6] |= 1UL << (v & 63);
        }

        return set;
    }
}

public sealed unsafe class FlowTables
{
    public const int MaxTables = 255;

    private readonly FlowTable?[] _tables;

    public FlowTables(long version, IEnumerable<FlowTable> tables, IEnumerable<PipelinePort> ports, IReadOnlyDictionary<uint, FlowGroup>? groups = null)
    {
        Version = version;
        Groups = groups ?? EmptyGroups;
        _tables = new FlowTable?[MaxTables];
        var all = new List<FlowRule>();
        foreach (var t in tables)
        {
            _tables[t.Id] = t;
            foreach (var r in t.Rules)
            {
                _ = r.Counters; // made here, on the control plane, if the rule has none yet
                all.Add(r);
            }
        }

        Rules = [.. all];
        MatchesCtTuple = all.Exists(UsesCtTuple) || Groups.Values.Any(g => g.SelectionFields.Any(IsCtTupleField)
            || g.Buckets.Any(b => b.Actions.Any(a => IsCtTupleField(a.Field) || IsCtTupleField(a.Dst))));
        var list = new List<PipelinePort>(ports);
        list.Sort((a, b) => a.OfPort.CompareTo(b.OfPort));
        PortList = [.. list];
        _byOfPort = new PipelinePort?[list.Count == 0 ? 1 : list[^1].OfPort + 1]; // numbers are sparse: sized by the highest
        foreach (var p in list)
        {
            _byOfPort[p.OfPort] = p;
        }
    }

    /// <summary>An empty version (no rules: every packet misses table 0 and is dropped).</summary>
    public static FlowTables Empty(long version, IEnumerable<PipelinePort> ports) => new(version, [], ports);

    private static readonly IReadOnlyDictionary<uint, FlowGroup> EmptyGroups = new Dictionary<uint, FlowGroup>();

    /// <summary>The groups by id (group:N); never changed once published.</summary>
    public IReadOnlyDictionary<uint, FlowGroup> Groups { get; }

    /// <summary>Group <paramref name="id"/>, or null.</summary>
    public FlowGroup? Group(uint id) => Groups.GetValueOrDefault(id);

    /// <summary>
    /// Some rule (or group bucket) reads ct_label or a field of the connection's original tuple: the
    /// PMDs then fill those words of the key on passes after ct(table=N) (Packets/DpKey.cs), which
    /// costs those passes the microflow cache; otherwise the words stay zero and cost nothing.
    /// </summary>
    public bool MatchesCtTuple { get; }

    private static bool IsCtTupleField(FieldDef? f) => f != null && f.Word >= FlowKey.CtExtWord && f.Word < FlowKey.CtExtWord + DpKey.CtExtWords;

    private static bool UsesCtTuple(FlowRule r)
    {
        for (int w = FlowKey.CtExtWord; w < FlowKey.CtExtWord + DpKey.CtExtWords; w++)
        {
            if (r.Match.Mask.W[w] != 0)
            {
                return true;
            }
        }

        return Array.Exists(r.Actions, a => IsCtTupleField(a.Field) || IsCtTupleField(a.Dst));
    }

    /// <summary>Monotonic; cached verdicts carry the version they were computed for.</summary>
    public long Version { get; }

    /// <summary>Every rule of the version; megaflows refer to rules by index into this array.</summary>
    public FlowRule[] Rules { get; }

    private readonly PipelinePort?[] _byOfPort;

    /// <summary>The port with OpenFlow number <paramref name="ofPort"/>, or null (any int: in_port, rules' and learned numbers).</summary>
    public PipelinePort? Port(int ofPort) => (uint)ofPort < (uint)_byOfPort.Length ? _byOfPort[ofPort] : null;

    /// <summary>Ports in number order (flood and NORMAL walk this).</summary>
    public PipelinePort[] PortList { get; }

    public FlowTable? Table(int id) => (uint)id < MaxTables ? _tables[id] : null;

    public IEnumerable<FlowTable> Tables => _tables.Where(t => t != null)!;

    public int RuleCount => Rules.Length;

    /// <summary>A new version with the same tables and a different port set.</summary>
    public FlowTables WithPorts(long version, IEnumerable<PipelinePort> ports) => new(version, Tables, ports, Groups);

    /// <summary>A new version with the same tables and ports and exactly <paramref name="groups"/>.</summary>
    public FlowTables WithGroups(long version, IEnumerable<FlowGroup> groups) =>
        new(version, Tables, PortList, groups.ToDictionary(g => g.Id));

    /// <summary>
    /// A new version whose tables hold exactly <paramref name="rules"/> (tables not mentioned become
    /// empty); miss policies are kept.
    /// </summary>
    public FlowTables WithRules(long version, IEnumerable<FlowRule> rules)
    {
        var groups = rules.GroupBy(r => r.Table);
        var tables = new List<FlowTable>();
        foreach (var g in groups)
        {
            tables.Add(new FlowTable(g.Key, g, Table(g.Key)?.Miss ?? TableMissPolicy.Drop));
        }

        foreach (var t in Tables)
        {
            if (t.Miss != TableMissPolicy.Drop && tables.All(x => x.Id != t.Id))
            {
                tables.Add(new FlowTable(t.Id, [], t.Miss));
            }
        }

        return new FlowTables(version, tables, PortList, Groups);
    }

    /// <summary>A new version where table <paramref name="id"/> has the given miss policy.</summary>
    public FlowTables WithMiss(long version, int id, TableMissPolicy miss)
    {
        var tables = Tables.Where(t => t.Id != id).ToList();
        tables.Add(new FlowTable(id, Table(id)?.Rules ?? [], miss));
        return new FlowTables(version, tables, PortList, Groups);
    }

    /// <summary>All rules in dump order: table, then priority (high first), then insertion.</summary>
    public IEnumerable<FlowRule> Dump(int? table = null) => Tables
        .Where(t => table == null || t.Id == table)
        .SelectMany(t => t.Rules.OrderBy(r => r, Comparer<FlowRule>.Create(FlowTable.Better)));

    /// <summary>The brute-force reference: best rule of table <paramref name="id"/> for a key, by linear scan.</summary>
    public FlowRule? LinearLookup(int id, in FlowKey key)
    {
        FlowRule? best = null;
        var t = Table(id);
        if (t == null)
        {
            return null;
        }

        if (t.HasConjunctions)
        {
            return t.LinearLookup(key, new ConjunctionScratch());
        }

        foreach (var r in t.Rules)
        {
            if (r.Match.Matches(key) && (best == null || FlowTable.Better(r, best) < 0))
            {
                best = r;
            }
        }

        return best;
    }
}
