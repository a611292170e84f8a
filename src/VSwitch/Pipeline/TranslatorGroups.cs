// TranslatorGroups.cs - group:N in the upcall: which buckets run, and each on a copy of the packet.
//
// all runs every bucket, indirect its one bucket, select one live bucket chosen by a hash of the
// selection fields (weighted rendezvous hashing: each bucket scores hash(fields, bucket id) scaled
// by its weight and the best wins, so a flow keeps its bucket and a bucket removed moves only its
// own flows), fast_failover the first live bucket. Live: no watch port, or a present port whose
// link is up; a link change publishes a new FlowTables version, so cached verdicts revalidate.
// Every bit the choice read joins the megaflow (the hashed fields; liveness is per version).
//
// A bucket runs on a copy of the packet, as Open vSwitch does: after its actions every header field
// it rewrote is set back (and the tags it pushed or popped undone), so the next bucket and the
// actions after group:N see the packet as it came. Like Open vSwitch, the restored fields' original
// values join the megaflow. Restores nothing observes are dropped by Translator.Finish.
using VSwitch.Actions;
using VSwitch.FlowText;
using VSwitch.Packets;

namespace VSwitch.Pipeline;

public static partial class Translator
{
    private static unsafe void Group(FlowTables v, uint id, int tableId, MacTable macs, Translation t, ref int depth)
    {
        var g = v.Group(id);
        if (g == null)
        {
            t.Trace?.Add($"  group:{id}: no such group: nothing sent");
            return;
        }

        if (++depth > Translation.MaxDepth)
        {
            t.Trace?.Add($"  group:{id}: depth above {Translation.MaxDepth}: stop");
            return;
        }

        AddSlot(t, g.Counters.Slot);
        switch (g.Type)
        {
            case GroupType.All:
                t.Trace?.Add($"  group:{id} (all): {g.Buckets.Length} buckets");
                foreach (var b in g.Buckets)
                {
                    RunBucket(v, g, b, tableId, macs, t, ref depth);
                    if (t.Stopped)
                    {
                        return;
                    }
                }

                break;
            case GroupType.Indirect:
                RunBucket(v, g, g.Buckets[0], tableId, macs, t, ref depth);
                break;
            case GroupType.FastFailover:
                foreach (var b in g.Buckets)
                {
                    if (b.Live(v))
                    {
                        t.Trace?.Add($"  group:{id} (fast_failover): bucket {b.BucketId} is the first live one");
                        RunBucket(v, g, b, tableId, macs, t, ref depth);
                        return;
                    }
                }

                t.Trace?.Add($"  group:{id} (fast_failover): no live bucket: nothing sent");
                break;
            case GroupType.Select:
            {
                var b = SelectBucket(v, g, t);
                if (b == null)
                {
                    t.Trace?.Add($"  group:{id} (select): no live bucket with a weight: nothing sent");
                    return;
                }

                t.Trace?.Add($"  group:{id} (select): hash chose bucket {b.BucketId}");
                RunBucket(v, g, b, tableId, macs, t, ref depth);
                break;
            }
        }
    }

    private static void AddSlot(Translation t, nint slot)
    {
        if (t.RuleCount < Translation.MaxRules)
        {
            t.RuleSlots[t.RuleCount++] = slot;
        }
    }

    /// <summary>The hash of the group's selection fields in the working key (their original bits join the megaflow).</summary>
    internal static unsafe ulong SelectionHash(FlowGroup g, Translation t)
    {
        ulong h = 0x9E3779B97F4A7C15UL;
        foreach (var f in g.HashFields)
        {
            if (f.IsWide)
            {
                t.Wildcards.W[f.Word] = ulong.MaxValue;
                t.Wildcards.W[f.Word + 1] = ulong.MaxValue;
                h = Mix(Mix(h, t.Key.W[f.Word]), t.Key.W[f.Word + 1]);
            }
            else
            {
                t.Wildcards.W[f.Word] |= f.WordMask;
                h = Mix(h, t.Key.W[f.Word] & f.WordMask);
            }
        }

        return h;
    }

    private static ulong Mix(ulong h, ulong x) => Fmix((h ^ x) * 0xFF51AFD7ED558CCDUL);

    private static ulong Fmix(ulong k)
    {
        k ^= k >> 33;
        k *= 0xFF51AFD7ED558CCDUL;
        k ^= k >> 33;
        k *= 0xC4CEB9FE1A85EC53UL;
        return k ^ (k >> 33);
    }

