// ConjunctionTests.cs - conjunctive matches (conjunction(id,k/n) clauses, conj_id=id rules): their
// syntax and refusals, dumps, Open vSwitch's semantics, megaflow masks that cover every field the
// decision read, and upcalls that allocate nothing. (Agreement with Open vSwitch itself over random
// rule sets: Differential/OvsDifferentialTests; over DPDK ports: ConjunctionDpdkTests.)
using VSwitch.Actions;
using VSwitch.FlowText;
using VSwitch.Packets;
using VSwitch.Pipeline;
using Xunit;

namespace VSwitch.Tests;

public sealed class ConjunctionSyntaxTests
{
    [Theory]
    [InlineData("table=0,priority=100,ip,nw_src=198.51.100.1,actions=conjunction(7,1/2)")]
    [InlineData("table=0,priority=100,tcp,tp_dst=80,actions=conjunction(7,2/2),conjunction(8,3/64)")]
    [InlineData("table=0,priority=100,conj_id=7,actions=output:2")]
    [InlineData("table=3,priority=5,conj_id=4294967295,ip,in_port=1,actions=set_field:10.0.0.1->nw_src,output:2")]
    [InlineData("table=0,priority=1,actions=note:01.02.00.00.00.00,conjunction(0,2/2)")]
    public void Rules_format_back_as_ovs_ofctl_writes_them_and_parse_to_the_same_rule(string text)
    {
        var r = FlowParser.ParseRule(text, "t", 1);
        string again = FlowFormatter.Format(r, withCounters: false);
        Assert.Equal(text, again);
        var r2 = FlowParser.ParseRule(again, "t", 1);
        Assert.True(r.SameIdentity(r2) && r.SameActions(r2));
    }

    [Fact]
    public void Ovs_spellings_with_spaces_and_hex_ids_are_accepted()
    {
        var r = FlowParser.ParseRule("priority=100 ip nw_src=10.0.0.1 actions=conjunction(0x10, 1/2), conjunction( 3 ,2/ 3)", "t", 1);
        Assert.Equal([FlowAction.Conjunction(16, 1, 2), FlowAction.Conjunction(3, 2, 3)], r.Actions);
        Assert.True(r.IsConjunction);
        Assert.Equal("conjunction(16,1/2),conjunction(3,2/3)", FlowFormatter.FormatActions(r.Actions));
        var c = FlowParser.ParseRule("priority=100,conj_id=16,actions=drop", "t", 1);
        Assert.True(c.Match.HasConjId);
        Assert.Equal(16u, c.Match.ConjId);
        Assert.False(c.IsConjunction);
    }

    [Theory]
    [InlineData("priority=1,ip,actions=conjunction(1,1/1)", 39, "at least 2 clauses")]
    [InlineData("priority=1,ip,actions=conjunction(1,1/65)", 39, "at most 64 clauses")]
    [InlineData("priority=1,ip,actions=conjunction(1,3/2)", 37, "less than or equal to the number of clauses, found K=3 of N=2")]
    [InlineData("priority=1,ip,actions=conjunction(1,0/2)", 37, "must be positive")]
    [InlineData("priority=1,ip,actions=conjunction(1,2)", 35, "conjunction(ID,K/N)")]
    [InlineData("priority=1,ip,actions=conjunction(x,1/2)", 35, "the id must be")]
    [InlineData("priority=1,ip,actions=conjunction:1", 34, "expected '(' after 'conjunction'")]
    [InlineData("priority=1,ip,actions=conjunction(1,1/2),output:2", 42, "along with 'note' but not any other kind of action (such as 'output:2' here)")]
    [InlineData("priority=1,ip,actions=output:2,conjunction(1,1/2)", 32, "(such as 'output:2' here)")]
    [InlineData("priority=1,ip,actions=conjunction(1,1/2),goto_table:3", 42, "(such as 'goto_table:3' here)")]
    [InlineData("priority=1,conj_id=5,actions=conjunction(1,1/2)", 30, "no 'conjunction' action in a rule matching conj_id")]
    [InlineData("priority=1,conj_id=0,actions=output:1", 20, "conj_id=0 is refused")]
    [InlineData("priority=1,conj_id=5/0xff,actions=output:1", 21, "without a mask")]
    [InlineData("priority=1,conj_id=5,conj_id=6,actions=output:1", 22, "duplicate 'conj_id'")]
    [InlineData("priority=1,conj_id=4294967296,actions=output:1", 20, "conjunction id from 0 to 4294967295")]
    public void Refusals_name_the_line_the_column_and_what_is_wrong(string text, int column, string what)
    {
        var e = Assert.Throws<FlowSyntaxException>(() => FlowParser.ParseRules("priority=1,actions=drop\n" + text, "acl.flows"));
        Assert.Equal(2, e.Line);
        Assert.Contains(what, e.Detail, StringComparison.Ordinal);
        Assert.Equal(column, e.Column);
    }

