// Unit tests of the PMD loop and the l2fwd handler over in-memory ports (no DPDK needed).
using VSwitch.Forwarding;
using VSwitch.Pmd;

namespace VSwitch.Tests;

public sealed unsafe class PmdLoopTests
{
    private static readonly byte[] s_macA = [0x02, 0xaa, 0, 0, 0, 0x0a];
    private static readonly byte[] s_macB = [0x02, 0xbb, 0, 0, 0, 0x0b];

    private sealed class Rig : IDisposable
    {
        public readonly FakeMbufs Mbufs = new();
        public readonly MemoryPorts Ports;
        public readonly PmdState State = new(0);
        public readonly L2fwdTable Table = new();
        public readonly PmdLoop<MemoryIo, L2Forwarder> Loop;

        public Rig(bool rewrite, ulong drainCycles = 0)
        {
            Ports = new MemoryPorts(2, 4096, Mbufs);
            Table.SetRoute(0, 1);
            Table.SetRoute(1, 0);
            Table.SetRewrite(0, s_macA);
            Table.SetRewrite(1, s_macB);
            Ports.Attach(State);
            State.DrainCycles = drainCycles;
            Loop = new PmdLoop<MemoryIo, L2Forwarder>(State, new MemoryIo(Ports), new L2Forwarder(Table, rewrite));
        }

        public void Dispose()
        {
            State.Dispose();
            Table.Dispose();
            Mbufs.Dispose();
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(31)]
    [InlineData(32)]
    [InlineData(33)]
    [InlineData(257)]
    public void L2fwd_forwards_every_packet_in_order_with_rewritten_macs(int count)
    {
        using var rig = new Rig(rewrite: true);
        var sent = new List<byte[]>();
        for (int i = 0; i < count; i++)
        {
            var f = Frames.Udp(i, 60 + (i % 7));
            sent.Add(f);
            rig.Ports.Inject(0, rig.Mbufs.Create(f));
        }

        while (rig.Loop.Poll() > 0)
        {
        }

        var got = rig.Ports.Sent(1).Select(FakeMbufs.Bytes).ToList();
        Assert.Equal(count, got.Count);
        Assert.Empty(rig.Ports.Sent(0));
        for (int i = 0; i < count; i++)
        {
            var expected = (byte[])sent[i].Clone();
            byte[] dst = [0x02, 0, 0, 0, 0, 0x01];
            dst.CopyTo(expected, 0);
            s_macB.CopyTo(expected, 6);
            Assert.Equal(expected, got[i]);
        }

        Assert.Equal((ulong)count, rig.State.Counters->RxPackets);
        Assert.Equal((ulong)count, rig.State.Counters->TxPackets);
        Assert.Equal((ulong)count, rig.State.PortCounters[0].RxPackets);
        Assert.Equal((ulong)count, rig.State.PortCounters[1].TxPackets);
        Assert.Equal(0, rig.State.PendingCount);
    }

    [Fact]
    public void Io_mode_leaves_bytes_untouched_and_forwards_both_ways()
    {
        using var rig = new Rig(rewrite: false);
        var a = Frames.Udp(1);
        var b = Frames.Udp(2);
        rig.Ports.Inject(0, rig.Mbufs.Create(a));
        rig.Ports.Inject(1, rig.Mbufs.Create(b));
        rig.Loop.Poll();
        Assert.Equal(a, FakeMbufs.Bytes(rig.Ports.Sent(1).Single()));
        Assert.Equal(b, FakeMbufs.Bytes(rig.Ports.Sent(0).Single()));
    }

    [Fact]
    public void Runt_frames_are_dropped_counted_and_freed_while_the_rest_pass()
    {
        using var rig = new Rig(rewrite: true);
        rig.Ports.Inject(0, rig.Mbufs.Create(Frames.Udp(0)));
        rig.Ports.Inject(0, rig.Mbufs.Create(new byte[13]));
        rig.Ports.Inject(0, rig.Mbufs.Create(Frames.Udp(2)));
        rig.Ports.Inject(0, rig.Mbufs.Create([]));
        rig.Loop.Poll();
        var got = rig.Ports.Sent(1).Select(FakeMbufs.Bytes).Select(Frames.Seq).ToList();
        Assert.Equal([0, 2], got);
        Assert.Equal(2UL, rig.State.Counters->FwdDrops);
        Assert.Equal(2, rig.Mbufs.Freed);
    }

