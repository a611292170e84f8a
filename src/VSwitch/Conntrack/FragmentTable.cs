// FragmentTable.cs - how later fragments of a datagram follow its first: one PMD's memory of the
// verdicts it gave first fragments.
//
// Fragments are tracked by the first fragment, not reassembled: the first fragment carries the
// transport header, so it is tracked (and NATed) as a whole packet would be; its verdict (the
// connection-tracking word) and the addresses NAT gave it are remembered under (zone, family,
// protocol, source, destination, fragment id). A later fragment of the same datagram takes that
// verdict and the same address rewrite; one that comes before its first fragment (or after this
// table forgot it: 30 s, Linux's ipfrag_time, or its slot was taken) is +inv. Reassembly would
// hold mbufs on the PMD and copy them; tracking by the first fragment does neither, at the price of
// out-of-order fragments. The table is per PMD (direct-mapped, single writer, no lock): the
// fragments of one datagram arrive on one port and queue (RSS hashes fragments by addresses), so
// on one PMD. Native memory, sized once.
using System.Runtime.InteropServices;
using VSwitch.Packets;

namespace VSwitch.Conntrack;

/// <summary>A first fragment's verdict, for the datagram's later fragments.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct FragmentEntry
{
    /// <summary>The datagram: addresses as the fragments arrive, protocol, family, zone, fragment id.</summary>
    public ulong SrcHi, SrcLo, DstHi, DstLo;
    public uint Id;
    public ushort Zone;
    public byte Proto, Family;

    /// <summary>The first fragment's connection-tracking word.</summary>
    public ulong CtWord;

    /// <summary>The addresses the first fragment left with (NAT).</summary>
    public ulong NewSrcHi, NewSrcLo, NewDstHi, NewDstLo;

    /// <summary>When the entry is forgotten (clock cycles); 0: empty.</summary>
    public ulong Expires;

    /// <summary>The first fragment's connection words of the key (ct_label, the original tuple: Packets/DpKey.cs).</summary>
    public fixed ulong Ext[DpKey.CtExtWords];
}

/// <summary>One PMD's fragment verdicts (see the file comment).</summary>
public sealed unsafe class FragmentTable : IDisposable
{
    public const int Slots = 4096;

    /// <summary>Linux's ipfrag_time.</summary>
    public const int Seconds = 30;

    private readonly FragmentEntry* _e = (FragmentEntry*)NativeMemory.AllocZeroed(Slots, (nuint)sizeof(FragmentEntry));

    private static int Slot(in ConnTuple t, uint id, ushort zone) => (int)((ConnTuple.Hash(t, id ^ ((uint)zone << 16)) ^ id) & (Slots - 1));

    /// <summary>Remembers a first fragment's verdict (<paramref name="t"/>: its tuple as it arrived; <paramref name="ext"/>: its connection words, DpKey.CtExtWords of them).</summary>
    public void Remember(in ConnTuple t, uint id, ushort zone, ulong ctWord, ulong newSrcHi, ulong newSrcLo, ulong newDstHi, ulong newDstLo, ulong expires, ulong* ext)
    {
        ConnTuple a = AddressesOf(t);
        FragmentEntry* e = _e + Slot(a, id, zone);
        *e = new FragmentEntry
        {
            SrcHi = t.SrcHi, SrcLo = t.SrcLo, DstHi = t.DstHi, DstLo = t.DstLo, Id = id, Zone = zone, Proto = t.Protocol, Family = t.Family,
            CtWord = ctWord, NewSrcHi = newSrcHi, NewSrcLo = newSrcLo, NewDstHi = newDstHi, NewDstLo = newDstLo, Expires = expires,
        };
        new Span<ulong>(ext, DpKey.CtExtWords).CopyTo(new Span<ulong>(e->Ext, DpKey.CtExtWords));
    }

    /// <summary>The first fragment's entry for a later fragment with tuple <paramref name="t"/> (addresses and protocol), or null.</summary>
    public FragmentEntry* Find(in ConnTuple t, uint id, ushort zone, ulong now)
    {
        ConnTuple a = AddressesOf(t);
        FragmentEntry* e = _e + Slot(a, id, zone);
        return e->Expires > now && e->Id == id && e->Zone == zone && e->Proto == t.Protocol && e->Family == t.Family
            && e->SrcHi == t.SrcHi && e->SrcLo == t.SrcLo && e->DstHi == t.DstHi && e->DstLo == t.DstLo ? e : null;
    }

    /// <summary>The tuple's addresses, family and protocol only (what every fragment of a datagram shares).</summary>
    private static ConnTuple AddressesOf(in ConnTuple t) => new()
    {
        SrcHi = t.SrcHi, SrcLo = t.SrcLo, DstHi = t.DstHi, DstLo = t.DstLo, Protocol = t.Protocol, Family = t.Family,
    };

    public void Dispose()
    {
        NativeMemory.Free(_e);
        GC.SuppressFinalize(this);
    }
}
