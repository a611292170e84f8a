// FlowModel.cs - the control plane's view of a flow rule: match, priority, actions, counters.
//
// These are ordinary managed objects built off the PMD path (by the flow text parser or by code).
// A rule's match is a FlowKey value and a FlowKey mask (value already masked); its actions are an
// array of FlowAction interpreted by the pipeline at upcall time, never per packet (rules parsed
// together with equal actions share one array; it is never changed in place). RuleCounters is a
// separate object (over a native slot) so that a replaced table can hand the same counters to an
// unchanged rule. No per-rule object has a finalizer: 200 000 of them dying at one replace-flows
// made every collection until the finalizer thread caught up walk them, with the PMDs stopped.
// Fields are named by the FieldDefs of the one field table, FlowText/Fields.cs.
using VSwitch.FlowText;
using VSwitch.Packets;

namespace VSwitch.Pipeline;

/// <summary>A match: the packet's key masked by <see cref="Mask"/> equals <see cref="Value"/>.</summary>
public struct FlowMatch : IEquatable<FlowMatch>
{
    /// <summary>The wanted bits (zero outside the mask).</summary>
    public FlowKey Value;

    /// <summary>The bits that matter.</summary>
    public FlowKey Mask;

    /// <summary>
    /// conj_id=<see cref="ConjId"/> (when <see cref="HasConjId"/>): the rule is only looked up after a
    /// conjunction with that id matched (FlowTable). Held here, not in the key: no packet carries it.
    /// </summary>
    public uint ConjId;

    /// <summary>The match has conj_id=<see cref="ConjId"/>.</summary>
    public bool HasConjId;

    /// <summary>Adds "field &amp; mask == value &amp; mask" (for 128-bit fields use <see cref="SetWide"/>).</summary>
    public void Set(FieldDef f, ulong value, ulong mask)
    {
        ulong fm = f.WordMask;
        ulong m = (mask << f.Shift) & fm;
        unsafe
        {
            Mask.W[f.Word] = (Mask.W[f.Word] & ~fm) | m;
            Value.W[f.Word] = (Value.W[f.Word] & ~fm) | ((value << f.Shift) & m);
        }
    }

    public void SetWide(FieldDef f, UInt128 value, UInt128 mask)
    {
        unsafe
        {
            Mask.W[f.Word] = (ulong)(mask >> 64);
            Mask.W[f.Word + 1] = (ulong)mask;
            Value.W[f.Word] = (ulong)((value & mask) >> 64);
            Value.W[f.Word + 1] = (ulong)(value & mask);
        }
    }

    /// <summary>The field's mask (shifted down) in this match.</summary>
    public readonly ulong GetMask(FieldDef f)
    {
        unsafe
        {
            return (Mask.W[f.Word] & f.WordMask) >> f.Shift;
        }
    }

    public readonly ulong GetValue(FieldDef f)
    {
        unsafe
        {
            return (Value.W[f.Word] & f.WordMask) >> f.Shift;
        }
    }

    /// <summary>True when <paramref name="key"/> satisfies this match (a conj_id match never does: a packet outside a conjunction has no conj_id).</summary>
    public readonly bool Matches(in FlowKey key) => !HasConjId && MatchesKey(key);

    /// <summary>True when <paramref name="key"/> satisfies the key part of this match (conj_id aside).</summary>
    public readonly unsafe bool MatchesKey(in FlowKey key)
    {
        for (int i = 0; i < FlowKey.Words; i++)
        {
            if ((key.W[i] & Mask.W[i]) != Value.W[i])
            {
                return false;
            }
        }

        return true;
    }

    public readonly bool Equals(FlowMatch other) => Value.Equals(other.Value) && Mask.Equals(other.Mask)
        && HasConjId == other.HasConjId && ConjId == other.ConjId;

    public override readonly bool Equals(object? obj) => obj is FlowMatch m && Equals(m);

    public override readonly int GetHashCode() => HashCode.Combine(Value.GetHashCode(), Mask.GetHashCode(), HasConjId ? ConjId : -1L);
}

