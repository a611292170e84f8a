// Vlog.cs - runtime log levels, as ovs-appctl vlog/set and vlog/list: the switch's own message
// modules and DPDK's log types (by glob), changed while the switch runs (`vswitchctl vlog-set`).
// Control-plane only: no PMD logs anything.
using System.Globalization;
using VSwitch.Interop;

namespace VSwitch;

public enum VlogLevel
{
    Off = 0,
    Err = 1,
    Warn = 2,
    Info = 3,
    Dbg = 4,
}

public enum VlogModule
{
    /// <summary>Link up/down, PMD faults, translation errors (one line each, as they happen).</summary>
    Events,

    /// <summary>The periodic statistics line (--stats-interval).</summary>
    Stats,

    /// <summary>One line per control command that changes ports or tables (info), and per refusal (warn).</summary>
    Control,
}

public static class Vlog
{
    private static readonly int[] s_levels = [(int)VlogLevel.Info, (int)VlogLevel.Info, (int)VlogLevel.Warn];
    private static readonly Lock s_out = new();

    public static readonly string[] LevelNames = ["off", "err", "warn", "info", "dbg"];

    public static string[] ModuleNames => Enum.GetNames<VlogModule>().Select(n => n.ToLowerInvariant()).ToArray();

    public static VlogLevel Level(VlogModule m) => (VlogLevel)Volatile.Read(ref s_levels[(int)m]);

    public static bool On(VlogModule m, VlogLevel l) => l != VlogLevel.Off && l <= Level(m);

    /// <summary>Prints <paramref name="line"/> (stdout; err and warn to stderr) when <paramref name="m"/> logs at <paramref name="l"/>.</summary>
    public static void Write(VlogModule m, VlogLevel l, string line)
    {
        if (!On(m, l))
        {
            return;
        }

        lock (s_out)
        {
            var w = l <= VlogLevel.Warn ? Console.Error : Console.Out;
            w.WriteLine(line);
            w.Flush();
        }
    }

    /// <summary>
    /// Applies one setting: MODULE:LEVEL (a module of the switch, or "any" for all of them) or
    /// dpdk:PATTERN:LEVEL (DPDK log types matching the glob; "dpdk:LEVEL" sets DPDK's global
    /// level). Levels: off, err, warn, info, dbg. Returns what it set, for the reply.
    /// </summary>
    public static string Set(string spec, bool apply = true)
    {
        var parts = spec.Split(':');
        if (parts.Length < 2 || parts.Any(p => p.Length == 0))
        {
            throw new VSwitchException($"'{spec}': expected MODULE:LEVEL or dpdk:PATTERN:LEVEL (modules: any, {string.Join(", ", ModuleNames)}, dpdk)");
        }

        var level = ParseLevel(parts[^1], spec);
        string module = parts[0].ToLowerInvariant();
        if (module == "dpdk")
        {
            uint dl = DpdkLevel(level);
            if (!apply)
            {
                return "";
            }

            if (parts.Length == 2)
            {
                Native.LogSetGlobal(dl);
                return $"dpdk global level {LevelNames[(int)level]}";
            }

            string pattern = string.Join(':', parts[1..^1]);
            if (Native.LogSetPattern(pattern, dl) != 0)
            {
                throw new VSwitchException($"'{spec}': DPDK refused the log type pattern '{pattern}'");
            }

            return $"dpdk '{pattern}' {LevelNames[(int)level]}";
        }

        if (parts.Length != 2)
        {
            throw new VSwitchException($"'{spec}': only dpdk takes a pattern (MODULE:LEVEL)");
        }

        if (module == "any")
        {
            if (!apply)
            {
                return "";
            }

            for (int i = 0; i < s_levels.Length; i++)
            {
                Volatile.Write(ref s_levels[i], (int)level);
            }

            return $"every module {LevelNames[(int)level]}";
        }

        int idx = Array.IndexOf(ModuleNames, module);
        if (idx < 0)
        {
            throw new VSwitchException($"'{spec}': unknown module '{parts[0]}' (known: any, {string.Join(", ", ModuleNames)}, dpdk)");
        }

        if (apply)
        {
            Volatile.Write(ref s_levels[idx], (int)level);
        }

        return $"{module} {LevelNames[(int)level]}";
    }

    /// <summary>Every module with its level, and DPDK's global level.</summary>
    public static IReadOnlyList<(string Module, string Level)> List()
    {
        var list = ModuleNames.Select((n, i) => (n, LevelNames[(int)Level((VlogModule)i)])).ToList();
        uint g = Native.LogGlobalLevel();
        list.Add(("dpdk", g switch
        {
            0 => "off",
            <= 4 => "err",
            5 => "warn",
            <= 7 => "info",
            _ => "dbg",
        } + string.Create(CultureInfo.InvariantCulture, $" (global {g})")));
        return list;
    }

    private static VlogLevel ParseLevel(string s, string spec)
    {
        int i = Array.IndexOf(LevelNames, s.ToLowerInvariant());
        return i >= 0 ? (VlogLevel)i
            : s.Equals("debug", StringComparison.OrdinalIgnoreCase) ? VlogLevel.Dbg
            : throw new VSwitchException($"'{spec}': unknown level '{s}' (known: {string.Join(", ", LevelNames)})");
    }

    /// <summary>DPDK's RTE_LOG_* value for a level (off: emergencies only).</summary>
    private static uint DpdkLevel(VlogLevel l) => l switch
    {
        VlogLevel.Off => 1,
        VlogLevel.Err => 4,
        VlogLevel.Warn => 5,
        VlogLevel.Info => 7,
        _ => 8,
    };
}
