// Translator.cs - the upcall: runs a key through the tables and compiles the verdict.
//
// Walks table 0 and onward (goto_table, resubmit, table-miss policies) on a working copy of the
// key that set_field / VLAN actions modify as they go, so later tables see the rewritten packet.
// Every bit any lookup or decision examined is ORed into Wildcards: the megaflow installed from the
// result matches exactly those bits of the original packet, so every packet it covers would get the
// same verdict. Over-unwildcarding is always safe (a narrower megaflow); missing a bit never is.
// The output is a flat DpAction list plus the ids of the rules taken (for their counters).
//
// Runs on the PMD thread on a cache miss, and on the control thread for trace and revalidation; a
// Translation object is reused, so an upcall allocates nothing once the tables are built.
using VSwitch.Actions;
using VSwitch.FlowText;
using VSwitch.Packets;

namespace VSwitch.Pipeline;

/// <summary>The result of one translation (reused between upcalls).</summary>
public sealed class Translation
{
    /// <summary>Most datapath actions one verdict may have (a flood to every port of a large switch fits).</summary>
    public const int MaxOps = 4096;
    public const int MaxRules = 8;
    public const int MaxDepth = 64;

    /// <summary>The pipeline's frozen states (ct(table=N)'s recirc ids) this translation interns and resumes.</summary>
    public FrozenStates Frozen { get; init; } = FrozenStates.Default;

    /// <summary>The bits of the original key the verdict depends on.</summary>
    public FlowKey Wildcards;

    /// <summary>The working key after the actions' rewrites.</summary>
    public FlowKey Key;

    /// <summary>The compiled actions, OpCount of them; grows (rarely, then stays) up to MaxOps.</summary>
    public DpAction[] Ops = new DpAction[64];
    public int OpCount;

    /// <summary>A recirc action ended the verdict: nothing after it runs in this pass.</summary>
    public bool Stopped;

    /// <summary>dec_ttl found the TTL expired: the rest of the current rule's actions (and its goto_table) is skipped; a resubmitting caller carries on.</summary>
    public bool TableStopped;

    /// <summary>More than MaxOps datapath actions: the verdict is a drop (counted).</summary>
    public bool Overflow;

    /// <summary>A table missed with the drop policy on the way (a verdict that sends nothing then ends with <see cref="DpOp.MissNote"/>).</summary>
    public bool MissDropped;

    /// <summary>Counter slots (RuleCounters.Slot) of the rules taken, first MaxRules of them.</summary>
    public readonly nint[] RuleSlots = new nint[MaxRules];
    public int RuleCount;

    /// <summary>The verdict used the MAC learning table (NORMAL): it must follow its generation.</summary>
    public bool UsesMac;

    /// <summary>The TPIDs of the working key's outer and inner tags (a pushed tag's, or one of the sentinels below).</summary>
    public ushort OuterTpid = TpidOfPacketOuter, InnerTpid = TpidOfPacketInner;

    /// <summary>Sentinels: the tag is the packet's own outer / inner one (see Translator.ResolveTpid).</summary>
    public const ushort TpidOfPacketOuter = 1, TpidOfPacketInner = 2;

    /// <summary>Tags pushed minus tags popped so far, and the lowest it went (a group bucket's tag changes are undone from these).</summary>
    public int TagDepth, TagLow;

    /// <summary>Do not record sources to learn (trace).</summary>
    public bool NoLearn;

    /// <summary>Most sources one verdict records for learning (one per NORMAL).</summary>
    public const int MaxLearns = 4;

    /// <summary>Sources NORMAL saw (MAC, VLAN, OpenFlow port), for the PMD to post to the learner; LearnCount of them.</summary>
    public readonly ulong[] LearnMacs = new ulong[MaxLearns];
    public readonly int[] LearnVlans = new int[MaxLearns];
    public readonly int[] LearnPorts = new int[MaxLearns];
    public int LearnCount;

