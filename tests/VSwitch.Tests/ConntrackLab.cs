// ConntrackLab.cs - the network namespaces, hosts and switches of ConntrackNetnsTests (see the
// topology there). A lab owns everything it starts: four namespaces named after a random tag (the
// switch's and three hosts'), the veth pairs between them (gone with the namespaces), the host
// processes (killed by their own Process objects) and a temporary directory. Dispose undoes it all,
// also when the constructor or a test failed half-way. Every command is bounded by a timeout.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using VSwitch.Tests.Differential;

namespace VSwitch.Tests;

/// <summary>A host of the lab: its namespace suffix, switch port (OpenFlow number), MAC and addresses.</summary>
internal sealed record LabHost(string Name, int Port, string Mac, string Ip4, string Gw4, string Ip6, string Gw6);

internal sealed partial class ConntrackLab : IDisposable
{
    /// <summary>The gateways' MAC: the switch stands in for a router; no host has it.</summary>
    public const string RouterMac = "02:00:00:00:00:01";

    /// <summary>The public address: the outside's gateway, the SNAT source, the DNAT target.</summary>
    public const string Public4 = "203.0.113.1";

    public static readonly LabHost A = new("a", 1, "02:00:00:00:01:02", "198.51.100.2", "198.51.100.1", "2001:db8:1::2", "2001:db8:1::1");
    public static readonly LabHost O = new("o", 2, "02:00:00:00:02:02", "203.0.113.2", Public4, "2001:db8:2::2", "2001:db8:2::1");
    public static readonly LabHost B = new("b", 3, "02:00:00:00:01:03", "198.51.100.3", "198.51.100.1", "2001:db8:1::3", "2001:db8:1::1");
    public static readonly LabHost[] Hosts = [A, O, B];