    [Fact]
    public void Packets_a_full_tx_queue_refuses_are_freed_and_counted_as_tx_drops()
    {
        using var rig = new Rig(rewrite: false);
        rig.Ports.TxAccept = 10;
        for (int i = 0; i < 32; i++)
        {
            rig.Ports.Inject(0, rig.Mbufs.Create(Frames.Udp(i)));
        }

        rig.Loop.Poll();
        Assert.Equal(10, rig.Ports.TxCount[1]);
        Assert.Equal(22, rig.Mbufs.Freed);
        Assert.Equal(22UL, rig.State.Counters->TxDrops);
        Assert.Equal(22UL, rig.State.PortCounters[1].TxDrops);
        Assert.Equal(10UL, rig.State.Counters->TxPackets);
    }

    [Fact]
    public void With_a_drain_interval_a_lone_packet_waits_then_leaves_when_the_interval_passes()
    {
        using var rig = new Rig(rewrite: false, drainCycles: 1000);
        rig.Ports.Inject(0, rig.Mbufs.Create(Frames.Udp(7)));
        rig.Loop.Poll();
        Assert.Equal(0, rig.Ports.TxCount[1]); // buffered, waiting for company
        rig.Loop.Poll();
        Assert.Equal(0, rig.Ports.TxCount[1]);
        rig.Ports.Clock += 2000; // the interval passes
        rig.Loop.Poll();
        Assert.Equal(1, rig.Ports.TxCount[1]);
        Assert.Equal(0, rig.State.PendingCount);
    }

    [Fact]
    public void A_full_burst_leaves_at_once_even_with_a_drain_interval()
    {
        using var rig = new Rig(rewrite: false, drainCycles: 1_000_000);
        for (int i = 0; i < 32; i++)
        {
            rig.Ports.Inject(0, rig.Mbufs.Create(Frames.Udp(i)));
        }

        rig.Loop.Poll();
        Assert.Equal(32, rig.Ports.TxCount[1]);
    }

    [Fact]
    public void An_unpaired_port_drops_and_frees()
    {
        using var rig = new Rig(rewrite: true);
        rig.Table.SetRoute(0, -1);
        rig.Ports.Inject(0, rig.Mbufs.Create(Frames.Udp(1)));
        rig.Loop.Poll();
        Assert.Equal(0, rig.Ports.TxCount[1]);
        Assert.Equal(1, rig.Mbufs.Freed);
    }

    [Fact]
    public void The_forwarding_loop_allocates_nothing()
    {
        using var rig = new Rig(rewrite: true);
        const int total = 3000;
        var m = new nint[total];
        for (int i = 0; i < total; i++)
        {
            m[i] = rig.Mbufs.Create(Frames.Udp(i));
        }

        // Warm up (JIT, static constructors), then measure a forwarding run of many bursts.
        for (int i = 0; i < 100; i++)
        {
            rig.Ports.Inject(0, m[i]);
        }

        while (rig.Loop.Poll() > 0)
        {
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 100; i < total; i++)
        {
            rig.Ports.Inject(i % 2, m[i]);
        }

        int polled = 0;
        while (rig.Loop.Poll() is int n && n > 0)
        {
            polled += n;
        }

        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(total - 100, polled);
        Assert.Equal(0, after - before);
    }

    [Fact]
    public void Applying_a_new_port_plan_on_the_pmd_allocates_nothing_and_keeps_buffered_packets()
    {
        using var rig = new Rig(rewrite: false, drainCycles: 1_000_000);
        var m = Enumerable.Range(0, 200).Select(i => rig.Mbufs.Create(Frames.Udp(i))).ToArray();
        for (int i = 0; i < 100; i++)
        {
            rig.Ports.Inject(0, m[i]);
        }

        while (rig.Loop.Poll() > 0)
        {
        }

        // A plan with the same queues applied first, outside the measurement: a method's first call
        // on a thread may allocate in the runtime (seen once in a run of the parallel suite), which
        // is not the PMD's allocation; the next two plans must allocate nothing.
        var tx = new List<(int, ushort, ushort, bool)> { (0, 0, 0, true), (1, 1, 0, true) };
        var plan0 = new PmdPlan(0, [new RxQueueRef { DpPort = 0, PortId = 0, OfPort = 1 }, new RxQueueRef { DpPort = 1, PortId = 1, OfPort = 2 }], tx);
        rig.State.PendingPlan = plan0;
        rig.Loop.Poll();
        plan0.Release();
        var plan1 = new PmdPlan(1, [new RxQueueRef { DpPort = 0, PortId = 0 }], tx);
        var plan2 = new PmdPlan(2, [new RxQueueRef { DpPort = 1, PortId = 1 }], tx);
        rig.Ports.Inject(0, m[100]); // stays buffered (drain interval not reached)
        rig.Loop.Poll();
        Assert.Equal(1, rig.State.PendingCount);

        long before = GC.GetAllocatedBytesForCurrentThread();
        rig.State.PendingPlan = plan1;
        rig.Loop.Poll();
        rig.State.PendingPlan = plan2;
        for (int i = 101; i < 200; i++)
        {
            rig.Ports.Inject(1, m[i]);
        }

        while (rig.Loop.Poll() > 0)
        {
        }

        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(0, after - before);
        Assert.True(plan1.Applied && plan2.Applied);
        Assert.Equal(101, rig.Ports.TxCount[1]); // the buffered packet left when plan 1 was applied
        Assert.Equal(96, rig.Ports.TxCount[0]); // three full bursts; the last 3 wait for the drain interval
        Assert.Equal(1, rig.State.PendingCount);
        plan1.Release();
        plan2.Release();
    }