    /// <summary>
    /// The port an earlier NORMAL of this translation saw <paramref name="mac"/> on (its learning is
    /// applied later by the single writer, but a later NORMAL of the same packet already knows it).
    /// </summary>
    internal int? PendingLearn(ulong mac, int vlan)
    {
        for (int i = LearnCount - 1; i >= 0; i--)
        {
            if (LearnMacs[i] == mac && LearnVlans[i] == vlan)
            {
                return LearnPorts[i];
            }
        }

        return null;
    }

    internal void AddLearn(ulong mac, int vlan, int port)
    {
        if ((mac & 0x0100_0000_0000UL) != 0)
        {
            return; // multicast/broadcast sources are not learned
        }

        for (int i = 0; i < LearnCount; i++)
        {
            if (LearnMacs[i] == mac && LearnVlans[i] == vlan && LearnPorts[i] == port)
            {
                return;
            }
        }

        if (LearnCount < MaxLearns)
        {
            LearnMacs[LearnCount] = mac;
            LearnVlans[LearnCount] = vlan;
            LearnPorts[LearnCount++] = port;
        }
    }

    /// <summary>Buffers of the classifier's conjunctive matches (FlowTableConjunctions.cs), reused by every lookup.</summary>
    public readonly ConjunctionScratch Conj = new();

    /// <summary>Look rules up by linear scan (reference mode).</summary>
    public bool Linear;

    /// <summary>For trace: a line per table visited (null: not recording).</summary>
    public List<string>? Trace;

    public void Reset(in FlowKey key)
    {
        Key = key;
        Wildcards = default;
        OpCount = 0;
        Overflow = false;
        MissDropped = false;
        RuleCount = 0;
        UsesMac = false;
        Stopped = false;
        TableStopped = false;
        LearnCount = 0;
        TagDepth = TagLow = 0;
        OuterTpid = TpidOfPacketOuter;
        InnerTpid = TpidOfPacketInner;
    }

    internal void Emit(in DpAction a)
    {
        if (Stopped)
        {
            return;
        }

        if (OpCount == Ops.Length)
        {
            if (OpCount == MaxOps)
            {
                Overflow = true;
                return;
            }

            Array.Resize(ref Ops, Math.Min(MaxOps, OpCount * 2));
        }

        Ops[OpCount++] = a;
    }
}

public static partial class Translator
{
    private const ulong PresentBit = 1UL << 44; // vlan_tci's 0x1000 in word 0

    /// <summary>Translates <paramref name="key"/> under <paramref name="v"/> into <paramref name="t"/>.</summary>
    /// <param name="linear">Use the brute-force linear scan instead of the classifier (the reference the tests compare against).</param>
    public static unsafe void Translate(FlowTables v, in DpKey key, MacTable macs, Translation t, bool linear = false) =>
        Translate(v, key.ToFlowKey(), macs, t, linear);

    /// <summary>As above for a pipeline key (a trace may set metadata or registers to start with).</summary>
    public static unsafe void Translate(FlowTables v, in FlowKey key, MacTable macs, Translation t, bool linear = false)
    {
        t.Reset(key);
        t.Linear = linear;
        t.Wildcards.W[0] |= 0xFFFF; // in_port: every datapath flow is per input port
        t.Wildcards.W[3] |= (ulong)ParseFlags.Errors << FlowKey.ParseShift; // malformed packets never share a verdict
        t.Wildcards.W[FlowKey.CtWord] |= 0xFFUL << 24; // recirc_id: a recirculated packet never takes a first pass's verdict
        int depth = 0;
        int start = 0;
        if (t.Key.RecircId >= FrozenStates.First)
        {
            // After ct(...,table=N): resume in N with the metadata and registers the packet had.
            start = t.Frozen.Resume(t.Key.RecircId, ref t.Key);
            t.Trace?.Add(start >= 0
                ? $"recirc_id={t.Key.RecircId}: resumes in table {start} after ct (ct_state=0x{t.Key.CtState:x2}, ct_zone={t.Key.CtZone}, ct_mark=0x{t.Key.CtMark:x})"
                : $"recirc_id={t.Key.RecircId}: no frozen state: table 0");
            start = Math.Max(start, 0);
        }

        RunTable(v, start, macs, t, ref depth);
        Finish(t);
    }

