// SettingsTests.cs - the settings table (src/VSwitch/Config/Settings.cs) keeps the JSON config file,
// the command line, --help and docs/CONFIG.md in step: every row is documented in both places, and
// the file and the command line accept and refuse the same values (no DPDK needed).
using System.Globalization;
using VSwitch.Config;
using VSwitch.Daemon;

namespace VSwitch.Tests;

public sealed class SettingsTests
{
    private static readonly string s_help = ManPage.Text();

    public static TheoryData<string> Keys()
    {
        var d = new TheoryData<string>();
        foreach (var s in Settings.All)
        {
            d.Add(s.Key);
        }

        return d;
    }

    private static Setting Row(string key) => Settings.All.Single(s => s.Key == key);

    [Theory]
    [MemberData(nameof(Keys))]
    public void Every_setting_is_in_help_and_in_the_config_docs_with_its_option_and_key(string key)
    {
        var s = Row(key);
        string optionLine = "       " + s.Option + (s.IsFlag ? "" : " " + s.ValueName);
        Assert.Contains(optionLine + "\n", s_help, StringComparison.Ordinal);
        Assert.Contains(s.Scope == SettingScope.Port ? $"JSON: ports[].{s.Key} " : $"JSON: {s.Key} ", Flat(s_help), StringComparison.Ordinal);
        if (s.Allowed is string allowed)
        {
            Assert.Contains(allowed, Flat(s_help), StringComparison.Ordinal);
        }

        string docs = File.ReadAllText(Path.Combine(Repo.Root, "docs", "CONFIG.md"));
        Assert.Contains($"`{s.Key}`", docs, StringComparison.Ordinal);
        Assert.Contains($"`{s.Option}", docs, StringComparison.Ordinal);
    }

    [Fact]
    public void Help_is_a_manual_page_of_at_most_80_columns()
    {
        var lines = s_help.Split('\n');
        Assert.All(lines, l => Assert.True(l.Length <= 80, $"{l.Length} columns: {l}"));
        string[] sections = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES", "SIGNALS", "EXIT STATUS", "EXAMPLES"];
        Assert.Equal(sections, lines.Where(l => l.Length > 0 && char.IsAsciiLetterUpper(l[0])).ToArray());
        Assert.Contains("/var/run/dpdk/PREFIX/", s_help, StringComparison.Ordinal);
        Assert.Contains("SIGINT, SIGTERM", s_help, StringComparison.Ordinal);
        Assert.Contains("       --config FILE\n", s_help, StringComparison.Ordinal);
        Assert.Contains("       -h, --help\n", s_help, StringComparison.Ordinal);
        foreach (var code in new[] { "0", "1", "2", "3" })
        {
            Assert.Contains($"\n       {code}\n", s_help, StringComparison.Ordinal);
        }
    }

    /// <summary>Values at and around the ends of a setting's range (and, for integers, a fraction).</summary>
    private static IEnumerable<double> Probes(ValueRange r)
    {
        double[] probes = [r.Min - 1, r.Min, Math.Floor((r.Min + r.Max) / 2), r.Max, r.Max + 1, r.Min + 0.5, r.Max + 0.5, -0.5];
        return probes.Distinct();
    }

    public static TheoryData<string> NumericKeys()
    {
        var d = new TheoryData<string>();
        foreach (var s in Settings.All.Where(s => s.Range != null))
        {
            d.Add(s.Key);
        }

        return d;
    }

    [Theory]
    [MemberData(nameof(NumericKeys))]
    public void The_file_and_the_command_line_refuse_and_accept_the_same_numbers(string key)
    {
        var s = Row(key);
        var r = s.Range!;
        foreach (double v in Probes(r))
        {
            string text = v.ToString("R", CultureInfo.InvariantCulture);
            string? jsonError = Error(() => SwitchConfig.FromJson(Json(s, text), "t.json"));
            string? cliError = Error(() => Options.Parse(Args(s, text)));
            bool inRange = v >= r.Min && v <= r.Max && (!r.Integer || v == Math.Floor(v));
            Assert.True(inRange ? jsonError == null : jsonError != null, $"{key}={text}: JSON {jsonError ?? "accepted"}");
            Assert.True(inRange ? cliError == null : cliError != null, $"{key}={text}: {s.Option} {cliError ?? "accepted"}");
            if (!inRange)
            {
                Assert.EndsWith(": expected " + r.Expected, jsonError, StringComparison.Ordinal);
                Assert.EndsWith(": expected " + r.Expected, cliError, StringComparison.Ordinal);
            }
        }
    }

    /// <summary>The setting with value <paramref name="v"/> as a config file.</summary>
    private static string Json(Setting s, string v) => s.Key switch
    {
        _ when s.Scope == SettingScope.Port => $$"""{ "ports": [ { "name": "a", "devargs": "net_null0", "{{s.Key}}": {{v}} } ] }""",
        "pmd_cores" => $$"""{ "pmd_cores": [ {{v}} ] }""",
        "rxq_assign" => $$"""{ "rxq_assign": [ { "port": "a", "queue": {{v}}, "core": {{v}} } ] }""",
        _ when s.JsonType.StartsWith("array", StringComparison.Ordinal) => throw new Xunit.Sdk.XunitException($"no sample for the list setting {s.Key}: add one"),
        _ => $$"""{ "{{s.Key}}": {{v}} }""",
    };

    /// <summary>The same as a command line.</summary>
    private static string[] Args(Setting s, string v) => s.Key switch
    {
        _ when s.Scope == SettingScope.Port => ["--port", "a=net_null0", s.Option, "a=" + v],
        "rxq_assign" => [s.Option, $"a:{v}={v}"],
        _ => [s.Option, v],
    };