public enum ActionKind : byte
{
    /// <summary>Send to port <see cref="FlowAction.Port"/>.</summary>
    Output,

    /// <summary>Send back out of the port the packet came in on.</summary>
    InPort,

    /// <summary>Stop: no further actions, nothing sent.</summary>
    Drop,

    /// <summary>Every port except the input port (honouring port VLAN modes).</summary>
    Flood,

    /// <summary>MAC-learning switch with VLAN awareness.</summary>
    Normal,

    /// <summary>Punt a copy to the slow path through a bounded ring.</summary>
    Controller,

    /// <summary>Push an 802.1Q (or 802.1ad, <see cref="FlowAction.Value"/> = TPID) tag with VID 0.</summary>
    PushVlan,

    /// <summary>Remove the outermost VLAN tag.</summary>
    PopVlan,

    /// <summary>Set the outermost tag's VID (pushes a tag when there is none, like mod_vlan_vid).</summary>
    SetVlanVid,

    /// <summary>Set the outermost tag's PCP (pushes a tag when there is none, like mod_vlan_pcp).</summary>
    SetVlanPcp,

    /// <summary>Set <see cref="FlowAction.Field"/> to <see cref="FlowAction.Value"/> (/ <see cref="FlowAction.Value128"/>).</summary>
    SetField,

    /// <summary>Decrement the IP TTL / hop limit; packets whose TTL would reach 0 are dropped.</summary>
    DecTtl,

    /// <summary>metadata = (metadata &amp; ~Mask) | (Value &amp; Mask).</summary>
    WriteMetadata,

    /// <summary>Continue in table <see cref="FlowAction.Table"/> (instruction: last).</summary>
    GotoTable,

    /// <summary>Run table <see cref="FlowAction.Table"/> (with in_port <see cref="FlowAction.Port"/> when not -1) and come back.</summary>
    Resubmit,

    /// <summary>
    /// Send the packet, as the actions so far left it, back through the caches and tables from table 0
    /// with recirc_id = <see cref="FlowAction.Value"/> (1-255): a fresh parse and lookup after rewrites.
    /// Ends the rule's actions.
    /// </summary>
    Recirc,

    /// <summary>
    /// ct_clear: the packet becomes untracked (ct_state, ct_zone, ct_mark 0 in the key and in the
    /// connection-tracking word a later ct or recirculation sees).
    /// </summary>
    CtClear,

    /// <summary>
    /// move:SRC[a..b]->DST[c..d]: copies bits of <see cref="FlowAction.Field"/> into <see cref="FlowAction.Dst"/>
    /// (<see cref="FlowAction.Value"/> packs the source's low bit, the destination's low bit and the width, a byte each).
    /// </summary>
    Move,

    /// <summary>note:HEX: no effect; <see cref="FlowAction.Text"/> keeps the bytes as dumps show them ("01.02.00.00.00.00").</summary>
    Note,

    /// <summary>Run group <see cref="FlowAction.Value"/> (Pipeline/FlowGroup.cs).</summary>
    Group,

    /// <summary>
    /// conjunction(id,k/n): the rule is clause k of n of conjunctive match <see cref="FlowAction.ConjId"/>
    /// (FlowTable's soft matches). A rule with it has only conjunction (and note) actions, never executed.
    /// </summary>
    Conjunction,

    /// <summary>
    /// ct(...): connection tracking with <see cref="FlowAction.Ct"/> (its CtSpecs index in
    /// <see cref="FlowAction.Value"/>); with table=N (<see cref="FlowAction.Table"/> >= 0) the packet then
    /// continues in table N with its connection state, after going back through the caches.
    /// </summary>
    Ct,

    /// <summary>
    /// ipsec(sa=N,table=T) / ipsec(decrypt,table=T): hand the packet to the IPsec stage, outbound SA
    /// <see cref="FlowAction.Value"/> (encrypt) or, with 0, the inbound SA its SPI names (decrypt); the
    /// result re-enters the pipeline in table <see cref="FlowAction.Table"/> after going back through the
    /// caches (Ipsec/IpsecEngine.cs). Ends the rule's actions.
    /// </summary>
    Ipsec,
}