    /// <summary>Drops trailing rewrites nothing observes, and marks every output but the last as a clone.</summary>
    private static void Finish(Translation t)
    {
        if (t.Overflow)
        {
            t.OpCount = 0;
            return;
        }

        int n = t.OpCount;
        while (n > 0 && (t.Ops[n - 1].Modifies || t.Ops[n - 1].Op == DpOp.Ext))
        {
            n--;
        }

        t.OpCount = n;
        if (t.MissDropped && !t.Stopped && n < t.Ops.Length)
        {
            bool sends = false;
            for (int i = 0; i < n; i++)
            {
                sends |= t.Ops[i].Op is DpOp.Output or DpOp.Controller or DpOp.Recirc or DpOp.Ipsec || (t.Ops[i].Op == DpOp.Ct && (t.Ops[i].Flags & DpAction.CtRecirc) != 0);
            }

            if (!sends)
            {
                t.Ops[n] = new DpAction(DpOp.MissNote);
                t.OpCount = ++n;
                return;
            }
        }

        for (int i = 0; i < n - 1; i++)
        {
            // Something follows this output (another output, a controller copy, a rewrite): send a
            // copy and let the original go on. Only a final output sends the original itself.
            if (t.Ops[i].Op == DpOp.Output)
            {
                t.Ops[i].Flags |= DpAction.CloneFlag;
            }
        }
    }

    /// <param name="lookupInPort">resubmit(P,T): the in_port the lookup in T (and any table a miss
    /// continues to) uses; the matched rule's actions see the packet's real in_port, as in Open vSwitch
    /// (so flood, NORMAL and in_port behave). 0: the real in_port.</param>
    private static unsafe void RunTable(FlowTables v, int tableId, MacTable macs, Translation t, ref int depth, int lookupInPort = 0)
    {
        while (!t.Stopped)
        {
            if (++depth > Translation.MaxDepth)
            {
                t.Trace?.Add($"table {tableId}: resubmit/goto depth above {Translation.MaxDepth}: stop");
                return;
            }

            var table = v.Table(tableId);
            ushort realInPort = t.Key.InPort;
            if (lookupInPort > 0)
            {
                t.Key.InPort = (ushort)lookupInPort; // in_port is exact in every megaflow: P is a constant of this verdict
            }

            FlowRule? r = t.Linear ? v.LinearLookup(tableId, t.Key) : table?.Lookup(t.Key, ref t.Wildcards, t.Conj);
            t.Key.InPort = realInPort;
            if (r == null)
            {
                var miss = table?.Miss ?? TableMissPolicy.Drop;
                t.Trace?.Add($"table {tableId}: no match -> miss policy {miss.ToString().ToLowerInvariant()}");
                switch (miss)
                {
                    case TableMissPolicy.Controller:
                        t.Emit(new DpAction(DpOp.Controller, a: (ushort)tableId));
                        return;
                    case TableMissPolicy.Continue when tableId + 1 < FlowTables.MaxTables:
                        tableId++;
                        continue;
                    default:
                        t.MissDropped = true;
                        return;
                }
            }

            if (t.RuleCount < Translation.MaxRules)
            {
                t.RuleSlots[t.RuleCount++] = r.Counters.Slot;
            }

            t.Trace?.Add(lookupInPort > 0
                ? $"table {tableId}: rule priority={r.Priority} ({r.Origin ?? "no origin"}) matched with in_port={lookupInPort} (its actions see in_port={realInPort})"
                : $"table {tableId}: rule priority={r.Priority} ({r.Origin ?? "no origin"}) matched");
            if (r.Match.HasConjId)
            {
                t.Trace?.Add($"  (conjunction {r.Match.ConjId} matched: the rule with conj_id={r.Match.ConjId})");
            }

            lookupInPort = 0; // a goto_table from the rule looks up with the real in_port
            int gotoTable = -1;
            foreach (var a in r.Actions)
            {
                if (a.Kind == ActionKind.GotoTable)
                {
                    gotoTable = a.Table;
                    break;
                }

                Apply(v, a, tableId, macs, t, ref depth);
                if (t.Stopped)
                {
                    return;
                }

                if (t.TableStopped)
                {
                    t.TableStopped = false; // only this table's actions end (Open vSwitch's dec_ttl)
                    return;
                }
            }

            if (gotoTable < 0)
            {
                return;
            }

            tableId = gotoTable;
        }
    }

