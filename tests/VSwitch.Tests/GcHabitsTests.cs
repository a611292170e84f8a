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
    /// <summary>Waits (up to the linger and 5 s more) until no low-latency stretch is in force.</summary>
    private static void WaitForLingerEnd()
    {
        var deadline = DateTime.UtcNow + GcQuiet.Linger + TimeSpan.FromSeconds(5);
        while (GcQuiet.Active && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(20);
        }
    }

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

        WaitForLingerEnd();

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

            WaitForLingerEnd();

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
    public void The_state_file_formats_rules_into_one_reused_buffer_and_reads_back_equal()
    {
        // Rules with MACs, VLANs, IPv6, masks and several actions: the formatting paths the state
        // writer takes for every rule after every change (it made ~620 bytes of garbage per rule:
        // a builder and a string per rule, a delegate and a boxed enumerator per match, a string per
        // MAC byte; 475 collections per 200 000-rule write in bench/GcLoad, now 3-4).
        var ic = System.Globalization.CultureInfo.InvariantCulture;
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < 2000; i++)
        {
            sb.Append((i % 4) switch
            {
                0 => string.Create(ic, $"table=0,priority=100,ip,nw_dst=10.0.{i >> 8}.{i & 255},actions=output:1\n"),
                1 => string.Create(ic, $"table=1,priority=50,in_port=2,dl_vlan=10,dl_src=02:00:00:00:{i >> 8:x2}:{i & 255:x2},actions=pop_vlan,output:3\n"),
                2 => string.Create(ic, $"table=0,priority=40,tcp6,ipv6_src=2001:db8::{i:x},tp_dst=443,actions=set_field:5->reg0,resubmit(,1)\n"),
                _ => string.Create(ic, $"table=2,priority=30,udp,nw_src=198.51.100.0/24,tp_src={i},actions=mod_dl_dst:02:00:00:00:00:01,output:2\n"),
            });
        }

        var rules = FlowParser.ParseRules(sb.ToString(), "t");
        string path = Path.Combine(Path.GetTempPath(), $"vsw-statefmt-{Environment.ProcessId}.json");
        try
        {
            // The marginal cost of a rule: a save of all the rules against a save of half of them (the
            // writer's own buffers, a fixed cost, cancel out). Only IPv6 addresses still allocate
            // (IPAddress formats them): a quarter of these rules, 128 bytes each.
            var half = rules.Take(rules.Count / 2).ToList();
            VSwitch.Config.StateStore.Save(path, [], rules, 1); // compiles the path
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            VSwitch.Config.StateStore.Save(path, [], half, 1);
            long a1 = GC.GetAllocatedBytesForCurrentThread();
            VSwitch.Config.StateStore.Save(path, [], rules, 1);
            long a2 = GC.GetAllocatedBytesForCurrentThread();
            long perRule = ((a2 - a1) - (a1 - a0)) / (rules.Count - half.Count);
            Assert.True(perRule < 64, $"the state writer allocated {perRule} bytes per rule");
            var back = VSwitch.Config.StateStore.Load(path)!.Rules;
            Assert.Equal(rules.Count, back.Count);
            for (int i = 0; i < rules.Count; i++)
            {
                Assert.True(rules[i].SameIdentity(back[i]) && rules[i].SameActions(back[i]), $"{FlowFormatter.Format(rules[i], false)} came back as {FlowFormatter.Format(back[i], false)}");
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(1000, 24)]
    [InlineData(65536, 32)]
    public void A_subtable_spreads_routes_over_its_slots_and_finds_every_one(int n, int prefix)
    {
        // nw_dst sits in the upper half of a key word, whose bits the key hash's low bits never see:
        // slots taken from the low bits put 1 000 /24 routes into 4 chains of 250.
        var ic = System.Globalization.CultureInfo.InvariantCulture;
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < n; i++)
        {
            uint a = prefix == 24 ? (uint)i << 8 : (uint)i;
            sb.Append(ic, $"priority=10,ip,nw_dst=10.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}/{prefix},actions=output:{1 + (i % 3)}\n");
        }

        var rules = FlowParser.ParseRules(sb.ToString(), "t");
        for (int i = 0; i < rules.Count; i++)
        {
            rules[i].Seq = i + 1;
        }

        var t = new FlowTable(0, rules);
        Assert.Equal(1, t.SubtableCount);
        Assert.True(t.LongestChain() <= 12, $"{n} /{prefix} routes: a chain of {t.LongestChain()}");
        var wild = default(VSwitch.Packets.FlowKey);
        for (int i = 0; i < n; i += 97)
        {
            uint a = prefix == 24 ? ((uint)i << 8) | 77 : (uint)i;
            var key = FlowParser.ParsePacket(string.Create(ic, $"ip,nw_dst=10.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"), "t");
            Assert.Same(rules[i], t.Lookup(key, ref wild));
        }

        Assert.Null(t.Lookup(FlowParser.ParsePacket("ip,nw_dst=192.0.2.1", "t"), ref wild));
        Assert.Equal(n, t.Rules.Count());
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
