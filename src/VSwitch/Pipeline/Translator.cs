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
using VSwitch.Packets;

namespace VSwitch.Pipeline;

/// <summary>The result of one translation (reused between upcalls).</summary>
public sealed class Translation
{
    public const int MaxOps = 24;
    public const int MaxRules = 8;
    public const int MaxDepth = 64;

    /// <summary>The bits of the original key the verdict depends on.</summary>
    public FlowKey Wildcards;

    /// <summary>The working key after the actions' rewrites.</summary>
    public FlowKey Key;

    public readonly DpAction[] Ops = new DpAction[MaxOps];
    public int OpCount;

    /// <summary>More datapath actions than a megaflow holds: the verdict is a drop (counted).</summary>
    public bool Overflow;

    /// <summary>Counter slots (RuleCounters.Slot) of the rules taken, first MaxRules of them.</summary>
    public readonly nint[] RuleSlots = new nint[MaxRules];
    public int RuleCount;

    /// <summary>The verdict used the MAC learning table (NORMAL): it must follow its generation.</summary>
    public bool UsesMac;

    /// <summary>Do not teach the MAC table (trace).</summary>
    public bool NoLearn;

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
        RuleCount = 0;
        UsesMac = false;
    }

    internal void Emit(in DpAction a)
    {
        if (OpCount == MaxOps)
        {
            Overflow = true;
            return;
        }

        Ops[OpCount++] = a;
    }
}

public static class Translator
{
    private const ulong PresentBit = 1UL << 44; // vlan_tci's 0x1000 in word 0

