// vswitchctl's side of the flow-file transfer, against a stand-in switch that records what it gets:
// the client reads the file and sends it as a transaction of small chunks, never a path.
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace VSwitch.Tests;

public sealed class CtlClientTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-ctlclient-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Serves one connection: answers every request ok and records the request lines.</summary>
    private static List<string> ServeOnce(Socket listener)
    {
        var lines = new List<string>();
        using var c = listener.Accept();
        using var stream = new NetworkStream(c);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (reader.ReadLine() is string line)
        {
            lines.Add(line);
            var req = JsonNode.Parse(line)!;
            var result = (string)req["cmd"]! == "flows-begin" ? new JsonObject { ["txn"] = 7 } : new JsonObject { ["rules"] = 1 };
            stream.Write(Encoding.UTF8.GetBytes(new JsonObject { ["v"] = 1, ["id"] = req["id"]!.DeepClone(), ["ok"] = true, ["result"] = result }.ToJsonString() + "\n"));
        }

        return lines;
    }

    [Fact]
    public async Task Add_flows_reads_the_file_and_sends_it_as_small_chunks_naming_their_first_lines()
    {
        var sb = new StringBuilder("# header\n\n");
        for (int i = 0; i < 20_000; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"table=0,priority=10,ip,nw_dst=10.0.{i >> 8}.{i & 255},actions=output:2\n");
        }

        string file = Path.Combine(_dir, "f.txt");
        File.WriteAllText(file, sb.ToString());
        string sock = Path.Combine(_dir, "s.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(sock));
        listener.Listen(1);
        var server = Task.Run(() => ServeOnce(listener));
        var ctl = ControlClient.Vswitchctl(sock, "add-flows", file);
        Assert.True(ctl.Exit == 0, ctl.Err);
        var lines = await server;
        var cmds = lines.Select(l => (string)JsonNode.Parse(l)!["cmd"]!).ToList();
        Assert.Equal("flows-begin", cmds[0]);
        Assert.Equal("flows-commit", cmds[^1]);
        Assert.True(cmds.Count(c => c == "flows-chunk") >= 50, $"{cmds.Count} requests");
        Assert.DoesNotContain(lines, l => JsonNode.Parse(l)!["args"]!.AsObject().ContainsKey("file"));
        int most = lines.Max(l => Encoding.UTF8.GetByteCount(l));
        Assert.True(most < 40_000, $"a request of {most} bytes (the daemon's buffers must stay far below the 85 KB large-object threshold)");

        // The chunks are the file, in order, each naming the file line it starts at.
        var text = new StringBuilder();
        int expectLine = 1;
        foreach (var l in lines.Where(l => (string)JsonNode.Parse(l)!["cmd"]! == "flows-chunk"))
        {
            var a = JsonNode.Parse(l)!["args"]!;
            Assert.Equal(expectLine, a["line"]!.GetValue<int>());
            Assert.Equal(7, a["txn"]!.GetValue<int>());
            var chunk = (string)a["flow"]!;
            expectLine += chunk.Count(ch => ch == '\n');
            text.Append(chunk);
        }

        Assert.Equal(sb.ToString(), text.ToString());
    }
}