    private static string? Error(Action parse)
    {
        try
        {
            parse();
            return null;
        }
        catch (Exception e) when (e is VSwitchException or UsageException)
        {
            return e.Message;
        }
    }

    /// <summary>How to read back each setting that 'none' turns off.</summary>
    private static readonly Dictionary<string, Func<SwitchConfig, object?>> s_offable = new()
    {
        ["flows"] = c => c.FlowsFile,
        ["state_file"] = c => c.StateFile,
        ["control_socket"] = c => c.ControlSocket,
        ["metrics"] = c => c.Metrics,
    };

    [Fact]
    public void None_turns_a_setting_off_in_the_file_and_on_the_command_line_alike()
    {
        Assert.Equal(s_offable.Keys.Order(), Settings.All.Where(s => s.Nullable).Select(s => s.Key).Order());
        foreach (var (key, get) in s_offable)
        {
            var s = Row(key);
            Assert.Null(get(SwitchConfig.FromJson($$"""{ "{{key}}": null }""", "t.json")));
            Assert.Null(get(SwitchConfig.FromJson($$"""{ "{{key}}": "none" }""", "t.json")));
            Assert.Null(get(Options.Parse([s.Option, "none"])!));
            Assert.StartsWith($"t.json: $.{key}:", Error(() => SwitchConfig.FromJson($$"""{ "{{key}}": "" }""", "t.json")), StringComparison.Ordinal);
            Assert.NotNull(Error(() => Options.Parse([s.Option, ""])));
        }
    }

    [Fact]
    public void Choices_are_the_same_in_the_file_and_on_the_command_line()
    {
        var mode = Row("mode");
        foreach (var choice in mode.Choices!)
        {
            Assert.Equal(SwitchConfig.FromJson($$"""{ "mode": "{{choice}}" }""", "t.json").Mode, Options.Parse([mode.Option, choice])!.Mode);
        }

        Assert.Equal("t.json: $.mode: unknown forwarding mode 'fast' (known: l2fwd, pipeline)", Error(() => SwitchConfig.FromJson("""{ "mode": "fast" }""", "t.json")));
        Assert.Equal("--mode: unknown forwarding mode 'fast' (known: l2fwd, pipeline)", Error(() => Options.Parse(["--mode", "fast"])));

        foreach (var (spec, ok) in new[] { ("access:10", true), ("trunk", true), ("trunk:1,4095", true), ("none", true), ("access:4096", false), ("trunk:x", false), ("hybrid", false) })
        {
            Assert.Equal(ok, Error(() => SwitchConfig.FromJson($$"""{ "ports": [ { "name": "a", "devargs": "net_null0", "vlan": "{{spec}}" } ] }""", "t.json")) == null);
            Assert.Equal(ok, Error(() => Options.Parse(["--port", "a=net_null0", "--port-vlan", "a=" + spec])) == null);
        }
    }

    [Fact]
    public void Flags_change_their_setting_only_when_given()
    {
        var c = Options.Parse([])!;
        Assert.True(c.MacRewrite);
        Assert.True(c.NoHugeFallback);
        c = Options.Parse(["--no-mac-rewrite"])!;
        Assert.False(c.MacRewrite);
        Assert.True(c.NoHugeFallback);
        c = Options.Parse(["--no-huge-fallback"])!;
        Assert.True(c.MacRewrite);
        Assert.False(c.NoHugeFallback);
        Assert.False(SwitchConfig.FromJson("""{ "mac_rewrite": false }""", "t.json").MacRewrite);
    }

    [Fact]
    public void Settings_that_were_only_in_the_file_have_options_now()
    {
        var c = Options.Parse(["--port", "a=net_null0", "--rxd", "a=64", "--txd", "a=128", "--mempool-cache", "0", "--megaflow-idle-ms", "500"])!;
        Assert.Equal((64, 128), (c.Ports[0].RxDescriptors, c.Ports[0].TxDescriptors));
        Assert.Equal(0u, c.MempoolCache);
        Assert.Equal(500, c.MegaflowIdleMs);
        Assert.Equal("--rxd names unknown port 'b'", Error(() => Options.Parse(["--port", "a=net_null0", "--rxd", "b=64"])));
    }

    [Fact]
    public void Options_apply_on_top_of_the_file_and_per_port_options_reach_the_file_s_ports()
    {
        string dir = Directory.CreateTempSubdirectory("vsw-settings-").FullName;
        try
        {
            string cfg = Path.Combine(dir, "c.json");
            File.WriteAllText(cfg, """{ "ports": [ { "name": "a", "devargs": "net_null0", "rxq": 2 } ], "pmd_cores": [1], "stats_interval_s": 5 }""");
            var c = Options.Parse(["--config", cfg, "--rxq", "a=4", "--pmd-cores", "0,1", "--port", "b=net_null1", "--ofport", "b=9"])!;
            Assert.Equal(4, c.Ports[0].RxQueues);
            Assert.Equal(9, c.Ports[1].OfPort);
            Assert.Equal([0, 1], c.PmdCores);
            Assert.Equal(5, c.StatsIntervalSeconds);
            Assert.False(c.PortsAreEmbeddedDefault);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string Flat(string text) => string.Join(' ', text.Split((char[])['\n', ' '], StringSplitOptions.RemoveEmptyEntries));
}

/// <summary>The repository the tests run from (for docs and scripts).</summary>
internal static class Repo
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d != null && !File.Exists(Path.Combine(d.FullName, "VSwitch.sln")))
        {
            d = d.Parent;
        }

        return d?.FullName ?? throw new Xunit.Sdk.XunitException("repository root not found");
    }
}
