// ForwardingBenchmarks.cs - the PMD loop and the l2fwd handler on an in-memory "port" that
// returns the same 32 fake mbufs on every rx_burst and takes every tx_burst: what is left is the
// switch's own per-packet cost (loop, handler, tx buffering, counters), with no driver in it.
// One operation = one packet (OperationsPerInvoke = rounds x 32); allocated bytes must read 0.
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using VSwitch.Forwarding;
using VSwitch.Interop;
using VSwitch.Pmd;
using VSwitch.Ports;

namespace VSwitch.Benchmarks;

internal readonly unsafe struct LoopbackIo(nint* burst) : IPacketIo
{
    public ushort RxBurst(ushort portId, ushort queueId, nint* mbufs, ushort n)
    {
        Buffer.MemoryCopy(burst, mbufs, n * sizeof(nint), n * sizeof(nint));
        return n;
    }

    public ushort TxBurst(ushort portId, ushort queueId, nint* mbufs, ushort n) => n;

    public void Free(nint* mbufs, uint n)
    {
    }

    /// <summary>The loopback ports own a fixed set of mbufs: a copy is refused (the benchmarks' rules never clone).</summary>
    public void Copy(nint* src, nint* dst, uint n)
    {
        for (uint i = 0; i < n; i++)
        {
            dst[i] = 0;
        }
    }

    public ulong Now() => 0;

    public void Sleep(uint us)
    {
    }
}

[MemoryDiagnoser]
public unsafe class ForwardingBenchmarks
{
    private const int Rounds = 1000;
    private const int PacketsPerInvoke = Rounds * 2 * PmdState.Burst; // two rx queues per round
    private nint* _burst;
    private nint _block;
    private PmdState _state = null!;
    private L2fwdTable _table = null!;
    private PmdLoop<LoopbackIo, L2Forwarder> _mac = null!;
    private PmdLoop<LoopbackIo, L2Forwarder> _io = null!;

    [GlobalSetup]
    public void Setup()
    {
        const int size = Mbuf.StructSize + Mbuf.Headroom + 2048;
        _block = (nint)NativeMemory.AlignedAlloc(PmdState.Burst * size, 64);
        _burst = (nint*)NativeMemory.AlignedAlloc(PmdState.Burst * (nuint)sizeof(nint), 64);
        for (int i = 0; i < PmdState.Burst; i++)
        {
            nint m = _block + i * size;
            NativeMemory.Clear((void*)m, size);
            *(nint*)m = m + Mbuf.StructSize;
            *(ushort*)(m + Mbuf.DataOffOffset) = Mbuf.Headroom;
            *(ushort*)(m + Mbuf.DataLenOffset) = 60;
            _burst[i] = m;
        }

        _state = new PmdState(0);
        _state.SetRxQueues([new RxQueueRef { DpPort = 0, PortId = 0 }, new RxQueueRef { DpPort = 1, PortId = 1 }]);
        _state.SetTxPort(0, 0, 0, true);
        _state.SetTxPort(1, 1, 0, true);
        _table = new L2fwdTable();
        _table.SetRoute(0, 1);
        _table.SetRoute(1, 0);
        _table.SetRewrite(0, [2, 0, 0, 0, 0, 1]);
        _table.SetRewrite(1, [2, 0, 0, 0, 0, 2]);
        _mac = new PmdLoop<LoopbackIo, L2Forwarder>(_state, new LoopbackIo(_burst), new L2Forwarder(_table, true));
        _io = new PmdLoop<LoopbackIo, L2Forwarder>(_state, new LoopbackIo(_burst), new L2Forwarder(_table, false));
    }

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke)]
    public int L2fwdMacRewrite()
    {
        int n = 0;
        for (int r = 0; r < Rounds; r++)
        {
            n += _mac.Poll();
        }

        return n;
    }

    [Benchmark(OperationsPerInvoke = PacketsPerInvoke, Baseline = true)]
    public int L2fwdIo()
    {
        int n = 0;
        for (int r = 0; r < Rounds; r++)
        {
            n += _io.Poll();
        }

        return n;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _state.Dispose();
        _table.Dispose();
        NativeMemory.AlignedFree(_burst);
        NativeMemory.AlignedFree((void*)_block);
    }
}
