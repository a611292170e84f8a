// PuntRing.cs - a bounded single-producer/single-consumer ring of packet copies: the controller
// action's punt ring, and the drop tap that `vswitchctl capture --drops` reads.
//
// The PMD (producer) copies the first SnapLength bytes of a packet into a preallocated slot with
// its port, a code (the punting table, or the drop reason) and a timestamp, and publishes the
// head; the control thread (consumer) reads slots and publishes the tail. Nothing blocks and
// nothing is allocated on the PMD: when the ring is full the copy is not made and the caller counts it.
using System.Diagnostics;
using System.Runtime.InteropServices;
using VSwitch.Interop;

namespace VSwitch.Actions;

/// <summary>One copied packet: its port (OpenFlow number for punts, DPDK port id for drops), code, original length, bytes, and when.</summary>
public readonly record struct TappedPacket(int InPort, int Code, int Length, byte[] Data, DateTime Time)
{
    /// <summary>The punting table (punt ring).</summary>
    public int Table => Code;
}

public sealed unsafe class PuntRing : IDisposable
{
    public const int SnapLength = 256;
    private const int HeaderSize = 24;
    private const int SlotSize = SnapLength + HeaderSize;
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

    /// <summary>The stamp <see cref="TryPut"/> takes: read once per group or burst, not per packet (it is a call into the runtime).</summary>
    public static long Stamp() => Stopwatch.GetTimestamp();

    /// <summary>Producer: copies a packet stamped <paramref name="stamp"/> (<see cref="Stamp"/>); false when the ring is full.</summary>
    public bool TryPut(nint m, ushort inPort, ushort code, long stamp)
    {
        long head = _head;
        if (head - Volatile.Read(ref _tail) > _mask)
        {
            return false;
        }

        byte* s = _slots + ((head & _mask) * SlotSize);
        int len = (int)Mbuf.PktLen(m);
        int snap = Math.Min((int)Mbuf.DataLen(m), SnapLength);
        *(int*)s = len;
        *(ushort*)(s + 4) = inPort;
        *(ushort*)(s + 6) = code;
        *(int*)(s + 8) = snap;
        *(long*)(s + 16) = stamp;
        Buffer.MemoryCopy(Mbuf.Data(m), s + HeaderSize, SnapLength, snap);
        Volatile.Write(ref _head, head + 1);
        return true;
    }

    /// <summary>Consumer: takes every packet now in the ring (at most <paramref name="max"/>).</summary>
    public List<TappedPacket> Drain(int max = int.MaxValue)
    {
        var list = new List<TappedPacket>();
        long head = Volatile.Read(ref _head);
        long tail = _tail;
        long nowTicks = Stopwatch.GetTimestamp();
        DateTime now = DateTime.UtcNow;
        for (; tail < head && list.Count < max; tail++)
        {
            byte* s = _slots + ((tail & _mask) * SlotSize);
            var when = now - Stopwatch.GetElapsedTime(*(long*)(s + 16), nowTicks);
            list.Add(new TappedPacket(*(ushort*)(s + 4), *(ushort*)(s + 6), *(int*)s,
                new ReadOnlySpan<byte>(s + HeaderSize, *(int*)(s + 8)).ToArray(), when));
        }

        Volatile.Write(ref _tail, tail);
        return list;
    }

    /// <summary>Consumer: forgets whatever is in the ring.</summary>
    public void Clear() => Volatile.Write(ref _tail, Volatile.Read(ref _head));

    public void Dispose()
    {
        NativeMemory.Free(_slots);
        GC.SuppressFinalize(this);
    }
}
