// CtSpec.cs - what one ct(...) action asks for, in two forms: the rule's (CtSpec, a managed record
// the parser builds and the formatter prints) and the datapath's (DpCtSpec, a fixed-size struct in a
// native table the PMDs read).
//
// The control plane interns every ct(...) of a loaded rule into CtSpecs once (a lock: the control
// plane only); a megaflow's ct op carries the table index. Entries are never freed (interning keeps
// them few: the distinct ct actions of the rule sets ever loaded), so a PMD can never read a spec
// that changes or goes away.
using System.Runtime.InteropServices;

namespace VSwitch.Conntrack;

/// <summary>NAT of a ct action: nat, nat(src=...), nat(dst=...).</summary>
public enum CtNatKind : byte
{
    /// <summary>No nat argument.</summary>
    None,

    /// <summary>Bare nat: apply an existing connection's NAT (replies, and later packets of a NATed connection).</summary>
    Apply,

    /// <summary>nat(src=...): source NAT on commit.</summary>
    Src,

    /// <summary>nat(dst=...): destination NAT on commit.</summary>
    Dst,
}

/// <summary>A ct(...) action as the rule says it.</summary>
/// <param name="Commit">commit: a new connection is stored.</param>
/// <param name="Force">force: a committed connection whose direction is the reverse of this packet's is ended and recommitted.</param>
/// <param name="Zone">zone=N (0-65535).</param>
/// <param name="Table">table=N: the packet goes back through the caches and continues in table N with its connection state (-1: no recirculation).</param>
/// <param name="Nat">The nat argument.</param>
/// <param name="V6">The NAT range is IPv6.</param>
/// <param name="AddrMin">NAT range: lowest address (IPv4 in the low 32 bits).</param>
/// <param name="AddrMax">NAT range: highest address.</param>
/// <param name="PortMin">NAT range: lowest port (0: keep the packet's port unless it collides).</param>
/// <param name="PortMax">NAT range: highest port.</param>
/// <param name="NatFlags">nat(...,random|hash|persistent): kept for dumps; ports are chosen by hash here.</param>
/// <param name="HasMark">exec(set_field:V/M->ct_mark).</param>
/// <param name="HasLabel">exec(set_field:V/M->ct_label).</param>
public sealed record CtSpec(bool Commit, bool Force, ushort Zone, int Table, CtNatKind Nat, bool V6, UInt128 AddrMin, UInt128 AddrMax,
    ushort PortMin, ushort PortMax, string NatFlags, bool HasMark, uint MarkValue, uint MarkMask, bool HasLabel, UInt128 LabelValue, UInt128 LabelMask);

/// <summary>A ct action as the PMD reads it (native, immutable once interned).</summary>
[StructLayout(LayoutKind.Sequential, Size = 96)]
public struct DpCtSpec
{
    public const byte FlagCommit = 1, FlagForce = 2, FlagMark = 4, FlagLabel = 8, FlagV6 = 16, FlagPorts = 32;

    /// <summary>Flag* bits.</summary>
    public byte Flags;

    /// <summary>CtNatKind.</summary>
    public CtNatKind Nat;

    /// <summary>zone=N.</summary>
    public ushort Zone;

    /// <summary>NAT port range (FlagPorts).</summary>
    public ushort PortMin, PortMax;

    /// <summary>exec(set_field:V/M->ct_mark).</summary>
    public uint MarkValue, MarkMask;

    /// <summary>NAT address range (IPv4 in the low word of AddrMinLo/AddrMaxLo).</summary>
    public ulong AddrMinHi, AddrMinLo, AddrMaxHi, AddrMaxLo;

    /// <summary>exec(set_field:V/M->ct_label).</summary>
    public ulong LabelHi, LabelLo, LabelMaskHi, LabelMaskLo;
}

/// <summary>The native table of interned ct actions (read by PMDs, written by the control plane).</summary>
public static unsafe class CtSpecs
{
    /// <summary>Distinct ct actions a process can hold.</summary>
    public const int Capacity = 4096;

    private static readonly Lock Gate = new();
    private static readonly Dictionary<CtSpec, int> Index = [];
    private static readonly DpCtSpec* Table = (DpCtSpec*)NativeMemory.AlignedAlloc(Capacity * (nuint)sizeof(DpCtSpec), 64);

    /// <summary>The spec at <paramref name="index"/>.</summary>
    public static DpCtSpec* At(int index) => Table + index;

    /// <summary>The index of <paramref name="s"/>, interning it on first use (index 0 is never used).</summary>
    public static int Intern(CtSpec s)
    {
        lock (Gate)
        {
            if (Index.TryGetValue(s, out int i))
            {
                return i;
            }

            i = Index.Count + 1;
            if (i >= Capacity)
            {
                throw new InvalidOperationException($"more than {Capacity - 1} distinct ct actions loaded");
            }

            DpCtSpec* d = Table + i;
            *d = default;
            d->Flags = (byte)((s.Commit ? DpCtSpec.FlagCommit : 0) | (s.Force ? DpCtSpec.FlagForce : 0) | (s.HasMark ? DpCtSpec.FlagMark : 0)
                | (s.HasLabel ? DpCtSpec.FlagLabel : 0) | (s.V6 ? DpCtSpec.FlagV6 : 0) | (s.PortMin != 0 ? DpCtSpec.FlagPorts : 0));
            d->Nat = s.Nat;
            d->Zone = s.Zone;
            d->PortMin = s.PortMin;
            d->PortMax = s.PortMax;
            d->MarkValue = s.MarkValue & s.MarkMask;
            d->MarkMask = s.MarkMask;
            d->AddrMinHi = (ulong)(s.AddrMin >> 64);
            d->AddrMinLo = (ulong)s.AddrMin;
            d->AddrMaxHi = (ulong)(s.AddrMax >> 64);
            d->AddrMaxLo = (ulong)s.AddrMax;
            UInt128 lv = s.LabelValue & s.LabelMask;
            d->LabelHi = (ulong)(lv >> 64);
            d->LabelLo = (ulong)lv;
            d->LabelMaskHi = (ulong)(s.LabelMask >> 64);
            d->LabelMaskLo = (ulong)s.LabelMask;
            Index[s] = i; // published after the native copy is written (the lock's release orders it)
            return i;
        }
    }
}
