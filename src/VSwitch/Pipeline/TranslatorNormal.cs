// TranslatorNormal.cs - NORMAL in the upcall: a MAC-learning switch with VLAN modes, whose VLAN
// handling is Open vSwitch's (ofproto-dpif-xlate.c: input_vid_is_valid, xvlan_input_translate,
// xbundle_includes_vlan, xvlan_output_translate, xvlan_put), so a rule file with NORMAL forwards
// alike on both.
//
// The frame's tags (up to two) become NORMAL's VLAN view: on an access port the outer tag's VID must
// be 0 (untagged or a priority tag) and the view is one tag of the port's VLAN keeping the frame's
// PCP (any inner tag is dropped); on a trunk (or a port without VLAN configuration, a trunk of every
// VLAN) the outer VID must be one the port carries and the view is the frame's tags. The view's outer
// VID is the VLAN: learning, lookup and flooding use it. An access port takes the frames of its VLAN
// with no second tag; a trunk, those whose VLAN it carries. Each egress port gets the view (trunk)
// or nothing (access), written as Open vSwitch writes it: from the outside in, a tag is sent while
// its VID or PCP is not 0, and the first one that is 0 ends the stack (a priority tag with PCP 0 is
// omitted, and with it anything under it; one with a PCP is kept).
//
// At most two distinct stacks leave one NORMAL (the view, and nothing): the ports whose stack is the
// frame's as it is go first, then each other stack after the fewest pops and pushes from the current
// one (tags equal from the inside are kept), then the frame is put back as NORMAL got it (dropped
// by Translator.Finish when nothing follows). Port order within NORMAL is free, as in Open vSwitch.
using VSwitch.Actions;
using VSwitch.FlowText;
using VSwitch.Packets;

namespace VSwitch.Pipeline;

public static partial class Translator
{
    /// <summary>Up to two VLAN tags, outermost first: TPID and TCI (VID | PCP &lt;&lt; 13, no present bit).</summary>
    private struct VlanStack
    {
        public int Count;
        public ushort Tpid0, Tci0, Tpid1, Tci1;

        public readonly ushort Tpid(int i) => i == 0 ? Tpid0 : Tpid1;

        public readonly ushort Tci(int i) => i == 0 ? Tci0 : Tci1;

        /// <summary>Level <paramref name="i"/> of this and level <paramref name="j"/> of <paramref name="o"/> are the same tag (TPID, VID, PCP).</summary>
        public readonly bool Same(int i, in VlanStack o, int j) => Tpid(i) == o.Tpid(j) && (Tci(i) & 0xEFFF) == (o.Tci(j) & 0xEFFF);