/// <summary>One action of a rule (a small value; the meaning of each member depends on Kind).</summary>
public readonly record struct FlowAction(ActionKind Kind, int Port = 0, int Table = 0, FieldDef? Field = null,
    ulong Value = 0, ulong Mask = 0, UInt128 Value128 = default, FieldDef? Dst = null, string? Text = null, Conntrack.CtSpec? Ct = null)
{
    /// <summary>move: the source's lowest bit.</summary>
    public int MoveSrcLow => (int)(Value & 0xFF);

    /// <summary>move: the destination's lowest bit.</summary>
    public int MoveDstLow => (int)((Value >> 8) & 0xFF);

    /// <summary>move: the number of bits (1 to 64).</summary>
    public int MoveWidth => (int)((Value >> 16) & 0xFF);

    /// <summary>conjunction: the id (32 bits, in Value).</summary>
    public uint ConjId => (uint)Value;

    /// <summary>conjunction: the clause k, 1 to n (in Port).</summary>
    public int ConjClause => Port;

    /// <summary>conjunction: the number of clauses n, 2 to 64 (in Table).</summary>
    public int ConjClauses => Table;

    /// <summary>conjunction(id,k/n).</summary>
    public static FlowAction Conjunction(uint id, int k, int n) => new(ActionKind.Conjunction, Port: k, Table: n, Value: id);
}

/// <summary>
/// Packet and byte counts of one rule; survives replace-flows for an unchanged rule. The counts live
/// in a native 32-byte slot (<see cref="RuleCounterSlot"/>) that megaflows point at, so a PMD bumps a
/// rule's counters with one memory access per packet group (not a rules array, a FlowRule and this
/// object). Slots come in blocks of 256 (<see cref="CounterBlock"/>) that this object keeps alive;
/// a block's memory goes back to a pool when none of its counters is reachable. A PMD only bumps slots of rules
/// in the table version it is running, which keeps them reachable.
/// </summary>
public sealed unsafe class RuleCounters
{
    private readonly CounterBlock _block;
    private readonly RuleCounterSlot* _slot;

    public RuleCounters() => _block = CounterBlock.Take(out _slot);

    /// <summary>The native slot the PMDs write.</summary>
    public nint Slot => (nint)_slot;

    /// <summary>Packets that took the rule (written by the PMDs, once per packet group).</summary>
    public long Packets { get => Volatile.Read(ref _slot->Packets); set => Volatile.Write(ref _slot->Packets, value); }

    /// <summary>Bytes of those packets.</summary>
    public long Bytes { get => Volatile.Read(ref _slot->Bytes); set => Volatile.Write(ref _slot->Bytes, value); }

    /// <summary>When a packet last took the rule (TSC).</summary>
    public ulong LastUsedTsc { get => Volatile.Read(ref _slot->LastUsedTsc); set => Volatile.Write(ref _slot->LastUsedTsc, value); }
}

/// <summary>A rule's counters in native memory (see <see cref="RuleCounters"/>).</summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = 32)]
public struct RuleCounterSlot
{
    public long Packets;
    public long Bytes;
    public ulong LastUsedTsc;
}

/// <summary>
/// 256 native RuleCounterSlots, handed out in order. One finalizable object per 256 rules, not one per
/// rule: a replace-flows of 200 000 rules made 200 000 finalizable counters unreachable at once, and
/// every collection until the finalizer thread had run them all walked them (pauses of 5-10 ms that
/// stop the PMDs). When no RuleCounters of a block is reachable its memory goes back to a pool that
/// later blocks are taken from (zeroed), never to the allocator: a PMD that still bumps a slot of a
/// table version just replaced writes into memory that stays valid (a count in the wrong rule at
/// worst, as with the per-slot reuse before). The pool is bounded by the peak number of blocks; a
/// block stays in use as long as its longest-lived counters (8 KB per live rule at worst, when rules
/// made together die apart). Control plane and finalizer thread only.
/// </summary>
internal sealed unsafe class CounterBlock
{
    private const int Slots = 256;
    private static readonly Lock Gate = new();
    private static readonly Stack<nint> FreeBlocks = new();
    private static CounterBlock? _current;
    private static int _used = Slots;
    private static long _taken;