    /// <summary>Weighted rendezvous hashing over the live buckets with a weight; null when there is none.</summary>
    private static GroupBucket? SelectBucket(FlowTables v, FlowGroup g, Translation t)
    {
        ulong h = SelectionHash(g, t);
        GroupBucket? best = null;
        double bestScore = double.NegativeInfinity;
        foreach (var b in g.Buckets)
        {
            if (b.Weight == 0 || !b.Live(v))
            {
                continue;
            }

            // u uniform in (0, 1); -w / ln(u) is the weighted score (largest wins, in proportion to w).
            double u = ((Fmix(h ^ ((ulong)(uint)b.BucketId * 0x9E3779B97F4A7C15UL + 1)) >> 11) + 0.5) * (1.0 / (1UL << 53));
            double score = -b.Weight / Math.Log(u);
            if (score > bestScore)
            {
                bestScore = score;
                best = b;
            }
        }

        return best;
    }

    /// <summary>Runs a bucket's actions (action-set order) on a copy of the packet: what it rewrote is put back after.</summary>
    private static unsafe void RunBucket(FlowTables v, FlowGroup g, GroupBucket b, int tableId, MacTable macs, Translation t, ref int depth)
    {
        AddSlot(t, b.Counters.Slot);
        if (g.Type == GroupType.All)
        {
            t.Trace?.Add($"  group:{g.Id} bucket {b.BucketId}");
        }

        FlowKey saved = t.Key;
        ushort outerTpid = t.OuterTpid, innerTpid = t.InnerTpid;
        int depth0 = t.TagDepth, low0 = t.TagLow;
        int firstOp = t.OpCount;
        t.TagLow = t.TagDepth;
        foreach (var a in b.Executed)
        {
            Apply(v, a, tableId, macs, t, ref depth);
            if (t.Stopped)
            {
                return; // a recirc (from a table the bucket resubmitted to) ends the whole verdict
            }

            if (t.TableStopped)
            {
                t.TableStopped = false; // dec_ttl expired: the rest of this bucket is skipped
                break;
            }
        }

        RestoreAfterBucket(t, saved, outerTpid, innerTpid, depth0, firstOp);
        t.TagLow = Math.Min(low0, t.TagLow);
    }

