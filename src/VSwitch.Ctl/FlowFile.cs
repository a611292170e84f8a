// FlowFile.cs - flow files are read by vswitchctl, never by the switch (it runs as root and opens no
// path a client names). A single add-flows / replace-flows streams the file to the switch in small
// chunks inside one flow transaction; a chain sends each file's text with its step.
using System.Text;
using System.Text.Json.Nodes;

namespace VSwitch.Ctl;

internal static class FlowFile
{
    // Sends a flow file the way ovs-ofctl does: the client reads it (vswitchd opens no path a client
    // names) and sends its lines in chunks of about ChunkChars characters, each request far below the
    // 85 KB at which the daemon's per-request buffers would land in the large-object heap, inside one
    // transaction: the switch parses each chunk as it arrives (errors name the file's own line) and
    // applies all of them in one table version at flows-commit, or nothing.
    public static JsonObject Send(Func<string, JsonObject, JsonObject> call, string op, string source)
    {
        string origin = source == "-" ? "stdin" : source;
        var begin = call("flows-begin", new JsonObject { ["op"] = op, ["origin"] = origin });
        if (begin["ok"]?.GetValue<bool>() != true)
        {
            return begin;
        }

        long txn = begin["result"]!["txn"]!.GetValue<long>();
        TextReader text;
        try
        {
            text = source == "-" ? Console.In : new StreamReader(source, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new FlowFileException($"cannot read {source}: {e.Message}");
        }

        using (text)
        {
            var chunk = new StringBuilder();
            int first = 1, lineNo = 0;
            JsonObject? Send()
            {
                var r = call("flows-chunk", new JsonObject { ["txn"] = txn, ["line"] = first, ["flow"] = chunk.ToString() });
                chunk.Clear();
                return r["ok"]?.GetValue<bool>() == true ? null : r;
            }

            while (true)
            {
                string? line;
                try
                {
                    line = text.ReadLine();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new FlowFileException($"cannot read {source}: {e.Message}");
                }

                if (line == null)
                {
                    break;
                }

                lineNo++;
                if (chunk.Length > 0 && chunk.Length + line.Length >= ChunkLimits.ChunkChars)
                {
                    if (Send() is JsonObject refused)
                    {
                        return refused;
                    }

                    first = lineNo;
                }

                chunk.Append(line).Append('\n');
            }

            if (chunk.Length > 0 && Send() is JsonObject last)
            {
                return last;
            }
        }

        return call("flows-commit", new JsonObject { ["txn"] = txn });
    }

    /// <summary>The whole text of a flow file (or stdin for -), for a step of a chain.</summary>
    public static string ReadAll(string source)
    {
        try
        {
            return source == "-" ? Console.In.ReadToEnd() : File.ReadAllText(source, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new FlowFileException($"cannot read {source}: {e.Message}");
        }
    }
}

internal static class ChunkLimits
{
    /// <summary>Characters of flow text per flows-chunk request (a request stays near 16 KB; a longer single line goes alone).</summary>
    public const int ChunkChars = 16 * 1024;
}

/// <summary>The flow file named on the command line cannot be read (exit code 2).</summary>
internal sealed class FlowFileException(string message) : Exception(message);
