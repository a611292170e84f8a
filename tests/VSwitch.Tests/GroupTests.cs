// GroupTests.cs - groups (issue 14): the group syntax, group:N in rules, and each group type's
// datapath semantics through the in-memory PMD rig (upcall, then cached verdicts).
using System.Buffers.Binary;
using VSwitch.FlowText;
using VSwitch.Pipeline;
using Xunit;

namespace VSwitch.Tests;

public sealed class GroupSyntaxTests
{
    [Theory]
    [InlineData("group_id=1,type=all,bucket=actions=output:1,bucket=actions=mod_dl_src:00:00:00:00:00:09,output:3")]
    [InlineData("group_id=7,type=select,selection_method=hash,fields(ip_src,tcp_dst),bucket=weight:3,actions=output:1,bucket=weight:1,actions=output:2")]
    [InlineData("group_id=4294967040,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=push_vlan:0x8100,mod_vlan_vid:5,output:3")]
    [InlineData("group_id=0,type=indirect,bucket=actions=drop")]
    [InlineData("group_id=2,type=all,bucket=bucket_id:5,actions=group:1,bucket=bucket_id:9,actions=resubmit(,2)")]
    public void A_group_formats_back_to_text_that_parses_to_the_same_group(string text)
    {
        var g = GroupText.ParseGroup(text, "t", 1);
        var again = GroupText.ParseGroup(GroupText.Format(g, false), "t", 1);
        Assert.True(g.SameAs(again), GroupText.Format(again, false));
        Assert.Equal(g.Id, again.Id);
        var withCounters = GroupText.ParseGroup(GroupText.Format(g, true), "t", 1); // dump-groups' line loads back
        Assert.True(g.SameAs(withCounters));
    }

    [Fact]
    public void Ovs_spellings_are_accepted()
    {
        var g = GroupText.ParseGroup("group_id=3, type=select, bucket=output:1, bucket=weight=2,output:2", "t", 1);
        Assert.Equal(GroupType.Select, g.Type);
        Assert.Equal(2, g.Buckets.Length);
        Assert.Equal(2, g.Buckets[1].Weight);
        Assert.Equal(ActionKind.Output, Assert.Single(g.Buckets[0].Actions).Kind);
        var m = GroupText.ParseGroup("group_id=3,type=select,fields=ip_dst,bucket=actions=output:1", "t", 1);
        Assert.Equal([Fields.NwDst], m.SelectionFields);
    }