    [Fact]
    public void A_conjunction_in_a_group_bucket_is_refused()
    {
        var e = Assert.Throws<FlowSyntaxException>(() => GroupText.ParseGroup("group_id=1,type=all,bucket=actions=conjunction(1,1/2)", "g", 1));
        Assert.Contains("not allowed in a group bucket", e.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_batch_with_a_bad_conjunction_leaves_the_running_tables_untouched()
    {
        var (flows, _) = ConjunctionSemanticsTests.Load("priority=100,conj_id=7,actions=output:2");
        var before = flows.Current;
        Assert.Throws<FlowSyntaxException>(() => flows.Add(FlowParser.ParseRules(
            "priority=100,ip,nw_src=10.0.0.1,actions=conjunction(7,1/2)\npriority=100,tcp,tp_dst=80,actions=conjunction(7,3/2)", "f"), 0));
        Assert.Same(before, flows.Current);
        Assert.Equal(1, flows.Current.RuleCount);
    }

    [Fact]
    public void Del_flows_and_strict_identity_take_conj_id_into_account()
    {
        var (flows, _) = ConjunctionSemanticsTests.Load("""
            priority=100,conj_id=7,actions=output:2
            priority=100,conj_id=8,actions=output:3
            priority=100,actions=output:4
            """);
        var m = FlowParser.ParseMatch("conj_id=7", "t");
        Assert.Equal(1, flows.Delete(new FlowFilter(m.Match, null, null, null, null, Strict: false)));
        Assert.Equal(2, flows.Current.RuleCount);
        var strict = FlowParser.ParseMatch("priority=100,conj_id=8", "t");
        Assert.Equal(1, flows.Delete(new FlowFilter(strict.Match, null, strict.Priority, null, null, Strict: true)));
        Assert.Equal("table=0,priority=100,actions=output:4", FlowFormatter.Format(Assert.Single(flows.Current.Rules), false));
    }
}

public sealed unsafe class ConjunctionSemanticsTests
{
    internal static (FlowControl Flows, PipelineShared Shared) Load(string rules)
    {
        var shared = new PipelineShared(Enumerable.Range(1, 4).Select(p => new PipelinePort(p, $"p{p}")));
        var flows = new FlowControl(shared, () => true);
        flows.Add(FlowParser.ParseRules(rules, "acl.flows"), 0);
        return (flows, shared);
    }

    /// <summary>The ports a packet (trace syntax) goes to, "drop" for none; checks the linear reference agrees.</summary>
    internal static string Verdict(FlowControl flows, PipelineShared shared, string packet)
    {
        var key = FlowParser.ParsePacket(packet, "p");
        var t = new Translation();
        Translator.Translate(flows.Current, key, shared.Macs, t);
        string got = Outputs(t);
        Translator.Translate(flows.Current, key, shared.Macs, t, linear: true);
        Assert.Equal(Outputs(t), got);
        return got;
    }

    /// <summary>Loads <paramref name="rules"/> and checks each packet's verdict.</summary>
    private static void Expect(string rules, params (string Packet, string Want)[] cases)
    {
        var (flows, shared) = Load(rules);
        foreach (var (packet, want) in cases)
        {
            Assert.True(want == Verdict(flows, shared, packet), $"{packet}: expected {want}, got {Verdict(flows, shared, packet)}");
        }
    }

    private static string Outputs(Translation t)
    {
        var ports = t.Ops.Take(t.OpCount).Where(o => o.Op == DpOp.Output).Select(o => (o.A + 1).ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        return ports.Count == 0 ? "drop" : string.Join(",", ports);
    }

    private const string Acl = """
        table=0,priority=100,ip,nw_src=198.51.100.1,actions=conjunction(7,1/2)
        table=0,priority=100,ip,nw_src=198.51.100.2,actions=conjunction(7,1/2)
        table=0,priority=100,tcp,tp_dst=80,actions=conjunction(7,2/2)
        table=0,priority=100,tcp,tp_dst=443,actions=conjunction(7,2/2)
        table=0,priority=100,conj_id=7,actions=output:2
        """;

    [Theory]
    [InlineData("in_port=1,tcp,nw_src=198.51.100.1,tp_dst=80", "2")]
    [InlineData("in_port=1,tcp,nw_src=198.51.100.2,tp_dst=443", "2")]
    [InlineData("in_port=1,tcp,nw_src=198.51.100.3,tp_dst=80", "drop")]
    [InlineData("in_port=1,tcp,nw_src=198.51.100.1,tp_dst=81", "drop")]
    [InlineData("in_port=1,udp,nw_src=198.51.100.1,tp_dst=80", "drop")]
    public void A_packet_matches_when_every_dimension_has_a_matching_clause(string packet, string want)
    {
        var (flows, shared) = Load(Acl);
        Assert.Equal(want, Verdict(flows, shared, packet));
    }

    [Fact]
    public void The_conj_id_rule_takes_the_counters_and_clause_rules_never_do()
    {
        var (flows, shared) = Load(Acl);
        var key = FlowParser.ParsePacket("in_port=1,tcp,nw_src=198.51.100.1,tp_dst=80", "p");
        var t = new Translation();
        Translator.Translate(flows.Current, key, shared.Macs, t);
        var conj = flows.Current.Rules.Single(r => r.Match.HasConjId);
        Assert.Equal(conj.Counters.Slot, Assert.Single(t.RuleSlots.Take(t.RuleCount)));
        var (lines, _, _) = flows.Trace(key);
        Assert.Contains(lines, l => l.Contains("conjunction 7 matched", StringComparison.Ordinal));
    }

    [Fact]
    public void A_higher_priority_ordinary_rule_wins_and_a_lower_one_applies_when_the_conjunction_fails()
    {
        var (flows, shared) = Load(Acl + """

            table=0,priority=200,tcp,nw_src=198.51.100.2,tp_dst=443,actions=output:3
            table=0,priority=100,tcp,tp_dst=81,actions=output:1
            table=0,priority=50,ip,actions=output:4
            """);
        Assert.Equal("3", Verdict(flows, shared, "in_port=1,tcp,nw_src=198.51.100.2,tp_dst=443"));
        Assert.Equal("2", Verdict(flows, shared, "in_port=1,tcp,nw_src=198.51.100.2,tp_dst=80"));
        Assert.Equal("4", Verdict(flows, shared, "in_port=1,tcp,nw_src=198.51.100.9,tp_dst=80"));
        // an ordinary rule at the conjunction's own priority beats its clauses (in_port=1: output:1 skipped)
        Assert.Equal("drop", Verdict(flows, shared, "in_port=1,tcp,nw_src=198.51.100.1,tp_dst=81"));
        Assert.Equal("1", Verdict(flows, shared, "in_port=2,tcp,nw_src=198.51.100.1,tp_dst=81"));
    }

    [Fact]
    public void A_rule_can_be_a_clause_of_several_conjunctions()
    {
        Expect("""
            priority=100,ip,nw_src=10.0.0.1,actions=conjunction(1,1/2),conjunction(2,1/2)
            priority=100,ip,nw_src=10.0.0.2,actions=conjunction(2,1/2)
            priority=100,tcp,tp_dst=80,actions=conjunction(1,2/2)
            priority=100,tcp,tp_dst=443,actions=conjunction(2,2/2)
            priority=100,conj_id=1,actions=output:2
            priority=100,conj_id=2,actions=output:3
            """,
            ("in_port=1,tcp,nw_src=10.0.0.1,tp_dst=80", "2"),
            ("in_port=1,tcp,nw_src=10.0.0.1,tp_dst=443", "3"),
            ("in_port=1,tcp,nw_src=10.0.0.2,tp_dst=443", "3"),
            ("in_port=1,tcp,nw_src=10.0.0.2,tp_dst=80", "drop"));
    }

    [Fact]
    public void Clauses_at_different_priorities_are_different_conjunctions()
    {
        // Open vSwitch: flows with the same id but different priorities are different conjunctive flows.
        Expect("""
            priority=100,ip,nw_src=10.0.0.1,actions=conjunction(1,1/2)
            priority=90,tcp,tp_dst=80,actions=conjunction(1,2/2)
            priority=90,ip,nw_dst=10.9.9.9,actions=conjunction(1,1/2)
            priority=100,conj_id=1,actions=output:2
            """,
            ("in_port=1,tcp,nw_src=10.0.0.1,tp_dst=80", "drop"),
            ("in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.9.9.9,tp_dst=80", "2"));
    }

    [Fact]
    public void The_conj_id_rule_is_searched_like_any_rule_and_a_failed_search_goes_on_with_lower_rules()
    {
        Expect("""
            priority=100,ip,nw_src=10.0.0.1,actions=conjunction(1,1/2)
            priority=100,tcp,tp_dst=80,actions=conjunction(1,2/2)
            priority=100,conj_id=1,in_port=1,actions=output:2
            priority=100,conj_id=1,in_port=2,ip,actions=mod_nw_src:10.1.1.1,output:3
            priority=10,ip,actions=output:4
            """,
            ("in_port=1,tcp,nw_src=10.0.0.1,tp_dst=80", "2"),
            ("in_port=2,tcp,nw_src=10.0.0.1,tp_dst=80", "3"),
            ("in_port=3,tcp,nw_src=10.0.0.1,tp_dst=80", "4"));
    }

    [Fact]
    public void A_conj_id_rule_below_the_ordinary_match_loses_to_it()
    {
        Expect("""
            priority=100,ip,nw_src=10.0.0.1,actions=conjunction(1,1/2)
            priority=100,tcp,tp_dst=80,actions=conjunction(1,2/2)
            priority=10,conj_id=1,actions=output:2
            priority=50,ip,actions=output:4
            """,
            ("in_port=1,tcp,nw_src=10.0.0.1,tp_dst=80", "4"));
    }

    [Fact]
    public void A_failed_clause_uncovers_the_lower_priority_rule_with_the_same_match()
    {
        Expect("""
            priority=100,ip,nw_src=10.0.0.1,actions=conjunction(1,1/2)
            priority=100,tcp,tp_dst=80,actions=conjunction(1,2/2)
            priority=100,conj_id=1,actions=output:2
            priority=50,ip,nw_src=10.0.0.1,actions=output:3
            priority=40,ip,nw_src=10.0.0.1,actions=output:1
            priority=10,ip,actions=output:4
            """,
            ("in_port=1,tcp,nw_src=10.0.0.1,tp_dst=80", "2"),
            ("in_port=1,tcp,nw_src=10.0.0.1,tp_dst=22", "3"),
            ("in_port=1,tcp,nw_src=10.0.0.2,tp_dst=80", "4"));
    }

    [Fact]
    public void Three_dimensions_need_all_three()
    {
        Expect("""
            priority=100,ip,nw_src=10.0.0.1,actions=conjunction(3,1/3)
            priority=100,ip,nw_dst=10.0.0.2,actions=conjunction(3,2/3)
            priority=100,ip,nw_dst=10.0.0.3,actions=conjunction(3,2/3)
            priority=100,tcp,tp_dst=80,actions=conjunction(3,3/3)
            priority=100,conj_id=3,actions=output:2
            """,
            ("in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.3,tp_dst=80", "2"),
            ("in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.4,tp_dst=80", "drop"),
            ("in_port=1,udp,nw_src=10.0.0.1,nw_dst=10.0.0.3,tp_dst=80", "drop"));
    }

    [Fact]
    public void Sixty_four_dimensions_need_all_sixty_four()
    {
        // One clause per metadata bit: 64 masks, 64 soft matches. (Open vSwitch takes any one clause
        // of a 64-dimension conjunction once 64 soft matches exist; docs/FLOWS.md.)
        var rules = string.Join("\n", Enumerable.Range(0, 64).Select(b => $"priority=100,metadata=0x{1UL << b:x}/0x{1UL << b:x},actions=conjunction(9,{b + 1}/64)"));
        var (flows, shared) = Load(rules + "\npriority=100,conj_id=9,actions=output:2\npriority=100,metadata=0x1/0x1,ip,actions=conjunction(10,1/2)");
        Assert.Equal("2", Verdict(flows, shared, "in_port=1,ip,metadata=0xffffffffffffffff"));
        Assert.Equal("drop", Verdict(flows, shared, "in_port=1,ip,metadata=0xfffffffffffffff7"));
    }

    [Fact]
    public void A_rule_that_is_both_clauses_of_an_id_counts_only_beside_a_second_clause_rule()
    {
        // Open vSwitch 3.1 skips conjunctions of more dimensions than there are clause rules matching
        // at that priority (checked with ofproto/trace: drop alone, output:2 beside another clause rule).
        Expect("""
            priority=300,ip,nw_src=10.0.0.1,actions=conjunction(5,1/2),conjunction(5,2/2)
            priority=300,ip,nw_dst=10.0.0.2,actions=conjunction(6,1/3)
            priority=300,conj_id=5,actions=output:2
            """,
            ("in_port=1,ip,nw_src=10.0.0.1,nw_dst=10.0.0.9", "drop"),
            ("in_port=1,ip,nw_src=10.0.0.1,nw_dst=10.0.0.2", "2"));
    }

    [Fact]
    public void A_sixty_four_dimension_conjunction_is_not_completed_by_other_ids_clause_rules()
    {
        // The one difference from Open vSwitch 3.1 (docs/FLOWS.md): there, 63 of the 64 clauses plus a
        // clause rule of another conjunction at the same priority (64 soft matches) complete it
        // (ofproto/trace: output:2); the 64th clause is missing, so here it does not.
        var rules = string.Join("\n", Enumerable.Range(0, 64).Select(b => $"priority=100,metadata=0x{1UL << b:x}/0x{1UL << b:x},actions=conjunction(9,{b + 1}/64)"));
        var (flows, shared) = Load(rules + "\npriority=100,conj_id=9,actions=output:2\npriority=100,ip,nw_src=10.0.0.1,actions=conjunction(10,1/2)");
        Assert.Equal("drop", Verdict(flows, shared, "in_port=1,ip,nw_src=10.0.0.1,metadata=0x7fffffffffffffff"));
        Assert.Equal("2", Verdict(flows, shared, "in_port=1,ip,nw_src=10.0.0.1,metadata=0xffffffffffffffff"));
    }

    [Fact]
    public void A_clause_field_is_in_the_megaflow_so_a_cached_verdict_never_covers_a_packet_classified_otherwise()
    {
        var (flows, shared) = Load(Acl + "\ntable=0,priority=1,actions=output:3");
        var a = FlowParser.ParsePacket("in_port=1,tcp,nw_src=198.51.100.1,tp_dst=80", "p");
        var b = FlowParser.ParsePacket("in_port=1,tcp,nw_src=198.51.100.1,tp_dst=81", "p");
        var c = FlowParser.ParsePacket("in_port=1,tcp,nw_src=198.51.100.7,tp_dst=80", "p");
        foreach (var (first, other) in new[] { (a, b), (b, a), (a, c), (c, a) })
        {
            var t = new Translation();
            Translator.Translate(flows.Current, first, shared.Macs, t);
            var w = t.Wildcards;
            Assert.False(first.MaskedBy(w).Equals(other.MaskedBy(w)), "the two packets differ in a bit the megaflow matches");
        }

        // and over the datapath's caches: the first packet's megaflow does not swallow the second
        using var rig = new PipelineTests.Rig();
        rig.Load(FlowParser.ParseRules(Acl + "\ntable=0,priority=1,actions=output:3", "acl"));
        var fa = FrameBuilder.Build(new FrameSpec { Proto = 6, NwSrc = FrameBuilder.Ip("198.51.100.1"), DstPort = 80 });
        var fb = FrameBuilder.Build(new FrameSpec { Proto = 6, NwSrc = FrameBuilder.Ip("198.51.100.1"), DstPort = 81 });
        rig.Send(1, [fa, fb, fa, fb]);
        Assert.Equal(2, rig.Out(2).Count);
        Assert.Equal(2, rig.Out(3).Count);
    }

    [Fact]
    public void Random_conjunctive_rule_sets_give_cached_verdicts_that_hold_for_every_packet_they_cover()
    {
        // Property: for each packet P, every packet Q that agrees with P on P's megaflow mask gets
        // P's verdict; and the classifier agrees with the linear reference.
        int cases = 0;
        for (int seed = 1; seed <= 40; seed++)
        {
            var rnd = new Random(seed);
            var (flows, shared) = Load(RandomRules(rnd));
            var keys = new List<FlowKey>();
            for (int i = 0; i < 120; i++)
            {
                keys.Add(FlowParser.ParsePacket(
                    $"in_port={1 + rnd.Next(3)},{(rnd.Next(4) == 0 ? "udp" : "tcp")},nw_src=10.0.0.{rnd.Next(4)},nw_dst=10.0.1.{rnd.Next(3)},tp_src={rnd.Next(2)},tp_dst={80 + rnd.Next(4)}", "p"));
            }

            var t = new Translation();
            var verdicts = new List<string>();
            var masks = new List<FlowKey>();
            foreach (var k in keys)
            {
                Translator.Translate(flows.Current, k, shared.Macs, t);
                verdicts.Add(string.Join(";", t.Ops.Take(t.OpCount).Select(o => o.ToString())));
                masks.Add(t.Wildcards);
                Translator.Translate(flows.Current, k, shared.Macs, t, linear: true);
                Assert.Equal(verdicts[^1], string.Join(";", t.Ops.Take(t.OpCount).Select(o => o.ToString())));
            }

            for (int i = 0; i < keys.Count; i++)
            {
                for (int j = 0; j < keys.Count; j++)
                {
                    if (keys[i].MaskedBy(masks[i]).Equals(keys[j].MaskedBy(masks[i])))
                    {
                        cases++;
                        Assert.True(verdicts[i] == verdicts[j], $"seed {seed}: packets {i} and {j} share a megaflow but not a verdict");
                    }
                }
            }
        }

        Assert.True(cases > 5000, $"only {cases} covered pairs");
    }

    private static string RandomRules(Random rnd)
    {
        var lines = new List<string>();
        string Clause() => rnd.Next(5) switch
        {
            0 => $"ip,nw_src=10.0.0.{rnd.Next(4)}",
            1 => $"ip,nw_dst=10.0.1.{rnd.Next(3)}",
            2 => $"tcp,tp_dst={80 + rnd.Next(4)}",
            3 => $"in_port={1 + rnd.Next(3)}",
            _ => $"tcp,tp_src={rnd.Next(2)},nw_src=10.0.0.{rnd.Next(2)}/31",
        };
        for (int id = 1; id <= 1 + rnd.Next(4); id++)
        {
            int n = 2 + rnd.Next(3), pri = 100 + 10 * rnd.Next(3);
            for (int k = 1; k <= n; k++)
            {
                for (int c = 0; c < 1 + rnd.Next(3); c++)
                {
                    string more = rnd.Next(4) == 0 ? $",conjunction({id + 10},{1 + rnd.Next(2)}/2)" : "";
                    lines.Add($"priority={pri},{Clause()},actions=conjunction({id},{k}/{n}){more}");
                }
            }

            if (rnd.Next(5) != 0)
            {
                string extra = rnd.Next(3) == 0 ? $",in_port={1 + rnd.Next(3)}" : "";
                lines.Add($"priority={90 + 10 * rnd.Next(4)},conj_id={id}{extra},actions=output:{1 + rnd.Next(4)}");
            }

            if (rnd.Next(2) == 0)
            {
                lines.Add($"priority=100,conj_id={id + 10},actions=output:4");
            }
        }

        for (int i = 0; i < 6; i++)
        {
            lines.Add($"priority={95 + 5 * rnd.Next(5)},{Clause()},actions=output:{1 + rnd.Next(4)}");
        }

        // identical matches at several priorities (a clause over an ordinary rule and vice versa)
        lines = lines.GroupBy(l => l).Select(g => g.First()).ToList();
        return string.Join("\n", lines.Where((_, i) => i < 200));
    }

    [Fact]
    public void A_conjunctive_upcall_allocates_nothing()
    {
        var (flows, shared) = Load(Acl + """

            table=0,priority=100,ip,nw_dst=10.0.0.0/8,actions=conjunction(8,1/2),conjunction(9,1/3)
            table=0,priority=100,tcp,tp_src=1000,actions=conjunction(8,2/2),conjunction(9,2/3)
            table=0,priority=100,in_port=1,actions=conjunction(9,3/3)
            table=0,priority=100,conj_id=9,actions=output:3
            table=0,priority=10,ip,actions=output:4
            """);
        var keys = Enumerable.Range(0, 64).Select(i => FlowParser.ParsePacket(
            $"in_port={1 + (i % 2)},tcp,nw_src=198.51.100.{i % 3},nw_dst=10.0.0.{i},tp_src={1000 + (i % 4)},tp_dst={(i % 5 == 0 ? 443 : 80)}", "p")).ToArray();
        var t = new Translation();
        var v = flows.Current;
        foreach (var k in keys)
        {
            Translator.Translate(v, k, shared.Macs, t);
        }

        long windows = long.MaxValue;
        for (int w = 0; w < 3 && windows != 0; w++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            foreach (var k in keys)
            {
                Translator.Translate(v, k, shared.Macs, t);
            }

            windows = GC.GetAllocatedBytesForCurrentThread() - before;
        }

        Assert.Equal(0, windows);
    }

    [Fact]
    public void Rules_persist_as_text_and_load_back_the_same()
    {
        var (flows, _) = Load(Acl);
        string text = string.Join("\n", flows.Current.Dump().Select(r => FlowFormatter.Format(r, withCounters: false)));
        var (again, shared2) = Load(text);
        Assert.Equal(flows.Current.RuleCount, again.Current.RuleCount);
        Assert.Equal("2", Verdict(again, shared2, "in_port=1,tcp,nw_src=198.51.100.2,tp_dst=80"));
    }
}