    private static unsafe void Apply(FlowTables v, in FlowAction a, int tableId, MacTable macs, Translation t, ref int depth)
    {
        ref FlowKey k = ref t.Key;
        switch (a.Kind)
        {
            case ActionKind.Output:
                // output(port=N,max_len=M): Open vSwitch's trunc(M) before this output; M at or above
                // 2^32 - 1 cannot cut anything, and a plain output has no max_len (Value 0).
                Output(v, a.Port, t, fromInPortAction: false, maxLen: (uint)Math.Min(a.Value, uint.MaxValue));
                break;
            case ActionKind.InPort:
                Output(v, k.InPort, t, fromInPortAction: true);
                break;
            case ActionKind.Drop:
                break;
            case ActionKind.Flood:
                foreach (var p in v.PortList)
                {
                    if (p.OfPort != k.InPort)
                    {
                        t.Emit(new DpAction(DpOp.Output, a: (ushort)p.Slot));
                    }
                }

                break;
            case ActionKind.Normal:
                Normal(v, macs, t);
                break;
            case ActionKind.Controller:
                t.Emit(new DpAction(DpOp.Controller, a: (ushort)tableId));
                break;
            case ActionKind.PushVlan:
            {
                ushort tpid = a.Value == 0 ? KeyExtractor.EthVlan : (ushort)a.Value;
                // VID 0 and PCP 0, tagged or not, as Open vSwitch does (OpenFlow 1.1+ would copy the
                // outer tag's); rules set them with mod_vlan_vid / mod_vlan_pcp afterwards.
                PushTag(t, tpid, 0);
                break;
            }

            case ActionKind.PopVlan:
                t.Wildcards.W[0] |= PresentBit;
                if ((k.VlanTci & KeyExtractor.VlanPresent) != 0)
                {
                    PopTag(t);
                }

                break;
            case ActionKind.SetVlanVid:
                SetTci(t, (ushort)(a.Value & 0xFFF), 0x0FFF);
                break;
            case ActionKind.SetVlanPcp:
                SetTci(t, (ushort)((a.Value & 7) << 13), 0xE000);
                break;
            case ActionKind.SetField:
                SetField(a, t);
                break;
            case ActionKind.DecTtl:
                t.Wildcards.W[0] |= 0xFFFFUL << 16; // dl_type
                if (k.DlType == KeyExtractor.EthIp || k.DlType == KeyExtractor.EthIpv6)
                {
                    // As Open vSwitch: decided at translation, so the verdict depends on nw_ttl. A TTL
                    // that expires ends this table's actions (the packet is not sent by them); a
                    // resubmitting caller carries on with its own actions.
                    t.Wildcards.W[2] |= 0xFFUL << 48;
                    if (k.NwTtl > 1)
                    {
                        t.Emit(new DpAction(DpOp.DecTtl, flags: (byte)(k.DlType == KeyExtractor.EthIp ? 1 : 2)));
                        k.NwTtl = (byte)(k.NwTtl - 1);
                    }
                    else
                    {
                        t.Trace?.Add($"  dec_ttl: TTL {k.NwTtl} expired: the rest of table {tableId}'s actions is skipped");
                        t.TableStopped = true;
                    }
                }

                break;
            case ActionKind.WriteMetadata:
                k.Metadata = (k.Metadata & ~a.Mask) | (a.Value & a.Mask);
                break;
            case ActionKind.CtClear:
                t.Trace?.Add("  ct_clear: the packet is untracked from here (ct_state, ct_zone, ct_mark, ct_label and the ct tuple 0)");
                k.CtState = 0;
                k.CtZone = 0;
                k.CtMark = 0;
                for (int w = FlowKey.CtExtWord; w < FlowKey.CtExtWord + DpKey.CtExtWords; w++)
                {
                    k.W[w] = 0;
                }

                t.Emit(new DpAction(DpOp.CtClear));
                break;
            case ActionKind.Ct:
                Ct(a, t);
                break;
            case ActionKind.Ipsec:
                Ipsec(v, a, t);
                break;
            case ActionKind.Note:
            case ActionKind.Conjunction: // a clause rule is never the lookup's result; its actions never run
                break;
            case ActionKind.Move:
                Move(a, t);
                break;
            case ActionKind.Recirc:
                t.Trace?.Add($"  recirc({a.Value}): the packet goes back through the caches and table 0 with recirc_id={a.Value}");
                t.Emit(new DpAction(DpOp.Recirc, a: (ushort)a.Value));
                t.Stopped = true;
                break;
            case ActionKind.Resubmit:
                RunTable(v, a.Table, macs, t, ref depth, lookupInPort: a.Port);
                break;
            case ActionKind.Group:
                Group(v, (uint)a.Value, tableId, macs, t, ref depth); // TranslatorGroups.cs
                break;
        }
    }

