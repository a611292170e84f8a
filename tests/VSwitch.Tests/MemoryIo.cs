// MemoryIo.cs - an in-memory stand-in for DPDK ports and mbufs, for unit tests of the PMD loop.
//
// Fake mbufs are native blocks laid out like rte_mbuf (the offsets in VSwitch.Interop.Mbuf), so
// the forwarding code under test reads and writes them exactly as it does real ones. Queues are
// preallocated arrays: the I/O itself allocates nothing, so allocation tests measure the loop only.
using System.Runtime.InteropServices;
using VSwitch.Interop;
using VSwitch.Ports;

namespace VSwitch.Tests;

internal sealed unsafe class FakeMbufs : IDisposable
{
    private const int DataRoom = 2048;
    private readonly List<nint> _all = [];

    public int Allocated { get; private set; }

    public int Freed { get; set; }

    public nint Create(ReadOnlySpan<byte> frame, ushort port = 0)
    {
        var m = (nint)NativeMemory.AllocZeroed((nuint)(Mbuf.StructSize + Mbuf.Headroom + DataRoom));
        *(nint*)(m + Mbuf.BufAddrOffset) = m + Mbuf.StructSize;
        *(ushort*)(m + Mbuf.DataOffOffset) = Mbuf.Headroom;
        *(ushort*)(m + Mbuf.DataLenOffset) = (ushort)frame.Length;
        *(uint*)(m + Mbuf.PktLenOffset) = (uint)frame.Length;
        *(ushort*)(m + Mbuf.PortOffset) = port;
        *(ushort*)(m + Mbuf.NbSegsOffset) = 1;
        frame.CopyTo(new Span<byte>(Mbuf.Data(m), frame.Length));
        _all.Add(m);
        Allocated++;
        return m;
    }

    /// <summary>A frame in a chain of mbufs, <paramref name="firstSegment"/> bytes in the first and up to 2 KB in each next (as a NIC's scatter rx builds a jumbo frame).</summary>
    public nint CreateChain(ReadOnlySpan<byte> frame, int firstSegment, ushort port = 0)
    {
        nint head = Create(frame[..firstSegment], port);
        nint tail = head;
        ushort segs = 1;
        for (int at = firstSegment; at < frame.Length; at += DataRoom, segs++)
        {
            nint m = Create(frame[at..Math.Min(frame.Length, at + DataRoom)], port);
            *(nint*)(tail + Mbuf.NextOffset) = m;
            tail = m;
        }

        *(ushort*)(head + Mbuf.NbSegsOffset) = segs;
        *(uint*)(head + Mbuf.PktLenOffset) = (uint)frame.Length;
        return head;
    }

    /// <summary>All bytes of a (possibly chained) mbuf.</summary>
    public static byte[] ChainBytes(nint m)
    {
        var all = new List<byte>();
        for (; m != 0; m = *(nint*)(m + Mbuf.NextOffset))
        {
            all.AddRange(new Span<byte>(Mbuf.Data(m), Mbuf.DataLen(m)).ToArray());
        }

        return [.. all];
    }

    /// <summary>A deep copy (a test-only allocation; the pool has room for CloneBudget more).</summary>
    public nint Clone(nint src)
    {
        if (CloneBudget <= 0)
        {
            return 0;
        }

        CloneBudget--;
        nint m = Create(new ReadOnlySpan<byte>(Mbuf.Data(src), Mbuf.DataLen(src)), Mbuf.Port(src));
        return m;
    }

    public int CloneBudget { get; set; } = int.MaxValue;

    public static byte[] Bytes(nint m) => new Span<byte>(Mbuf.Data(m), Mbuf.DataLen(m)).ToArray();

    public void Dispose()
    {
        foreach (var m in _all)
        {
            NativeMemory.Free((void*)m);
        }
    }
}

/// <summary>Ports with one rx array and one tx array each; tx takes at most TxAccept per call.</summary>
internal sealed unsafe class MemoryPorts(int ports, int capacity, FakeMbufs mbufs)
{
    public readonly nint[][] Rx = Enumerable.Range(0, ports).Select(_ => new nint[capacity]).ToArray();
    public readonly int[] RxHead = new int[ports];
    public readonly int[] RxTail = new int[ports];
    public readonly nint[][] Tx = Enumerable.Range(0, ports).Select(_ => new nint[capacity]).ToArray();
    public readonly int[] TxCount = new int[ports];
    public int TxAccept = int.MaxValue;
    public ulong Clock;
    public long SleptMicros;

    public FakeMbufs Mbufs { get; } = mbufs;

    public void Inject(int port, nint m) => Rx[port][RxTail[port]++] = m;

    /// <summary>Makes <paramref name="state"/>'s PMD poll every port (datapath port i = memory port i) and send to each.</summary>
    public void Attach(Pmd.PmdState state)
    {
        state.SetRxQueues(Enumerable.Range(0, Rx.Length).Select(p => new Pmd.RxQueueRef { DpPort = p, PortId = (ushort)p, OfPort = (ushort)(p + 1) }).ToList());
        for (int p = 0; p < Rx.Length; p++)
        {
            state.SetTxPort(p, (ushort)p, 0, true);
        }
    }

    public IEnumerable<nint> Sent(int port) => Tx[port].Take(TxCount[port]);
}

internal readonly unsafe struct MemoryIo(MemoryPorts ports) : IPacketIo
{
    public ushort RxBurst(ushort portId, ushort queueId, nint* mbufs, ushort n)
    {
        int avail = ports.RxTail[portId] - ports.RxHead[portId];
        int k = Math.Min(avail, n);
        for (int i = 0; i < k; i++)
        {
            mbufs[i] = ports.Rx[portId][ports.RxHead[portId]++];
        }

        return (ushort)k;
    }

    public ushort TxBurst(ushort portId, ushort queueId, nint* mbufs, ushort n)
    {
        int k = Math.Min(n, ports.TxAccept);
        for (int i = 0; i < k; i++)
        {
            ports.Tx[portId][ports.TxCount[portId]++] = mbufs[i];
        }

        return (ushort)k;
    }

    public ushort RxBurstMayBlock(ushort portId, ushort queueId, nint* mbufs, ushort n) => RxBurst(portId, queueId, mbufs, n);

    public ushort TxBurstMayBlock(ushort portId, ushort queueId, nint* mbufs, ushort n) => TxBurst(portId, queueId, mbufs, n);

    public void Free(nint* mbufs, uint n) => ports.Mbufs.Freed += (int)n;

    public void Copy(nint* src, nint* dst, uint n)
    {
        for (int i = 0; i < n; i++)
        {
            // the shim's copy dereferences its source: a NULL here is a crash in vswitchd
            dst[i] = src[i] != 0 ? ports.Mbufs.Clone(src[i]) : throw new InvalidOperationException("copy of a NULL mbuf");
        }
    }

    public ulong Now() => ports.Clock += 10;

    public void Sleep(uint us) => ports.SleptMicros += us;
}
