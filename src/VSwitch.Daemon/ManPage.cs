// ManPage.cs - vswitchd --help: a manual page in the shape of man(7) (NAME, SYNOPSIS, DESCRIPTION,
// OPTIONS, FILES, SIGNALS, EXIT STATUS, EXAMPLES), wrapped to 80 columns. OPTIONS is generated
// from the command's options and the settings table, so it lists exactly what the parser takes,
// with each setting's JSON key, range and default.
using System.CommandLine;
using System.Text;
using VSwitch.Config;

namespace VSwitch.Daemon;

internal static class ManPage
{
    public const int Width = 80;

    public const string Summary = "a userspace virtual switch on DPDK";

    private const string Section = "       ";

    private const string Item = "           ";

    /// <summary>The whole manual, lines at most <see cref="Width"/> columns.</summary>
    public static string Text()
    {
        var o = new StringBuilder();
        Heading(o, "NAME");
        Para(o, Section, $"vswitchd - {Summary}");

        Heading(o, "SYNOPSIS");
        Para(o, Section, "vswitchd [--config FILE] [--port NAME=DEVARGS]... [OPTION]...");

        Heading(o, "DESCRIPTION");
        Para(o, Section, "vswitchd forwards packets between DPDK ports (physical NICs, vhost-user ports that VMs attach to, "
            + "virtual devices) with poll-mode threads (PMDs) pinned to their cores. In l2fwd mode it forwards between pairs "
            + "of ports; in pipeline mode through OpenFlow-like flow tables (docs/FLOWS.md), with a microflow and a megaflow "
            + "cache per PMD. vswitchctl talks to it over the control socket: it adds ports, loads flows and reads "
            + "statistics while traffic runs.");
        Para(o, Section, "Settings come from the JSON file that --config names (docs/CONFIG.md) and from the options below, "
            + "which apply on top of it. Each option below is a key of that file (named after \"JSON:\"), and the two take "
            + "the same values. Without --config and --port the embedded default runs: l2fwd between net_null0 and net_null1.");
        Para(o, Section, "It prints a stats line every --stats-interval seconds and, when it stops, a final report: per-port and "
            + "per-PMD counters, bytes allocated on each PMD thread while forwarding (0), and leaked mbufs (0). Errors are one "
            + "line, \"vswitchd: error: ...\".");

        Heading(o, "OPTIONS");
        foreach (var option in Options.Command.Options)
        {
            var row = Options.SettingOptions.FirstOrDefault(x => x.Option == option).Setting;
            string names = string.Join(", ", option.Aliases.Order(StringComparer.Ordinal).Append(option.Name));
            string value = option.HelpName is { Length: > 0 } v ? " " + v : "";
            Para(o, Section, names + value, gap: false);
            var text = new StringBuilder(Sentence(option.Description ?? ""));
            if (row != null)
            {
                text.Append(" JSON: ").Append(row.Scope == SettingScope.Port ? $"ports[].{row.Key}" : row.Key)
                    .Append(" (").Append(row.JsonType).Append(").");
                if (row.Allowed is string allowed)
                {
                    text.Append(row.Range != null ? " Range: " : " One of: ").Append(allowed).Append('.');
                }

                text.Append(" Default: ").Append(row.Default).Append('.');
                if (row.Nullable)
                {
                    text.Append(" 'none' turns it off.");
                }

                if (row.Repeatable)
                {
                    text.Append(" Repeatable.");
                }
            }

            Para(o, Item, text.ToString());
        }

        Heading(o, "FILES");
        Para(o, Section, "FILE of --config", gap: false);
        Para(o, Item, "the JSON configuration: comments and trailing commas allowed; an error names the file and the JSON path.");
        Para(o, Section, SwitchConfig.DefaultControlSocket, gap: false);
        Para(o, Item, "the default control socket (--control). A second vswitchd on a socket that another process serves stops "
            + "at once; a stale socket file is removed with a notice.");
        Para(o, Section, "FILE of --state", gap: false);
        Para(o, Item, "pipeline: the state store, written after every change (temporary file, fsync, rename): ports, their "
            + "OpenFlow numbers and the flow tables. A corrupt one is refused at start and left as it is.");
        Para(o, Section, "/var/run/dpdk/PREFIX/", gap: false);
        Para(o, Item, "DPDK's runtime directory, through which dpdk-dumpcap and dpdk-telemetry attach. PREFIX is vswitchd with "
            + "the default control socket, vswitchd-HASH with another one (HASH of its path), vswitchd-PID without one, "
            + "or the --file-prefix given with --eal; there is none with --eal --in-memory. vswitchd removes the directory "
            + "it chose when it stops.");

        Heading(o, "SIGNALS");
        Para(o, Section, "SIGINT, SIGTERM", gap: false);
        Para(o, Item, "stop cleanly: the PMDs flush their tx buffers, the ports drain and stop, the state store is written "
            + "and the final report is printed.");

        Heading(o, "EXIT STATUS");
        foreach (var (code, meaning) in new[]
        {
            ("0", "stopped cleanly (SIGINT, SIGTERM or --duration), or --help."),
            ("1", "an error: one line \"vswitchd: error: ...\" (a bad config file, a missing device, no hugepages, ...)."),
            ("2", "a command-line mistake: one line \"vswitchd: error: ... (try 'vswitchd --help')\"."),
            ("3", "stopped, but mbufs leaked: the final report says how many."),
        })
        {
            Para(o, Section, code, gap: false);
            Para(o, Item, meaning);
        }

        Heading(o, "EXAMPLES");
        foreach (var (command, what) in new[]
        {
            ("vswitchd --duration 10", "the embedded default for 10 seconds: l2fwd between two net_null ports."),
            ("vswitchd --config /etc/vswitch/sw.json --pmd-cores 1,2",
                "the file's settings, with PMD threads on cores 1 and 2."),
            ("vswitchd --port a=net_pcap0,rx_pcap=in.pcap,tx_pcap=a.pcap --port b=net_pcap1,rx_pcap=in.pcap,tx_pcap=b.pcap",
                "replay in.pcap on two ports and write what each forwards."),
            ("vswitchd --mode pipeline --flows flows.txt --state /var/lib/vswitch/state.json --port a=net_null0 --port b=net_null1 --port-vlan a=access:10",
                "flow tables loaded from flows.txt, kept across restarts; port a is an access port of VLAN 10."),
            ("vswitchd --no-mac-rewrite --port vm1=net_vhost0,iface=/run/vswitch/vm1.sock --port vm2=net_vhost1,iface=/run/vswitch/vm2.sock",
                "two vhost-user ports for VMs, forwarded to each other unchanged."),
            ("vswitchd --metrics 9100 --control /tmp/sw.sock",
                "Prometheus metrics at http://127.0.0.1:9100/metrics, control socket /tmp/sw.sock."),
        })
        {
            Para(o, Section, command, gap: false, command: true);
            Para(o, Item, what);
        }

        return o.ToString();
    }