    /// <summary>Sets back what the ops emitted since <paramref name="firstOp"/> changed, so the packet is as <paramref name="saved"/> says.</summary>
    private static unsafe void RestoreAfterBucket(Translation t, in FlowKey saved, ushort outerTpid, ushort innerTpid, int depth0, int firstOp)
    {
        bool eth = false, ethSrc = false, ipSrc = false, ipDst = false, tpSrc = false, tpDst = false, tos = false, ttl = false, tags = false;
        for (int i = firstOp; i < t.OpCount; i++)
        {
            switch (t.Ops[i].Op)
            {
                case DpOp.SetEthDst: eth = true; break;
                case DpOp.SetEthSrc: ethSrc = true; break;
                case DpOp.SetIpv4Src or DpOp.SetIpv6Src: ipSrc = true; break;
                case DpOp.SetIpv4Dst or DpOp.SetIpv6Dst: ipDst = true; break;
                case DpOp.SetTpSrc: tpSrc = true; break;
                case DpOp.SetTpDst: tpDst = true; break;
                case DpOp.SetTos: tos = true; break;
                case DpOp.SetTtl or DpOp.DecTtl: ttl = true; break;
                case DpOp.PushVlan or DpOp.PopVlan or DpOp.SetVlanTci: tags = true; break;
            }
        }

        if (tags)
        {
            RestoreTags(t, saved, outerTpid, innerTpid, depth0);
        }

        // Each restore writes the field's value before the bucket: a value of the packet, so it joins the megaflow.
        if (eth)
        {
            t.Wildcards.W[1] |= FlowKey.Mac48;
            SetField(new FlowAction(ActionKind.SetField, Field: Fields.DlDst, Value: saved.DlDst), t);
        }

        if (ethSrc)
        {
            t.Wildcards.W[2] |= FlowKey.Mac48;
            SetField(new FlowAction(ActionKind.SetField, Field: Fields.DlSrc, Value: saved.DlSrc), t);
        }

        bool v6 = saved.DlType == KeyExtractor.EthIpv6;
        if (ipSrc)
        {
            Unwildcard(t, v6 ? Fields.Ipv6Src : Fields.NwSrc);
            SetField(v6 ? new FlowAction(ActionKind.SetField, Field: Fields.Ipv6Src, Value128: saved.Ipv6Src)
                : new FlowAction(ActionKind.SetField, Field: Fields.NwSrc, Value: saved.NwSrc), t);
        }

        if (ipDst)
        {
            Unwildcard(t, v6 ? Fields.Ipv6Dst : Fields.NwDst);
            SetField(v6 ? new FlowAction(ActionKind.SetField, Field: Fields.Ipv6Dst, Value128: saved.Ipv6Dst)
                : new FlowAction(ActionKind.SetField, Field: Fields.NwDst, Value: saved.NwDst), t);
        }

        if (tpSrc)
        {
            Unwildcard(t, Fields.TpSrc);
            SetField(new FlowAction(ActionKind.SetField, Field: Fields.TpSrc, Value: saved.TpSrc), t);
        }

        if (tpDst)
        {
            Unwildcard(t, Fields.TpDst);
            SetField(new FlowAction(ActionKind.SetField, Field: Fields.TpDst, Value: saved.TpDst), t);
        }

        if (tos)
        {
            Unwildcard(t, Fields.NwTos);
            SetField(new FlowAction(ActionKind.SetField, Field: Fields.IpDscp, Value: (ulong)(saved.NwTos >> 2)), t);
            SetField(new FlowAction(ActionKind.SetField, Field: Fields.NwEcn, Value: (ulong)(saved.NwTos & 3)), t);
        }

        if (ttl)
        {
            Unwildcard(t, Fields.NwTtl);
            SetField(new FlowAction(ActionKind.SetField, Field: Fields.NwTtl, Value: saved.NwTtl), t);
        }

        t.Key = saved; // metadata and registers too: a bucket's writes stay in the bucket
        t.OuterTpid = outerTpid;
        t.InnerTpid = innerTpid;
    }

    private static unsafe void Unwildcard(Translation t, FieldDef f)
    {
        if (f.IsWide)
        {
            t.Wildcards.W[f.Word] = ulong.MaxValue;
            t.Wildcards.W[f.Word + 1] = ulong.MaxValue;
        }
        else
        {
            t.Wildcards.W[f.Word] |= f.WordMask;
        }
    }

    /// <summary>
    /// Undoes a bucket's tag changes: pops what it left above the lowest level it reached, then puts
    /// back the packet's tags it had popped (their TCIs and TPIDs) or set (at most two: the key's).
    /// </summary>
    private static unsafe void RestoreTags(Translation t, in FlowKey saved, ushort outerTpid, ushort innerTpid, int depth0)
    {
        int d = t.TagDepth - depth0;
        int low = Math.Min(0, t.TagLow - depth0);
        for (int i = d; i > low; i--)
        {
            PopTag(t);
        }

        t.Wildcards.W[0] |= 0xFFFFFFFFUL << 32; // both TCIs: what is put back is the packet's
        const ushort Keep = 0xEFFF; // all of the TCI but the present bit (the key's stand-in for CFI)
        if (low == 0)
        {
            if ((saved.VlanTci & KeyExtractor.VlanPresent) != 0)
            {
                t.Emit(new DpAction(DpOp.SetVlanTci, a: (ushort)(saved.VlanTci & Keep), b: Keep));
            }
        }
        else if (low == -1)
        {
            if ((saved.Vlan2Tci & KeyExtractor.VlanPresent) != 0)
            {
                t.Emit(new DpAction(DpOp.SetVlanTci, a: (ushort)(saved.Vlan2Tci & Keep), b: Keep));
            }

            PushTag(t, ResolveTpid(t, outerTpid), (ushort)(saved.VlanTci & ~KeyExtractor.VlanPresent));
        }
        else
        {
            if (low < -2)
            {
                t.Trace?.Add("  group bucket popped more than two tags: only two are put back");
            }

            PushTag(t, ResolveTpid(t, innerTpid), (ushort)(saved.Vlan2Tci & ~KeyExtractor.VlanPresent));
            PushTag(t, ResolveTpid(t, outerTpid), (ushort)(saved.VlanTci & ~KeyExtractor.VlanPresent));
        }

        t.TagDepth = depth0;
    }
}
