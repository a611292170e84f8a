// PrivateOvs.cs - a private Open vSwitch 3.1 (tests/ovs/ovs-private.sh) for the differential test.
//
// Every path of the instance (database, sockets, pid and log files) is under a temporary
// directory; its bridge br0 has datapath_type=dummy and dummy ports p1..pN with OpenFlow numbers
// 1..N. Rule files go in with `ovs-ofctl del-flows` and `add-flows` (not a --bundle replace-flows: a bundle
// needs OpenFlow 1.4, which cannot carry a rule only OpenFlow 1.0 / NXM can, such as pop_vlan on a
// match without a tag; replace-flows refuses some NXM-only files too) (one process per rule set);
// traces go straight to ovs-vswitchd's unixctl socket as JSON-RPC (what ovs-appctl sends), so a
// trace costs a round trip rather than a process. Dispose stops both daemons (SIGTERM by their
// pid files, from the same script) and removes the directory.
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VSwitch.Tests.Differential;

internal sealed class PrivateOvs : IDisposable
{
    public const string Bridge = "br0";
    private readonly string _dir;
    private readonly string _script;
    private readonly Socket _ctl;
    private readonly byte[] _buf = new byte[1 << 16];
    private int _id;

    private PrivateOvs(string dir, string script, Socket ctl)
    {
        _dir = dir;
        _script = script;
        _ctl = ctl;
    }

    /// <summary>OpenFlow port of each datapath port number.</summary>
    public Dictionary<int, int> OfPortOfOdp { get; } = [];

    /// <summary>The datapath number of the bridge's LOCAL port.</summary>
    public int LocalOdp { get; private set; } = -1;

    /// <summary>Where the tools are, or why the test cannot run.</summary>
    public static string? Missing()
    {
        foreach (string tool in new[] { "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl" })
        {
            if (!Environment.GetEnvironmentVariable("PATH")!.Split(':').Concat(["/usr/sbin", "/sbin"]).Any(d => File.Exists(Path.Combine(d, tool))))
            {
                return $"{tool} is not installed (scripts/setup installs openvswitch-switch-dpdk)";
            }
        }

        return File.Exists("/usr/share/openvswitch/vswitch.ovsschema") ? null : "/usr/share/openvswitch/vswitch.ovsschema is missing";
    }

    public static PrivateOvs Start(int ports)
    {
        string script = Path.Combine(RepoRoot(), "tests", "ovs", "ovs-private.sh");
        string dir = Directory.CreateTempSubdirectory("vsw-ovsdiff-").FullName;
        Run(script, $"start {dir} {ports}", 60);
        var ctl = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        ctl.Connect(new UnixDomainSocketEndPoint(Path.Combine(dir, "run", "ovs-vswitchd.ctl")));
        var ovs = new PrivateOvs(dir, script, ctl);
        ovs.ReadPorts();
        return ovs;
    }

