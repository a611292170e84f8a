// GroupDpdkTests.cs - groups through the real vswitchd and vswitchctl: the commands, group:N in
// rules, fast_failover when the watched port goes away, and groups kept in the state store.
using System.Text.Json.Nodes;
using Xunit;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class GroupDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-groups-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private (int Exit, string Out, string Err) Ctl(params string[] args) => ControlClient.Vswitchctl(P("ctl.sock"), args);

    private string Trace(string packet) => (string)JsonNode.Parse(Ctl("--json", "trace", packet).Out)!["datapath_actions"]!;

    [Fact]
    public void Groups_round_trip_through_the_control_socket_fail_over_and_come_back_after_a_restart()
    {
        string[] args = ["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"), "--state", P("state.json"),
            "--port", "a=net_null0,no-rx=1", "--port", "b=net_null1,no-rx=1", "--port", "c=net_null2,no-rx=1"];
        using (var sw = new RunningSwitch(args))
        {
            sw.WaitFor("port c link up");
            var add = Ctl("add-group", "group_id=1,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3");
            Assert.True(add.Exit == 0, add.Err);
            File.WriteAllText(P("groups.txt"), "# more\ngroup_id=2,type=all,bucket=output:1,bucket=mod_dl_src:00:00:00:00:00:09,output:3\n");
            Assert.Equal(0, Ctl("add-groups", P("groups.txt")).Exit);
            var dup = Ctl("add-group", "group_id=2,type=all,bucket=output:1");
            Assert.NotEqual(0, dup.Exit);
            Assert.Contains("already exists", dup.Err, StringComparison.Ordinal);
            var bad = Ctl("add-group", "group_id=3,type=al,bucket=output:1");
            Assert.NotEqual(0, bad.Exit);
            Assert.Contains("column 17", bad.Err, StringComparison.Ordinal);
            var missing = Ctl("add-flow", "priority=5,in_port=2,actions=group:99");
            Assert.NotEqual(0, missing.Exit);
            Assert.Contains("group:99 names no group", missing.Err, StringComparison.Ordinal);

            Assert.Equal(0, Ctl("add-flow", "priority=5,in_port=1,actions=group:1").Exit);
            Assert.Equal(0, Ctl("add-flow", "priority=5,in_port=2,actions=group:2").Exit);
            Assert.Equal("output:2", Trace("in_port=1,udp"));
            var all = Trace("in_port=2,udp");
            Assert.StartsWith("output:1(clone),", all, StringComparison.Ordinal);
            Assert.Contains("00:00:00:00:00:09", all, StringComparison.Ordinal);
            Assert.EndsWith("output:3", all, StringComparison.Ordinal); // the restore after the last bucket is dropped: nothing follows

            var dump = Ctl("dump-groups").Out;
            Assert.Contains("group_id=1,n_packets=0,n_bytes=0,type=fast_failover", dump, StringComparison.Ordinal);
            Assert.Contains("group_id=2", dump, StringComparison.Ordinal);
            var stats = Ctl("dump-group-stats", "group_id=1").Out;
            Assert.Contains("group_id=1,duration=", stats, StringComparison.Ordinal);
            Assert.Contains("ref_count=1,packet_count=0,byte_count=0,bucket0:packet_count=0", stats, StringComparison.Ordinal);
            Assert.DoesNotContain("group_id=2", stats, StringComparison.Ordinal);

            Assert.Equal(0, Ctl("mod-group", "group_id=1,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3").Exit);
            Assert.Equal(0, Ctl("del-port", "b").Exit); // the watched port goes: the next live bucket takes over
            Assert.Equal("output:3", Trace("in_port=1,udp"));
            var r = sw.Stop();
            Assert.True(r.ExitCode == 0, r.ToString());
        }

        Assert.Contains("\"groups\"", File.ReadAllText(P("state.json")), StringComparison.Ordinal);
        using (var sw = new RunningSwitch(args))
        {
            sw.WaitFor("port c link up");
            var dump = Ctl("dump-groups").Out;
            Assert.Contains("group_id=1,", dump, StringComparison.Ordinal);
            Assert.Contains("group_id=2,", dump, StringComparison.Ordinal);
            Assert.Contains("actions=group:1", Ctl("dump-flows").Out, StringComparison.Ordinal);
            Assert.Equal("output:3", Trace("in_port=1,udp")); // b is back under a new number (2 is never handed out again): port 2 stays absent
            var del = JsonNode.Parse(Ctl("--json", "del-groups", "group_id=1").Out)!;
            Assert.Equal(1, (int)del["deleted"]!);
            Assert.Equal(1, (int)del["rules_deleted"]!); // as Open vSwitch: the rules that use it go too
            Assert.DoesNotContain("group:1", Ctl("dump-flows").Out, StringComparison.Ordinal);
            Assert.Equal(0, Ctl("del-groups").Exit);
            Assert.Equal("groups: none", Ctl("dump-groups").Out.Trim());
            Assert.True(sw.Stop().ExitCode == 0);
        }
    }
}
