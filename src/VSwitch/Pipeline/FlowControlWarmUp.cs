// FlowControlWarmUp.cs - compiles the control plane's flow-table path at start-up, on a scratch
// table set that no PMD ever sees.
//
// vswitchd runs without tiered compilation (VSwitch.Daemon.csproj: a tier promotion must not land on
// a PMD), so every method is compiled, fully optimised, at its first call. Without this the first
// add-flows after a start paid for compiling the rule parser and the table build: a 10 000-rule
// add-flows took 0.19 s into a fresh switch and 0.04 s into a warm one (bench/flowload.sh times a
// fresh switch per load).
using VSwitch.FlowText;

namespace VSwitch.Pipeline;

public sealed partial class FlowControl
{
    /// <summary>
    /// Rules that take the parser through the common match fields and actions, the table build through
    /// exact, masked, conjunctive and several-priority subtables, in more than one table.
    /// </summary>
    private const string WarmUpRules = """
        table=0,priority=100,ip,nw_dst=10.0.0.1,actions=output:1
        table=0,priority=100,ip,nw_dst=10.0.0.2,actions=output:1
        table=0,priority=90,ip,nw_src=10.1.0.0/16,nw_dst=10.2.0.0/24,actions=dec_ttl,output:2
        table=0,priority=80,in_port=1,dl_vlan=10,actions=pop_vlan,goto_table:1
        table=0,priority=80,in_port=2,actions=push_vlan:0x8100,set_field:20->vlan_vid,output:1
        table=0,priority=70,tcp,tp_dst=80,actions=set_field:1->reg0,resubmit(,1)
        table=0,priority=70,udp,tp_src=53,actions=mod_dl_src:02:00:00:00:00:01,mod_nw_dst:10.9.9.9,output:2
        table=0,priority=60,ipv6,ipv6_dst=2001:db8::1,actions=output:2
        table=0,priority=50,arp,actions=NORMAL
        table=0,priority=40,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=FLOOD
        table=0,priority=30,ip,nw_src=10.3.0.1,actions=conjunction(7,1/2)
        table=0,priority=30,tcp,tp_dst=22,actions=conjunction(7,2/2)
        table=0,priority=30,conj_id=7,ip,actions=output:2
        table=0,priority=0,actions=drop
        table=1,priority=10,reg0=1,actions=output:2
        table=1,cookie=0x5,priority=5,icmp,actions=output:1
        """;

    /// <summary>
    /// Parses <see cref="WarmUpRules"/> and runs add, replace, dump and delete on a scratch instance
    /// (its own tables, no PMD, no persistence). Nothing it builds is reachable afterwards.
    /// </summary>
    public static void WarmUp(IEnumerable<PipelinePort> ports, IReadOnlyDictionary<string, int> portNames, ulong now)
    {
        var scratch = new FlowControl(new PipelineShared(ports), () => true);
        var first = FlowParser.ParseRules(WarmUpRules, "warm-up", 1, portNames);
        scratch.Add(first, now);
        var second = FlowParser.ParseRules(WarmUpRules.Replace("output:1", "output:2", StringComparison.Ordinal), "warm-up", 1, portNames);
        scratch.Replace(second, now);
        foreach (var r in scratch.Current.Dump())
        {
            _ = FlowFormatter.Format(r, withCounters: true, now, 1);
        }

        scratch.Delete(FlowFilter.All);
    }
}
