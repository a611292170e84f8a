// FrozenStates.cs - where a packet resumes after ct(...,table=N): the table and the pipeline-only
// fields (metadata, registers) it had, behind a recirculation id.
//
// Open vSwitch "freezes" a translation at ct(table=N): the packet goes through the connection tracker
// and back through the datapath with a new recirc_id, and the translation of that pass starts in
// table N with the metadata and registers the packet had (they are not packet bytes, so they cannot
// travel with it). Here the recirc_id is 8 bits of the datapath key: ids 1-127 are recirc(N)'s,
// 128-255 name frozen states. An id is interned by content on the upcall that needs it (a PMD, or
// the control thread for trace), so every packet with the same table/metadata/registers shares one
// id, and megaflows of the next pass match it exactly. Slots are claimed with a CAS and never
// freed or changed once published: a PMD never reads a half-written state, and the id a megaflow
// holds stays valid. Two upcalls interning the same state at once may claim two slots (both valid).
using System.Runtime.InteropServices;
using VSwitch.Packets;

namespace VSwitch.Pipeline;

public static unsafe class FrozenStates
{
    /// <summary>The first recirc_id of a frozen state (recirc(N) takes 1 to First - 1).</summary>
    public const int First = 128;

    /// <summary>Frozen states a process can hold.</summary>
    public const int Capacity = 256 - First;

    private const long SlotFree = 0, SlotWriting = 1, SlotReady = 2;

    [StructLayout(LayoutKind.Sequential)]
    private struct Slot
    {
        public long State;
        public long Table;
        public fixed ulong Words[FlowKey.Words - DpKey.Words]; // metadata, xreg0..xreg7
    }

    private static readonly Slot* Slots = (Slot*)NativeMemory.AllocZeroed((nuint)(Capacity * sizeof(Slot)));

    /// <summary>The recirc_id of "table <paramref name="table"/> with <paramref name="key"/>'s metadata and registers"; -1 when every id is taken.</summary>
    public static int Intern(int table, in FlowKey key)
    {
        for (int i = 0; i < Capacity; i++)
        {
            Slot* s = Slots + i;
            long st = Volatile.Read(ref s->State);
            if (st == SlotReady && Same(s, table, key))
            {
                return First + i;
            }

            if (st == SlotFree && Interlocked.CompareExchange(ref s->State, SlotWriting, SlotFree) == SlotFree)
            {
                s->Table = table;
                for (int w = 0; w < FlowKey.Words - DpKey.Words; w++)
                {
                    s->Words[w] = key.W[DpKey.Words + w];
                }

                Volatile.Write(ref s->State, SlotReady);
                return First + i;
            }
        }

        return -1;
    }

    private static bool Same(Slot* s, int table, in FlowKey key)
    {
        if (s->Table != table)
        {
            return false;
        }

        for (int w = 0; w < FlowKey.Words - DpKey.Words; w++)
        {
            if (s->Words[w] != key.W[DpKey.Words + w])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The table a packet with recirc_id <paramref name="id"/> resumes in (its metadata and registers written into <paramref name="key"/>); -1 when the id is not a frozen state.</summary>
    public static int Resume(int id, ref FlowKey key)
    {
        if (id < First || id >= First + Capacity)
        {
            return -1;
        }

        Slot* s = Slots + (id - First);
        if (Volatile.Read(ref s->State) != SlotReady)
        {
            return -1;
        }

        for (int w = 0; w < FlowKey.Words - DpKey.Words; w++)
        {
            key.W[DpKey.Words + w] = s->Words[w];
        }

        return (int)s->Table;
    }

    /// <summary>Frozen states in use.</summary>
    public static int Count
    {
        get
        {
            int n = 0;
            for (int i = 0; i < Capacity; i++)
            {
                n += Volatile.Read(ref Slots[i].State) == SlotReady ? 1 : 0;
            }

            return n;
        }
    }
}
