// PuntRing.cs - the bounded single-producer/single-consumer ring the controller action copies into.
//
// The PMD (producer) copies the first SnapLength bytes of a punted packet into a preallocated slot
// and publishes the head; the control thread (consumer) reads slots and publishes the tail. Nothing
// blocks: when the ring is full the punt is dropped and counted by the caller.
using System.Runtime.InteropServices;
using VSwitch.Interop;

namespace VSwitch.Actions;

public sealed unsafe class PuntRing : IDisposable
{
    public const int SnapLength = 256;
    private const int SlotSize = SnapLength + 16;
    private readonly byte* _slots;
    private readonly int _mask;
    private long _head;
    private long _tail;

    public PuntRing(int capacity = 1024)
    {
        int size = 1;
        while (size < capacity)
        {
            size <<= 1;
        }

        _mask = size - 1;
        _slots = (byte*)NativeMemory.AllocZeroed((nuint)size, SlotSize);
    }

    /// <summary>Producer: copies a packet; false when the ring is full.</summary>
    public bool TryPut(nint m, ushort inPort, ushort table)
    {
        long head = _head;
        if (head - Volatile.Read(ref _tail) > _mask)
        {
            return false;
        }

        byte* s = _slots + ((head & _mask) * SlotSize);
        int len = Mbuf.DataLen(m);
        int snap = Math.Min(len, SnapLength);
        *(int*)s = len;
        *(ushort*)(s + 4) = inPort;
        *(ushort*)(s + 6) = table;
        *(int*)(s + 8) = snap;
        Buffer.MemoryCopy(Mbuf.Data(m), s + 16, SnapLength, snap);
        Volatile.Write(ref _head, head + 1);
        return true;
    }

    /// <summary>Consumer: takes every punted packet now in the ring.</summary>
    public List<(int InPort, int Table, int Length, byte[] Data)> Drain()
    {
        var list = new List<(int, int, int, byte[])>();
        long head = Volatile.Read(ref _head);
        long tail = _tail;
        for (; tail < head; tail++)
        {
            byte* s = _slots + ((tail & _mask) * SlotSize);
            list.Add((*(ushort*)(s + 4), *(ushort*)(s + 6), *(int*)s, new ReadOnlySpan<byte>(s + 16, *(int*)(s + 8)).ToArray()));
        }

        Volatile.Write(ref _tail, tail);
        return list;
    }

    public void Dispose()
    {
        NativeMemory.Free(_slots);
        GC.SuppressFinalize(this);
    }
}
