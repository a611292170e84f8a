// Setting.cs - one row of the settings table (Settings.cs) and the readers its values go through.
//
// A setting is read from two places: a key of the JSON config file and an option of vswitchd's
// command line. Both go through the same reader (an integer range, a number range, a word from a
// list, ...), so the file and the command line accept and refuse the same values with the same
// words; only the prefix of an error differs: "FILE: $.JSON.PATH: ..." or "--option 'VALUE': ...".
using System.Globalization;
using System.Text.Json;

namespace VSwitch.Config;

/// <summary>Whether a setting belongs to the switch (a top-level key) or to one port (a key of a port object).</summary>
public enum SettingScope
{
    Switch,
    Port,
}

/// <summary>
/// One setting: its JSON key, its command-line option, what help says of it, the range it takes,
/// and how a value is applied to a <see cref="SwitchConfig"/> (or, per port, to a <see cref="PortConfig"/>).
/// </summary>
public sealed class Setting
{
    /// <summary>The JSON key: top-level, or inside a port object for <see cref="SettingScope.Port"/>.</summary>
    public required string Key { get; init; }

    /// <summary>The command-line option, e.g. "--megaflow-limit"; per-port options take NAME=VALUE.</summary>
    public required string Option { get; init; }

    /// <summary>The option's value as help shows it ("N", "FILE", "NAME=N"); empty for a flag.</summary>
    public string ValueName { get; init; } = "";

    public required string Help { get; init; }

    /// <summary>The default, in words, as help and docs/CONFIG.md say it.</summary>
    public required string Default { get; init; }

    /// <summary>The JSON type, in words ("int", "string or null", ...), as docs/CONFIG.md says it.</summary>
    public required string JsonType { get; init; }

    public SettingScope Scope { get; init; }

    /// <summary>The numeric range a value (or each element of a list) must lie in; null for a non-numeric setting.</summary>
    public ValueRange? Range { get; init; }

    /// <summary>The words a value may be (a choice such as the forwarding mode); null otherwise.</summary>
    public IReadOnlyList<string>? Choices { get; init; }

    /// <summary>The option may be given more than once: each adds (ports, pairs, EAL arguments, per-port values).</summary>
    public bool Repeatable { get; init; }

    /// <summary>The option is a flag: it takes no value and sets the JSON key to <see cref="FlagValue"/>.</summary>
    public bool IsFlag => ValueName.Length == 0;

    public bool FlagValue { get; init; }

    /// <summary>The value "none" (JSON: null or "none") turns the setting off.</summary>
    public bool Nullable { get; init; }

    /// <summary>Reads a switch-scope value from JSON and applies it; throws <see cref="VSwitchException"/> naming <c>where</c>.</summary>
    public Action<SwitchConfig, JsonElement, string>? ReadJson { get; init; }

    /// <summary>Reads a port-scope value from JSON and applies it to the port.</summary>
    public Action<PortConfig, JsonElement, string>? ReadPortJson { get; init; }

    /// <summary>
    /// Reads the option's value (checked at once) and returns how to apply it. Per-port values are
    /// applied after every option was read, so they may name ports the command line adds later.
    /// </summary>
    public required Func<string, Action<SwitchConfig>> ReadText { get; init; }

    /// <summary>Reads the command-line value <paramref name="text"/> of this option; throws <see cref="VSwitchException"/> on a bad one.</summary>
    public Action<SwitchConfig> ParseOption(string text) => ReadText(IsFlag ? "" : text);

    /// <summary>The range or the choices in words, as help shows them ("1 to 128", "l2fwd, pipeline"); null when neither.</summary>
    public string? Allowed => Range?.Words ?? (Choices == null ? null : string.Join(", ", Choices));
}

/// <summary>A numeric range, integer or not; the one check both readers apply.</summary>
public sealed record ValueRange(double Min, double Max, bool Integer)
{
    public static ValueRange Ints(int min, int max) => new(min, max, true);

    public static ValueRange Numbers(double min, double max) => new(min, max, false);

    /// <summary>"1 to 128" (help).</summary>
    public string Words => $"{Format(Min)} to {Format(Max)}";

    /// <summary>What an error says was expected: "an integer from 1 to 128".</summary>
    public string Expected => $"{(Integer ? "an integer" : "a number")} from {Format(Min)} to {Format(Max)}";

    public static string Format(double v) => v.ToString("0.######", CultureInfo.InvariantCulture);

    /// <summary>An integer from JSON; <paramref name="where"/> is "FILE: PATH".</summary>
    public int Int(JsonElement e, string where) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) && v >= Min && v <= Max
            ? v : throw new VSwitchException($"{where}: expected {Expected}");

    /// <summary>An integer from the command line: the value of <paramref name="option"/>.</summary>
    public int Int(string text, string option) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= Min && v <= Max
            ? v : throw new VSwitchException($"{option} '{text}': expected {Expected}");

    public double Number(JsonElement e, string where) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out double v) && v >= Min && v <= Max
            ? v : throw new VSwitchException($"{where}: expected {Expected}");

    public double Number(string text, string option) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) && v >= Min && v <= Max
            ? v : throw new VSwitchException($"{option} '{text}': expected {Expected}");
}

/// <summary>The JSON readers every setting shares: type checks with one wording.</summary>
internal static class JsonRead
{
    public static void Expect(JsonElement e, JsonValueKind kind, string where)
    {
        if (e.ValueKind != kind)
        {
            throw new VSwitchException($"{where}: expected {kind.ToString().ToLowerInvariant()}, found {e.ValueKind.ToString().ToLowerInvariant()}");
        }
    }

    public static JsonElement Get(JsonElement o, string name, string where) =>
        o.TryGetProperty(name, out var v) ? v : throw new VSwitchException($"{where}: missing \"{name}\"");

    /// <summary>A non-empty string.</summary>
    public static string Str(JsonElement e, string where)
    {
        Expect(e, JsonValueKind.String, where);
        return TextRead.NonEmpty(e.GetString()!, where);
    }

    /// <summary>A non-empty string, or null for JSON null and "none" (a setting that can be off).</summary>
    public static string? StrOrNone(JsonElement e, string where) =>
        e.ValueKind == JsonValueKind.Null ? null : TextRead.OrNone(Str(e, where));

    public static bool Bool(JsonElement e, string where) => e.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw new VSwitchException($"{where}: expected true or false"),
    };

    /// <summary>Each element of an array, with its path "PATH[i]".</summary>
    public static IEnumerable<(JsonElement Element, string Where)> Items(JsonElement e, string where)
    {
        Expect(e, JsonValueKind.Array, where);
        int i = 0;
        foreach (var x in e.EnumerateArray())
        {
            yield return (x, $"{where}[{i++}]");
        }
    }
}

/// <summary>The command-line readers (and the text checks JSON strings share).</summary>
internal static class TextRead
{
    public static string NonEmpty(string s, string where) =>
        s.Length == 0 ? throw new VSwitchException($"{where}: must not be empty") : s;

    /// <summary>"none" means off (null).</summary>
    public static string? OrNone(string s) => s == "none" ? null : s;

    /// <summary>"A{sep}B" with both parts non-empty (NAME=VALUE, A,B, PORT:QUEUE).</summary>
    public static (string, string) Split(string s, char sep, string option)
    {
        int k = s.IndexOf(sep, StringComparison.Ordinal);
        if (k <= 0 || k == s.Length - 1)
        {
            throw new VSwitchException($"{option} '{s}': expected two parts separated by '{sep}'");
        }

        return (s[..k], s[(k + 1)..]);
    }
}