    /// <summary>Translates <paramref name="key"/> under <paramref name="v"/> into <paramref name="t"/>.</summary>
    /// <param name="linear">Use the brute-force linear scan instead of the classifier (the reference the tests compare against).</param>
    public static unsafe void Translate(FlowTables v, in FlowKey key, MacTable macs, ulong now, Translation t, bool linear = false)
    {
        t.Reset(key);
        t.Linear = linear;
        t.Wildcards.W[0] |= 0xFFFF; // in_port: every datapath flow is per input port
        t.Wildcards.W[3] |= (ulong)ParseFlags.Errors << 48; // malformed packets never share a verdict
        int depth = 0;
        RunTable(v, 0, macs, now, t, ref depth);
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

    private static unsafe void RunTable(FlowTables v, int tableId, MacTable macs, ulong now, Translation t, ref int depth)
    {
        while (true)
        {
            if (++depth > Translation.MaxDepth)
            {
                t.Trace?.Add($"table {tableId}: resubmit/goto depth above {Translation.MaxDepth}: stop");
                return;
            }

            var table = v.Table(tableId);
            FlowRule? r = t.Linear ? v.LinearLookup(tableId, t.Key) : table?.Lookup(t.Key, ref t.Wildcards);
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
                        return;
                }
            }

            if (t.RuleCount < Translation.MaxRules)
            {
                t.RuleSlots[t.RuleCount++] = r.Counters.Slot;
            }

            t.Trace?.Add($"table {tableId}: rule priority={r.Priority} ({r.Origin ?? "no origin"}) matched");
            int gotoTable = -1;
            foreach (var a in r.Actions)
            {
                if (a.Kind == ActionKind.GotoTable)
                {
                    gotoTable = a.Table;
                    break;
                }

                Apply(v, a, tableId, macs, now, t, ref depth);
            }

            if (gotoTable < 0)
            {
                return;
            }

            tableId = gotoTable;
        }
    }

    private static unsafe void Apply(FlowTables v, in FlowAction a, int tableId, MacTable macs, ulong now, Translation t, ref int depth)
    {
        ref FlowKey k = ref t.Key;
        switch (a.Kind)
        {
            case ActionKind.Output:
                Output(v, a.Port, t, fromInPortAction: false);
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
                Normal(v, macs, now, t);
                break;
            case ActionKind.Controller:
                t.Emit(new DpAction(DpOp.Controller, a: (ushort)tableId));
                break;
            case ActionKind.PushVlan:
            {
                ushort tpid = a.Value == 0 ? KeyExtractor.EthVlan : (ushort)a.Value;
                // The new tag copies the VID/PCP of the current outer tag (OpenFlow push_vlan), or is 0.
                t.Wildcards.W[0] |= 0xFFFFUL << 32;
                ushort tci = (ushort)(k.VlanTci & 0xEFFF);
                PushTag(t, tpid, tci);
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
                    t.Emit(new DpAction(DpOp.DecTtl, flags: (byte)(k.DlType == KeyExtractor.EthIp ? 1 : 2)));
                    k.NwTtl = (byte)(k.NwTtl - 1);
                }

                break;
            case ActionKind.WriteMetadata:
                k.Metadata = (k.Metadata & ~a.Mask) | (a.Value & a.Mask);
                break;
            case ActionKind.Resubmit:
            {
                ushort saved = k.InPort;
                if (a.Port > 0)
                {
                    k.InPort = (ushort)a.Port;
                }

                RunTable(v, a.Table, macs, now, t, ref depth);
                k.InPort = saved;
                break;
            }
        }
    }

    private static unsafe void Output(FlowTables v, int ofPort, Translation t, bool fromInPortAction)
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

        t.Emit(new DpAction(DpOp.Output, a: (ushort)p.Slot));
    }

    /// <summary>Pushes a tag on the packet and on the working key (the old outer tag becomes the inner one).</summary>
    private static void PushTag(Translation t, ushort tpid, ushort tci)
    {
        t.Emit(new DpAction(DpOp.PushVlan, a: tpid, b: tci));
        t.Key.Vlan2Tci = t.Key.VlanTci;
        t.Key.VlanTci = (ushort)(tci | KeyExtractor.VlanPresent);
    }

    /// <summary>Pops the outer tag from the packet and the working key (the caller knows there is one).</summary>
    private static void PopTag(Translation t)
    {
        t.Emit(new DpAction(DpOp.PopVlan));
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
            _ => DpAction.L4None,
        };
    }

    private static unsafe void SetField(in FlowAction a, Translation t)
    {
        ref FlowKey k = ref t.Key;
        var f = a.Field!;
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
            if (kind == DpAction.L4None || (k.NwFrag & 2) != 0)
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
            // Pipeline-only fields (metadata, registers): they change the key, not the packet.
            k.Set(f.Word, f.Shift, f.Width, a.Value);
        }
    }

    /// <summary>
    /// NORMAL: a MAC-learning switch with VLAN awareness. The input VLAN comes from the port's mode
    /// (access: its tag; trunk: the frame's VID, 0 when untagged, refused when not allowed); the source is
    /// learned; a known unicast destination gets one output, anything else floods the VLAN. Each
    /// output adds or removes the tag the egress port's mode wants.
    /// </summary>
    private static unsafe void Normal(FlowTables v, MacTable macs, ulong now, Translation t)
    {
        ref FlowKey k = ref t.Key;
        t.UsesMac = true;
        t.Wildcards.W[0] |= 0xFFFFUL << 32; // vlan_tci
        t.Wildcards.W[1] |= FlowKey.Mac48; // dl_dst
        t.Wildcards.W[2] |= FlowKey.Mac48; // dl_src
        var inPort = v.Port(k.InPort);
        if (inPort == null)
        {
            return;
        }

        bool tagged = (k.VlanTci & KeyExtractor.VlanPresent) != 0;
        int vlan = tagged ? k.VlanTci & 0xFFF : 0;
        if (inPort.Mode == VlanMode.Access)
        {
            if (tagged)
            {
                t.Trace?.Add($"  normal: tagged frame on access port {inPort.OfPort}: dropped");
                return;
            }

            vlan = inPort.Tag;
        }
        else if (!inPort.Carries(vlan))
        {
            t.Trace?.Add($"  normal: VLAN {vlan} not allowed on port {inPort.OfPort}: dropped");
            return;
        }

        if (!t.NoLearn)
        {
            macs.Learn(k.DlSrc, vlan, inPort.OfPort, now);
        }
        bool group = (k.DlDst & 0x0100_0000_0000UL) != 0;
        int dst = group ? -1 : macs.Lookup(k.DlDst, vlan);
        if (dst == inPort.OfPort)
        {
            t.Trace?.Add("  normal: destination is behind the input port: dropped");
            return;
        }

        var target = v.Port(dst);
        if (target != null && target.Carries(vlan))
        {
            t.Trace?.Add($"  normal: learned {FlowFormatter.FormatMac(k.DlDst)} vlan {vlan} -> port {dst}");
            NormalOutput(t, target, vlan);
            return;
        }

        t.Trace?.Add($"  normal: flood vlan {vlan}");
        foreach (var p in v.PortList)
        {
            if (p.OfPort != inPort.OfPort && p.Carries(vlan))
            {
                NormalOutput(t, p, vlan);
            }
        }
    }

    private static unsafe void NormalOutput(Translation t, PipelinePort p, int vlan)
    {
        ref FlowKey k = ref t.Key;
        bool tagged = (k.VlanTci & KeyExtractor.VlanPresent) != 0;
        bool wantTag = p.Mode != VlanMode.Access && vlan != 0;
        if (wantTag && !tagged)
        {
            PushTag(t, KeyExtractor.EthVlan, (ushort)vlan);
        }
        else if (!wantTag && tagged)
        {
            PopTag(t);
        }

        t.Emit(new DpAction(DpOp.Output, a: (ushort)p.Slot));
    }
}