        public readonly bool Equals(in VlanStack o)
        {
            if (Count != o.Count)
            {
                return false;
            }

            for (int i = 0; i < Count; i++)
            {
                if (!Same(i, o, i))
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>
    /// NORMAL: the input VLAN from the port's mode and the frame's tags (see the file comment); the
    /// source is learned; a known unicast destination gets one output, anything else floods the VLAN.
    /// </summary>
    private static unsafe void Normal(FlowTables v, MacTable macs, Translation t)
    {
        ref FlowKey k = ref t.Key;
        t.UsesMac = true;
        t.Wildcards.W[0] |= 0xFFFFFFFFUL << 32; // both tags' TCIs: the VLAN view and what each port is sent
        t.Wildcards.W[1] |= FlowKey.Mac48; // dl_dst
        t.Wildcards.W[2] |= FlowKey.Mac48; // dl_src
        var inPort = v.Port(k.InPort);
        if (inPort == null)
        {
            t.Trace?.Add($"  normal: input port {k.InPort} is not a switch port: dropped");
            return;
        }

        var frame = CurrentTags(t);
        int outerVid = frame.Count > 0 ? frame.Tci0 & 0xFFF : 0;
        VlanStack view;
        if (inPort.Mode == VlanMode.Access)
        {
            if (outerVid != 0)
            {
                t.Trace?.Add($"  normal: VLAN {outerVid} tagged frame on access port {inPort.OfPort}: dropped");
                return;
            }

            // One tag of the port's VLAN with the frame's priority (a priority tag's PCP and TPID survive).
            view = new VlanStack
            {
                Count = 1,
                Tpid0 = frame.Count > 0 ? frame.Tpid0 : KeyExtractor.EthVlan,
                Tci0 = (ushort)((frame.Count > 0 ? frame.Tci0 & 0xE000 : 0) | inPort.Tag),
            };
        }
        else if (!inPort.Carries(outerVid))
        {
            t.Trace?.Add($"  normal: VLAN {outerVid} not allowed on port {inPort.OfPort}: dropped");
            return;
        }
        else
        {
            view = frame;
        }

        int vlan = view.Count > 0 ? view.Tci0 & 0xFFF : 0;
        int innerVid = view.Count > 1 ? view.Tci1 & 0xFFF : 0;
        if (!t.NoLearn)
        {
            t.AddLearn(k.DlSrc, vlan, inPort.OfPort); // posted to the MAC table's single writer by the PMD
        }

        bool group = (k.DlDst & 0x0100_0000_0000UL) != 0;
        int dst = group ? -1 : t.PendingLearn(k.DlDst, vlan) ?? macs.Lookup(k.DlDst, vlan);
        if (dst == inPort.OfPort)
        {
            t.Trace?.Add("  normal: destination is behind the input port: dropped");
            return;
        }

        var target = v.Port(dst);
        if (target != null && target.Carries(vlan))
        {
            t.Trace?.Add($"  normal: learned {FlowFormatter.FormatMac(k.DlDst)} vlan {vlan} -> port {dst}");
            NormalOutputs(v, t, inPort.OfPort, vlan, innerVid, frame, Written(view), target);
            return;
        }

        t.Trace?.Add($"  normal: flood vlan {vlan}");
        NormalOutputs(v, t, inPort.OfPort, vlan, innerVid, frame, Written(view), null);
    }

    /// <summary>Whether a flood in <paramref name="vlan"/> (with <paramref name="innerVid"/> under it) reaches <paramref name="p"/>: Open vSwitch's xbundle_includes_vlan.</summary>
    private static bool Includes(PipelinePort p, int vlan, int innerVid) =>
        p.Mode == VlanMode.Access ? vlan == p.Tag && innerVid == 0 : p.Carries(vlan);

    /// <summary>The working key's tags, TPIDs resolved (the packet's outer TPID joins the megaflow).</summary>
    private static VlanStack CurrentTags(Translation t)
    {
        ref FlowKey k = ref t.Key;
        var s = default(VlanStack);
        if ((k.VlanTci & KeyExtractor.VlanPresent) != 0)
        {
            s.Count = 1;
            s.Tpid0 = ResolveTpid(t, t.OuterTpid);
            s.Tci0 = (ushort)(k.VlanTci & ~KeyExtractor.VlanPresent);
            if ((k.Vlan2Tci & KeyExtractor.VlanPresent) != 0)
            {
                s.Count = 2;
                s.Tpid1 = ResolveTpid(t, t.InnerTpid);
                s.Tci1 = (ushort)(k.Vlan2Tci & ~KeyExtractor.VlanPresent);
            }
        }

        return s;
    }

    /// <summary>The tags a trunk is sent (Open vSwitch's xvlan_put): from the outside in, while VID or PCP is not 0.</summary>
    private static VlanStack Written(VlanStack view)
    {
        if (view.Count > 0 && (view.Tci0 & 0xEFFF) == 0)
        {
            view.Count = 0;
        }
        else if (view.Count > 1 && (view.Tci1 & 0xEFFF) == 0)
        {
            view.Count = 1;
        }

        return view;
    }

    /// <summary>
    /// NORMAL's outputs (to <paramref name="only"/>, or flooded to every port of the VLAN but the
    /// input): access ports get no tag, the others <paramref name="trunkTags"/>. The ports whose
    /// stack is the frame's as it is go first, then the others after the fewest tag changes; then the
    /// frame is put back as it was (<paramref name="frame"/>).
    /// </summary>
    private static void NormalOutputs(FlowTables v, Translation t, int inOfPort, int vlan, int innerVid, VlanStack frame, VlanStack trunkTags, PipelinePort? only)
    {
        var none = default(VlanStack);
        var current = frame;

        // Pass 0: ports that take the frame as it is; 1: trunks, 2: access ports, each after a change.
        for (int pass = 0; pass < 3; pass++)
        {
            bool changed = false;
            foreach (var p in v.PortList)
            {
                if (only != null ? p != only : p.OfPort == inOfPort || !Includes(p, vlan, innerVid))
                {
                    continue;
                }

                bool access = p.Mode == VlanMode.Access;
                VlanStack want = access ? none : trunkTags;
                bool asItIs = want.Equals(frame);
                if (pass == 0 ? !asItIs : asItIs || access != (pass == 2))
                {
                    continue;
                }

                if (pass > 0 && !changed)
                {
                    changed = true;
                    ChangeTags(t, current, want);
                    current = want;
                }

                t.Emit(new DpAction(DpOp.Output, a: (ushort)p.Slot));
            }
        }

        ChangeTags(t, current, frame);
    }

    /// <summary>Pops and pushes from <paramref name="from"/> to <paramref name="to"/>, keeping the tags the two share from the inside.</summary>
    private static void ChangeTags(Translation t, in VlanStack from, in VlanStack to)
    {
        int common = 0;
        while (common < from.Count && common < to.Count && from.Same(from.Count - 1 - common, to, to.Count - 1 - common))
        {
            common++;
        }

        for (int i = from.Count - common; i > 0; i--)
        {
            PopTag(t);
        }

        for (int i = to.Count - common - 1; i >= 0; i--)
        {
            PushTag(t, to.Tpid(i), to.Tci(i));
        }
    }
}
