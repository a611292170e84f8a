// OvsDifferentialTests.cs - this switch's flow pipeline against Open vSwitch 3.1's, on the same
// rule files and the same frames (issue 14, "Proof").
//
// Random rule sets (the flow oracle's generator, OracleGenerator: tables 0-3, priorities, Ethernet /
// VLAN / IPv4 / IPv6 / TCP / UDP / ICMP matches with masks, in_port, goto_table, resubmit, output,
// in_port, flood, normal, push/pop/mod VLAN, set_field and mod_* rewrites, dec_ttl, drop; in half
// the cases conjunctive matches too, DifferentialConjunctions.cs) are loaded
// into a private Open vSwitch (tests/ovs/ovs-private.sh: datapath_type=dummy, ports 1..4) with
// `ovs-ofctl add-flows`, and into this switch's tables as the `trace` command sees them
// (FlowControl.Trace: the real Translator and classifier the PMDs use, in process). Each random
// frame (PacketDotNet) is traced on both: `ofproto/trace br0 in_port=N HEX` and the switch's trace of
// the key its own parser extracts from the same bytes. Both verdicts go to the common form of
// NormalForm.cs (outputs in order, a flood as a multiset, the header state at each output) and
// must be equal.
//
// NORMAL is included: neither trace learns (ofproto/trace without side effects; the switch's trace
// runs with NoLearn on an empty MAC table), so NORMAL floods on both. The ports take VLAN
// configurations in turn (VlanConfigs: access ports, trunks with and without lists, none), set alike
// on both sides, so NORMAL is compared with VLAN modes; SCTP port rewrites and truncating
// output(port,max_len) are generated too. Rules ovs-ofctl refuses (for example pop_vlan on a match without a
// tag next to an OpenFlow 1.1+ action: no single protocol can carry the rule) are taken out of the
// rule set on both sides and counted by ovs-ofctl's reason.
//
// Budget: DefaultCases rule sets x PacketsPerCase frames with DefaultSeed in CI (7200 traces, about
// 50 s here: a trace is a unixctl round trip, a rule set two or three ovs-ofctl runs);
// VSW_DIFF_CASES / VSW_DIFF_SEED run more by hand, VSW_DIFF_CASE one case. Output: rule sets,
// traces, agreements, exclusions by class, disagreements by class with the smallest example found
// (rules shrunk while the same packet still disagrees the same way) and both traces.
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using VSwitch.FlowText;
using VSwitch.Packets;
using VSwitch.Pipeline;
using VSwitch.Tests.Oracle;
using Xunit.Abstractions;

namespace VSwitch.Tests.Differential;

[Trait("Category", "Ovs")]
public sealed partial class OvsDifferentialTests(ITestOutputHelper output)
{
    private const int DefaultCases = 600;
    private const int DefaultSeed = 20261206;
    private const int PacketsPerCase = 12;
    private const int Ports = 4;

    /// <summary>
    /// Case classes left out of the comparison, by name, with the reason; each is asked with the
    /// packet and both normal forms. A class that is a bug of this switch names its issue.
    /// </summary>
    internal static readonly (string Name, string Reason, Func<DiffCase, bool> Applies)[] Exclusions =
    [
        ("third VLAN tag", "a frame that carries more than two VLAN tags at some point: both flow keys hold two (Open vSwitch's FLOW_MAX_VLAN_HEADERS, this switch's key), so what either does with the third is its parser's limit, not a semantic",
            c => c.Switch.MaxTags > 2 || c.Ovs.MaxTags > 2),
    ];

    [Fact]
    public void The_pipeline_agrees_with_open_vswitch_on_random_rules_and_frames()
    {
        string? missing = PrivateOvs.Missing();
        Assert.True(missing == null, $"the differential test needs Open vSwitch 3.1: {missing}");
        int cases = EnvInt("VSW_DIFF_CASES") ?? DefaultCases;
        int seed = EnvInt("VSW_DIFF_SEED") ?? DefaultSeed;
        int? only = EnvInt("VSW_DIFF_CASE");
        var started = DateTime.UtcNow;
        using var ovs = PrivateOvs.Start(Ports);
        var run = new DiffRun(ovs);
        for (int c = only ?? 0; c < (only + 1 ?? cases); c++)
        {
            run.RunCase(seed, c);
        }

        output.WriteLine(run.Report(seed, (DateTime.UtcNow - started).TotalSeconds));
        var unexplained = run.Disagreements.Keys.ToList();
        Assert.True(unexplained.Count == 0, $"disagreements with Open vSwitch outside the named exclusions: {string.Join(", ", unexplained)} (see the report above)");
        Assert.True(run.Agreements > run.Traces / 2, "most traces were compared, not excluded");
        Assert.True(run.Outputs > 0, "frames were forwarded, not only dropped");
        if (only == null && cases >= DefaultCases)
        {
            foreach (string k in new[] { "outputs cut by max_len", "SCTP port rewrites applied (set(sctp(...)) in Open vSwitch's actions)", "NORMAL output of a priority tag" })
            {
                Assert.True(run.Coverage.GetValueOrDefault(k) > 0, $"no agreeing trace covered: {k}");
            }
        }
    }

