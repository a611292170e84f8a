// End-to-end tests of the control socket and vswitchctl against a running vswitchd: ports added and
// removed while traffic flows, and hostile or broken control input.
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class ControlDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-ctl-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Ctl => Path.Combine(_dir, "ctl.sock");

    private (int Exit, string Out, string Err) Vswitchctl(params string[] args) => ControlClient.Vswitchctl(Ctl, args);

    /// <summary>A switch forwarding a <-> b, after its first link poll (show includes link state).</summary>
    private RunningSwitch StartSwitch()
    {
        var sw = new RunningSwitch(["--stats-interval", "0", "--control", Ctl, "--port", "a=net_null0,size=64", "--port", "b=net_null1,size=64"]);
        sw.WaitFor("port a link up");
        sw.WaitFor("port b link up");
        return sw;
    }

    [Fact]
    public void A_client_without_permission_on_the_socket_gets_nothing()
    {
        // The directory is world-searchable, so only the socket's own 0660 mode stands in the way.
        File.SetUnixFileMode(_dir, (UnixFileMode)0x1ED); // 0755
        using var sw = StartSwitch();
        var psi = new ProcessStartInfo("runuser") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-u", "nobody", "--", "python3", "-c",
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); s.sendall(b'{\"v\":1,\"cmd\":\"show\"}\\n'); print('GOT', s.recv(100))\nexcept OSError as e:\n print('REFUSED', e.errno)", Ctl })
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(30_000));
        Assert.Contains("REFUSED 13", output, StringComparison.Ordinal); // EACCES from the kernel
        Assert.DoesNotContain("GOT", output, StringComparison.Ordinal);
        Assert.Equal(0, Vswitchctl("show").Exit); // root still is served
    }

    [Fact]
    public void Ports_come_and_go_while_traffic_on_the_others_loses_nothing()
    {
        using var sw = StartSwitch();
        sw.WaitFor("vswitchd: forwarding");
        Assert.Equal(VSwitch.Interop.UnixSocketFile.Mode, File.GetUnixFileMode(Ctl) & (UnixFileMode)0x1FF);
        for (int round = 0; round < 4; round++)
        {
            var add1 = Vswitchctl("add-port", "x", $"net_ring{round}");
            Assert.True(add1.Exit == 0, add1.Err);
            var add2 = Vswitchctl("add-port", "y", $"net_null{10 + round},size=64", "--pair", "x");
            Assert.True(add2.Exit == 0, add2.Err);
            var rxq = Vswitchctl("--json", "pmd-rxq-show");
            Assert.Contains("x:0", rxq.Out, StringComparison.Ordinal);
            Assert.Contains("y:0", rxq.Out, StringComparison.Ordinal);
            Thread.Sleep(300);
            var ports = JsonNode.Parse(Vswitchctl("--json", "dump-ports").Out)!["ports"]!.AsArray();
            var x = ports.Single(p => (string)p!["name"]! == "x")!;
            Assert.True((ulong)x["tx_packets"]! > 0, "the new pair forwarded nothing");
            Assert.Equal(0, Vswitchctl("del-port", "y").Exit);
            Assert.Equal(0, Vswitchctl("del-port", "x").Exit);
        }

        var show = Vswitchctl("show");
        Assert.Contains("net_null0", show.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("net_ring", show.Out, StringComparison.Ordinal);
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        long F(string port, string key) => long.Parse(r.Field($"final: port {port} ", key), CultureInfo.InvariantCulture);
        // a <-> b never paused: everything one received, the other sent; nothing dropped.
        Assert.True(F("a", "rx") == F("b", "tx") && F("b", "rx") == F("a", "tx"), r.ToString());
        Assert.True(F("a", "tx_drops") + F("b", "tx_drops") == 0, r.ToString());
        Assert.True(F("a", "rx") > 1_000_000);
        Assert.True(r.Field("final: pmd 0", "alloc_bytes") == "0", r.ToString());
        Assert.True(r.Field("final: mbufs", "leaked") == "0", r.ToString());
    }

    [Theory]
    [InlineData("l2fwd")]
    [InlineData("pipeline")]
    public async Task A_port_is_not_torn_down_while_a_pmd_has_not_acknowledged_its_removal(string mode)
    {
        // The PMD blocks inside net_pcap's rx on a FIFO that has a pcap header and no packet yet:
        // it runs no round boundary, so it cannot acknowledge anything until the FIFO closes. A PMD
        // blocked inside a burst call (no GC transition) also holds off every runtime suspension,
        // so the switch gets a gen0 budget that no GC falls into during the test (its waits for
        // acknowledgements allocate nothing).
        string fifo = Path.Combine(_dir, "rx.fifo");
        using (var mk = Process.Start("mkfifo", [fifo])!)
        {
            mk.WaitForExit();
        }

        var writer = Task.Run(() =>
        {
            var w = new FileStream(fifo, FileMode.Open, FileAccess.Write);
            w.Write([0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0]);
            w.Flush();
            return w;
        });
        using var sw = new RunningSwitch(["--mode", mode, "--stats-interval", "0", "--control", Ctl, "--port", $"s=net_pcap0,rx_pcap={fifo}",
            "--port", "t=net_null1,no-rx=1", "--port", "a=net_null2,no-rx=1", "--port", "b=net_null3,no-rx=1"],
            new() { ["DOTNET_GCgen0size"] = "0x20000000" });
        sw.WaitFor("vswitchd: forwarding");
        using var w = await writer.WaitAsync(TimeSpan.FromSeconds(30));
        using var safety = new Timer(_ => w.Dispose(), null, 40_000, Timeout.Infinite); // fail, never hang
        Thread.Sleep(300);

        var del = Vswitchctl("del-port", "a");
        Assert.True(del.Exit == 1, $"exit {del.Exit}: {del.Out}{del.Err}");
        Assert.True(Vswitchctl("--json", "show").Out.Contains("\"a\"", StringComparison.Ordinal), $"port a was torn down after: {del.Err}");
        Assert.Contains("port 'a' was not removed", del.Err, StringComparison.Ordinal);

        w.Dispose(); // EOF: the PMD comes back, takes the newest plan (with a) and acknowledges
        Thread.Sleep(200);
        var again = Vswitchctl("del-port", "a");
        Assert.True(again.Exit == 0, again.Err);
        Assert.DoesNotContain("\"a\"", Vswitchctl("--json", "show").Out, StringComparison.Ordinal);
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.DoesNotContain("Invalid port_id", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("not ready port", r.Stderr, StringComparison.Ordinal);
        Assert.True(r.Field("final: mbufs", "leaked") == "0", r.ToString());
    }

    [Fact]
    public void Bad_port_commands_are_refused_with_a_reason_and_change_nothing()
    {
        using var sw = StartSwitch();
        sw.WaitFor("vswitchd: forwarding");
        var before = Vswitchctl("--json", "show").Out;
        var cases = new (string[] Args, string Expect)[]
        {
            (["add-port", "a", "net_null5"], "port 'a' already exists"),
            (["add-port", "z", "net_bogus0"], "cannot probe device 'net_bogus0'"),
            (["add-port", "z", "net_null6", "--pair", "a"], "'a' is already paired"),
            (["add-port", "z", "net_null7", "--pair", "ghost"], "no port named 'ghost'"),
            (["del-port", "ghost"], "no port named 'ghost'"),
            (["frobnicate"], "unknown command 'frobnicate'"),
        };
        foreach (var (args, expect) in cases)
        {
            var res = Vswitchctl(args);
            Assert.True(res.Exit == 1, $"{string.Join(' ', args)}: exit {res.Exit}\n{res.Out}{res.Err}");
            Assert.Contains(expect, res.Err, StringComparison.Ordinal);
        }

        var after = Vswitchctl("--json", "show").Out;
        Assert.True(before == after, $"tables changed:\n{before}\n{after}");
        Assert.Equal(0, sw.Stop().ExitCode);
    }

    private static JsonObject Raw(Socket s, byte[] bytes) => ControlClient.Raw(s, bytes);

    private Socket Connect() => ControlClient.Connect(Ctl);

    [Fact]
    public void Broken_hostile_and_silent_clients_get_errors_and_never_stall_the_switch_or_other_clients()
    {
        using var sw = StartSwitch();
        sw.WaitFor("vswitchd: forwarding");
        var before = Vswitchctl("--json", "show").Out;

        // Silent clients connect and never send: others are still served.
        var silent = Enumerable.Range(0, 20).Select(_ => Connect()).ToList();
        using (var s = Connect())
        {
            Assert.Contains("not valid UTF-8", (string)Raw(s, [0xff, 0xfe, 0x7b, (byte)'\n'])["error"]!, StringComparison.Ordinal);
            Assert.Contains("not valid JSON", (string)Raw(s, "{\"v\":1,\"cmd\":\n"u8.ToArray())["error"]!, StringComparison.Ordinal);
            Assert.Contains("protocol version", (string)Raw(s, "{\"v\":9,\"cmd\":\"show\"}\n"u8.ToArray())["error"]!, StringComparison.Ordinal);
            Assert.Contains("missing \"cmd\"", (string)Raw(s, "{\"v\":1}\n"u8.ToArray())["error"]!, StringComparison.Ordinal);
            var ok = Raw(s, "{\"v\":1,\"id\":\"abc\",\"cmd\":\"show\"}\n"u8.ToArray());
            Assert.True((bool)ok["ok"]!);
            Assert.Equal("abc", (string)ok["id"]!);
        }

        using (var s = Connect())
        {
            var huge = new byte[ControlServer_MaxRequestBytes + 10];
            Array.Fill(huge, (byte)'x');
            Assert.Contains("over the limit", (string)Raw(s, huge)["error"]!, StringComparison.Ordinal);
        }

        using (var s = Connect())
        {
            s.Send("{\"v\":1,\"cmd\":\"show\""u8.ToArray());
            s.Shutdown(SocketShutdown.Send);
            Assert.Contains("truncated request", (string)Raw(s, [])["error"]!, StringComparison.Ordinal);
        }

        // Random and mutated requests: the switch answers or closes, and never crashes.
        var rnd = new Random(42);
        var valid = "{\"v\":1,\"id\":7,\"cmd\":\"add-port\",\"args\":{\"name\":\"q\",\"devargs\":\"net_bogus9\"}}"u8.ToArray();
        for (int i = 0; i < 200; i++)
        {
            using var s = Connect();
            var m = (byte[])valid.Clone();
            for (int k = 0; k < 1 + rnd.Next(4); k++)
            {
                m[rnd.Next(m.Length)] = (byte)rnd.Next(256);
            }

            var line = m.Where(b => b != (byte)'\n').Append((byte)'\n').ToArray();
            var resp = Raw(s, line);
            Assert.NotNull(resp["ok"]);
        }

        Assert.Equal(before, Vswitchctl("--json", "show").Out);
        foreach (var s in silent)
        {
            s.Dispose();
        }

        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.False(File.Exists(Ctl), "the control socket is removed at exit");
    }

    private const int ControlServer_MaxRequestBytes = VSwitch.Control.ControlServer.MaxRequestBytes;

    private string P(string name) => Path.Combine(_dir, name);

    private JsonObject Json(params string[] args)
    {
        var (exit, o, e) = Vswitchctl(["--json", .. args]);
        Assert.True(exit == 0, $"vswitchctl {string.Join(' ', args)}: exit {exit}: {e}");
        return JsonNode.Parse(o)!.AsObject();
    }

    /// <summary>show, less what a refused chain may not keep: the table version (it only grows) and the MAC a re-added net_null device draws anew.</summary>
    private string Ports()
    {
        var show = Json("show");
        show.Remove("flow_version");
        foreach (var p in show["ports"]!.AsArray())
        {
            p!.AsObject().Remove("mac");
        }

        return show.ToJsonString();
    }

    /// <summary>dump-flows, less each rule's age (counters, cookies, priorities, matches and actions stay).</summary>
    private string Rules() => string.Join('\n', Json("dump-flows")["flows"]!.AsArray()
        .Select(f => System.Text.RegularExpressions.Regex.Replace((string)f!, @"duration=[0-9.]+s, ", "")));

    [Fact]
    public void A_chain_of_port_and_flow_changes_takes_effect_as_a_whole()
    {
        using var sw = new RunningSwitch(["--mode", "pipeline", "--stats-interval", "0", "--control", Ctl,
            "--port", "a=net_null0,no-rx=1", "--port", "b=net_null1,no-rx=1"]);
        sw.WaitFor("vswitchd: forwarding");
        Assert.Equal(0, Vswitchctl("add-flow", "in_port=a,tcp,actions=output:b").Exit);
        File.WriteAllText(P("d.flows"), "# the new port's rules, naming it before it exists\nin_port=d,udp,actions=output:a\npriority=5,in_port=a,actions=output:d\n");

        var chain = Json("add-port", "d", "net_null3,no-rx=1", "--vlan", "access:7", "--", "add-flows", P("d.flows"), "--", "del-flows", "tcp");
        var steps = chain["steps"]!.AsArray();
        Assert.Equal(["add-port", "add-flows", "del-flows"], steps.Select(s => (string)s!["cmd"]!));
        int d = steps[0]!["result"]!["ofport"]!.GetValue<int>();
        Assert.Equal(1, steps[2]!["result"]!["deleted"]!.GetValue<int>());

        Assert.Contains(Json("show")["ports"]!.AsArray(), p => (string)p!["name"]! == "d" && p["ofport"]!.GetValue<int>() == d);
        var rules = Rules();
        Assert.Contains($"udp,in_port={d},actions=output:1", rules, StringComparison.Ordinal);
        Assert.Contains($"priority=5,in_port=1,actions=output:{d}", rules, StringComparison.Ordinal);
        Assert.DoesNotContain("tcp", rules, StringComparison.Ordinal);

        // Human output: each step's result under its command.
        var human = Vswitchctl("del-port", "d", "--", "del-flows", $"in_port={d}");
        Assert.True(human.Exit == 0, human.Err);
        Assert.Contains("del-port:\n  removed: d", human.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("\"d\"", Json("show").ToJsonString(), StringComparison.Ordinal);

        // Only changes chain; the client says so before it calls the switch.
        var bad = Vswitchctl("add-port", "e", "net_null4", "--", "show");
        Assert.Equal(2, bad.Exit);
        Assert.StartsWith("vswitchctl: show cannot be chained", bad.Err, StringComparison.Ordinal);
        Assert.DoesNotContain("\"e\"", Json("show").ToJsonString(), StringComparison.Ordinal);
        Assert.Equal(0, sw.Stop().ExitCode);
    }

    [Fact]
    public void A_chain_with_a_refused_step_leaves_ports_and_rules_exactly_as_before()
    {
        // Finite traffic: the rules' counters settle, so a restored rule set can be compared counter for counter.
        Pcap.Write(P("in.pcap"), Enumerable.Range(0, 100).Select(i => Frames.Udp(i)));
        File.WriteAllText(P("v1.flows"), "table=0,priority=10,in_port=1,udp,actions=resubmit(,1)\ntable=1,actions=output:2\ntable=0,priority=1,actions=drop\n");
        using var sw = new RunningSwitch(["--mode", "pipeline", "--stats-interval", "0", "--control", Ctl, "--flows", P("v1.flows"),
            "--port", $"a=net_pcap0,rx_pcap={P("in.pcap")}", "--port", "b=net_null1,no-rx=1", "--port", "c=net_null2,no-rx=1"]);
        sw.WaitFor("vswitchd: forwarding");
        Assert.Equal(0, Vswitchctl("set-port", "c", "vlan=trunk:10,20").Exit);
        ControlClient.Eventually(() => Rules().Contains("n_packets=100", StringComparison.Ordinal), "the 100 packets counted");
        // Links are polled once a second: the snapshot waits until every port's is up, or it could
        // hold a start-up "down" that the restored switch no longer shows.
        ControlClient.Eventually(() => Json("show")["ports"]!.AsArray().All(p => (string)p!["link"]! == "up"), "every link polled up");
        string ports = Ports(), rules = Rules();
        int next = Json("add-port", "probe", "net_null7,no-rx=1")["ofport"]!.GetValue<int>(); // the next automatic number, as the chain will see it
        Assert.Equal(0, Vswitchctl("del-port", "probe").Exit);

        File.WriteAllText(P("v2.flows"), "in_port=e,actions=output:c\n");
        string[] steps = ["del-port", "b", "--", "add-port", "e", "net_null4,no-rx=1", "--vlan", "access:5", "--", "set-port", "c", "vlan=none",
            "--", "replace-flows", P("v2.flows"), "--", "add-flow", "in_port=c,actions=output:e", "--", "mod-flows", "in_port=e,actions=drop",
            "--", "set-table-miss", "1", "controller", "--", "del-flows", "--", "add-port", "z", "net_bogus0"];
        var refused = Vswitchctl(steps);
        Assert.True(refused.Exit == 1, refused.Out + refused.Err);
        Assert.StartsWith("vswitchctl: step 9 of 9 (add-port): port 'z': cannot probe device 'net_bogus0'", refused.Err, StringComparison.Ordinal);
        Assert.Contains("steps 1-8 were undone", refused.Err, StringComparison.Ordinal);
        string last = "";
        var end = DateTime.UtcNow.AddSeconds(10);
        while ((last = Ports()) != ports && DateTime.UtcNow < end)
        {
            Thread.Sleep(50); // port b back as it was (its link polled up)
        }

        Assert.Equal(ports, last);
        Assert.Equal(rules, Rules());
        Assert.Equal(next + 1, Json("add-port", "probe2", "net_null8,no-rx=1")["ofport"]!.GetValue<int>()); // e's number was taken back
        Assert.Equal(0, Vswitchctl("del-port", "probe2").Exit);
        ports = Ports();

        // Refused while checking (a later step names a port no step adds): nothing ran at all.
        var early = Vswitchctl("add-port", "e", "net_null4,no-rx=1", "--", "add-flow", "in_port=e,actions=output:nosuch");
        Assert.Equal(1, early.Exit);
        Assert.StartsWith("vswitchctl: step 2 of 2 (add-flow): ", early.Err, StringComparison.Ordinal);
        Assert.Contains("nothing was changed", early.Err, StringComparison.Ordinal);
        Assert.Equal(ports, Ports());
        Assert.Equal(rules, Rules());
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.True(r.Field("final: mbufs", "leaked") == "0", r.ToString());
    }

    [Fact]
    public void Traffic_on_untouched_ports_keeps_flowing_through_chains_that_apply_and_chains_that_are_undone()
    {
        File.WriteAllText(P("ab.flows"), "priority=100,in_port=1,actions=output:2\n"); // from the first packet on
        using var sw = new RunningSwitch(["--mode", "pipeline", "--stats-interval", "0", "--control", Ctl, "--flows", P("ab.flows"),
            "--port", "a=net_null0,size=64", "--port", "b=net_null1,no-rx=1"]);
        sw.WaitFor("vswitchd: forwarding");
        ulong b0 = ControlClient.PortTx(Ctl, "b");
        for (int round = 0; round < 3; round++)
        {
            var add = Vswitchctl("--json", "add-port", "d", $"net_null{10 + round},no-rx=1", "--", "add-flow", "priority=50,in_port=d,actions=output:a",
                "--", "add-flow", "priority=10,in_port=a,actions=output:d");
            Assert.True(add.Exit == 0, add.Err);
            int d = JsonNode.Parse(add.Out)!["steps"]![0]!["result"]!["ofport"]!.GetValue<int>();

            // Once d is deleted its name no longer names a port: later steps use its number.
            var undone = Vswitchctl("del-port", "d", "--", "del-flows", $"in_port={d}", "--", "add-port", "z", "net_bogus0");
            Assert.Equal(1, undone.Exit);
            Assert.Contains("(add-port): port 'z'", undone.Err, StringComparison.Ordinal);
            Assert.Contains(Json("show")["ports"]!.AsArray(), p => (string)p!["name"]! == "d");
            var remove = Vswitchctl("del-port", "d", "--", "del-flows", "--strict", "priority=10,in_port=a");
            Assert.True(remove.Exit == 0, remove.Err);
            ulong b1 = ControlClient.PortTx(Ctl, "b");
            ControlClient.Eventually(() => ControlClient.PortTx(Ctl, "b") > b1 + 100_000, $"a -> b forwards after round {round}");
        }

        Assert.True(ControlClient.PortTx(Ctl, "b") > b0 + 1_000_000);
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        long F(string port, string key) => long.Parse(r.Field($"final: port {port} ", key), CultureInfo.InvariantCulture);
        // The a -> b rule was never touched: everything a received, b sent, through every chain.
        Assert.True(F("a", "rx") == F("b", "tx") && F("b", "tx_drops") == 0, r.ToString());
        Assert.True(r.Field("final: pmd 0", "fwd_drops") == "0", r.ToString());
        Assert.True(r.Field("final: pmd 0", "alloc_bytes") == "0", r.ToString());
        Assert.True(r.Field("final: mbufs", "leaked") == "0", r.ToString());
    }

    [Fact]
    public void With_pmd_sleep_an_idle_switch_does_not_burn_its_pmd_core()
    {
        // net_ring ports receive nothing unless fed: the PMD is idle the whole run.
        using var sw = new RunningSwitch(["--stats-interval", "0", "--control", "none", "--pmd-sleep-max", "1000",
            "--port", "a=net_ring0", "--port", "b=net_ring1"]);
        sw.WaitFor("vswitchd: forwarding");
        Thread.Sleep(500);
        var tid = Directory.EnumerateDirectories($"/proc/{sw.Pid}/task")
            .Single(t => File.ReadAllText(Path.Combine(t, "comm")).Trim() == "pmd-c1");
        static long Ticks(string task)
        {
            var f = File.ReadAllText(Path.Combine(task, "stat")).Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture); // utime + stime
        }

        long t0 = Ticks(tid);
        var clock = Stopwatch.StartNew();
        Thread.Sleep(3000);
        double share = (Ticks(tid) - t0) / 100.0 / clock.Elapsed.TotalSeconds; // USER_HZ = 100
        var r = sw.Stop();
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.True(share < 0.25, $"idle PMD used {share:P0} of its core");
        Assert.Matches(@"slept_ms=[1-9]", r.Stdout);
    }

    [Fact]
    public void A_stale_control_socket_is_removed_with_a_notice_naming_it()
    {
        using (var py = Process.Start("python3", ["-c", $"import socket; s = socket.socket(socket.AF_UNIX); s.bind('{Ctl}'); s.listen()"])!)
        {
            py.WaitForExit();
        }

        Assert.True(File.Exists(Ctl));
        using var sw = StartSwitch();
        Assert.Contains($"vswitchd: notice: removed stale control socket '{Ctl}'", sw.Output, StringComparison.Ordinal);
        Assert.Equal(0, Vswitchctl("show").Exit);
        Assert.Equal(0, sw.Stop().ExitCode);
    }
}