    [Fact]
    public void A_plan_the_pmd_did_not_take_in_time_is_replaced_by_the_next_and_only_the_newest_is_applied()
    {
        using var rig = new Rig(rewrite: false);
        var tx = new List<(int, ushort, ushort, bool)> { (0, 0, 0, true), (1, 1, 0, true) };
        var late = new PmdPlan(1, [new RxQueueRef { DpPort = 0, PortId = 0 }], tx);
        var newest = new PmdPlan(2, [new RxQueueRef { DpPort = 1, PortId = 1 }], tx);

        // The PMD is running but runs no round: the first publish times out and stays pending.
        rig.State.Epoch.SetOnline(rig.State.EpochIndex);
        Assert.False(rig.State.Publish(late, pmdRunning: true, TimeSpan.FromMilliseconds(20)));
        Assert.Same(late, rig.State.PendingPlan);
        Assert.Equal(1, rig.State.Epoch.DeferredCount); // its release waits for the epoch

        // The next publish replaces it (never applied, freed whole); the PMD applies only that one.
        bool applied = false;
        var publisher = new Thread(() => applied = rig.State.Publish(newest, pmdRunning: true, TimeSpan.FromSeconds(10)));
        publisher.Start();
        while (rig.State.PendingPlan != newest)
        {
            Thread.Yield();
        }

        var until = DateTime.UtcNow.AddSeconds(10);
        while (publisher.IsAlive && DateTime.UtcNow < until)
        {
            rig.Loop.Poll(); // a running PMD keeps passing round boundaries
            Thread.Yield();
        }

        Assert.True(publisher.Join(TimeSpan.FromSeconds(10)) && applied);
        Assert.True(newest.Applied && newest.Released);
        Assert.True(!late.Applied && late.Released); // superseded: freed once, when the newer plan replaced it
        Assert.Equal(0, rig.State.Epoch.DeferredCount);
        Assert.Null(rig.State.PendingPlan);
        Assert.Equal(1, rig.State.RxQueueCount);
        Assert.Equal(1, rig.State.RxQueues[0].DpPort);
    }

    [Fact]
    public void An_idle_pmd_sleeps_longer_each_empty_round_up_to_the_maximum_and_wakes_on_traffic()
    {
        using var rig = new Rig(rewrite: false);
        rig.State.SleepMaxMicros = 35;
        var packet = rig.Mbufs.Create(Frames.Udp(1));
        long allocated = 0;
        void Poll()
        {
            long a = GC.GetAllocatedBytesForCurrentThread();
            rig.Loop.Poll();
            allocated += GC.GetAllocatedBytesForCurrentThread() - a;
        }

        long total = 0;
        foreach (var step in new[] { 10L, 20, 30, 35, 35 })
        {
            Poll();
            total += step;
            Assert.Equal(total, rig.Ports.SleptMicros);
        }

        rig.Ports.Inject(0, packet);
        Poll(); // traffic: no sleep, back-off reset
        Assert.Equal(total, rig.Ports.SleptMicros);
        Assert.Equal(1, rig.Ports.TxCount[1]);
        Poll();
        Assert.Equal(total + 10, rig.Ports.SleptMicros);
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void The_gap_histogram_and_maximum_show_one_long_stall_among_many_short_rounds()
    {
        using var rig = new Rig(rewrite: false);
        for (int i = 0; i < 5000; i++)
        {
            if (i == 2500)
            {
                rig.Ports.Clock += 1_000_000; // the PMD was stopped here (a GC pause, a preemption)
            }

            rig.Loop.Poll();
        }

        var c = *rig.State.Counters;
        Assert.InRange(c.GapMaxCycles, 1_000_000UL, 1_001_000UL);
        ulong p999 = PmdCounters.GapQuantile(c, default, 0.999);
        Assert.InRange(p999, 1UL, 1_000UL); // one stall in 5000 rounds is above the 99.9th percentile
        Assert.InRange(PmdCounters.GapQuantile(c, default, 1.0), 1_000_000UL, 1_250_000UL); // bucket bound: within 25 %
        ulong rounds = 0;
        for (int b = 0; b < PmdCounters.GapBuckets; b++)
        {
            rounds += c.GapHistogram[b];
        }

        Assert.Equal(c.Rounds, rounds);
    }
}
