// Options.cs - vswitchd's command line, layered over the JSON config file.
using System.Globalization;
using VSwitch.Config;

namespace VSwitch.Daemon;

internal static class Options
{
    public const string Usage = """
        usage: vswitchd [options]
          --config FILE            JSON configuration (docs/CONFIG.md); without it and without --port,
                                   the embedded default runs: l2fwd between net_null0 and net_null1
          --port NAME=DEVARGS      add a DPDK port, e.g. --port p0=net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap
          --rxq NAME=N             rx queues of port NAME (default 1)
          --ofport NAME=N          OpenFlow port number of port NAME (1..65280; default: the next
                                   number never used, from 1; kept in the state file)
          --pmd-cores LIST         PMD cores, e.g. 1 or 1,2 (default: the last core)
          --rxq-assign P:Q=CORE    pin rx queue Q of port P to a PMD core (repeatable)
          --mode MODE              forwarding mode: l2fwd (default) or pipeline (flow tables)
          --flows FILE             pipeline: load this flow file (ovs-ofctl syntax, docs/FLOWS.md) at start
          --port-vlan NAME=SPEC    pipeline: VLAN mode of a port for NORMAL: access:TAG or trunk[:V1,V2,..]
          --port-mtu NAME=MTU      the device MTU of a port (as ovs-vsctl's mtu_request; default: the device's)
          --megaflow-limit N       pipeline: most megaflows per PMD (default 200000)
          --emc-insert-inv-prob N  pipeline: insert 1 in N microflow cache misses (default 100, 0: off)
          --state FILE             pipeline: keep ports and flow tables in FILE across restarts
          --l2fwd-pair A,B         forward A<->B (repeatable; default: ports paired in order)
          --no-mac-rewrite         l2fwd without rewriting MACs (plain io forwarding)
          --tx-drain-us US         longest wait of a buffered packet for a full tx burst (default 0)
          --pmd-sleep-max US       an idle PMD sleeps up to US microseconds (0..10000; default 0: never)
          --mbufs N                mbuf pool size (default: sized from the ports)
          --eal ARGS               extra DPDK EAL arguments, space separated (e.g. "--huge-dir /mnt/huge")
          --control PATH           control socket (default /run/vswitch/vswitchd.sock); 'none' disables it
          --metrics [ADDR:]PORT    serve Prometheus metrics at http://ADDR:PORT/metrics (default: off;
                                   PORT or :PORT listens on 127.0.0.1 only; 'none' turns it off)
          --no-huge-fallback       fail instead of running with --no-huge when no hugepages are usable
          --stats-interval S       print statistics every S seconds (0: only at exit; default 1)
          --duration S             stop after S seconds (default: run until SIGINT/SIGTERM)
          -h, --help               this text
        """;

    /// <summary>Parses <paramref name="args"/>; returns null when help was printed.</summary>
    public static SwitchConfig? Parse(string[] args)
    {
        string? configFile = null;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--config")
            {
                configFile = Value(args, ref i);
            }
            else if (args[i] is "-h" or "--help")
            {
                Console.WriteLine(Usage);
                return null;
            }
        }

        SwitchConfig c;
        if (configFile != null)
        {
            if (!File.Exists(configFile))
            {
                throw new VSwitchException($"config file '{configFile}' does not exist");
            }

            c = SwitchConfig.FromJson(File.ReadAllText(configFile), configFile);
        }
        else
        {
            c = new SwitchConfig();
        }

