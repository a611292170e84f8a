// ForwardingBenchmarks.cs - the PMD loop and the l2fwd handler on an in-memory "port" (BurstRingIo
// with one burst) that returns the same 32 fake mbufs on every rx_burst and takes every tx_burst: what is left is the
// switch's own per-packet cost (loop, handler, tx buffering, counters), with no driver in it.
// One operation = one packet (OperationsPerInvoke = rounds x 32); allocated bytes must read 0.
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using VSwitch.Forwarding;
using VSwitch.Interop;
using VSwitch.Pmd;
using VSwitch.Ports;

namespace VSwitch.Benchmarks;

[MemoryDiagnoser]
public unsafe class ForwardingBenchmarks
{
    private const int Rounds = 1000;
    private const int PacketsPerInvoke = Rounds * 2 * PmdState.Burst; // two rx queues per round
    private nint* _burst;
    private int* _cursor;
    private nint _block;
    private PmdState _state = null!;
    private L2fwdTable _table = null!;
    private PmdLoop<BurstRingIo, L2Forwarder> _mac = null!;
    private PmdLoop<BurstRingIo, L2Forwarder> _io = null!;

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

        _cursor = (int*)NativeMemory.AllocZeroed(1, sizeof(int));
        _state = new PmdState(0);
        _state.SetRxQueues([new RxQueueRef { DpPort = 0, PortId = 0 }, new RxQueueRef { DpPort = 1, PortId = 1 }]);
        _state.SetTxPort(0, 0, 0, true);
        _state.SetTxPort(1, 1, 0, true);
        _table = new L2fwdTable();
        _table.SetRoute(0, 1);
        _table.SetRoute(1, 0);
        _table.SetRewrite(0, [2, 0, 0, 0, 0, 1]);
        _table.SetRewrite(1, [2, 0, 0, 0, 0, 2]);
        _mac = new PmdLoop<BurstRingIo, L2Forwarder>(_state, new BurstRingIo(_burst, _cursor, 1), new L2Forwarder(_table, true));
        _io = new PmdLoop<BurstRingIo, L2Forwarder>(_state, new BurstRingIo(_burst, _cursor, 1), new L2Forwarder(_table, false));
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
        NativeMemory.Free(_cursor);
        NativeMemory.AlignedFree((void*)_block);
    }
}