    [Fact]
    public void The_normal_form_reads_open_vswitch_datapath_actions()
    {
        var start = HeaderState.Of(OracleGenerator.Build(0x020000000001, 0x020000000002, PacketDotNet.EthernetType.IPv4,
            System.Net.IPAddress.Parse("10.0.0.1"), System.Net.IPAddress.Parse("10.0.0.2"), 64, 1, new byte[18]));
        var odp = new Dictionary<int, int> { [1] = 1, [2] = 2, [3] = 3, [4] = 4 };
        var v = NormalForm.OfOvs(start,
            "set(eth(src=02:00:00:00:00:09)),set(ipv4(src=10.9.9.9,ttl=63)),2,set(udp(dst=99)),push_vlan(vid=10,pcp=0),3,set(ipv4(tos=0x13)),"
            + "push_vlan(tpid=0x88a8,vid=0,pcp=0),4,pop_vlan,pop_vlan,userspace(pid=0,controller(reason=1,dont_send=1,continuation=0,recirc_id=1,rule_cookie=0,controller_id=0,max_len=65535)),4,2,3,100",
            odp, 100);
        Assert.Null(v.Unreadable);
        var g = v.Groups();
        Assert.Equal(5, g.Count);
        Assert.StartsWith("output 2 [eth(02:00:00:00:00:09>02:00:00:00:00:02),ipv4(10.9.9.9>10.0.0.2,ttl=63,tos=0x00)", g[0], StringComparison.Ordinal);
        Assert.Contains("vlan(vid=10,pcp=0)", g[1], StringComparison.Ordinal);
        Assert.Contains("tp(", g[1], StringComparison.Ordinal);
        Assert.Contains(",99)", g[1].Replace(">", ",", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Contains("vlan(tpid=0x88a8,vid=0,pcp=0),vlan(vid=10,pcp=0)", g[2], StringComparison.Ordinal);
        Assert.Contains("tos=0x13", g[2], StringComparison.Ordinal);
        Assert.StartsWith("controller", g[3], StringComparison.Ordinal);
        Assert.StartsWith("output 2,3,4 [", g[4], StringComparison.Ordinal); // LOCAL (100) left out, the flood as a set
        Assert.DoesNotContain("vlan", g[4], StringComparison.Ordinal);

        // An expired TTL's report to no controller is nothing on the wire.
        var dec = NormalForm.OfOvs(start, "userspace(pid=0,controller(reason=2,dont_send=1,continuation=0,recirc_id=3,rule_cookie=0,controller_id=0,max_len=65535)),3", odp, 100);
        Assert.Equal(new[] { "output 3" }, dec.Groups().Select(s => s[..8]));
    }

    private static int? EnvInt(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : null;

    /// <summary>One packet of a case, traced on both sides.</summary>
    internal sealed record DiffCase(IReadOnlyList<string> Lines, OraclePacket Packet, NormalVerdict Switch, NormalVerdict Ovs, string SwitchTrace, string OvsTrace);

    /// <summary>A run over many cases against one Open vSwitch instance.</summary>
    internal sealed partial class DiffRun(PrivateOvs ovs)
    {
        private FlowControl _flows = null!;
        private int _vlanConfig = -1;

        public int RuleSets;
        public int Traces;
        public int Agreements;
        public int Outputs;
        public readonly Dictionary<string, int> Excluded = [];
        public readonly Dictionary<string, int> RefusedByOvs = [];
        public readonly Dictionary<string, string> RefusedExample = [];
        public readonly Dictionary<string, (int Count, string Example)> Disagreements = [];
        public readonly Dictionary<string, int> Coverage = [];

        /// <summary>
        /// Groups every case may use (group:N is added to some action lists by MoreActions): all and
        /// indirect, with rewrites and tag changes in buckets (undone for what follows) and an action
        /// set with two outputs. No select group: its hash is this switch's own, not Open vSwitch's
        /// dp_hash, so its bucket choice differs by design (docs/FLOWS.md, "Groups").
        /// </summary>
        internal static readonly string[] Groups =
        [
            "group_id=1,type=all,bucket=actions=output:2,bucket=actions=mod_dl_src:02:00:00:00:00:99,output:3,bucket=actions=mod_nw_src:10.9.9.9,output:4",
            "group_id=2,type=indirect,bucket=actions=pop_vlan,output:1",
            "group_id=3,type=all,bucket=actions=dec_ttl,output:3,bucket=actions=output:1,mod_dl_dst:02:00:00:00:00:77,output:4",
            "group_id=4,type=all,bucket=actions=group:2,bucket=actions=push_vlan:0x88a8,output:2",
        ];

        /// <summary>
        /// The ports' VLAN configurations, each for <see cref="CasesPerVlanConfig"/> cases in turn, set
        /// alike on both sides (`ovs-vsctl set port` there): NORMAL is compared over ports without
        /// VLAN configuration, access ports (of VLAN 0 too), trunks of every VLAN, and trunks with lists
        /// with and without VLAN 0. This switch has no native-tagged / native-untagged mode.
        /// </summary>
        internal static readonly string[][] VlanConfigs =
        [
            ["none", "none", "none", "none"],
            ["none", "access:10", "trunk:0,10,20", "access:20"],
            ["access:0", "trunk", "trunk:10", "none"],
            ["access:10", "access:10", "trunk:10,20,30", "trunk:0,30"],
        ];

        private const int CasesPerVlanConfig = 50;

        private bool _ovsGroupsLoaded;

        /// <summary>Sets VLAN configuration <paramref name="config"/> on both sides; this switch's tables start anew (with the groups).</summary>
        private void Configure(int config)
        {
            if (!_ovsGroupsLoaded)
            {
                Assert.Null(ovs.AddGroups(Groups));
                _ovsGroupsLoaded = true;
            }

            var ports = new List<PipelinePort>();
            for (int p = 1; p <= Ports; p++)
            {
                string spec = VlanConfigs[config][p - 1];
                ovs.SetPortVlan(p, spec);
                var pc = new Config.PortConfig { Name = $"p{p}", DevArgs = "none" };
                pc.SetVlan(spec, "diff");
                ports.Add(new PipelinePort(p, $"p{p}", pc.VlanMode, pc.Tag, pc.Trunks) { Slot = p - 1 });
            }

            _flows = new FlowControl(new PipelineShared(ports), () => true);
            _flows.AddGroups(GroupText.ParseGroups(string.Join('\n', Groups), "diff.groups"), 0);
            _vlanConfig = config;
        }

        public void RunCase(int seed, int caseNo)
        {
            int config = caseNo / CasesPerVlanConfig % VlanConfigs.Length;
            if (config != _vlanConfig)
            {
                Configure(config);
            }

            var rnd = new Random(unchecked((seed * 1_000_003) + caseNo) & int.MaxValue);
            var gen = new OracleGenerator(rnd, Ports);
            var rules = UniquePriorities(gen.Rules(rnd.Next(4, 20)));
            var lines = rules.Select(r => Issue14Syntax(rnd, MoreActions(rnd, SetFieldPortNames(r.Render(rnd.Next(32)))))).ToList();
            if (rnd.Next(3) == 0 && SctpRewriteRule(rnd, rules) is { } sctp)
            {
                lines.Insert(0, sctp);
            }

            var packets = Enumerable.Range(0, PacketsPerCase).Select(_ => rnd.Next(3) == 0 ? AsSctp(gen.Packet()) : gen.Packet())
                .Select(p => rnd.Next(6) == 0 ? AsPriorityTagged(p) : p).ToList();
            if (rnd.Next(2) == 0)
            {
                lines.AddRange(Conjunctions(rnd, lines, packets)); // DifferentialConjunctions.cs
            }

            var loaded = Load(WithoutReplaced(lines), count: true);
            if (loaded == null)
            {
                return;
            }

            lines = loaded;
            RuleSets++;
            var flows = Flows(lines);
            foreach (var p in packets)
            {
                var c = TraceBoth(flows, lines, p);
                Traces++;
                string? excluded = Exclusions.FirstOrDefault(e => e.Applies(c)).Name;
                if (excluded != null)
                {
                    Excluded[excluded] = Excluded.GetValueOrDefault(excluded) + 1;
                    continue;
                }

                string? cls = Classify(c);
                if (cls == null)
                {
                    Agreements++;
                    Outputs += c.Switch.Events.Count;
                    if (lines.Any(l => l.Contains("group:", StringComparison.Ordinal)))
                    {
                        Coverage["GroupAction"] = Coverage.GetValueOrDefault("GroupAction") + 1;
                    }

                    foreach (var r in rules)
                    {
                        foreach (var a in r.Actions)
                        {
                            string k = a is SetFieldAction s ? $"set_field:{s.Target}" : a.GetType().Name;
                            Coverage[k] = Coverage.GetValueOrDefault(k) + 1;
                        }
                    }

                    if (lines.Any(l => l.Contains("conjunction(", StringComparison.Ordinal)))
                    {
                        Coverage["conjunction"] = Coverage.GetValueOrDefault("conjunction") + 1;
                        if (c.SwitchTrace.Contains("(conjunction ", StringComparison.Ordinal))
                        {
                            Coverage["conj_id matched"] = Coverage.GetValueOrDefault("conj_id matched") + 1;
                        }
                    }

                    foreach (string k in Issue14Items)
                    {
                        if (lines.Any(l => l.Contains(k, StringComparison.Ordinal)))
                        {
                            Coverage[k] = Coverage.GetValueOrDefault(k) + 1;
                        }
                    }

                    Count("outputs cut by max_len", c.Switch.Events.Count(e => e.State.Contains(",len=", StringComparison.Ordinal)));
                    Count("SCTP port rewrites", lines.Any(l => l.Contains("sctp", StringComparison.Ordinal) && SctpPortWrite().IsMatch(l)) ? 1 : 0);
                    Count("SCTP port rewrites applied (set(sctp(...)) in Open vSwitch's actions)", c.OvsTrace.Contains("set(sctp(", StringComparison.Ordinal) ? 1 : 0);
                    if (lines.Any(l => l.Contains("normal", StringComparison.OrdinalIgnoreCase)))
                    {
                        Count($"NORMAL under VLAN config {_vlanConfig} ({string.Join(' ', VlanConfigs[_vlanConfig])})", 1);
                        Count("NORMAL output of a priority tag", c.Switch.Events.Count(e => e.State.Contains("vid=0,", StringComparison.Ordinal)));
                    }

                    continue;
                }

                if (Disagreements.TryGetValue(cls, out var d))
                {
                    Disagreements[cls] = (d.Count + 1, d.Example);
                }
                else
                {
                    Disagreements[cls] = (1, $"(VSW_DIFF_SEED={seed} VSW_DIFF_CASE={caseNo})\n" + Describe(Shrink(c, cls)));
                    Load(lines, count: false); // the shrink loaded smaller rule sets
                    flows = Flows(lines);
                }
            }
        }

        /// <summary>
        /// Gives every rule of a table a priority of its own (the generator's, moved up past those
        /// taken): which of two overlapping rules of equal priority wins is undefined in OpenFlow,
        /// and the two switches choose differently (this one the earlier rule).
        /// </summary>
        /// <summary>
        /// A rule above table 0's that rewrites an SCTP port in each of the syntaxes (mod_tp_*,
        /// set_field sctp_*, load and move into OXM_OF_SCTP_*) and carries on, so SCTP frames take
        /// port rewrites often (the generator's rewrites are mostly on TCP and UDP rules); null when
        /// table 0 has no priority left above its rules.
        /// </summary>
        private static readonly int[] SctpPorts = [1, 99, 5000, 36412];

        private static string? SctpRewriteRule(Random rnd, List<OracleRule> rules)
        {
            int prio = rules.Where(r => r.Table == 0).Select(r => r.Priority).DefaultIfEmpty(0).Max() + 1;
            int port = SctpPorts[rnd.Next(SctpPorts.Length)];
            string rewrite = rnd.Next(5) switch
            {
                0 => $"mod_tp_src:{port}",
                1 => $"mod_tp_dst:{port}",
                2 => $"set_field:{port}->sctp_src",
                3 => $"load:{port}->OXM_OF_SCTP_DST[]",
                _ => "move:NXM_OF_IN_PORT[]->OXM_OF_SCTP_SRC[]",
            };
            string rest = rnd.Next(4) switch
            {
                0 => "goto_table:1",
                1 => "output:2,resubmit(,1)",
                2 => "normal",
                _ => "output(port=3,max_len=60),output:4",
            };
            return prio > 65535 ? null : $"table=0,priority={prio},{(rnd.Next(3) == 0 ? "sctp6" : "sctp")},actions={rewrite},{rest}";
        }

        private static List<OracleRule> UniquePriorities(List<OracleRule> rules)
        {
            var taken = new HashSet<(int, int)>();
            return rules.Select(r =>
            {
                int p = r.Priority;
                while (!taken.Add((r.Table, p)))
                {
                    p++;
                }

                return r with { Priority = p };
            }).ToList();
        }

        /// <summary>
        /// set_field on a transport port names the protocol's field (udp_dst on UDP): in Open vSwitch
        /// `tp_dst` is tcp_dst for set_field, so `udp,actions=set_field:80->tp_dst` is refused
        /// there (this switch takes tp_dst for either; docs/FLOWS.md).
        /// </summary>
        private static string SetFieldPortNames(string line)
        {
            int acts = line.IndexOf(",actions=", StringComparison.Ordinal);
            string match = line[..acts];
            bool udp = match.Contains("udp", StringComparison.Ordinal) || match.Contains("nw_proto=17", StringComparison.Ordinal);
            return udp ? match + line[acts..].Replace("->tp_src", "->udp_src", StringComparison.Ordinal).Replace("->tp_dst", "->udp_dst", StringComparison.Ordinal) : line;
        }

        /// <summary>
        /// Actions the oracle's generator does not write: `all` for some floods (the same ports here;
        /// in Open vSwitch also LOCAL, which the normal form leaves out) and a `controller` punt at
        /// the head of some action lists.
        /// </summary>
        private static string MoreActions(Random rnd, string line)
        {
            int acts = line.IndexOf(",actions=", StringComparison.Ordinal) + ",actions=".Length;
            string head = line[..acts], tail = line[acts..];
            if (rnd.Next(4) == 0)
            {
                tail = FloodAction().Replace(tail, "all");
            }

            if (rnd.Next(12) == 0 && tail != "drop")
            {
                tail = "controller," + tail;
            }

            if (rnd.Next(5) == 0 && tail != "drop" && tail.Length > 0)
            {
                tail = $"group:{rnd.Next(1, Groups.Length + 1)}," + tail;
            }

            return head + tail;
        }

        [GeneratedRegex(@"(?<=^|,)flood(?=,|$)")]
        private static partial Regex FloodAction();

        /// <summary>
        /// Issue 14's syntax, written over the generator's rules with the same meaning or with a
        /// meaning both switches must give alike: a UDP match becomes an SCTP one (when the rule
        /// rewrites no port); set_field of an address or port goes through a register or xreg and
        /// `move` with NXM/OXM names; header bits are moved into registers that a match elsewhere
        /// reads; `note`, `output(port=,max_len=)` and `output:LOCAL` (which sends nothing here and
        /// only to LOCAL there, which the normal form leaves out).
        /// </summary>
        private static string Issue14Syntax(Random rnd, string line)
        {
            int acts = line.IndexOf(",actions=", StringComparison.Ordinal);
            string match = line[..acts], tail = line[(acts + ",actions=".Length)..];
            var items = match.Split(',');
            bool v4 = items.Any(i => i is "ip" or "tcp" or "udp" or "icmp" or "sctp" or "dl_type=0x0800");
            bool udp = items.Any(i => i is "udp" or "udp6" or "nw_proto=17");
            if (udp && rnd.Next(2) == 0)
            {
                // SCTP, port rewrites included: set_field's name for them is sctp_src/sctp_dst there.
                match = string.Join(',', items.Select(i => i switch { "udp" => "sctp", "udp6" => "sctp6", "nw_proto=17" => "nw_proto=132", _ => i }));
                tail = PortWrite().Replace(tail, "->sctp_$1");
                udp = false;
            }

            tail = SetAddress().Replace(tail, m =>
            {
                if (rnd.Next(2) == 0)
                {
                    return m.Value;
                }

                string v = AsInteger(m.Groups[1].Value), f = m.Groups[2].Value;
                bool high = rnd.Next(2) == 0; // registers 6-15, xreg3-7 and xxreg halves, or the low ones
                return f switch
                {
                    "nw_src" or "ip_src" => high ? $"set_field:{v}->reg10,move:NXM_NX_REG10[]->NXM_OF_IP_SRC[]" : $"set_field:{v}->reg2,move:NXM_NX_REG2[]->NXM_OF_IP_SRC[]",
                    "nw_dst" or "ip_dst" => high ? $"load:{v}->NXM_NX_XXREG2[64..95],move:xxreg2[64..95]->OXM_OF_IPV4_DST[]" : $"set_field:{v}->reg3,move:reg3[]->OXM_OF_IPV4_DST[]",
                    "eth_src" or "dl_src" => high ? $"load:{v}->OXM_OF_PKT_REG6[8..55],move:xreg6[8..55]->NXM_OF_ETH_SRC[]" : $"load:{v}->OXM_OF_PKT_REG1[8..55],move:xreg1[8..55]->NXM_OF_ETH_SRC[]",
                    "udp_dst" => $"load:{v}->NXM_NX_REG{(high ? 13 : 4)}[16..31],move:reg{(high ? 13 : 4)}[16..31]->NXM_OF_UDP_DST[]",
                    "sctp_dst" => $"load:{v}->NXM_NX_REG{(high ? 13 : 4)}[16..31],move:reg{(high ? 13 : 4)}[16..31]->OXM_OF_SCTP_DST[]",
                    "tcp_dst" or "tp_dst" when !udp => $"load:{v}->NXM_NX_REG{(high ? 13 : 4)}[16..31],move:reg{(high ? 13 : 4)}[16..31]->NXM_OF_TCP_DST[]",
                    _ => m.Value,
                };
            });
            if (rnd.Next(5) == 0 && tail != "drop")
            {
                tail = (rnd.Next(5) switch
                {
                    0 => "move:NXM_OF_ETH_SRC[0..7]->NXM_NX_REG5[0..7],",
                    1 => "move:NXM_OF_IN_PORT[]->reg5[0..15],",
                    2 => "move:NXM_OF_ETH_SRC[0..7]->NXM_NX_XXREG3[0..7],",
                    3 => "move:NXM_OF_IN_PORT[]->reg15[0..15],",
                    _ => v4 ? "move:NXM_OF_IP_DST[24..31]->reg5[0..7]," : "load:0x1->reg15[0..7],",
                }) + tail;
            }

            if (rnd.Next(6) == 0)
            {
                match += rnd.Next(4) switch
                {
                    0 => ",reg5=0x2/0xff",
                    1 => ",xreg2=0x2/0xff",
                    2 => ",reg15=0x2/0xff",
                    _ => ",xxreg3=0x2/0xff",
                };
            }

            if (rnd.Next(8) == 0 && tail != "drop")
            {
                tail = "note:" + Convert.ToHexString(BitConverter.GetBytes(rnd.Next())).ToLowerInvariant() + "," + tail;
            }

            tail = OutputPort().Replace(tail, m => rnd.Next(4) switch
            {
                0 => $"output(port={m.Groups[1].Value},max_len={MaxLens[rnd.Next(MaxLens.Length)]})",
                1 when tail != "drop" => m.Value + ",output:LOCAL",
                _ => m.Value,
            });
            return match + ",actions=" + tail;
        }

        /// <summary>max_len values of output(port=N,max_len=M): an Ethernet header, into and past the headers, and no cut at all.</summary>
        private static readonly long[] MaxLens = [14, 18, 34, 60, 64, 100, 65535, 4294967295];

        /// <summary>Issue 14's syntax, counted in the agreeing traces whose rule sets use it.</summary>
        private static readonly string[] Issue14Items = ["sctp", "->sctp_", "OXM_OF_SCTP_DST", "move:", "NXM_NX_REG2[]", "xreg1[", "OXM_OF_PKT_REG1", "reg5=", "xreg2=", "reg10", "xxreg", "XXREG", "xreg6", "reg13", "reg15", "note:", "max_len=", "output:LOCAL"];

        /// <summary>A MAC (aa:bb:..) or IPv4 address (a.b.c.d) as the hex integer load and register set_field take.</summary>
        private static string AsInteger(string v) =>
            v.Contains(':', StringComparison.Ordinal) ? "0x" + v.Replace(":", "", StringComparison.Ordinal)
            : v.Contains('.', StringComparison.Ordinal) ? "0x" + string.Concat(v.Split('.').Select(b => byte.Parse(b, CultureInfo.InvariantCulture).ToString("x2", CultureInfo.InvariantCulture)))
            : v;

        [GeneratedRegex(@"->(?:udp|tp)_(src|dst)\b")]
        private static partial Regex PortWrite();

        [GeneratedRegex(@"set_field:([^,>]+)->(nw_src|nw_dst|ip_src|ip_dst|eth_src|dl_src|udp_dst|tcp_dst|tp_dst|sctp_dst)(?=,|$)")]
        private static partial Regex SetAddress();

        [GeneratedRegex(@"(?<=^|,)output:(\d+)(?=,|$)")]
        private static partial Regex OutputPort();

        /// <summary>
        /// The same frame with an SCTP header where its UDP one was (protocol 132, the IPv4 header
        /// checksum redone): the UDP header and the payload make the 12-byte SCTP common header.
        /// </summary>
        private static OraclePacket AsSctp(OraclePacket p)
        {
            byte[] f = [.. p.Frame];
            int o = 12;
            while (o + 4 <= f.Length && ((f[o] << 8) | f[o + 1]) is 0x8100 or 0x88A8)
            {
                o += 4;
            }

            int type = (f[o] << 8) | f[o + 1];
            int l3 = o + 2;
            if (type == 0x0800 && f[l3 + 9] == 17 && (((f[l3 + 6] << 8) | f[l3 + 7]) & 0x1FFF) == 0)
            {
                f[l3 + 9] = 132;
                f[l3 + 10] = 0;
                f[l3 + 11] = 0;
                uint sum = 0;
                int ihl = (f[l3] & 0xF) * 4;
                for (int i = 0; i < ihl; i += 2)
                {
                    sum += (uint)((f[l3 + i] << 8) | f[l3 + i + 1]);
                }

                while (sum > 0xFFFF)
                {
                    sum = (sum & 0xFFFF) + (sum >> 16);
                }

                f[l3 + 10] = (byte)(~sum >> 8);
                f[l3 + 11] = (byte)~sum;
            }
            else if (type == 0x86DD && f[l3 + 6] == 17)
            {
                f[l3 + 6] = 132;
            }
            else if (type == 0x86DD && f[l3 + 6] == 0 && f[l3 + 40] == 17)
            {
                f[l3 + 40] = 132; // after a hop-by-hop header
            }

            return p with { Frame = f };
        }

        private void Count(string what, int n)
        {
            if (n > 0)
            {
                Coverage[what] = Coverage.GetValueOrDefault(what) + n;
            }
        }

        [GeneratedRegex(@"mod_tp_|->sctp_|OXM_OF_SCTP_")]
        private static partial Regex SctpPortWrite();

        /// <summary>The same frame with its outer tag's VID set to 0 (a priority tag, its PCP kept), when it has a tag.</summary>
        private static OraclePacket AsPriorityTagged(OraclePacket p)
        {
            byte[] f = [.. p.Frame];
            if (((f[12] << 8) | f[13]) is 0x8100 or 0x88A8)
            {
                f[14] &= 0xF0;
                f[15] = 0;
            }

            return p with { Frame = f };
        }

        /// <summary>
        /// The lines without those a later line of the same table, priority and match replaces (as
        /// add-flows does in both switches). A conjunction clause can land on an ordinary rule's match and
        /// priority; when no protocol carries the whole file, PrivateOvs loads it in per-protocol passes,
        /// which changes which of the two comes later there (VSW_DIFF_SEED=20261205 VSW_DIFF_CASE=5501).
        /// </summary>
        private static List<string> WithoutReplaced(List<string> lines)
        {
            var keys = lines.Select(l =>
            {
                try
                {
                    var r = FlowParser.ParseRules(l, "diff.flows").Single();
                    return ((int, int, FlowMatch)?)(r.Table, r.Priority, r.Match);
                }
                catch (FlowSyntaxException)
                {
                    return null; // the loaders decide about it
                }
            }).ToList();
            return lines.Where((_, i) => keys[i] is not { } k
                || !keys.Skip(i + 1).Any(o => o is { } later && later.Item1 == k.Item1 && later.Item2 == k.Item2 && later.Item3.Equals(k.Item3))).ToList();
        }

        /// <summary>Loads the rule set into Open vSwitch, taking out the lines ovs-ofctl refuses; the lines loaded.</summary>
        private List<string>? Load(List<string> lines, bool count)
        {
            for (int attempt = 0; attempt < 64; attempt++)
            {
                string? err = ovs.ReplaceFlows(lines);
                if (err == null)
                {
                    return lines;
                }

                var m = RefusedLine().Match(err);
                if (!m.Success)
                {
                    // Refused as a whole (no protocol carries it): the case is left out, counted by the first line of the complaint.
                    if (count)
                    {
                        string why = "the whole rule set: " + WarnPrefix().Replace(err.Split('\n')[0], "");
                        RefusedByOvs[why] = RefusedByOvs.GetValueOrDefault(why) + 1;
                    }

                    return null;
                }

                int at = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) - 1;
                if (count)
                {
                    string why = m.Groups[2].Value.Trim();
                    RefusedByOvs[why] = RefusedByOvs.GetValueOrDefault(why) + 1;
                    RefusedExample.TryAdd(why, lines[at]);
                }

                lines = lines.Where((_, i) => i != at).ToList();
            }

            throw new InvalidOperationException("ovs-ofctl kept refusing the rule set");
        }

        [GeneratedRegex(@"\.flows:(\d+): (.*)$", RegexOptions.Multiline)]
        private static partial Regex RefusedLine();

        [GeneratedRegex(@"^\S+\|\d+\|\w+\|\w+\|")]
        private static partial Regex WarnPrefix();

        /// <summary>The rules as `vswitchctl del-flows` + `add-flows` leave them (a later rule with the same table, priority and match replaces the earlier, as in Open vSwitch).</summary>
        private FlowControl Flows(IReadOnlyList<string> lines)
        {
            var rules = FlowParser.ParseRules(string.Join('\n', lines), "diff.flows");
            _flows.Replace([], 0);
            _flows.Add(rules, 0);
            return _flows;
        }

        private unsafe DiffCase TraceBoth(FlowControl flows, IReadOnlyList<string> lines, OraclePacket p)
        {
            var start = HeaderState.Of(p.Frame);
            var key = KeyExtractor.PipelineKeyOf(p.Frame, (ushort)p.InPort, out _);

            var (traceLines, t, megaflow) = flows.Trace(key);
            var sw = NormalForm.OfSwitch(start, t.Ops.AsSpan(0, t.OpCount));
            string actions = string.Join(",", t.Ops.Take(t.OpCount).Where(o => o.Op is not (Actions.DpOp.Ext or Actions.DpOp.MissNote)).Select(o => o.Format(null)));
            string swTrace = string.Join('\n', traceLines) + $"\nMegaflow: {megaflow}\nDatapath actions: {(actions.Length == 0 ? "drop" : actions)}";
            ovs.Appctl("fdb/flush", PrivateOvs.Bridge); // a trace of a frame learns its source: every trace starts from an empty table
            string ovsTrace = ovs.Trace(p.InPort, p.Hex);
            string ovsActions = ovsTrace.Split('\n').LastOrDefault(l => l.StartsWith("Datapath actions: ", StringComparison.Ordinal))?["Datapath actions: ".Length..]
                ?? throw new InvalidOperationException("ofproto/trace printed no datapath actions:\n" + ovsTrace);
            var ov = NormalForm.OfOvs(start, ovsActions, ovs.OfPortOfOdp, ovs.LocalOdp);
            return new DiffCase(lines, p, sw, ov, swTrace, ovsTrace);
        }

        /// <summary>The disagreement's class, or null when both agree.</summary>
        internal static string? Classify(DiffCase c)
        {
            if (c.Switch.Unreadable != null || c.Ovs.Unreadable != null)
            {
                return $"unreadable actions ({c.Switch.Unreadable ?? c.Ovs.Unreadable})";
            }

            var a = c.Switch.Groups();
            var b = c.Ovs.Groups();
            if (a.SequenceEqual(b))
            {
                return null;
            }

            // NORMAL's outputs leave in each switch's own port order (Open vSwitch's is its bundle
            // list), and with VLAN modes ports get different tags: with NORMAL in the rule set, the
            // same outputs with the same headers in another order agree.
            if (c.Lines.Any(l => l.Contains("normal", StringComparison.OrdinalIgnoreCase))
                && c.Switch.Events.Select(e => e.ToString()).Order(StringComparer.Ordinal).SequenceEqual(c.Ovs.Events.Select(e => e.ToString()).Order(StringComparer.Ordinal)))
            {
                return null;
            }

            var portsA = c.Switch.Events.Select(e => e.Controller ? "controller" : e.Port.ToString(CultureInfo.InvariantCulture)).Order().ToList();
            var portsB = c.Ovs.Events.Select(e => e.Controller ? "controller" : e.Port.ToString(CultureInfo.InvariantCulture)).Order().ToList();
            if (!portsA.SequenceEqual(portsB))
            {
                return portsA.Count == 0 ? "switch drops, Open vSwitch forwards" : portsB.Count == 0 ? "switch forwards, Open vSwitch drops" : "different output ports";
            }

            // Same ports: which header part differs first (eth, vlan, ipv4/ipv6, tp), or the order.
            for (int i = 0; i < Math.Min(c.Switch.Events.Count, c.Ovs.Events.Count); i++)
            {
                string sa = c.Switch.Events[i].State, sb = c.Ovs.Events[i].State;
                if (sa != sb)
                {
                    var pa = NormalForm.SplitTop(sa);
                    var pb = NormalForm.SplitTop(sb);
                    if (pa.Count(x => x.StartsWith("vlan", StringComparison.Ordinal)) != pb.Count(x => x.StartsWith("vlan", StringComparison.Ordinal)))
                    {
                        return "different number of VLAN tags at an output";
                    }

                    string part = pa.Zip(pb).FirstOrDefault(z => z.First != z.Second).First ?? "?";
                    return $"different {part[..Math.Max(0, part.IndexOf('(', StringComparison.Ordinal))]} header at an output";
                }
            }

            return "different output order";
        }

        /// <summary>Removes rules while the packet still disagrees in the same class.</summary>
        private DiffCase Shrink(DiffCase c, string cls)
        {
            var lines = c.Lines.ToList();
            for (int i = lines.Count - 1; i >= 0; i--)
            {
                var fewer = lines.Where((_, j) => j != i).ToList();
                if (ovs.ReplaceFlows(fewer) != null)
                {
                    continue;
                }

                var d = TraceBoth(Flows(fewer), fewer, c.Packet);
                if (Classify(d) == cls)
                {
                    lines = fewer;
                    c = d;
                }
            }

            return c;
        }

        private static string Describe(DiffCase c) =>
            $"    rules:\n{string.Concat(c.Lines.Select(l => $"      {l}\n"))}"
            + $"    packet: in_port={c.Packet.InPort} {c.Packet.Hex}\n"
            + $"    this switch:   {c.Switch}\n    Open vSwitch:  {c.Ovs}\n"
            + $"    this switch's trace:\n{Indent(c.SwitchTrace)}    Open vSwitch's trace:\n{Indent(c.OvsTrace)}";

        private static string Indent(string s) => string.Concat(s.TrimEnd().Split('\n').Select(l => $"      {l}\n"));

        public string Report(int seed, double seconds)
        {
            var sb = new StringBuilder();
            int compared = Agreements + Disagreements.Values.Sum(d => d.Count);
            sb.AppendLine(CultureInfo.InvariantCulture, $"seed {seed}: {RuleSets} rule sets, {Traces} traces; {compared} compared, {Agreements} agree ({100.0 * Agreements / Math.Max(1, compared):F3} %), "
                + $"{Disagreements.Values.Sum(d => d.Count)} disagree, {Excluded.Values.Sum()} excluded; {Outputs} outputs compared; {seconds:F1} s");
            foreach (var (name, reason, _) in Exclusions)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  excluded: {name}: {Excluded.GetValueOrDefault(name)} ({reason})");
            }

            foreach (var kv in RefusedByOvs.OrderByDescending(k => k.Value))
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  rules ovs-ofctl refused (taken out on both sides): {kv.Value}: {kv.Key}; e.g. {RefusedExample.GetValueOrDefault(kv.Key, "(whole set)")}");
            }

            sb.AppendLine("  agreeing traces per action kind in their rule sets: " + string.Join(", ", Coverage.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => $"{k.Key} {k.Value}")));
            foreach (var kv in Disagreements.OrderByDescending(k => k.Value.Count))
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  DISAGREEMENT {kv.Key}: {kv.Value.Count}, smallest example {kv.Value.Example}");
            }

            return sb.ToString();
        }
    }
}
