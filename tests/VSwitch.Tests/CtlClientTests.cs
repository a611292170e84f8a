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

    [Fact]
    public async Task A_chain_goes_to_the_switch_as_one_batch_request_with_each_flow_file_read_by_the_client()
    {
        string file = Path.Combine(_dir, "d.flows");
        File.WriteAllText(file, "in_port=d,udp,actions=output:1\n");
        string sock = Path.Combine(_dir, "s.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(sock));
        listener.Listen(1);
        var server = Task.Run(() => ServeOnce(listener));
        var ctl = ControlClient.Vswitchctl(sock, "--json", "add-port", "d", "net_null3,no-rx=1", "--ofport", "9", "--", "add-flows", file, "--", "del-flows", "--strict", "tcp");
        Assert.True(ctl.Exit == 0, ctl.Err);
        var request = JsonNode.Parse(Assert.Single(await server))!;
        Assert.Equal("batch", (string)request["cmd"]!);
        var steps = request["args"]!["steps"]!.AsArray();
        Assert.Equal(
            """[{"cmd":"add-port","args":{"name":"d","devargs":"net_null3,no-rx=1","ofport":9}},{"cmd":"add-flows","args":{"flow":"in_port=d,udp,actions=output:1\n","origin":"FILE"}},{"cmd":"del-flows","args":{"strict":true,"match":"tcp"}}]""",
            steps.ToJsonString().Replace(JsonValue.Create(file).ToJsonString().Trim('"'), "FILE", StringComparison.Ordinal));
    }

    private static (int Exit, string Out, string Err) Offline(params string[] args) => ControlClient.Vswitchctl("/nonexistent/vswitchd.sock", args);

    [Fact]
    public void The_manual_has_every_section_and_a_page_per_command_that_help_and_dash_dash_help_agree_on()
    {
        var top = Offline("--help");
        Assert.Equal(0, top.Exit);
        foreach (var section in new[] { "NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "GLOBAL OPTIONS", "CHAINING", "ENVIRONMENT", "EXIT STATUS", "EXAMPLES" })
        {
            Assert.Contains($"\n{section}\n", "\n" + top.Out, StringComparison.Ordinal);
        }

        Assert.Contains("VSWITCH_SOCKET", top.Out, StringComparison.Ordinal);
        Assert.Equal(top.Out, Offline("help").Out);
        var commands = top.Out.Split("COMMANDS\n")[1].Split("\n\n")[0].Split('\n').Select(l => l.Trim().Split(' ')[0]).Where(c => c != "help").ToList();
        Assert.True(commands.Count >= 23, string.Join(",", commands));
        foreach (var c in commands)
        {
            var page = Offline(c, "--help");
            Assert.True(page.Exit == 0, c);
            Assert.StartsWith($"NAME\n    vswitchctl {c} - ", page.Out, StringComparison.Ordinal);
            Assert.Contains("\nDESCRIPTION\n", page.Out, StringComparison.Ordinal);
            Assert.Contains("\nOPTIONS\n", page.Out, StringComparison.Ordinal);
            Assert.Matches(@"\nEXAMPLES?\n    vswitchctl ", page.Out);
            Assert.Equal(page.Out, Offline("help", c).Out);
        }

        Assert.Contains("--ofport N", Offline("help", "add-port").Out, StringComparison.Ordinal);
        Assert.Contains("\nARGUMENTS\n    PORT\n", Offline("capture", "-h").Out, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("add-port x")]
    [InlineData("add-port a b --rxq many")]
    [InlineData("add-port a b --bogus")]
    [InlineData("set-port a vlan")]
    [InlineData("set-table-miss x drop")]
    [InlineData("dump-ports --bogus")]
    [InlineData("mod-flows")]
    [InlineData("del-flows a b")]
    [InlineData("trace a b c")]
    [InlineData("capture")]
    [InlineData("capture a --drops")]
    [InlineData("capture a -c 0")]
    [InlineData("monitor --seconds never")]
    [InlineData("add-flows /nonexistent/flows")]
    [InlineData("frobnicate now")]
    [InlineData("help frobnicate")]
    [InlineData("add-port a b --")]
    [InlineData("add-port a b -- dump-flows")]
    [InlineData("add-flows - -- replace-flows -")]
    [InlineData("--socket")]
    public void Usage_errors_are_one_line_and_exit_2_without_calling_the_switch(string line)
    {
        var r = Offline(line.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.True(r.Exit == 2, $"{line}: exit {r.Exit}: {r.Err}");
        Assert.Matches(@"^vswitchctl: [^\n]+\n$", r.Err);
        Assert.Equal("", r.Out);
    }

    [Fact]
    public void An_unreachable_switch_is_exit_3()
    {
        var r = Offline("add-port", "d", "net_null3", "--", "del-flows");
        Assert.Equal(3, r.Exit);
        Assert.StartsWith("vswitchctl: cannot talk to vswitchd at /nonexistent/vswitchd.sock", r.Err, StringComparison.Ordinal);
    }
}