    /// <summary>A random namespace prefix for one lab: <paramref name="kind"/> and 5 hex digits.</summary>
    public static string NewTag(string kind) => kind + Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.Next()))[..5];

    /// <summary>The python3 the labs run their peers with (an absolute path: namespaces keep PATH, sudo-less).</summary>
    public static string Python => s_python.Value;

    private static readonly Lazy<string> s_python = new(() =>
        Sh("python3 -c 'import sys; print(sys.executable)'").Trim());

    private readonly List<HostProcess> _procs = [];

    public ConntrackLab()
    {
        Tag = NewTag("ct");
        Dir = Directory.CreateTempSubdirectory("vsw-ctlab-").FullName;
        try
        {
            Build();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The random prefix of every namespace this lab made.</summary>
    public string Tag { get; }

    /// <summary>A temporary directory for sockets, logs and rule files.</summary>
    public string Dir { get; }

    /// <summary>The namespace that holds the switch's ends of the veths (p1, p2, p3) and the switch.</summary>
    public string SwitchNs => Tag + "s";

    public string Ns(LabHost h) => Tag + h.Name;

    public static string Script(string name) => Path.Combine(PrivateOvs.RepoRoot(), "tests", "conntrack", name);

    private void Build()
    {
        // The switch's namespace: no IPv6 (its veth ends would otherwise send router solicitations
        // into the switch), loopback only.
        Sh($"ip netns add {SwitchNs} && ip -n {SwitchNs} link set lo up"
            + $" && ip netns exec {SwitchNs} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
        foreach (var h in Hosts)
        {
            // af_packet reads what the host's stack sent before any checksum offload completed it:
            // "tx off" on both ends makes every frame carry its full checksum. nodad: usable at once.
            string ns = Ns(h), p = $"p{h.Port}";
            Sh($"ip netns add {ns} && ip -n {SwitchNs} link add {p} type veth peer name eth0 netns {ns}"
                + $" && ip -n {ns} link set eth0 address {h.Mac} && ip -n {ns} link set lo up && ip -n {ns} link set eth0 up"
                + $" && ip -n {SwitchNs} link set {p} up"
                + $" && ip netns exec {ns} ethtool -K eth0 tx off >/dev/null && ip netns exec {SwitchNs} ethtool -K {p} tx off >/dev/null"
                + $" && ip -n {ns} addr add {h.Ip4}/24 dev eth0 && ip -n {ns} addr add {h.Ip6}/64 dev eth0 nodad"
                + $" && ip -n {ns} route add default via {h.Gw4} && ip -n {ns} -6 route add default via {h.Gw6}"
                + $" && ip -n {ns} neigh add {h.Gw4} lladdr {RouterMac} dev eth0 nud permanent"
                + $" && ip -n {ns} -6 neigh add {h.Gw6} lladdr {RouterMac} dev eth0 nud permanent");
        }

        // A and B share 198.51.100.0/24 and reach each other on-link, through the switch.
        foreach (var (h, other) in new[] { (A, B), (B, A) })
        {
            Sh($"ip -n {Ns(h)} neigh add {other.Ip4} lladdr {other.Mac} dev eth0 nud permanent"
                + $" && ip -n {Ns(h)} -6 neigh add {other.Ip6} lladdr {other.Mac} dev eth0 nud permanent");
        }
    }

    /// <summary>Starts tests/conntrack/ctpeer.py with <paramref name="args"/> in <paramref name="h"/>'s namespace.</summary>
    public HostProcess Peer(LabHost h, params string[] args)
    {
        var p = new HostProcess("ip", ["netns", "exec", Ns(h), s_python.Value, Script("ctpeer.py"), .. args]);
        lock (_procs)
        {
            _procs.Add(p);
        }

        return p;
    }

    /// <summary>Runs ctpeer.py to its end (at most <paramref name="seconds"/>); its stdout.</summary>
    public string PeerRun(LabHost h, int seconds, params string[] args)
    {
        var p = Peer(h, args);
        p.WaitExit(seconds);
        return p.Stdout.Trim();
    }

    /// <summary>ping (or ping -6) from <paramref name="h"/>, 0.2 s apart: how many echo replies came within
    /// <paramref name="seconds"/> (it stops at <paramref name="count"/>; unanswered, it keeps sending until then).</summary>
    public int Ping(LabHost h, string dst, int count = 3, int seconds = 3) => PingIn(Ns(h), dst, count, seconds);

    /// <summary>ping (or ping -6) in namespace <paramref name="ns"/>, 0.2 s apart: the echo replies that came within
    /// <paramref name="seconds"/> (each one awaited at most <paramref name="wait"/> s).</summary>
    public static int PingIn(string ns, string dst, int count, int seconds, int wait = 1)
    {
        string o = Sh($"ip netns exec {ns} ping {(dst.Contains(':', StringComparison.Ordinal) ? "-6 " : "")}-n -c {count} -i 0.2 -W {wait} -w {seconds} {dst}", check: false);
        var m = PingReceived().Match(o);
        return m.Success ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : throw new Xunit.Sdk.XunitException($"ping: {o}");
    }

    [GeneratedRegex(@"(\d+) received")]
    private static partial Regex PingReceived();

    /// <summary>bash -c <paramref name="cmd"/> with a 30 s bound; its output (stdout then stderr).</summary>
    public static string Sh(string cmd, bool check = true, int seconds = 30)
    {
        var psi = new ProcessStartInfo("timeout", ["-k", "5", seconds.ToString(CultureInfo.InvariantCulture), "bash", "-c", cmd])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string o = p.StandardOutput.ReadToEnd();
        Xunit.Assert.True(p.WaitForExit((seconds + 10) * 1000), $"hung: {cmd}");
        o += err.Result;
        if (check)
        {
            Xunit.Assert.True(p.ExitCode == 0, $"{cmd}: exit {p.ExitCode}: {o}");
        }

        return o;
    }

    /// <summary>Kills the lab's processes, then removes its namespaces (and with them the veths) even if a kill failed.</summary>
    public void Dispose()
    {
        try
        {
            lock (_procs)
            {
                foreach (var p in _procs)
                {
                    p.Dispose();
                }

                _procs.Clear();
            }
        }
        finally
        {
            foreach (var ns in Hosts.Select(Ns).Append(SwitchNs))
            {
                Sh($"ip netns del {ns} 2>/dev/null", check: false);
            }
        }

        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A process of the lab with its output collected line by line.</summary>
internal sealed class HostProcess : IDisposable
{
    private readonly Process _p;
    private readonly List<string> _lines = [];
    private readonly StringBuilder _err = new();
    private bool _disposed;

    public HostProcess(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        Command = string.Join(' ', args);
        _p = Process.Start(psi)!;
        _p.OutputDataReceived += (_, e) => { if (e.Data != null) { lock (_lines) { _lines.Add(e.Data); } } };
        _p.ErrorDataReceived += (_, e) => { if (e.Data != null) { lock (_err) { _err.AppendLine(e.Data); } } };
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
    }

    public string Command { get; }

    /// <summary>The process id (with `ip netns exec`, the command's own: it execs in place).</summary>
    public int Pid => _p.Id;

    public IReadOnlyList<string> Lines { get { lock (_lines) { return [.. _lines]; } } }

    public string Stdout => string.Join('\n', Lines);

    public string Stderr { get { lock (_err) { return _err.ToString(); } } }

    public int ExitCode => _p.ExitCode;

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited => _p.HasExited;

    /// <summary>Waits until <paramref name="count"/> lines start with <paramref name="prefix"/>.</summary>
    public void WaitLines(string prefix, int count = 1, int seconds = 30)
    {
        var end = DateTime.UtcNow.AddSeconds(seconds);
        while (Lines.Count(l => l.StartsWith(prefix, StringComparison.Ordinal)) < count)
        {
            if (DateTime.UtcNow > end || (_p.HasExited && _p.WaitForExit(1000) && Lines.Count(l => l.StartsWith(prefix, StringComparison.Ordinal)) < count))
            {
                throw new Xunit.Sdk.XunitException($"{Command}: no {count} lines '{prefix}...' within {seconds} s\n{Stdout}\n{Stderr}");
            }

            Thread.Sleep(50);
        }
    }

    /// <summary>Waits for the exit (killing the process after <paramref name="seconds"/>); fails if it was killed.</summary>
    public void WaitExit(int seconds)
    {
        if (!_p.WaitForExit(seconds * 1000))
        {
            Kill();
            throw new Xunit.Sdk.XunitException($"{Command}: still running after {seconds} s\n{Stdout}\n{Stderr}");
        }

        _p.WaitForExit(); // drain the output readers
    }

    /// <summary>SIGKILL to this process and its children (all started by this test).</summary>
    public void Kill()
    {
        if (!_p.HasExited)
        {
            _p.Kill(entireProcessTree: true);
            _p.WaitForExit(10_000);
        }
    }

    /// <summary>Kills and releases the process; again is a no-op (a test's `using` and the lab both dispose).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Kill();
        _p.Dispose();
    }
}

/// <summary>One connection of a conntrack dump in Open vSwitch's dpctl/dump-conntrack format.</summary>
internal sealed partial record CtEntry(string Proto, IReadOnlyDictionary<string, string> Orig, IReadOnlyDictionary<string, string> Reply, int Zone, string Line)
{
    /// <summary>Parses lines such as
    /// <c>tcp,orig=(src=198.51.100.2,dst=203.0.113.2,sport=40000,dport=5002),reply=(src=203.0.113.2,dst=203.0.113.1,sport=5002,dport=40000),zone=1,protoinfo=(state=ESTABLISHED)</c>;
    /// other lines (headers, blanks) are skipped.</summary>
    public static List<CtEntry> Parse(string text)
    {
        var list = new List<CtEntry>();
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.Trim();
            var m = EntryRegex().Match(line);
            if (!m.Success)
            {
                continue;
            }

            var z = ZoneRegex().Match(line);
            list.Add(new CtEntry(m.Groups[1].Value, Pairs(m.Groups[2].Value), Pairs(m.Groups[3].Value),
                z.Success ? int.Parse(z.Groups[1].Value, CultureInfo.InvariantCulture) : 0, line));
        }

        return list;
    }

    private static Dictionary<string, string> Pairs(string s) =>
        s.Split(',').Select(kv => kv.Split('=', 2)).Where(kv => kv.Length == 2).ToDictionary(kv => kv[0], kv => kv[1]);

    public string O(string key) => Orig.TryGetValue(key, out var v) ? v : "";

    public string R(string key) => Reply.TryGetValue(key, out var v) ? v : "";

    [GeneratedRegex(@"^(\w+),orig=\(([^)]*)\),reply=\(([^)]*)\)")]
    private static partial Regex EntryRegex();

    [GeneratedRegex(@",zone=(\d+)")]
    private static partial Regex ZoneRegex();
}

/// <summary>The switch between the lab's namespaces, with the readings the scenarios assert on.</summary>
internal interface ILabSwitch : IDisposable
{
    string Name { get; }

    /// <summary>The summed packet count of the rules <paramref name="match"/> selects (non-strict, as
    /// ovs-ofctl dump-aggregate), which must be exactly one rule.</summary>
    long RulePackets(string match);

    /// <summary>The connection table, as Open vSwitch's dpctl/dump-conntrack prints it.</summary>
    List<CtEntry> DumpConntrack();
}

/// <summary>
/// Open vSwitch 3.1's userspace datapath as the reference: a private instance (tests/ovs/ovs-private.sh)
/// started inside the lab's switch namespace, with a bridge of datapath_type=netdev whose ports are the
/// veth ends p1..p3 as plain system ports (Open vSwitch reads them with af_packet sockets) and the
/// userspace conntrack. Its internal ports (the bridge's and ovs-netdev taps) stay in that namespace.
/// </summary>
internal sealed class OvsNetdevSwitch : ILabSwitch
{
    private readonly string _dir;
    private readonly string _script = Path.Combine(PrivateOvs.RepoRoot(), "tests", "ovs", "ovs-private.sh");

    public OvsNetdevSwitch(ConntrackLab lab, string flowsFile)
    {
        string? missing = PrivateOvs.Missing();
        Xunit.Assert.True(missing == null, $"the conntrack scenarios' reference needs Open vSwitch 3.1: {missing}");
        _dir = Path.Combine(lab.Dir, "ovs");
        try
        {
            ConntrackLab.Sh($"ip netns exec {lab.SwitchNs} {_script} start {_dir} 0", seconds: 60);
            Vsctl("add-br ct0 -- set bridge ct0 datapath_type=netdev fail-mode=secure"
                + string.Concat(ConntrackLab.Hosts.Select(h => $" -- add-port ct0 p{h.Port} -- set interface p{h.Port} ofport_request={h.Port}")));
            Ofctl($"add-flows {Mgmt} {flowsFile}");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Name => "Open vSwitch (netdev datapath)";

    private string Mgmt => $"unix:{_dir}/run/ct0.mgmt";

    private string Vsctl(string args) => ConntrackLab.Sh($"ovs-vsctl --db=unix:{_dir}/run/db.sock --timeout=15 {args}");

    private static string Ofctl(string args) => ConntrackLab.Sh($"ovs-ofctl {args}");

    private string Appctl(string args) => ConntrackLab.Sh($"ovs-appctl -t {_dir}/run/ovs-vswitchd.ctl {args}");

    public long RulePackets(string match)
    {
        // NXST_AGGREGATE reply (xid=0x4): packet_count=2 byte_count=196 flow_count=1
        string o = Ofctl($"dump-aggregate {Mgmt} '{match}'");
        Xunit.Assert.True(Regex.IsMatch(o, @"flow_count=1\b"), $"'{match}' selects one rule: {o}");
        return long.Parse(Regex.Match(o, @"packet_count=(\d+)").Groups[1].Value, CultureInfo.InvariantCulture);
    }

    public List<CtEntry> DumpConntrack() => CtEntry.Parse(Appctl("dpctl/dump-conntrack netdev@ovs-netdev"));

    public void Dispose() => ConntrackLab.Sh($"{_script} stop {_dir}", check: false, seconds: 60);
}

/// <summary>
/// vswitchd in pipeline mode inside the lab's switch namespace, with the veth ends p1..p3 as
/// net_af_packet ports numbered 1..3. Readings through vswitchctl: dump-aggregate (JSON over the
/// socket) and dump-conntrack (the text of `vswitchctl dump-conntrack`, expected in Open vSwitch's
/// dpctl/dump-conntrack format).
/// </summary>
internal sealed class VswitchdLabSwitch : ILabSwitch
{
    private readonly RunningSwitch _sw;
    private readonly string _sock;

    /// <param name="qpairs">Queue pairs of each af_packet port (one tx queue per PMD is needed).</param>
    /// <param name="extra">More vswitchd arguments (two PMDs and their rx queue assignment).</param>
    public VswitchdLabSwitch(ConntrackLab lab, string flowsFile, int qpairs = 1, IEnumerable<string>? extra = null)
    {
        _sock = Path.Combine(lab.Dir, "ctl.sock");
        var args = new List<string> { "--mode", "pipeline", "--stats-interval", "0", "--control", _sock, "--flows", flowsFile };
        args.AddRange(extra ?? []);
        foreach (var h in ConntrackLab.Hosts)
        {
            args.AddRange(["--port", $"p{h.Port}=net_af_packet{h.Port},iface=p{h.Port},qdisc_bypass=1,framecnt=2048,qpairs={qpairs}", "--ofport", $"p{h.Port}={h.Port}"]);
        }

        _sw = new RunningSwitch(args, netns: lab.SwitchNs);
        _sw.WaitFor("port p3 link up");
    }

    public string Name => "vswitchd";

    /// <summary>Runs vswitchctl against this switch.</summary>
    public (int Exit, string Out, string Err) Ctl(params string[] args) => ControlClient.Vswitchctl(_sock, args);

    /// <summary>ct-stats-show's result.</summary>
    public JsonObject CtStats() => ControlClient.Request(_sock, "ct-stats-show", new JsonObject())["result"]!.AsObject();

    /// <summary>vswitchd's resident memory (VmRSS).</summary>
    public long RssBytes()
    {
        var line = File.ReadLines($"/proc/{_sw.Pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>Packets each PMD received, by core (pmd-stats-show).</summary>
    public Dictionary<int, ulong> PmdRx()
    {
        var r = ControlClient.Request(_sock, "pmd-stats-show", new JsonObject());
        return r["result"]!["pmds"]!.AsArray().ToDictionary(p => p!["core"]!.GetValue<int>(), p => p!["rx_packets"]!.GetValue<ulong>());
    }

    public long RulePackets(string match)
    {
        var r = ControlClient.Request(_sock, "dump-aggregate", new JsonObject { ["match"] = match });
        var res = r["result"] ?? throw new Xunit.Sdk.XunitException($"dump-aggregate '{match}': {r}");
        Xunit.Assert.True(res["flow_count"]!.GetValue<long>() == 1, $"'{match}' selects one rule: {r}");
        return res["packet_count"]!.GetValue<long>();
    }

    public List<CtEntry> DumpConntrack()
    {
        var (exit, o, err) = ControlClient.Vswitchctl(_sock, "dump-conntrack");
        Xunit.Assert.True(exit == 0, $"vswitchctl dump-conntrack: {err}");
        return CtEntry.Parse(o);
    }

    /// <summary>Stops vswitchd; its final report (asserted clean by the caller).</summary>
    public RunResult Stop() => _sw.Stop();

    public void Dispose() => _sw.Dispose();
}
