// Output.cs - a switch's answer for people: every list of objects becomes a table with a header row,
// every list of strings one line each (dump-flows, trace), anything else "key: value".
using System.Text.Json.Nodes;

namespace VSwitch.Ctl;

internal static class Output
{
    /// <summary>Prints <paramref name="result"/> for people, each line after <paramref name="indent"/>.</summary>
    public static void Human(JsonNode? result, string indent = "")
    {
        if (result is not JsonObject o)
        {
            return;
        }

        foreach (var (key, value) in o)
        {
            if (value is JsonArray rows && rows.All(r => r is JsonObject))
            {
                Table(key, rows, indent);
            }
            else if (value is JsonArray lines && lines.All(r => r is JsonValue))
            {
                foreach (var l in lines)
                {
                    Console.WriteLine(indent + l?.ToString());
                }
            }
            else
            {
                Console.WriteLine($"{indent}{key}: {value}");
            }
        }
    }

    /// <summary>A chain's answer: each step's result under its command's name.</summary>
    public static void Steps(JsonNode? result)
    {
        foreach (var step in result?["steps"]?.AsArray() ?? [])
        {
            Console.WriteLine($"{step!["cmd"]}:");
            Human(step["result"], "  ");
        }
    }

    private static void Table(string title, JsonArray rows, string indent)
    {
        if (rows.Count == 0)
        {
            Console.WriteLine($"{indent}{title}: none");
            return;
        }

        var cols = rows[0]!.AsObject().Select(kv => kv.Key).ToList();
        var cells = rows.Select(r => cols.Select(c => r![c] is JsonArray a ? string.Join(",", a.Select(x => x?.ToString())) : r![c]?.ToString() ?? "").ToList()).ToList();
        var widths = cols.Select((c, i) => Math.Max(c.Length, cells.Max(r => r[i].Length))).ToList();
        Console.WriteLine($"{indent}{title}:");
        Console.WriteLine(indent + "  " + string.Join("  ", cols.Select((c, i) => c.PadRight(widths[i]))));
        foreach (var r in cells)
        {
            Console.WriteLine(indent + "  " + string.Join("  ", r.Select((v, i) => v.PadRight(widths[i]))));
        }
    }
}