        var rxqs = new List<(string, int)>();
        var ofports = new List<(string, int)>();
        var vlans = new List<(string, string)>();
        var mtus = new List<(string, int)>();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            switch (a)
            {
                case "--config":
                    i++;
                    break;
                case "--port":
                    {
                        var (name, devargs) = Split(Value(args, ref i), '=', a);
                        c.Ports.Add(new PortConfig { Name = name, DevArgs = devargs });
                        break;
                    }

                case "--rxq":
                    {
                        var (name, n) = Split(Value(args, ref i), '=', a);
                        rxqs.Add((name, IntArg(n, a, 1, 128)));
                        break;
                    }

                case "--ofport":
                    {
                        var (name, n) = Split(Value(args, ref i), '=', a);
                        ofports.Add((name, IntArg(n, a, 1, PortConfig.MaxOfPort)));
                        break;
                    }

                case "--pmd-cores":
                    c.PmdCores.Clear();
                    foreach (var s in Value(args, ref i).Split(',', StringSplitOptions.RemoveEmptyEntries))
                    {
                        c.PmdCores.Add(IntArg(s, a, 0, 1023));
                    }

                    break;
                case "--rxq-assign":
                    {
                        var (pq, core) = Split(Value(args, ref i), '=', a);
                        var (port, queue) = Split(pq, ':', a);
                        c.RxqAssignments.Add(new RxqAssignment(port, IntArg(queue, a, 0, 1023), IntArg(core, a, 0, 1023)));
                        break;
                    }

                case "--mode":
                    {
                        var mode = Value(args, ref i);
                        c.Mode = AsUsage(() => SwitchConfig.ParseMode(mode, "--mode"));
                        break;
                    }

                case "--flows":
                    c.FlowsFile = Value(args, ref i);
                    break;
                case "--state":
                    c.StateFile = Value(args, ref i);
                    break;
                case "--port-vlan":
                    {
                        var (name, spec) = Split(Value(args, ref i), '=', a);
                        vlans.Add((name, spec));
                        break;
                    }

                case "--port-mtu":
                    {
                        var (name, mtu) = Split(Value(args, ref i), '=', a);
                        mtus.Add((name, IntArg(mtu, a, 68, 65535)));
                        break;
                    }

                case "--megaflow-limit":
                    c.MegaflowLimit = IntArg(Value(args, ref i), a, 1, 10_000_000);
                    break;
                case "--emc-insert-inv-prob":
                    c.EmcInsertInvProb = IntArg(Value(args, ref i), a, 0, 1_000_000);
                    break;
                case "--l2fwd-pair":
                    {
                        var (x, y) = Split(Value(args, ref i), ',', a);
                        c.L2fwdPairs.Add((x, y));
                        break;
                    }

                case "--no-mac-rewrite":
                    c.MacRewrite = false;
                    break;
                case "--tx-drain-us":
                    c.TxDrainMicros = NumArg(Value(args, ref i), a);
                    break;
                case "--pmd-sleep-max":
                    c.PmdSleepMaxMicros = IntArg(Value(args, ref i), a, 0, 10_000);
                    break;
                case "--mbufs":
                    c.Mbufs = (uint)IntArg(Value(args, ref i), a, 1024, 16 * 1024 * 1024);
                    break;
                case "--eal":
                    c.EalArgs.AddRange(Value(args, ref i).Split(' ', StringSplitOptions.RemoveEmptyEntries));
                    break;
                case "--control":
                    {
                        var path = Value(args, ref i);
                        c.ControlSocket = path == "none" ? null : path;
                        break;
                    }

                case "--metrics":
                    c.Metrics = MetricsArg(Value(args, ref i), a);
                    break;
                case "--no-huge-fallback":
                    c.NoHugeFallback = false;
                    break;
                case "--stats-interval":
                    c.StatsIntervalSeconds = NumArg(Value(args, ref i), a);
                    break;
                case "--duration":
                    c.DurationSeconds = NumArg(Value(args, ref i), a);
                    break;
                default:
                    throw new UsageException($"unknown option '{a}'");
            }
        }

        foreach (var (name, mtu) in mtus)
        {
            (c.Ports.FirstOrDefault(p => p.Name == name) ?? throw new UsageException($"--port-mtu names unknown port '{name}'")).Mtu = mtu;
        }

        foreach (var (name, spec) in vlans)
        {
            var port = c.Ports.FirstOrDefault(p => p.Name == name)
                ?? throw new UsageException($"--port-vlan names unknown port '{name}'");
            AsUsage(() => port.SetVlan(spec, "--port-vlan"));
        }

        foreach (var (name, n) in ofports)
        {
            var port = c.Ports.FirstOrDefault(p => p.Name == name)
                ?? throw new UsageException($"--ofport names unknown port '{name}'");
            port.OfPort = n;
        }

        foreach (var (name, n) in rxqs)
        {
            var port = c.Ports.FirstOrDefault(p => p.Name == name)
                ?? throw new UsageException($"--rxq names unknown port '{name}'");
            port.RxQueues = n;
        }

        if (c.Ports.Count == 0)
        {
            var d = SwitchConfig.EmbeddedDefault();
            c.Ports.AddRange(d.Ports);
            c.PortsAreEmbeddedDefault = true;
        }

        return c;
    }

    /// <summary>A value the config layer refuses is, given on the command line, a command-line mistake (exit 2).</summary>
    private static T AsUsage<T>(Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (VSwitchException e)
        {
            throw new UsageException(e.Message);
        }
    }

    private static void AsUsage(Action parse) => AsUsage(() => { parse(); return 0; });

    private static string Value(string[] args, ref int i)
    {
        if (i + 1 >= args.Length)
        {
            throw new UsageException($"option '{args[i]}' needs a value");
        }

        return args[++i];
    }

    private static (string, string) Split(string s, char sep, string option)
    {
        int k = s.IndexOf(sep, StringComparison.Ordinal);
        if (k <= 0 || k == s.Length - 1)
        {
            throw new UsageException($"{option} '{s}': expected two parts separated by '{sep}'");
        }

        return (s[..k], s[(k + 1)..]);
    }

    private static int IntArg(string s, string option, int min, int max) =>
        int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= min && v <= max
            ? v
            : throw new UsageException($"{option} '{s}': expected an integer from {min} to {max}");

    private static MetricsEndpoint? MetricsArg(string s, string option) =>
        s == "none" ? null
            : MetricsEndpoint.TryParse(s, out var endpoint, out string error) ? endpoint
            : throw new UsageException($"{option} '{s}': {error}");

    private static double NumArg(string s, string option) =>
        double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v >= 0
            ? v
            : throw new UsageException($"{option} '{s}': expected a non-negative number");
}

/// <summary>A command-line mistake (exit code 2).</summary>
internal sealed class UsageException(string message) : Exception(message);