    /// <summary>
    /// ct(...): a per-packet datapath op (the connection, not the megaflow, decides the state). With
    /// table=N the translation freezes here: the packets recirculate with a frozen state's id and the
    /// next pass starts in table N with their connection state in the key.
    /// </summary>
    private static unsafe void Ct(in FlowAction a, Translation t)
    {
        t.Wildcards.W[0] |= 0xFFFFUL << 16; // dl_type
        if (t.Key.DlType is not (KeyExtractor.EthIp or KeyExtractor.EthIpv6))
        {
            t.Trace?.Add("  ct: not an IP packet: skipped");
            return;
        }

        var spec = a.Ct!;
        if (spec.Table < 0)
        {
            t.Trace?.Add($"  ct: tracked in zone {spec.Zone}{(spec.Commit ? ", committed" : "")}{(spec.Nat != Conntrack.CtNatKind.None ? ", NAT applied" : "")}; the rest of the actions run without the new state (as Open vSwitch)");
            t.Emit(new DpAction(DpOp.Ct, a: (ushort)a.Value));
            return;
        }

        int id = t.Frozen.Intern(spec.Table, t.Key);
        if (id < 0)
        {
            throw new InvalidOperationException($"ct(table={spec.Table}): all {FrozenStates.Capacity} frozen recirculation ids are in use (distinct table/metadata/register combinations at a ct)");
        }

        t.Trace?.Add($"  ct: tracked in zone {spec.Zone}{(spec.Commit ? ", committed" : "")}{(spec.Nat != Conntrack.CtNatKind.None ? ", NAT applied" : "")}; recirculates with recirc_id={id} to table {spec.Table} with the connection's state");
        t.Emit(new DpAction(DpOp.Ct, flags: DpAction.CtRecirc, a: (ushort)a.Value, b: (uint)id));
        t.Stopped = true;
    }

    /// <summary>
    /// ipsec(...): the translation freezes here as at ct(table=N): the packets go to the IPsec stage and
    /// come back (encrypted, or decrypted) with a frozen state's recirculation id, to continue in table N.
    /// </summary>
    private static unsafe void Ipsec(FlowTables v, in FlowAction a, Translation t)
    {
        t.Wildcards.W[0] |= 0xFFFFUL << 16; // dl_type
        if (t.Key.DlType is not (KeyExtractor.EthIp or KeyExtractor.EthIpv6))
        {
            t.Trace?.Add("  ipsec: not an IP packet: dropped");
            t.Stopped = true;
            return;
        }

        int id = t.Frozen.Intern(a.Table, t.Key);
        if (id < 0)
        {
            throw new InvalidOperationException($"ipsec(table={a.Table}): all {FrozenStates.Capacity} frozen recirculation ids are in use");
        }

        t.Trace?.Add(a.Value == 0
            ? $"  ipsec: handed to the crypto device to be decrypted by the inbound SA its SPI names; the inner packet re-enters with recirc_id={id} in table {a.Table}"
            : $"  ipsec: handed to the crypto device to be encrypted by SA {a.Value}; the ESP packet re-enters with recirc_id={id} in table {a.Table}");
        // C: the input port's datapath slot + 1, where an ICMP error about the MTU goes (0: none)
        var inPort = v.Port(t.Key.InPort);
        t.Emit(new DpAction(DpOp.Ipsec, a: (ushort)a.Value, b: (uint)id, c: inPort == null ? 0UL : (ulong)(inPort.Slot + 1)));
        t.Stopped = true;
    }

