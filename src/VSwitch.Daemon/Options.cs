// Options.cs - vswitchd's command line: System.CommandLine options generated from the settings
// table (src/VSwitch/Config/Settings.cs), layered over the JSON config file.
//
// System.CommandLine does the tokenising (which option a value belongs to, missing values, unknown
// options); every value is then read by its table row, the same reader the JSON file goes
// through, so the two accept the same values. Any mistake here is one line and exit code 2
// (Program.cs); a bad config file is exit code 1.
using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;
using VSwitch.Config;

namespace VSwitch.Daemon;

internal static class Options
{
    /// <summary>The JSON config file; the only option that is not a setting.</summary>
    public static readonly Option<string[]> Config = Valued("--config", "FILE",
        "JSON configuration (docs/CONFIG.md), read before the other options, which apply on top of it "
        + "(--port adds ports, --pmd-cores replaces the core list, ...)");

    public static readonly HelpOption Help = new("--help", "-h") { Description = "print this manual and exit" };

    /// <summary>One option per row of the settings table, in its order.</summary>
    public static IReadOnlyList<(Setting Setting, Option Option)> SettingOptions { get; } =
        Settings.All.Select(s => (s, s.IsFlag
            ? (Option)new Option<bool>(s.Option) { Arity = ArgumentArity.Zero, Description = s.Help }
            : Valued(s.Option, s.ValueName, s.Help))).ToList();

    public static RootCommand Command { get; } = Build();

    private static RootCommand Build()
    {
        var root = new RootCommand(ManPage.Summary);
        // Without the defaults: -h/--help prints the manual (ManPage.cs), there is no --version,
        // and neither "@file" response files nor "[directive]" tokens: a devargs string or an EAL
        // argument is taken as written.
        root.Options.Clear();
        root.Directives.Clear();
        root.Options.Add(Config);
        foreach (var (_, option) in SettingOptions)
        {
            root.Options.Add(option);
        }

        root.Options.Add(Help);
        return root;
    }

    private static readonly ParserConfiguration s_parser = new() { ResponseFileTokenReplacer = null, EnablePosixBundling = false };

    /// <summary>Parses <paramref name="args"/>; returns null when help was printed.</summary>
    public static SwitchConfig? Parse(string[] args)
    {
        var result = Command.Parse(args, s_parser);
        if (result.GetResult(Help) is { Implicit: false })
        {
            Console.Write(ManPage.Text());
            return null;
        }

        if (result.Errors.Count > 0 || MissingValue(result) != null)
        {
            throw new UsageException(Describe(result));
        }

        SwitchConfig c;
        if (result.GetValue(Config) is [.., var configFile])
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

        try
        {
            // Every value is checked first, in table order; then the switch's settings are applied,
            // then the per-port ones, which may name ports that --port adds.
            var apply = new List<(SettingScope Scope, Action<SwitchConfig> Apply)>();
            foreach (var (setting, option) in SettingOptions)
            {
                if (setting.IsFlag)
                {
                    if (result.GetValue((Option<bool>)option)) // not GetResult: a bool option always has one (implicitly false)
                    {
                        apply.Add((setting.Scope, setting.ParseOption("")));
                    }
                }
                else
                {
                    foreach (var value in result.GetValue((Option<string[]>)option) ?? [])
                    {
                        apply.Add((setting.Scope, setting.ParseOption(value)));
                    }
                }
            }

            foreach (var scope in new[] { SettingScope.Switch, SettingScope.Port })
            {
                foreach (var a in apply.Where(a => a.Scope == scope))
                {
                    a.Apply(c);
                }
            }
        }
        catch (VSwitchException e)
        {
            throw new UsageException(e.Message); // given on the command line, a refused value is a command-line mistake
        }

        if (c.Ports.Count == 0)
        {
            var d = SwitchConfig.EmbeddedDefault();
            c.Ports.AddRange(d.Ports);
            c.PortsAreEmbeddedDefault = true;
        }

        return c;
    }

    /// <summary>An option that takes one value per occurrence and may occur again (the last or every value counts, as its row says).</summary>
    private static Option<string[]> Valued(string name, string valueName, string description) => new(name)
    {
        HelpName = valueName,
        Description = description,
        Arity = ArgumentArity.OneOrMore,
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>
    /// The first valued option with no value after it. System.CommandLine counts an option's values
    /// over all its occurrences, so "--control none ... --control" would pass its arity check.
    /// </summary>
    private static string? MissingValue(ParseResult result)
    {
        var tokens = result.Tokens;
        for (int i = 0; i < tokens.Count; i++)
        {
            if (tokens[i].Type == TokenType.Option
                && Command.Options.Any(o => (o.Name == tokens[i].Value || o.Aliases.Contains(tokens[i].Value)) && o.Arity.MinimumNumberOfValues > 0)
                && (i + 1 == tokens.Count || tokens[i + 1].Type != TokenType.Argument))
            {
                return tokens[i].Value;
            }
        }

        return null;
    }

    /// <summary>The first parse error in the words vswitchd has always used.</summary>
    private static string Describe(ParseResult result)
    {
        if (MissingValue(result) is string missing)
        {
            return $"option '{missing}' needs a value";
        }

        if (result.UnmatchedTokens.Count > 0)
        {
            string t = result.UnmatchedTokens[0];
            return t.StartsWith('-') ? $"unknown option '{t}'" : $"unexpected argument '{t}' (every value follows its option)";
        }

        return result.Errors[0].Message.TrimEnd('.');
    }
}

/// <summary>A command-line mistake (exit code 2).</summary>
internal sealed class UsageException(string message) : Exception(message);