    [Theory]
    [InlineData("type=all,bucket=actions=output:1", 1, "group_id=N")]
    [InlineData("group_id=1,type=bogus,bucket=actions=output:1", 17, "group type")]
    [InlineData("group_id=1,type=all,bucket=actions=output:x", 43, "port number")]
    [InlineData("group_id=1,type=indirect,bucket=actions=output:1,bucket=actions=output:2", 50, "one bucket")]
    [InlineData("group_id=1,type=select,fields(ip_src,bogus),bucket=output:1", 38, "packet field")]
    [InlineData("group_id=1,type=all,fields(ip_src),bucket=output:1", 12, "type=select")]
    [InlineData("group_id=1,type=all,bucket=actions=goto_table:2", 36, "not allowed in a group bucket")]
    [InlineData("group_id=1,type=all,bucket=weight:x,actions=output:1", 35, "a weight")]
    [InlineData("group_id=99999999999,type=all", 10, "group id")]
    public void Errors_name_the_line_and_column(string text, int column, string what)
    {
        var e = Assert.Throws<FlowSyntaxException>(() => GroupText.ParseGroups("# groups\n" + text, "g.txt"));
        Assert.Equal(2, e.Line);
        Assert.Equal(column, e.Column);
        Assert.Contains(what, e.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Bucket_actions_run_in_action_set_order_as_in_open_vswitch()
    {
        var g = GroupText.ParseGroup("group_id=1,type=all,bucket=output:1,mod_nw_src:1.2.3.4,output:2,controller", "t", 1);
        var ex = g.Buckets[0].Executed;
        Assert.Equal([ActionKind.SetField, ActionKind.Output], ex.Select(a => a.Kind));
        Assert.Equal(2, ex[1].Port); // only the last output of an action set
    }

    [Fact]
    public void A_rule_naming_a_missing_group_is_refused_and_deleting_a_group_deletes_its_rules()
    {
        var shared = new PipelineShared(Enumerable.Range(1, 4).Select(p => new PipelinePort(p, $"p{p}")));
        var flows = new FlowControl(shared, () => true);
        var e = Assert.Throws<VSwitchException>(() => flows.Add(FlowParser.ParseRules("priority=1,actions=group:5", "f"), 0));
        Assert.Contains("group:5 names no group", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, flows.Current.RuleCount);

        flows.AddGroups(GroupText.ParseGroups("group_id=5,type=all,bucket=output:2\ngroup_id=6,type=indirect,bucket=group:5", "g"), 0);
        Assert.Throws<VSwitchException>(() => flows.AddGroups(GroupText.ParseGroups("group_id=5,type=all,bucket=output:3", "g"), 0));
        Assert.Throws<VSwitchException>(() => flows.ModifyGroups(GroupText.ParseGroups("group_id=8,type=all,bucket=output:3", "g")));
        flows.Add(FlowParser.ParseRules("priority=1,in_port=1,actions=group:5\npriority=1,in_port=2,actions=output:1", "f"), 0);
        Assert.Throws<VSwitchException>(() => flows.DeleteGroups(5)); // group 6's bucket names it
        Assert.Equal((1, 0), flows.DeleteGroups(6));
        Assert.Equal((1, 1), flows.DeleteGroups(5));
        Assert.Equal(1, flows.Current.RuleCount);
        Assert.Empty(flows.Current.Groups);
    }
}

public sealed class GroupDatapathTests
{
    private static byte[] Tcp(ushort sport = 1234, uint src = 0xC0000201, List<(ushort, ushort)>? tags = null) =>
        FrameBuilder.Build(new FrameSpec { SrcPort = sport, NwSrc = src, Tags = tags ?? [], Payload = new byte[18] });

    private static (PipelineTests.Rig Rig, FlowControl Flows) Setup(string groups, string rules, IEnumerable<PipelinePort>? ports = null)
    {
        var rig = new PipelineTests.Rig(ports: 4, emcInvProb: 1, portSpecs: ports);
        var flows = new FlowControl(rig.Shared, () => true);
        flows.AddGroups(GroupText.ParseGroups(groups, "g"), 1);
        flows.Add(FlowParser.ParseRules(rules, "f"), 1);
        return (rig, flows);
    }

    private static ulong SrcMac(byte[] f) => BinaryPrimitives.ReadUInt64BigEndian(f.AsSpan(4)) & 0xFFFF_FFFF_FFFF;

    [Fact]
    public void All_sends_a_copy_through_every_bucket_and_a_buckets_rewrites_stay_in_it()
    {
        var (rig, _) = Setup(
            "group_id=1,type=all,bucket=mod_dl_src:00:00:00:00:00:09,output:2,bucket=output:3,bucket=mod_nw_src:10.9.9.9,mod_tp_dst:99,output:4",
            "priority=1,in_port=1,actions=group:1,output:4");
        using (rig)
        {
            for (int round = 0; round < 3; round++) // upcall, then the cached verdict
            {
                var frame = Tcp();
                rig.Send(1, [frame]);
                var p2 = Assert.Single(rig.Out(2));
                Assert.Equal(0x09UL, SrcMac(p2));
                Assert.Equal(frame, Assert.Single(rig.Out(3))); // the first bucket's rewrite is not seen
                var p4 = rig.Out(4);
                Assert.Equal(2, p4.Count);
                Assert.Equal(0x0A090909u, BinaryPrimitives.ReadUInt32BigEndian(p4[0].AsSpan(26)));
                Assert.Equal(99, BinaryPrimitives.ReadUInt16BigEndian(p4[0].AsSpan(36)));
                Assert.Equal(frame, p4[1]); // the action after group:1 sees the packet as it came
                Assert.Empty(FrameBuilder.VerifyChecksums(p4[0]));
            }

            var g = rig.Current().Group(1)!;
            Assert.Equal(3, g.Counters.Packets);
            Assert.All(g.Buckets, b => Assert.Equal(3, b.Counters.Packets));
        }
    }

    [Fact]
    public void Tags_a_bucket_pushes_or_pops_are_undone_for_what_follows()
    {
        var (rig, _) = Setup(
            "group_id=1,type=all,bucket=push_vlan:0x8100,mod_vlan_vid:7,output:2\ngroup_id=2,type=all,bucket=pop_vlan,output:2",
            "priority=1,in_port=1,actions=group:1,output:3\npriority=1,in_port=4,actions=group:2,output:3");
        using (rig)
        {
            var frame = Tcp();
            rig.Send(1, [frame]);
            var tagged = Assert.Single(rig.Out(2));
            Assert.Equal(0x8100, BinaryPrimitives.ReadUInt16BigEndian(tagged.AsSpan(12)));
            Assert.Equal(7, BinaryPrimitives.ReadUInt16BigEndian(tagged.AsSpan(14)) & 0xFFF);
            Assert.Equal(frame, Assert.Single(rig.Out(3)));

            var vlan = Tcp(tags: [(0x8100, 20)]);
            rig.Send(4, [vlan]);
            Assert.Equal(Tcp(), Assert.Single(rig.Out(2)));
            Assert.Equal(vlan, Assert.Single(rig.Out(3)));
        }
    }

    [Fact]
    public void Indirect_runs_its_one_bucket()
    {
        var (rig, _) = Setup("group_id=9,type=indirect,bucket=output:3", "priority=1,actions=group:9");
        using (rig)
        {
            rig.Send(1, [Tcp()]);
            Assert.Single(rig.Out(3));
            Assert.Empty(rig.Out(2));
        }
    }

    [Fact]
    public void Select_spreads_flows_by_weight_and_keeps_each_flow_on_its_bucket()
    {
        var (rig, flows) = Setup("group_id=1,type=select,bucket=weight:1,actions=output:2,bucket=weight:3,actions=output:3,bucket=weight:0,actions=output:4",
            "priority=1,in_port=1,actions=group:1");
        using (rig)
        {
            const int Flows = 2000;
            var port = new int[Flows];
            for (int i = 0; i < Flows; i++)
            {
                rig.Send(1, [Tcp((ushort)(1000 + i), 0x0A000000u + (uint)(i * 7))]);
                int n2 = rig.Out(2).Count, n3 = rig.Out(3).Count;
                Assert.Equal(1, n2 + n3);
                port[i] = n2 == 1 ? 2 : 3;
            }

            Assert.Empty(rig.Out(4)); // weight 0: never chosen
            int on3 = port.Count(p => p == 3);
            Assert.InRange(on3, Flows * 3 / 4 - 100, Flows * 3 / 4 + 100);
            for (int i = 0; i < Flows; i += 37) // again (cached verdicts), and after a table change (revalidation)
            {
                if (i == 37 * 20)
                {
                    flows.Add(FlowParser.ParseRules("priority=0,actions=drop", "f"), 2);
                }

                rig.Send(1, [Tcp((ushort)(1000 + i), 0x0A000000u + (uint)(i * 7))]);
                Assert.Single(rig.Out(port[i]));
            }

            // The hash reads the 5-tuple: it joins every megaflow the group made.
            var t = new Translation();
            var key = Key(Tcp());
            Translator.Translate(rig.Current(), key, rig.Shared.Macs, t);
            Assert.Equal(0xFFFF_FFFFUL, t.Wildcards.W4() & 0xFFFF_FFFF);
        }
    }

    [Fact]
    public void Select_hashes_only_the_named_fields()
    {
        var (rig, _) = Setup("group_id=1,type=select,selection_method=hash,fields(ip_src),bucket=output:2,bucket=output:3",
            "priority=1,in_port=1,actions=group:1");
        using (rig)
        {
            var seen = new HashSet<int>();
            for (int i = 0; i < 50; i++)
            {
                rig.Send(1, [Tcp((ushort)(2000 + i))]); // same ip_src: same bucket whatever the ports
                seen.Add(rig.Out(2).Count == 1 ? 2 : 3);
                rig.Out(3);
            }

            Assert.Single(seen);
        }
    }

    [Fact]
    public void Fast_failover_takes_the_first_bucket_whose_watch_port_is_up_and_follows_link_changes()
    {
        var ports = Enumerable.Range(1, 4).Select(p => new PipelinePort(p, $"p{p}")).ToList();
        var (rig, flows) = Setup("group_id=1,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3",
            "priority=1,in_port=1,actions=group:1", ports);
        using (rig)
        {
            rig.Send(1, [Tcp()]);
            Assert.Single(rig.Out(2));
            flows.SetPorts(ports.Select(p => p with { LinkUp = p.OfPort != 2 })); // port 2's link goes down
            rig.Send(1, [Tcp()]); // the cached verdict is revalidated
            Assert.Empty(rig.Out(2));
            Assert.Single(rig.Out(3));
            flows.SetPorts(ports.Where(p => p.OfPort is not (2 or 3))); // both gone: nothing live
            rig.Send(1, [Tcp()]);
            Assert.Empty(rig.Out(3));
            flows.SetPorts(ports);
            rig.Send(1, [Tcp()]);
            Assert.Single(rig.Out(2));
        }
    }

    [Fact]
    public void A_group_upcall_allocates_nothing()
    {
        // Translation runs on the PMD: choosing buckets and restoring fields must not allocate.
        var (rig, _) = Setup("""
            group_id=1,type=select,bucket=weight:2,actions=mod_nw_src:10.1.1.1,output:2,bucket=actions=push_vlan:0x8100,output:3
            group_id=2,type=all,bucket=mod_dl_src:00:00:00:00:00:09,output:2,bucket=pop_vlan,output:3
            group_id=3,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=output:3
            """, "priority=1,in_port=1,actions=group:1,group:2,group:3,output:4");
        using (rig)
        {
            var keys = Enumerable.Range(0, 256).Select(i => Key(Tcp((ushort)(3000 + i), tags: i % 2 == 0 ? [] : [(0x8100, 20)]))).ToArray();
            var t = new Translation();
            var v = rig.Current();
            foreach (var k in keys)
            {
                Translator.Translate(v, k, rig.Shared.Macs, t);
            }

            long windows = long.MaxValue;
            for (int w = 0; w < 3 && windows != 0; w++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int r = 0; r < 8; r++)
                {
                    foreach (var k in keys)
                    {
                        Translator.Translate(v, k, rig.Shared.Macs, t);
                    }
                }

                windows = GC.GetAllocatedBytesForCurrentThread() - before;
            }

            Assert.Equal(0, windows);
            Assert.True(t.OpCount > 3);
        }
    }

    private static VSwitch.Packets.FlowKey Key(byte[] frame) => VSwitch.Packets.KeyExtractor.PipelineKeyOf(frame, 1, out _);
}

internal static class FlowKeyTestExtensions
{
    public static unsafe ulong W4(this VSwitch.Packets.FlowKey k) => k.W[4];
}