    private static unsafe void Output(FlowTables v, int ofPort, Translation t, bool fromInPortAction, uint maxLen = 0)
    {
        // OpenFlow: output to the input port is dropped unless the in_port action asks for it
        // (in_port is always part of the megaflow, so this decision is cached correctly).
        if (!fromInPortAction && ofPort == t.Key.InPort)
        {
            t.Trace?.Add($"  output:{ofPort} is the input port: skipped (use in_port)");
            return;
        }

        var p = v.Port(ofPort);
        if (p == null)
        {
            t.Trace?.Add($"  output:{ofPort}: no such port: skipped");
            return;
        }

        t.Emit(new DpAction(DpOp.Output, a: (ushort)p.Slot, b: maxLen));
    }

    /// <summary>
    /// The TPID of a tag of the working key: a pushed tag's own, the packet's outer tag's from the
    /// parse flags (which then become part of the megaflow), and 0x8100 for the packet's inner tag
    /// (the parser does not record it).
    /// </summary>
    private static unsafe ushort ResolveTpid(Translation t, ushort tpid)
    {
        if (tpid == Translation.TpidOfPacketOuter)
        {
            t.Wildcards.W[3] |= (ulong)ParseFlags.OuterQinQ << FlowKey.ParseShift;
            return (t.Key.Parse & ParseFlags.OuterQinQ) != 0 ? KeyExtractor.EthQinQ : KeyExtractor.EthVlan;
        }

        return tpid == Translation.TpidOfPacketInner ? KeyExtractor.EthVlan : tpid;
    }

    /// <summary>Pushes a tag on the packet and on the working key (the old outer tag becomes the inner one).</summary>
    private static void PushTag(Translation t, ushort tpid, ushort tci)
    {
        t.InnerTpid = t.OuterTpid;
        t.OuterTpid = tpid;
        t.Emit(new DpAction(DpOp.PushVlan, a: tpid, b: tci));
        t.TagDepth++;
        t.Key.Vlan2Tci = t.Key.VlanTci;
        t.Key.VlanTci = (ushort)(tci | KeyExtractor.VlanPresent);
    }

    /// <summary>Pops the outer tag from the packet and the working key (the caller knows there is one).</summary>
    private static unsafe void PopTag(Translation t)
    {
        if (t.OuterTpid == Translation.TpidOfPacketOuter)
        {
            // the packet's inner tag becomes the outer one: whatever later reads vlan_tci reads it
            t.Wildcards.W[0] |= 0xFFFFUL << 48;
        }

        t.OuterTpid = t.InnerTpid;
        // below the packet's outer tag is its inner one; below anything else, a tag the parser did not record
        t.InnerTpid = t.OuterTpid == Translation.TpidOfPacketOuter ? Translation.TpidOfPacketInner : KeyExtractor.EthVlan;
        t.Emit(new DpAction(DpOp.PopVlan));
        t.TagLow = Math.Min(t.TagLow, --t.TagDepth);
        t.Key.VlanTci = t.Key.Vlan2Tci;
        t.Key.Vlan2Tci = 0;
    }

    private static unsafe void SetTci(Translation t, ushort value, ushort mask)
    {
        ref FlowKey k = ref t.Key;
        t.Wildcards.W[0] |= PresentBit;
        if ((k.VlanTci & KeyExtractor.VlanPresent) != 0)
        {
            t.Emit(new DpAction(DpOp.SetVlanTci, a: value, b: mask));
            k.VlanTci = (ushort)((k.VlanTci & ~mask) | value);
        }
        else
        {
            // mod_vlan_vid / mod_vlan_pcp on an untagged frame push a tag (as Open vSwitch does).
            PushTag(t, KeyExtractor.EthVlan, value);
        }
    }

