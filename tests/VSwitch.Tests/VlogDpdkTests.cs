// VlogDpdkTests.cs - runtime log levels (vlog-set / vlog-list, as ovs-appctl vlog/set) on a running switch.
using System.Text.Json.Nodes;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class VlogDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-vlog-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static JsonObject Set(string sock, params string[] specs) =>
        ControlClient.Request(sock, "vlog-set", new JsonObject { ["settings"] = new JsonArray(specs.Select(s => (JsonNode)s).ToArray()) });

    private static Dictionary<string, string> Levels(string sock) =>
        ControlClient.Request(sock, "vlog-list", [])["result"]!["modules"]!.AsArray().ToDictionary(m => (string)m!["module"]!, m => (string)m!["level"]!);

    [Fact]
    public void Log_levels_change_while_the_switch_runs_and_a_bad_setting_changes_nothing()
    {
        string sock = Path.Combine(_dir, "vsw.sock");
        using var sw = new RunningSwitch(["--stats-interval", "0.2", "--control", sock, "--port", "a=net_null0,no-rx=1", "--port", "b=net_null1,no-rx=1"]);
        sw.WaitFor("vswitchd: forwarding");
        sw.WaitFor("(?m)^stats t=", count: 2);
        var before = Levels(sock);
        Assert.Equal("info", before["stats"]);
        Assert.Equal("warn", before["control"]);
        Assert.StartsWith("err", before["dpdk"], StringComparison.Ordinal); // vswitchd starts DPDK with --log-level=error

        var cli = ControlClient.Vswitchctl(sock, "vlog-set", "stats:off");
        Assert.True(cli.Exit == 0, cli.Err);
        var listed = ControlClient.Vswitchctl(sock, "vlog-list");
        Assert.Matches(@"(?m)^\s+stats\s+off\s*$", listed.Out);
        Assert.Equal(2, ControlClient.Vswitchctl(sock, "vlog-set").Exit); // at least one setting
        Thread.Sleep(300);
        int stats = System.Text.RegularExpressions.Regex.Matches(sw.Output, "(?m)^stats t=").Count;
        Thread.Sleep(1000);
        Assert.Equal(stats, System.Text.RegularExpressions.Regex.Matches(sw.Output, "(?m)^stats t=").Count);

        // All or nothing: a bad second setting leaves the first unapplied.
        var bad = Set(sock, "stats:info", "bogus:dbg");
        Assert.False(bad["ok"]!.GetValue<bool>());
        Assert.Contains("unknown module 'bogus'", (string)bad["error"]!, StringComparison.Ordinal);
        Assert.Equal("off", Levels(sock)["stats"]);
        bad = Set(sock, "dpdk:pmd.net.null*:loud");
        Assert.Contains("unknown level 'loud'", (string)bad["error"]!, StringComparison.Ordinal);

        // The control module logs changes at info; DPDK's types take a glob.
        var ok = Set(sock, "control:info", "dpdk:pmd.net.null*:dbg", "dpdk:warn");
        Assert.True(ok["ok"]!.GetValue<bool>(), ok.ToJsonString());
        sw.WaitFor("vswitchd: control: vlog-set settings=");
        Assert.StartsWith("warn", Levels(sock)["dpdk"], StringComparison.Ordinal);
        Assert.Equal("info", Levels(sock)["control"]);
        Assert.Equal(0, ControlClient.Vswitchctl(sock, "add-port", "c", "net_null2,no-rx=1").Exit);
        sw.WaitFor("vswitchd: control: add-port name=\"c\"");

        Assert.True(Set(sock, "any:info")["ok"]!.GetValue<bool>());
        sw.WaitFor("(?m)^stats t=", count: stats + 2);
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
    }
}
