// ManPage.cs - vswitchctl's manual, in the sections of a man page: `vswitchctl --help` (or `help`)
// for the whole tool, `vswitchctl COMMAND --help` (or `help COMMAND`) for one command. Arguments and
// options are listed from the System.CommandLine declarations themselves (CommandLine.cs), so the
// manual names exactly what the parser accepts.
using System.CommandLine;
using System.CommandLine.Help;
using System.Text;

namespace VSwitch.Ctl;

internal static class ManPage
{
    private const int Width = 100;
    private const string Globals = "[--socket PATH] [--json]";

    public static string Tool(CtlCommandLine cli)
    {
        var sb = new StringBuilder();
        Section(sb, "NAME", "vswitchctl - control a running vswitchd: ports, flow tables, statistics, packet capture");
        Section(sb, "SYNOPSIS", $"""
            vswitchctl {Globals} COMMAND [ARGUMENTS] [OPTIONS]
            vswitchctl {Globals} COMMAND [ARGUMENTS] -- COMMAND [ARGUMENTS] [-- ...]
            vswitchctl help [COMMAND]
            vswitchctl [COMMAND] --help
            """);
        Section(sb, "DESCRIPTION", """
            Sends COMMAND to the control socket of a running vswitchd (protocol: docs/CONTROL.md) and prints
            the switch's answer: lists as tables, or the JSON result with --json. Changes take effect while
            traffic flows; a command the switch refuses changes nothing and its reason is printed.
            A COMMAND this vswitchctl does not know is sent as it is, without arguments (a newer switch
            may know it).
            """);

        var rows = cli.Commands.Select(c => (c.Name, c.Command.Description ?? "")).Append(("help", cli.HelpCommand.Description ?? "")).ToList();
        Rows(sb, "COMMANDS", rows, twoColumn: true);
        Rows(sb, "GLOBAL OPTIONS", [(Label(cli.SocketOption), cli.SocketOption.Description ?? ""), (Label(cli.JsonOption), cli.JsonOption.Description ?? ""),
            (Label(cli.Help), cli.Help.Description ?? "")], twoColumn: false);
        var chainable = string.Join(", ", cli.Commands.Where(c => c.Chainable).Select(c => c.Name));
        Section(sb, "CHAINING", $"""
            Commands that change ports or tables can be chained with --, as with ovs-vsctl. The chain runs
            as one unit: either every command takes effect or none does. The switch checks every command
            first, then runs them in order; if one is refused, the ones before it are undone in reverse
            (a port added is removed, a port removed is added back with its settings and OpenFlow number,
            the tables get back their exact earlier rules, counters included), and the error names the
            command. A later command may use a port an earlier one adds. Flow files are read by vswitchctl
            and sent with the chain (at most 1 MiB of requests; load larger files on their own).
            Chainable: {chainable}.
            """);
        Section(sb, "ENVIRONMENT", $"""
            VSWITCH_SOCKET
                the control socket when --socket is not given (default {CtlCommandLine.DefaultSocket})
            """);
        Section(sb, "EXIT STATUS", """
            0   done
            1   refused by the switch (its reason on standard error)
            2   usage error: a bad command line or an unreadable flow file (one line on standard error)
            3   the switch cannot be reached (no socket, no permission, connection lost)
            """);
        Section(sb, "EXAMPLES", """
            vswitchctl show
            vswitchctl --json dump-flows table=0
            vswitchctl add-port d net_null3,no-rx=1 -- add-flows flows.txt -- del-flows tcp
            vswitchctl help add-port
            """);
        Section(sb, "SEE ALSO", "docs/CONTROL.md (the control protocol), docs/FLOWS.md (the rule syntax), README.md");
        return sb.ToString().TrimEnd() + "\n";
    }

    public static string Command(CtlCommand c)
    {
        var sb = new StringBuilder();
        Section(sb, "NAME", $"vswitchctl {c.Name} - {c.Command.Description}");
        Section(sb, "SYNOPSIS", string.Join('\n', c.Usage.Split(" | ").Select(u => $"vswitchctl {Globals} {u}")));
        Section(sb, "DESCRIPTION", c.Description);
        if (c.Command.Arguments.Count > 0)
        {
            Rows(sb, "ARGUMENTS", c.Command.Arguments.Select(a => (a.Name, a.Description ?? "")).ToList(), twoColumn: false);
        }

        var options = c.Command.Options.Where(o => o is not HelpOption).Select(o => (Label(o), o.Description ?? "")).ToList();
        options.Add(("--socket PATH, --json, -h/--help", "as for every command (vswitchctl --help)"));
        Rows(sb, "OPTIONS", options, twoColumn: false);
        if (c.Chainable)
        {
            Section(sb, "CHAINING", $"""
                May be chained with other port and flow changes, all taking effect or none:
                vswitchctl {c.Name} ... -- COMMAND ... (vswitchctl --help, CHAINING).
                """);
        }

        Section(sb, c.Examples.Length == 1 ? "EXAMPLE" : "EXAMPLES", string.Join('\n', c.Examples));
        return sb.ToString().TrimEnd() + "\n";
    }

    private static string Label(Option o)
    {
        var names = o.Aliases.Where(a => a is ['-', not '?']).Order(StringComparer.Ordinal).Append(o.Name).Distinct();
        var label = string.Join(", ", names);
        bool takesValue = o.ValueType != typeof(bool) && o is not HelpOption;
        return takesValue ? $"{label} {o.HelpName ?? "VALUE"}" : label;
    }

    private static void Section(StringBuilder sb, string title, string body)
    {
        sb.Append(title).Append('\n');
        foreach (var line in body.TrimEnd().Split('\n'))
        {
            // Lines are written at most Width wide; a longer one (a generated list) is wrapped.
            string lead = "    " + new string(' ', line.Length - line.TrimStart().Length);
            foreach (var part in line.Length + 4 > Width ? Wrap(line.Trim(), Width - lead.Length) : [line.Trim()])
            {
                sb.Append(part.Length == 0 ? "" : lead + part).Append('\n');
            }
        }

        sb.Append('\n');
    }

    /// <summary>Label and text: side by side (short labels), or the text below its label.</summary>
    private static void Rows(StringBuilder sb, string title, List<(string Label, string Text)> rows, bool twoColumn)
    {
        sb.Append(title).Append('\n');
        int col = rows.Max(r => r.Label.Length) + 6;
        foreach (var (label, text) in rows)
        {
            if (twoColumn)
            {
                var lines = Wrap(text, Width - col);
                sb.Append("    ").Append(label.PadRight(col - 4)).Append(lines[0]).Append('\n');
                foreach (var l in lines.Skip(1))
                {
                    sb.Append(' ', col).Append(l).Append('\n');
                }
            }
            else
            {
                sb.Append("    ").Append(label).Append('\n');
                foreach (var l in Wrap(text, Width - 8))
                {
                    sb.Append("        ").Append(l).Append('\n');
                }
            }
        }

        sb.Append('\n');
    }

    private static List<string> Wrap(string text, int width)
    {
        var lines = new List<string>();
        var line = new StringBuilder();
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                lines.Add(line.ToString());
                line.Clear();
            }

            line.Append(line.Length > 0 ? " " : "").Append(word);
        }

        lines.Add(line.ToString());
        return lines;
    }
}