    private static unsafe byte L4Kind(Translation t)
    {
        t.Wildcards.W[1] |= 0xFFUL << 48; // nw_proto
        t.Wildcards.W[0] |= 0xFFFFUL << 16; // dl_type
        return t.Key.NwProto switch
        {
            KeyExtractor.ProtoTcp => DpAction.L4Tcp,
            KeyExtractor.ProtoUdp => DpAction.L4Udp,
            KeyExtractor.ProtoSctp => DpAction.L4Sctp,
            KeyExtractor.ProtoIcmpv6 when t.Key.DlType == KeyExtractor.EthIpv6 => DpAction.L4Icmp6,
            _ => DpAction.L4None,
        };
    }

    /// <summary>
    /// move: the source bits of the working key (which the verdict now depends on) into the
    /// destination; a packet field becomes a set of its whole new value, as set_field would make.
    /// </summary>
    private static unsafe void Move(in FlowAction a, Translation t)
    {
        var src = a.Field!;
        var dst = a.Dst!;
        int n = a.MoveWidth;
        ulong bits = n >= 64 ? ulong.MaxValue : (1UL << n) - 1;
        ulong srcMask = src.Width >= 64 ? ulong.MaxValue : (1UL << src.Width) - 1;
        ulong value = (((t.Key.W[src.Word] >> src.Shift) & srcMask) >> a.MoveSrcLow) & bits;
        t.Wildcards.W[src.Word] |= ((bits << a.MoveSrcLow) & srcMask) << src.Shift;
        ulong dstMask = dst.Width >= 64 ? ulong.MaxValue : (1UL << dst.Width) - 1;
        ulong mask = (bits << a.MoveDstLow) & dstMask;
        if (mask == 0)
        {
            return; // only bits above what this switch keeps of the field (ip_dscp[6..7], ...)
        }

        ulong v = (value << a.MoveDstLow) & dstMask;
        SetField(new FlowAction(ActionKind.SetField, Field: dst, Value: v, Mask: mask == dstMask ? 0 : mask), t);
    }