    /// <summary>Slots handed out since start (tests).</summary>
    internal static long Taken => Interlocked.Read(ref _taken);
    private readonly RuleCounterSlot* _base;

    private CounterBlock()
    {
        nint b;
        lock (Gate)
        {
            b = FreeBlocks.TryPop(out nint f) ? f : (nint)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(Slots * (nuint)sizeof(RuleCounterSlot), 64);
        }

        _base = (RuleCounterSlot*)b;
        System.Runtime.InteropServices.NativeMemory.Clear(_base, Slots * (nuint)sizeof(RuleCounterSlot));
    }

    ~CounterBlock()
    {
        lock (Gate)
        {
            FreeBlocks.Push((nint)_base);
        }
    }

    /// <summary>A fresh zeroed slot, and the block to keep alive while it is used.</summary>
    public static CounterBlock Take(out RuleCounterSlot* slot)
    {
        lock (Gate)
        {
            if (_used == Slots)
            {
                _current = new CounterBlock(); // takes Gate again: Lock is reentrant
                _used = 0;
            }

            slot = _current!._base + _used++;
            _taken++;
            return _current;
        }
    }
}

/// <summary>An OpenFlow-like rule in one table.</summary>
public sealed class FlowRule
{
    public int Table { get; init; }

    public int Priority { get; init; } = 32768;

    public FlowMatch Match;

    public FlowAction[] Actions
    {
        get => _actions;
        init
        {
            _actions = value;
            IsConjunction = Array.Exists(value, a => a.Kind == ActionKind.Conjunction);
        }
    }

    private readonly FlowAction[] _actions = [];

    /// <summary>A clause of one or more conjunctive matches (its actions are conjunction actions): a soft match of FlowTable.</summary>
    public bool IsConjunction { get; private init; }

    public ulong Cookie { get; init; }

    /// <summary>Seconds without traffic after which the rule is removed (0: never).</summary>
    public int IdleTimeout { get; init; }

    /// <summary>Seconds after installation after which the rule is removed (0: never).</summary>
    public int HardTimeout { get; init; }

    /// <summary>
    /// The rule's counters, made when first asked for (a rule that replace-flows or add-flows finds
    /// unchanged takes the old rule's counters and never takes a slot of its own: a slot taken and
    /// dropped would leave its 256-slot block alive for the rules made beside it). Every rule of a
    /// table version has them before the version is published (FlowTables), so a PMD never makes one.
    /// </summary>
    public RuleCounters Counters
    {
        get => _counters ??= new RuleCounters();
        set => _counters = value;
    }

    private RuleCounters? _counters;

    /// <summary>Install time (TSC) for the hard timeout and the duration shown by dump-flows.</summary>
    public ulong InstalledTsc { get; set; }

    /// <summary>Order of insertion: among equal priorities the earlier rule wins.</summary>
    public long Seq { get; set; }

    /// <summary>Where the rule came from (file and line), for messages.</summary>
    public string? Origin => OriginFile == null ? null : OriginLine > 0 ? string.Concat(OriginFile, ":", OriginLine.ToString(System.Globalization.CultureInfo.InvariantCulture)) : OriginFile;

    /// <summary>The file (or other source) the rule came from: one string shared by all its rules, not one per rule.</summary>
    public string? OriginFile { get; init; }

    /// <summary>The rule's line in <see cref="OriginFile"/> (0: none).</summary>
    public int OriginLine { get; init; }

    /// <summary>Same table, priority and match (the identity replace-flows and mod-flows use).</summary>
    public bool SameIdentity(FlowRule o) => Table == o.Table && Priority == o.Priority && Match.Equals(o.Match);

    public bool SameActions(FlowRule o) => Actions.AsSpan().SequenceEqual(o.Actions) && Cookie == o.Cookie
        && IdleTimeout == o.IdleTimeout && HardTimeout == o.HardTimeout;
}
