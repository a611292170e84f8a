// ConjunctionDpdkTests.cs - a conjunctive ACL end to end over real DPDK ports: vswitchd reads a rule
// file of conjunction clauses and conj_id rules, net_pcap ports carry the frames in and out, and each
// port's output is compared byte for byte with frames built independently (FrameBuilder); and the
// same rules through vswitchctl: refusals, dump-flows in ovs-ofctl's form, the state file.
using System.Text.Json.Nodes;
using Xunit;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class ConjunctionDpdkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-conj-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private static byte[] Frame(int id, Action<FrameSpec> edit)
    {
        var s = new FrameSpec { Payload = new byte[18] };
        BitConverter.GetBytes(id).CopyTo(s.Payload, 0);
        edit(s);
        return FrameBuilder.Build(s);
    }

    [Fact]
    public void A_conjunctive_acl_forwards_what_it_allows_and_drops_the_rest()
    {
        File.WriteAllText(P("acl.flows"), """
            # ACL 7: sources .1-.3 x TCP ports 80 and 443 -> port 2
            table=0,priority=100,ip,nw_src=198.51.100.1,actions=conjunction(7,1/2)
            table=0,priority=100,ip,nw_src=198.51.100.2,actions=conjunction(7,1/2)
            table=0,priority=100,ip,nw_src=198.51.100.3,actions=conjunction(7,1/2),conjunction(8,1/2)
            table=0,priority=100,tcp,tp_dst=80,actions=conjunction(7,2/2)
            table=0,priority=100,tcp,tp_dst=443,actions=conjunction(7,2/2)
            table=0,priority=100,conj_id=7,actions=output:2
            # ACL 8: source .3 x UDP port 53 -> port 3, with a new destination MAC
            table=0,priority=100,udp,tp_dst=53,actions=conjunction(8,2/2)
            table=0,priority=100,conj_id=8,actions=mod_dl_dst:02:00:00:00:00:bb,output:3
            # an ordinary rule above the ACL wins
            table=0,priority=200,tcp,nw_src=198.51.100.2,tp_dst=443,actions=output:4
            table=0,priority=1,actions=drop
            """);
        uint src1 = FrameBuilder.Ip("198.51.100.1"), src2 = FrameBuilder.Ip("198.51.100.2"), src3 = FrameBuilder.Ip("198.51.100.3");
        var inputs = new List<byte[]>();
        var want = new Dictionary<int, List<byte[]>> { [2] = [], [3] = [], [4] = [] };
        int drops = 0;
        for (int i = 0; i < 66; i++)
        {
            switch (i % 6)
            {
                case 0: // ACL 7
                    inputs.Add(Frame(i, s => { s.NwSrc = src1; s.DstPort = 80; }));
                    want[2].Add(inputs[^1]);
                    break;
                case 1: // the higher-priority ordinary rule
                    inputs.Add(Frame(i, s => { s.NwSrc = src2; s.DstPort = 443; }));
                    want[4].Add(inputs[^1]);
                    break;
                case 2: // a clause of two ACLs: ACL 7 by its TCP port
                    inputs.Add(Frame(i, s => { s.NwSrc = src3; s.DstPort = 443; }));
                    want[2].Add(inputs[^1]);
                    break;
                case 3: // ... and ACL 8 by its UDP port
                    inputs.Add(Frame(i, s => { s.NwSrc = src3; s.Proto = 17; s.DstPort = 53; }));
                    want[3].Add(Frame(i, s => { s.NwSrc = src3; s.Proto = 17; s.DstPort = 53; s.Dst = 0x0200000000BB; }));
                    break;
                case 4: // UDP 53 from a source outside ACL 8: one dimension only
                    inputs.Add(Frame(i, s => { s.NwSrc = src1; s.Proto = 17; s.DstPort = 53; }));
                    drops++;
                    break;
                default: // a source outside ACL 7, on its port
                    inputs.Add(Frame(i, s => { s.NwSrc = FrameBuilder.Ip("198.51.100.9"); s.DstPort = 80; }));
                    drops++;
                    break;
            }
        }

        Pcap.Write(P("in.pcap"), inputs);
        var r = Vswitchd.Run(["--mode", "pipeline", "--flows", P("acl.flows"), "--duration", "3", "--stats-interval", "0", "--control", "none",
            "--eal", "--in-memory --file-prefix vsw-conj-test", .. Pcap.PortArgs(_dir, 4)]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Empty(Pcap.Read(P("out1.pcap")));
        static int Id(byte[] f) => BitConverter.ToInt32(f, f.Length - 18);
        foreach (var (port, wantFrames) in want)
        {
            var got = Pcap.Read(P($"out{port}.pcap")).OrderBy(Id).ToList();
            Assert.True(wantFrames.Count == got.Count, $"port {port}: expected {wantFrames.Count} frames, got {got.Count}\n{r}");
            for (int i = 0; i < got.Count; i++)
            {
                Assert.True(wantFrames[i].AsSpan().SequenceEqual(got[i]), $"port {port} frame {i}:\n want {Convert.ToHexString(wantFrames[i])}\n got  {Convert.ToHexString(got[i])}");
            }
        }

        Assert.Equal("0", r.Field("final: mbufs", "leaked"));
        Assert.Equal(drops.ToString(System.Globalization.CultureInfo.InvariantCulture), r.Field("final: seconds", "drops"));
    }

    private (int Exit, string Out, string Err) Ctl(params string[] args) => ControlClient.Vswitchctl(P("ctl.sock"), args);

    private string Trace(string packet) => (string)JsonNode.Parse(Ctl("--json", "trace", packet).Out)!["datapath_actions"]!;

    [Fact]
    public void Conjunctions_go_through_vswitchctl_dump_as_ovs_ofctl_writes_them_and_survive_a_restart()
    {
        string[] args = ["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"), "--state", P("state.json"),
            "--eal", "--in-memory --file-prefix vsw-conj-ctl", "--port", "a=net_null0,no-rx=1", "--port", "b=net_null1,no-rx=1"];
        File.WriteAllText(P("acl.flows"), """
            priority=100,ip,nw_src=10.0.0.1,actions=conjunction(7,1/2)
            priority=100,tcp,tp_dst=80,actions=conjunction(7,2/2)
            priority=100,conj_id=7,actions=output:2
            """);
        using (var sw = new RunningSwitch(args))
        {
            sw.WaitFor("port b link up");
            Assert.Equal(0, Ctl("add-flows", P("acl.flows")).Exit);
            var bad = Ctl("add-flow", "priority=100,udp,tp_dst=53,actions=conjunction(7,2/2),output:2");
            Assert.NotEqual(0, bad.Exit);
            Assert.Contains("'conjunction' actions may be used along with 'note' but not any other kind of action", bad.Err, StringComparison.Ordinal);
            var dump = Ctl("dump-flows").Out;
            Assert.Contains("priority=100,ip,nw_src=10.0.0.1,actions=conjunction(7,1/2)", dump, StringComparison.Ordinal);
            Assert.Contains("priority=100,conj_id=7,actions=output:2", dump, StringComparison.Ordinal);
            Assert.Equal("output:2", Trace("in_port=1,tcp,nw_src=10.0.0.1,tp_dst=80"));
            Assert.Equal("drop", Trace("in_port=1,tcp,nw_src=10.0.0.2,tp_dst=80"));
            Assert.True(sw.Stop().ExitCode == 0);
        }

        Assert.Contains("conjunction(7,2/2)", File.ReadAllText(P("state.json")), StringComparison.Ordinal);
        using (var sw = new RunningSwitch(args))
        {
            sw.WaitFor("port b link up");
            Assert.Equal(3, Ctl("dump-flows").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Count(l => l.Contains("priority=100", StringComparison.Ordinal)));
            Assert.Equal("output:2", Trace("in_port=1,tcp,nw_src=10.0.0.1,tp_dst=80"));
            Assert.True(sw.Stop().ExitCode == 0);
        }
    }
}
