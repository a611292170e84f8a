// GcHabitsTests.cs - what keeps the garbage collector's stops of the PMDs short while the control
// plane loads big tables (Datapath/GcQuiet.cs, Pipeline/FlowModel.cs, FlowText/FlowParser.cs). The
// pauses themselves are measured by bench/GcLoad and bench/pmdgap.sh, not here: these tests pin the
// mechanisms down (modes switched and restored, counters in shared native blocks, shared action
// lists) so that a change that undoes one of them fails.
using System.Runtime;
using VSwitch.Datapath;
using VSwitch.FlowText;
using VSwitch.Pipeline;
using Xunit;

namespace VSwitch.Tests;

[CollectionDefinition("gc-mode", DisableParallelization = true)]
public sealed class GcModeCollection;

[Collection("gc-mode")]
public sealed class GcHabitsTests
{
    [Fact]
    public void A_control_scope_holds_low_latency_and_the_mode_comes_back_after_the_linger()
    {
        Assert.False(GCSettings.IsServerGC); // the test project's GC is vswitchd's: workstation, concurrent
        var before = GCSettings.LatencyMode;
        Assert.NotEqual(GCLatencyMode.LowLatency, before);
        using (GcQuiet.Enter())
        {
            Assert.Equal(GCLatencyMode.LowLatency, GCSettings.LatencyMode);
            using (GcQuiet.Enter())
            {
                Assert.Equal(2, GcQuiet.Depth);
            }

            Assert.Equal(GCLatencyMode.LowLatency, GCSettings.LatencyMode);
        }

        // the state writer and the next chunk of a streamed load come within the linger: still low
        Assert.Equal(GCLatencyMode.LowLatency, GCSettings.LatencyMode);
        Assert.True(GcQuiet.Active);
        using (GcQuiet.Enter())
        {
        }

        var deadline = DateTime.UtcNow + GcQuiet.Linger + TimeSpan.FromSeconds(5);
        while (GcQuiet.Active && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(20);
        }

        Assert.False(GcQuiet.Active);
        Assert.Equal(0, GcQuiet.Depth);
        Assert.Equal(before, GCSettings.LatencyMode);
    }

    [Fact]
    public void Configure_makes_the_mode_between_operations_sustained_low_latency_and_a_scope_returns_to_it()
    {
        var before = GCSettings.LatencyMode;
        try
        {
            GcQuiet.Configure();
            Assert.Equal(GCLatencyMode.SustainedLowLatency, GCSettings.LatencyMode);
            Assert.True(GC.GetGCMemoryInfo(GCKind.Background).Index > 0); // a background collection has run
            using (GcQuiet.Enter())
            {
                Assert.Equal(GCLatencyMode.LowLatency, GCSettings.LatencyMode);
            }

            var deadline = DateTime.UtcNow + GcQuiet.Linger + TimeSpan.FromSeconds(5);
            while (GcQuiet.Active && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }

            Assert.Equal(GCLatencyMode.SustainedLowLatency, GCSettings.LatencyMode);
        }
        finally
        {
            GCSettings.LatencyMode = before;
        }
    }