    /// <summary>A command's words, an option kept together with its value (the places a line may break).</summary>
    private static IEnumerable<string> Words(string command)
    {
        var words = command.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < words.Length; i++)
        {
            bool withValue = words[i].StartsWith("--", StringComparison.Ordinal) && i + 1 < words.Length && !words[i + 1].StartsWith('-');
            yield return withValue ? words[i] + " " + words[++i] : words[i];
        }
    }

    private static string Sentence(string s) => s.Length == 0 || s.EndsWith('.') ? s : s + ".";

    private static void Heading(StringBuilder o, string name)
    {
        if (o.Length > 0 && !o.ToString().EndsWith("\n\n", StringComparison.Ordinal))
        {
            o.Append('\n');
        }

        o.Append(name).Append('\n');
    }

    /// <summary>
    /// Writes <paramref name="text"/> word-wrapped to <see cref="Width"/> columns at
    /// <paramref name="indent"/>, then a blank line unless <paramref name="gap"/> is false. A shell
    /// command (<paramref name="command"/>) continues with " \\" and a further indent, so it can be
    /// pasted as it is.
    /// </summary>
    private static void Para(StringBuilder o, string indent, string text, bool gap = true, bool command = false)
    {
        string more = command ? "    " : "";
        string end = command ? " \\" : "";
        var line = new StringBuilder(indent);
        bool empty = true;
        foreach (var word in command ? Words(text) : text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!empty && line.Length + 1 + word.Length > Width - end.Length)
            {
                o.Append(line).Append(end).Append('\n');
                line.Clear().Append(indent).Append(more);
                empty = true;
            }

            line.Append(empty ? "" : " ").Append(word);
            empty = false;
        }

        o.Append(line).Append('\n');
        if (gap)
        {
            o.Append('\n');
        }
    }
}
