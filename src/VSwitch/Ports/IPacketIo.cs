// IPacketIo.cs - the burst I/O the PMD loop is generic over.
//
// PmdLoop<TIo, THandler> takes the I/O as a struct type parameter, so the JIT compiles one copy of
// the loop per I/O kind with every call below inlined or direct: DpdkIo for real ports, and the
// in-memory I/O the unit tests use. There is no virtual call per burst or per packet.
using System.Runtime.CompilerServices;
using VSwitch.Interop;

namespace VSwitch.Ports;

public unsafe interface IPacketIo
{
    /// <summary>Receives up to <paramref name="n"/> mbufs from (DPDK port, queue).</summary>
    ushort RxBurst(ushort portId, ushort queueId, nint* mbufs, ushort n);

    /// <summary>Sends up to <paramref name="n"/> mbufs; returns how many the port took (it owns those).</summary>
    ushort TxBurst(ushort portId, ushort queueId, nint* mbufs, ushort n);

    /// <summary><see cref="RxBurst"/> for a port whose driver may block in the call (GC-safe: a collection does not wait for it).</summary>
    ushort RxBurstMayBlock(ushort portId, ushort queueId, nint* mbufs, ushort n);

    /// <summary><see cref="TxBurst"/> for a port whose driver may block in the call.</summary>
    ushort TxBurstMayBlock(ushort portId, ushort queueId, nint* mbufs, ushort n);

    /// <summary>Returns mbufs to their pool.</summary>
    void Free(nint* mbufs, uint n);

    /// <summary>Deep-copies <paramref name="n"/> packets into <paramref name="dst"/> (0 where no mbuf was free).</summary>
    void Copy(nint* src, nint* dst, uint n);

    /// <summary>A monotonic cycle counter (the TSC on DPDK).</summary>
    ulong Now();

    /// <summary>Sleeps the PMD thread for <paramref name="us"/> microseconds (idle back-off).</summary>
    void Sleep(uint us);
}

/// <summary>Burst I/O through the native shim: one native call per burst.</summary>
public readonly unsafe struct DpdkIo : IPacketIo
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort RxBurst(ushort portId, ushort queueId, nint* mbufs, ushort n) => Native.RxBurst(portId, queueId, mbufs, n);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort TxBurst(ushort portId, ushort queueId, nint* mbufs, ushort n) => Native.TxBurst(portId, queueId, mbufs, n);

    public ushort RxBurstMayBlock(ushort portId, ushort queueId, nint* mbufs, ushort n) => Native.RxBurstGcSafe(portId, queueId, mbufs, n);

    public ushort TxBurstMayBlock(ushort portId, ushort queueId, nint* mbufs, ushort n) => Native.TxBurstGcSafe(portId, queueId, mbufs, n);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Free(nint* mbufs, uint n) => Native.MbufFreeBulk(mbufs, n);

    public void Copy(nint* src, nint* dst, uint n) => Native.MbufCopyBulk(src, dst, n);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Now() => Native.Rdtsc();

    public void Sleep(uint us) => Native.SleepMicros(us);
}
