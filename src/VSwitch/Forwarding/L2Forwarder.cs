// L2Forwarder.cs - DPDK-l2fwd-style forwarding: every packet from port A goes out of its paired port B.
//
// With MAC rewrite on, each packet's destination MAC becomes 02:00:00:00:00:<B> and its source MAC
// becomes B's own MAC, exactly as DPDK's l2fwd example does. The 12 header bytes per output port are
// precomputed as one 8-byte and one 4-byte store. The rewrite loop first prefetches every packet's
// first cache line, then writes unrolled by four with a remainder loop.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using VSwitch.Interop;
using VSwitch.Pmd;

namespace VSwitch.Forwarding;

/// <summary>Output port table and rewrite headers, shared read-only by all PMDs.</summary>
public sealed unsafe class L2fwdTable : IDisposable
{
    /// <summary>Output datapath port for each input datapath port; -1 drops.</summary>
    public readonly int* OutPort;

    /// <summary>Per output port: bytes 0..7 of the rewritten Ethernet header.</summary>
    public readonly ulong* Head8;

    /// <summary>Per output port: bytes 8..11 of the rewritten Ethernet header.</summary>
    public readonly uint* Tail4;

    public L2fwdTable()
    {
        OutPort = (int*)NativeMemory.Alloc(PmdState.MaxPorts, sizeof(int));
        Head8 = (ulong*)NativeMemory.AllocZeroed(PmdState.MaxPorts, sizeof(ulong));
        Tail4 = (uint*)NativeMemory.AllocZeroed(PmdState.MaxPorts, sizeof(uint));
        for (int i = 0; i < PmdState.MaxPorts; i++)
        {
            OutPort[i] = -1;
        }
    }

    /// <summary>Forwards <paramref name="inPort"/> to <paramref name="outPort"/> (one direction).</summary>
    public void SetRoute(int inPort, int outPort) => OutPort[inPort] = outPort;

    /// <summary>Sets the rewrite header for packets leaving <paramref name="outPort"/>, whose MAC is <paramref name="outMac"/>.</summary>
    public void SetRewrite(int outPort, ReadOnlySpan<byte> outMac)
    {
        Span<byte> h = stackalloc byte[12];
        h[0] = 0x02; // dst 02:00:00:00:00:<port>
        h[5] = (byte)outPort;
        outMac[..6].CopyTo(h[6..]);
        Head8[outPort] = MemoryMarshal.Read<ulong>(h);
        Tail4[outPort] = MemoryMarshal.Read<uint>(h[8..]);
    }

    public void Dispose()
    {
        NativeMemory.Free(OutPort);
        NativeMemory.Free(Head8);
        NativeMemory.Free(Tail4);
        GC.SuppressFinalize(this);
    }
}

/// <summary>The l2fwd burst handler; <see cref="RewriteMacs"/> selects the mac-forward variant.</summary>
public readonly unsafe struct L2Forwarder : IBurstHandler
{
    private readonly int* _outPort;
    private readonly ulong* _head8;
    private readonly uint* _tail4;

    public L2Forwarder(L2fwdTable table, bool rewriteMacs)
    {
        _outPort = table.OutPort;
        _head8 = table.Head8;
        _tail4 = table.Tail4;
        RewriteMacs = rewriteMacs;
    }

    public bool RewriteMacs { get; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Handle(PmdState state, in RxQueueRef rx, nint* mbufs, int n)
    {
        int outPort = _outPort[rx.DpPort];
        if (outPort < 0)
        {
            for (int i = 0; i < n; i++)
            {
                state.Drop(mbufs[i], DropReason.NoPeer);
            }

            return -1;
        }

        if (!RewriteMacs)
        {
            // Plain forwarding reads no header, so it passes every frame as is (like testpmd io).
            return outPort;
        }

        // A frame shorter than an Ethernet header cannot take the rewrite: drop it (counted as a
        // forwarding drop). The check is one load of the mbuf's first cache line, which rx just wrote.
        int shortest = int.MaxValue;
        for (int i = 0; i < n; i++)
        {
            shortest = Math.Min(shortest, Mbuf.DataLen(mbufs[i]));
        }

        if (shortest < EthernetHeaderLength)
        {
            HandleWithRunts(state, mbufs, n, outPort);
            return -1;
        }

        Rewrite(mbufs, n, _head8[outPort], _tail4[outPort]);
        return outPort;
    }

    private const int EthernetHeaderLength = 14;

    /// <summary>l2fwd keeps no tables: nothing to do per round.</summary>
    public void Round(PmdState state, ulong now)
    {
    }

    private void HandleWithRunts(PmdState state, nint* mbufs, int n, int outPort)
    {
        for (int i = 0; i < n; i++)
        {
            nint m = mbufs[i];
            if (Mbuf.DataLen(m) < EthernetHeaderLength)
            {
                state.Drop(m, DropReason.Malformed);
                continue;
            }

            Rewrite(&m, 1, _head8[outPort], _tail4[outPort]);
            state.Enqueue(outPort, m);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Rewrite(nint* mbufs, int n, ulong head8, uint tail4)
    {
        if (Sse.IsSupported)
        {
            for (int i = 0; i < n; i++)
            {
                Sse.Prefetch0(Mbuf.Data(mbufs[i]));
            }
        }

        int j = 0;
        for (; j + 4 <= n; j += 4)
        {
            byte* d0 = Mbuf.Data(mbufs[j]);
            byte* d1 = Mbuf.Data(mbufs[j + 1]);
            byte* d2 = Mbuf.Data(mbufs[j + 2]);
            byte* d3 = Mbuf.Data(mbufs[j + 3]);
            *(ulong*)d0 = head8;
            *(uint*)(d0 + 8) = tail4;
            *(ulong*)d1 = head8;
            *(uint*)(d1 + 8) = tail4;
            *(ulong*)d2 = head8;
            *(uint*)(d2 + 8) = tail4;
            *(ulong*)d3 = head8;
            *(uint*)(d3 + 8) = tail4;
        }

        for (; j < n; j++)
        {
            byte* d = Mbuf.Data(mbufs[j]);
            *(ulong*)d = head8;
            *(uint*)(d + 8) = tail4;
        }
    }
}