    private static unsafe void SetField(in FlowAction a, Translation t)
    {
        ref FlowKey k = ref t.Key;
        var f = a.Field!;
        if (a.Mask != 0 && !f.PipelineOnly)
        {
            // Some bits of a packet field (move into part of it): the rest keep the working key's
            // value, which the verdict then depends on; the packet gets the whole new value.
            ulong fm = f.Width >= 64 ? ulong.MaxValue : (1UL << f.Width) - 1;
            ulong cur = (k.W[f.Word] >> f.Shift) & fm;
            t.Wildcards.W[f.Word] |= f.WordMask;
            SetField(new FlowAction(ActionKind.SetField, Field: f, Value: (cur & ~a.Mask) | (a.Value & a.Mask)), t);
            return;
        }

        if (f == Fields.DlDst)
        {
            t.Emit(new DpAction(DpOp.SetEthDst, c: a.Value));
            k.DlDst = a.Value;
        }
        else if (f == Fields.DlSrc)
        {
            t.Emit(new DpAction(DpOp.SetEthSrc, c: a.Value));
            k.DlSrc = a.Value;
        }
        else if (f == Fields.NwSrc || f == Fields.NwDst)
        {
            t.Wildcards.W[0] |= 0xFFFFUL << 16;
            if (k.DlType != KeyExtractor.EthIp)
            {
                return;
            }

            byte kind = L4Kind(t);
            t.Wildcards.W[2] |= 0x3UL << 56; // later fragments have no L4 header to fix
            if ((k.NwFrag & 2) != 0)
            {
                kind = DpAction.L4None;
            }

            bool dst = f == Fields.NwDst;
            t.Emit(new DpAction(dst ? DpOp.SetIpv4Dst : DpOp.SetIpv4Src, flags: kind, b: (uint)a.Value));
            if (dst)
            {
                k.NwDst = (uint)a.Value;
            }
            else
            {
                k.NwSrc = (uint)a.Value;
            }
        }
        else if (f == Fields.IpDscp || f == Fields.NwEcn)
        {
            t.Wildcards.W[0] |= 0xFFFFUL << 16;
            if (k.DlType == KeyExtractor.EthIp || k.DlType == KeyExtractor.EthIpv6)
            {
                byte mask = f == Fields.IpDscp ? (byte)0xFC : (byte)0x03;
                byte bits = (byte)((f == Fields.IpDscp ? a.Value << 2 : a.Value) & mask);
                t.Emit(new DpAction(DpOp.SetTos, flags: (byte)(k.DlType == KeyExtractor.EthIp ? 1 : 2), a: bits, b: mask));
                k.NwTos = (byte)((k.NwTos & ~mask) | bits);
            }
        }
        else if (f == Fields.NwTtl)
        {
            t.Wildcards.W[0] |= 0xFFFFUL << 16;
            if (k.DlType == KeyExtractor.EthIp || k.DlType == KeyExtractor.EthIpv6)
            {
                t.Emit(new DpAction(DpOp.SetTtl, flags: (byte)(k.DlType == KeyExtractor.EthIp ? 1 : 2), a: (ushort)a.Value));
                k.NwTtl = (byte)a.Value;
            }
        }
        else if (f == Fields.Ipv6Src || f == Fields.Ipv6Dst)
        {
            t.Wildcards.W[0] |= 0xFFFFUL << 16;
            if (k.DlType != KeyExtractor.EthIpv6)
            {
                return;
            }

            byte kind = L4Kind(t);
            t.Wildcards.W[2] |= 0x3UL << 56;
            if ((k.NwFrag & 2) != 0)
            {
                kind = DpAction.L4None;
            }

            bool dst = f == Fields.Ipv6Dst;
            t.Emit(new DpAction(dst ? DpOp.SetIpv6Dst : DpOp.SetIpv6Src, flags: kind, c: (ulong)(a.Value128 >> 64)));
            t.Emit(new DpAction(DpOp.Ext, c: (ulong)a.Value128));
            if (dst)
            {
                k.Ipv6Dst = a.Value128;
            }
            else
            {
                k.Ipv6Src = a.Value128;
            }
        }
        else if (f == Fields.TpSrc || f == Fields.TpDst)
        {
            byte kind = L4Kind(t);
            t.Wildcards.W[2] |= 0x3UL << 56;
            if (kind is DpAction.L4None or DpAction.L4Icmp6 || (k.NwFrag & 2) != 0)
            {
                return;
            }

            bool dst = f == Fields.TpDst;
            t.Emit(new DpAction(dst ? DpOp.SetTpDst : DpOp.SetTpSrc, flags: kind, a: (ushort)a.Value));
            if (dst)
            {
                k.TpDst = (ushort)a.Value;
            }
            else
            {
                k.TpSrc = (ushort)a.Value;
            }
        }
        else if (f == Fields.DlVlan)
        {
            SetTci(t, (ushort)(a.Value & 0xFFF), 0x0FFF);
        }
        else if (f == Fields.DlVlanPcp)
        {
            SetTci(t, (ushort)((a.Value & 7) << 13), 0xE000);
        }
        else
        {
            // Pipeline-only fields (metadata, registers): they change the key, not the packet. A
            // non-zero Mask writes only those bits (load:V->reg0[a..b], set_field:V/M->reg0).
            if (f.IsWide)
            {
                k.W[f.Word] = (ulong)(a.Value128 >> 64); // xxregN (never masked: the parser refuses it)
                k.W[f.Word + 1] = (ulong)a.Value128;
                return;
            }

            ulong v = a.Value;
            if (a.Mask != 0)
            {
                ulong cur = (k.W[f.Word] >> f.Shift) & (f.Width >= 64 ? ulong.MaxValue : (1UL << f.Width) - 1);
                v = (cur & ~a.Mask) | (a.Value & a.Mask);
            }

            k.Set(f.Word, f.Shift, f.Width, v);
        }
    }
}