    [Fact]
    public void Rule_counters_are_distinct_zeroed_slots_across_blocks_and_outlive_collections()
    {
        var counters = new List<RuleCounters>();
        for (int i = 0; i < 700; i++) // three blocks of 256 and part of a fourth
        {
            counters.Add(new RuleCounters());
        }

        Assert.Equal(counters.Count, counters.Select(c => c.Slot).Distinct().Count());
        Assert.All(counters, c => Assert.Equal(0, c.Packets + c.Bytes + (long)c.LastUsedTsc));
        for (int i = 0; i < counters.Count; i++)
        {
            counters[i].Packets = i;
            counters[i].Bytes = 2L * i;
        }

        // garbage counters (their blocks back in the pool, reused zeroed) do not disturb the live ones
        for (int i = 0; i < 2000; i++)
        {
            _ = new RuleCounters();
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var fresh = Enumerable.Range(0, 600).Select(_ => new RuleCounters()).ToList();
        Assert.All(fresh, c => Assert.Equal(0, c.Packets + c.Bytes));
        for (int i = 0; i < counters.Count; i++)
        {
            Assert.Equal(i, counters[i].Packets);
            Assert.Equal(2L * i, counters[i].Bytes);
        }

        Assert.Empty(fresh.Select(c => c.Slot).Intersect(counters.Select(c => c.Slot)));
    }

    [Fact]
    public void A_rule_found_unchanged_takes_no_counter_slot_and_every_published_rule_has_one()
    {
        var shared = new PipelineShared([new PipelinePort(1, "a") { Slot = 0 }, new PipelinePort(2, "b") { Slot = 1 }]);
        var flows = new FlowControl(shared, () => true);
        string Text(int port, int n) => string.Concat(Enumerable.Range(0, n).Select(i =>
            $"priority=100,ip,nw_dst=198.51.{i >> 8}.{i & 255},actions=output:{port}\n"));

        long t0 = CounterBlock.Taken;
        flows.Add(FlowParser.ParseRules(Text(1, 1000), "a"), 1);
        Assert.Equal(1000, CounterBlock.Taken - t0); // made when the version was built
        Assert.All(flows.Current.Rules, r => Assert.NotEqual(0, r.Counters.Slot));
        var before = flows.Current.Rules.ToDictionary(r => r.Match.Value.GetHashCode() ^ r.Priority, r => r.Counters);

        long t1 = CounterBlock.Taken;
        var (added, removed, changed, kept) = flows.Replace(FlowParser.ParseRules(Text(1, 1000), "a"), 2);
        Assert.Equal((0, 0, 0, 1000), (added, removed, changed, kept));
        Assert.Equal(0, CounterBlock.Taken - t1); // the parsed copies never took slots
        Assert.All(flows.Current.Rules, r => Assert.Same(before[r.Match.Value.GetHashCode() ^ r.Priority], r.Counters));

        long t2 = CounterBlock.Taken;
        var (_, _, changed2, kept2) = flows.Replace(FlowParser.ParseRules(Text(2, 10) + Text(1, 1000)[Text(1, 10).Length..], "a"), 3);
        Assert.Equal((10, 990), (changed2, kept2));
        Assert.Equal(10, CounterBlock.Taken - t2); // only the changed rules
    }

    [Fact]
    public void Rules_parsed_together_with_equal_actions_share_one_action_list()
    {
        var rules = FlowParser.ParseRules(
            "priority=5,ip,nw_dst=198.51.100.1,actions=output:2\n" +
            "priority=5,ip,nw_dst=198.51.100.2,actions=output:2\n" +
            "priority=5,ip,nw_dst=198.51.100.3,actions=output:3\n" +
            "priority=5,ip,nw_dst=198.51.100.4,actions=dec_ttl,output:2\n" +
            "priority=5,ip,nw_dst=198.51.100.5,actions=output:2\n", "t");
        Assert.Same(rules[0].Actions, rules[1].Actions);
        Assert.Same(rules[0].Actions, rules[4].Actions);
        Assert.NotSame(rules[0].Actions, rules[2].Actions);
        Assert.NotSame(rules[0].Actions, rules[3].Actions);
        Assert.Equal(ActionKind.Output, Assert.Single(rules[2].Actions).Kind);
        Assert.Equal(3, rules[2].Actions[0].Port);
        Assert.Equal([ActionKind.DecTtl, ActionKind.Output], rules[3].Actions.Select(a => a.Kind));
        Assert.Equal(rules[0].Actions, FlowParser.ParseRule("ip,actions=output:2", "t", 1).Actions);
    }

    [Fact]
    public void A_table_keeps_several_priorities_of_one_match_best_first_and_finds_each()
    {
        var rules = FlowParser.ParseRules(
            "priority=5,ip,nw_dst=198.51.100.1,actions=output:1\n" +
            "priority=9,ip,nw_dst=198.51.100.1,actions=output:2\n" +
            "priority=7,ip,nw_dst=198.51.100.1,actions=output:3\n" +
            "priority=7,ip,nw_dst=198.51.100.2,actions=output:4\n", "t");
        for (int i = 0; i < rules.Count; i++)
        {
            rules[i].Seq = i + 1;
        }

        var t = new FlowTable(0, rules);
        Assert.Equal(4, t.Count);
        Assert.Equal(4, t.Rules.Count());
        var key = FlowParser.ParsePacket("ip,nw_dst=198.51.100.1", "t");
        var wild = default(VSwitch.Packets.FlowKey);
        Assert.Same(rules[1], t.Lookup(key, ref wild));
        foreach (var r in rules)
        {
            Assert.Same(r, t.FindExact(r.Match, r.Priority));
        }

        Assert.Null(t.FindExact(rules[0].Match, 6));
    }
}
