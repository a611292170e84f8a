// MacLearningTests.cs - NORMAL's learning through the MAC table's single writer: PMDs post learn
// events, one writer applies them, cached-only hosts stay learned, and a flood verdict follows the
// table once the destination is known.
using VSwitch.FlowText;
using VSwitch.Pipeline;
using Xunit;
using static VSwitch.Tests.PipelineTests;

namespace VSwitch.Tests;

public sealed class MacLearningTests
{
    private const ulong HostA = 0x02000000000A, HostX = 0x02000000000F;

    private static byte[] Frame(ulong src, ulong dst) => FrameBuilder.Build(new FrameSpec { Src = src, Dst = dst, Proto = 17, Payload = new byte[18] });

    private static Rig NormalRig()
    {
        var rig = new Rig();
        rig.Load(FlowParser.ParseRules("priority=0,actions=normal", "test"));
        return rig;
    }

    [Fact]
    public void A_flood_verdict_becomes_unicast_once_the_learner_knows_the_destination()
    {
        using var rig = NormalRig();
        rig.Send(1, [Frame(HostA, HostX)]); // X unknown: flood
        Assert.Equal([1, 1, 1], new[] { rig.Out(2).Count, rig.Out(3).Count, rig.Out(4).Count });
        rig.Send(2, [Frame(HostX, HostA)]); // A was learned on 1: one output
        Assert.Single(rig.Out(1));
        Assert.Empty(rig.Out(3));
        rig.Send(1, [Frame(HostA, HostX), Frame(HostA, HostX)]); // the cached flood is revalidated: X is on 2
        Assert.Equal(2, rig.Out(2).Count);
        Assert.Empty(rig.Out(3));
        Assert.Empty(rig.Out(4));
        Assert.Equal(1, rig.Shared.Macs.Lookup(HostA, 0));
        Assert.Equal(2, rig.Shared.Macs.Lookup(HostX, 0));
    }

    [Fact]
    public void The_pmd_never_writes_the_mac_table_itself()
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("priority=0,actions=normal", "test"));
        rig.Ports.Inject(0, rig.Mbufs.Create(Frame(HostA, HostX), 0));
        while (rig.Loop.Poll() != 0)
        {
        }

        long gen = rig.Shared.Macs.Generation;
        Assert.Equal(-1, rig.Shared.Macs.Lookup(HostA, 0)); // posted, not yet applied
        Assert.Equal(1, rig.Shared.Learner.Drain());
        Assert.Equal(1, rig.Shared.Macs.Lookup(HostA, 0));
        Assert.Equal(gen + 1, rig.Shared.Macs.Generation);
    }

    [Fact]
    public void A_host_whose_traffic_only_hits_cached_verdicts_is_refreshed_and_not_aged_out()
    {
        using var rig = NormalRig();
        rig.Send(1, [Frame(HostA, HostX)]); // upcall: A posted and learned (generation moves)
        rig.Send(1, [Frame(HostA, HostX)]); // the flood megaflow is revalidated once: A refreshed, no new generation
        Assert.Equal(6, Enumerable.Range(2, 3).Sum(p => rig.Out(p).Count));
        long gen = rig.Shared.Macs.Generation;
        ulong learnedAt = rig.Ports.Clock;
        ulong upcalls = rig.Counters.Upcalls, revalidations = rig.Counters.Revalidations;

        rig.Ports.Clock += 1_000_000_000; // much later: only cached hits from A since
        for (int i = 0; i < 20; i++)
        {
            rig.Send(1, [Frame(HostA, HostX)]);
            Assert.Equal(3, Enumerable.Range(2, 3).Sum(p => rig.Out(p).Count));
        }

        for (int r = 0; r < 20_000; r++) // the refresh cursor visits every megaflow slot (64 every 256 rounds)
        {
            rig.Loop.Poll();
        }

        rig.Shared.Learner.Drain();
        Assert.Equal(upcalls, rig.Counters.Upcalls);
        Assert.Equal(revalidations, rig.Counters.Revalidations);
        Assert.Equal(0, rig.Shared.Learner.Age(learnedAt + 1)); // A was seen after learnedAt: kept
        Assert.Equal(1, rig.Shared.Macs.Lookup(HostA, 0));
        Assert.Equal(gen, rig.Shared.Macs.Generation); // refreshing a known binding invalidates nothing
        Assert.Equal(1, rig.Shared.Learner.Age(rig.Ports.Clock + 1)); // and it does age once silent
    }

    [Fact]
    public void Two_pmds_learning_colliding_macs_on_different_ports_bind_each_to_its_own_port()
    {
        // Both PMDs' events go through one writer, so neither can overwrite the other's slot.
        var macs = new MacTable(64);
        var learner = new MacLearner(macs);
        using var one = new LearnRing(256);
        using var two = new LearnRing(256);
        learner.Register(one);
        learner.Register(two);
        for (int i = 0; i < 24; i++)
        {
            Assert.True(one.TryPut(0x020000000000UL + (ulong)i, 0, 1, 10));
            Assert.True(two.TryPut(0x020000010000UL + (ulong)i, 0, 2, 10));
        }

        Assert.Equal(48, learner.Drain());
        for (int i = 0; i < 24; i++)
        {
            Assert.Equal(1, macs.Lookup(0x020000000000UL + (ulong)i, 0));
            Assert.Equal(2, macs.Lookup(0x020000010000UL + (ulong)i, 0));
        }
    }

    [Fact]
    public void A_full_learn_ring_refuses_and_the_pmd_counts_the_drop()
    {
        using var ring = new LearnRing(4);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(ring.TryPut((ulong)i + 2, 0, 1, 0));
        }

        Assert.False(ring.TryPut(99, 0, 1, 0));
        var macs = new MacTable(16);
        Assert.Equal(4, ring.DrainInto(macs));
        Assert.True(ring.TryPut(99, 0, 1, 0));

        using var rig = NormalRig();
        for (int i = 0; i < 5000; i++) // 5000 distinct sources in one go, more than a ring holds
        {
            rig.Ports.Inject(0, rig.Mbufs.Create(Frame(0x020000100000UL + (ulong)i, HostX), 0));
        }

        while (rig.Loop.Poll() != 0)
        {
        }

        Assert.True(rig.Counters.LearnDrops > 0);
        Assert.Equal(4096, rig.Shared.Learner.Drain());
    }
}