    /// <summary>`dpif/show`: "    p1 1/1: (dummy)" is OpenFlow port 1 on datapath port 1.</summary>
    private void ReadPorts()
    {
        foreach (string line in Appctl("dpif/show").Split('\n'))
        {
            var parts = line.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2 || !parts[1].Contains('/', StringComparison.Ordinal))
            {
                continue;
            }

            var nums = parts[1].TrimEnd(':').Split('/');
            int odp = int.Parse(nums[1], CultureInfo.InvariantCulture);
            if (parts[0] == Bridge)
            {
                LocalOdp = odp;
            }
            else
            {
                OfPortOfOdp[odp] = int.Parse(nums[0], CultureInfo.InvariantCulture);
            }
        }
    }

    /// <summary>Replaces the bridge's rules with <paramref name="lines"/>; null, or ovs-ofctl's complaint (it names the file's line).</summary>
    public string? ReplaceFlows(IReadOnlyList<string> lines)
    {
        string file = Path.Combine(_dir, "rules.flows");
        File.WriteAllLines(file, lines);
        string mgmt = $"unix:{Path.Combine(_dir, "run", Bridge + ".mgmt")}";
        var (rc, _, err) = RunRaw("ovs-ofctl", $"del-flows {mgmt}", 30);
        if (rc == 0)
        {
            (rc, _, err) = RunRaw("ovs-ofctl", $"add-flows {mgmt} {file}", 30);
        }

        if (rc == 0 || !err.Contains("none of the usable flow formats", StringComparison.Ordinal))
        {
            return rc == 0 ? null : err.Trim();
        }

        // One connection speaks one protocol, and no protocol carries every rule of this file: some
        // need OpenFlow 1.1+ (push_vlan), some OpenFlow 1.0 / NXM (pop_vlan on a match without a
        // tag: "inconsistent" in OpenFlow 1.1+). Load the two kinds over two connections (the
        // usable protocols of each line from `ovs-ofctl parse-flow`).
        // Lines NXM can carry go as NXM (as above; OXM in OpenFlow 1.2+ would want set_field:5->vlan_vid
        // as 0x1005), the others over OpenFlow 1.5.
        var nxm = new List<string>();
        var oxm = new List<string>();
        for (int i = 0; i < lines.Count; i++)
        {
            var (prc, pout, perr) = RunRaw("ovs-ofctl", "-O OpenFlow10,OpenFlow15 parse-flow", 30, lines[i]);
            if (prc != 0)
            {
                return string.Create(CultureInfo.InvariantCulture, $"{file}:{i + 1}: {perr.Trim().Split('\n')[^1]}"); // no protocol carries this line
            }

            if (pout.Split('\n')[0].Contains("NXM", StringComparison.Ordinal))
            {
                nxm.Add(lines[i]);
                continue;
            }

            // Over OpenFlow 1.1+ ovs-ofctl re-encodes two OpenFlow 1.0 actions, changing them:
            // mod_vlan_vid/mod_vlan_pcp on a match without a tag become push_vlan + set_field (a
            // second tag on a tagged frame), and set_field:N->vlan_vid wants OpenFlow 1.2's 0x1000|N.
            if (lines[i].Contains("mod_vlan_", StringComparison.Ordinal) || lines[i].Contains("->vlan_vid", StringComparison.Ordinal))
            {
                return string.Create(CultureInfo.InvariantCulture, $"{file}:{i + 1}: mod_vlan_vid, mod_vlan_pcp or set_field vlan_vid in a rule only OpenFlow 1.1+ carries (ovs-ofctl would change its meaning)");
            }

            oxm.Add(lines[i]);
        }

        File.WriteAllLines(file, nxm);
        string oxmFile = Path.Combine(_dir, "rules-oxm.flows");
        File.WriteAllLines(oxmFile, oxm);
        foreach (string args in new[] { $"del-flows {mgmt}", $"add-flows {mgmt} {file}", $"-O OpenFlow15 add-flows {mgmt} {oxmFile}" })
        {
            (rc, _, err) = RunRaw("ovs-ofctl", args, 30);
            if (rc != 0)
            {
                return err.Trim();
            }
        }

        return null;
    }

    /// <summary>
    /// Gives port p<paramref name="port"/> the VLAN configuration of this switch's
    /// <paramref name="spec"/> (`none`: no tag, trunks or vlan_mode; `access:T`: tag=T,
    /// vlan_mode=access; `trunk[:V,..]`: vlan_mode=trunk and trunks= the list, none for every VLAN).
    /// ovs-vsctl returns once ovs-vswitchd has applied it.
    /// </summary>
    public void SetPortVlan(int port, string spec)
    {
        string p = string.Create(CultureInfo.InvariantCulture, $"p{port}");
        var (mode, rest) = spec.IndexOf(':', StringComparison.Ordinal) is int i and >= 0 ? (spec[..i], spec[(i + 1)..]) : (spec, "");
        string args = mode switch
        {
            "access" => $"set port {p} tag={rest} vlan_mode=access -- clear port {p} trunks",
            "trunk" when rest.Length > 0 => $"set port {p} vlan_mode=trunk trunks={rest} -- clear port {p} tag",
            "trunk" => $"set port {p} vlan_mode=trunk -- clear port {p} tag trunks",
            _ => $"clear port {p} tag trunks vlan_mode",
        };
        var (rc, _, err) = RunRaw("ovs-vsctl", $"--db=unix:{Path.Combine(_dir, "run", "db.sock")} --timeout=15 {args}", 30);
        if (rc != 0)
        {
            throw new InvalidOperationException($"ovs-vsctl {args}: {err}");
        }
    }

    /// <summary>Adds groups (OpenFlow 1.5, as groups need 1.1+); null, or ovs-ofctl's complaint.</summary>
    public string? AddGroups(IReadOnlyList<string> lines)
    {
        string file = Path.Combine(_dir, "groups.txt");
        File.WriteAllLines(file, lines);
        string mgmt = $"unix:{Path.Combine(_dir, "run", Bridge + ".mgmt")}";
        var (rc, _, err) = RunRaw("ovs-ofctl", $"-O OpenFlow15 add-groups {mgmt} {file}", 30);
        return rc == 0 ? null : err.Trim();
    }

    /// <summary>ofproto/trace of a frame entering on <paramref name="inPort"/>: the whole trace text.</summary>
    public string Trace(int inPort, string hex) =>
        Appctl("ofproto/trace", Bridge, string.Create(CultureInfo.InvariantCulture, $"in_port={inPort}"), hex);

    /// <summary>One unixctl command (JSON-RPC 1.0, as ovs-appctl speaks it); its text, or throws with the server's error.</summary>
    public string Appctl(string method, params string[] args)
    {
        int id = _id++;
        var req = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = new JsonArray(args.Select(a => (JsonNode?)a).ToArray()) };
        _ctl.Send(Encoding.UTF8.GetBytes(req.ToJsonString()));
        var acc = new MemoryStream();
        while (true)
        {
            int n = _ctl.Receive(_buf);
            if (n == 0)
            {
                throw new IOException($"ovs-vswitchd closed its control socket (log: {Path.Combine(_dir, "log", "ovs-vswitchd.log")})");
            }

            acc.Write(_buf, 0, n);
            if (Complete(acc.GetBuffer().AsSpan(0, (int)acc.Length)))
            {
                break;
            }
        }

        using var doc = JsonDocument.Parse(acc.ToArray());
        var root = doc.RootElement;
        if (root.TryGetProperty("error", out var e) && e.ValueKind != JsonValueKind.Null)
        {
            throw new InvalidOperationException($"{method}: {e}");
        }

        return root.GetProperty("result").GetString() ?? "";
    }

    /// <summary>Whether the bytes hold one whole JSON object (braces balanced outside strings).</summary>
    private static bool Complete(ReadOnlySpan<byte> s)
    {
        int depth = 0;
        bool str = false, esc = false;
        foreach (byte b in s)
        {
            if (str)
            {
                if (esc)
                {
                    esc = false;
                }
                else if (b == '\\')
                {
                    esc = true;
                }
                else if (b == '"')
                {
                    str = false;
                }
            }
            else if (b == '"')
            {
                str = true;
            }
            else if (b == '{')
            {
                depth++;
            }
            else if (b == '}' && --depth == 0)
            {
                return true;
            }
        }

        return false;
    }

    public void Dispose()
    {
        _ctl.Dispose();
        try
        {
            Run(_script, $"stop {_dir}", 30);
        }
        finally
        {
            try
            {
                Directory.Delete(_dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static void Run(string file, string args, int timeoutS)
    {
        var (rc, output, err) = RunRaw(file, args, timeoutS);
        if (rc != 0)
        {
            throw new InvalidOperationException($"{file} {args}: exit {rc}\n{output}{err}");
        }
    }

    private static (int Rc, string Out, string Err) RunRaw(string file, string args, int timeoutS, string? lastArg = null)
    {
        var psi = new ProcessStartInfo("timeout") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in (string[])["-k", "5", timeoutS.ToString(CultureInfo.InvariantCulture), file, .. args.Split(' ', StringSplitOptions.RemoveEmptyEntries)])
        {
            psi.ArgumentList.Add(a);
        }

        if (lastArg != null)
        {
            psi.ArgumentList.Add(lastArg);
        }

        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, err.Result);
    }

    internal static string RepoRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d != null && !File.Exists(Path.Combine(d.FullName, "VSwitch.sln")))
        {
            d = d.Parent;
        }

        return d?.FullName ?? throw new InvalidOperationException("repository root (VSwitch.sln) not found above " + AppContext.BaseDirectory);
    }
}
