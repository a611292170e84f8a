// ConntrackNetnsTests.cs - connection tracking end to end, over the kernel's real TCP/IP stacks in
// network namespaces: a stateful firewall (IPv4 and IPv6), source NAT of 200 concurrent connections
// from two hosts onto one public address, a port forward (destination NAT) and its hairpin. The rule
// files are Open vSwitch syntax (tests/conntrack/*.flows) and every scenario runs twice: over Open
// vSwitch 3.1's userspace datapath and conntrack (the reference: proves the rules, the traffic and the
// assertions today) and over vswitchd.
//
// Topology (ConntrackLab; namespaces <tag>s, <tag>a, <tag>o, <tag>b, <tag> random per test):
//
//     inside A <tag>a                      switch <tag>s                     outside O <tag>o
//     eth0 02:00:00:00:01:02  ---veth--- p1 (port 1)         (port 2) p2 ---veth---  eth0 02:00:00:00:02:02
//     198.51.100.2/24                          vswitchd or                       203.0.113.2/24
//     2001:db8:1::2/64                         Open vSwitch                      2001:db8:2::2/64
//     gw 198.51.100.1, 2001:db8:1::1              p3 (port 3)                    gw 203.0.113.1 (the public
//                                                  |                               address), 2001:db8:2::1
//     inside B <tag>b  eth0 02:00:00:00:01:03 ---veth
//     198.51.100.3/24, 2001:db8:1::3/64, gateways as A
//
// The switch stands in for a router between 198.51.100.0/24 and 203.0.113.0/24: every host's gateway is a
// static neighbour entry at the router MAC 02:00:00:00:00:01, which no host owns, and the rules' last
// table routes by destination address (sets the host's MAC, outputs to its port). So no ARP or neighbour
// discovery crosses the switch, the public address 203.0.113.1 needs no owner (the outside sends to it
// through its gateway entry, the switch translates it), and A and B, on different ports, reach each
// other only through the switch (static entries for each other) - which is what makes the hairpin work
// without source NAT: A's replies to B are un-NATed on their way back. Checksum offload is off on every
// veth end (af_packet would see partial checksums); the switch's namespace has no IPv6 of its own.
// ctpeer.py (tests/conntrack) is each host's side: servers that log the peer address and md5s of each
// connection, clients that log theirs, probes that report connected / timeout / refused.
//
// Every scenario runs twice, over vswitchd (three net_af_packet ports) and over Open vSwitch 3.1's
// userspace conntrack (a private instance, the veth ends as system ports of a netdev bridge): the same
// rule files, the same assertions, so the reference shares no code with the switch. The conntrack
// dumps are read in dpctl/dump-conntrack's format, which vswitchctl dump-conntrack also writes. Each
// test has its own namespaces and removes them, and its processes, in Dispose, pass or fail.
using Xunit;
using Xunit.Abstractions;

namespace VSwitch.Tests;

[Collection("dpdk")]
public sealed class ConntrackNetnsTests(ITestOutputHelper output) : IDisposable
{
    private const string TcpNewFromOutside = "table=1,tcp,in_port=2,ct_state=+trk+new";
    private const string Related = "table=1,ct_state=+trk+rel";

    private static readonly LabHost A = ConntrackLab.A, O = ConntrackLab.O, B = ConntrackLab.B;
    private readonly ConntrackLab _lab = new();

    public void Dispose() => _lab.Dispose();

    /// <summary>Runs <paramref name="scenario"/> over Open vSwitch with tests/conntrack/<paramref name="flows"/>.</summary>
    private void OverOvs(string flows, Action<ILabSwitch> scenario)
    {
        using var sw = new OvsNetdevSwitch(_lab, ConntrackLab.Script(flows));
        scenario(sw);
    }

    /// <summary>Runs <paramref name="scenario"/> over vswitchd with tests/conntrack/<paramref name="flows"/>; it must stop clean.</summary>
    private void OverVswitchd(string flows, Action<ILabSwitch> scenario)
    {
        using var sw = new VswitchdLabSwitch(_lab, ConntrackLab.Script(flows));
        scenario(sw);
        StopsClean(sw);
    }

    [Fact]
    [Trait("Category", "Ovs")]
    public void Stateful_firewall_over_open_vswitch() => OverOvs("firewall.flows", sw => StatefulFirewall(sw, v6: false));

    [Fact]
    [Trait("Category", "Ovs")]
    public void Ipv6_stateful_firewall_over_open_vswitch() => OverOvs("firewall.flows", sw => StatefulFirewall(sw, v6: true));

    [Fact]
    [Trait("Category", "Ovs")]
    public void Snat_of_200_concurrent_connections_over_open_vswitch() => OverOvs("nat.flows", Snat);

    [Fact]
    [Trait("Category", "Ovs")]
    public void Port_forward_and_hairpin_over_open_vswitch() => OverOvs("nat.flows", PortForwardAndHairpin);

    [Fact]
    [Trait("Category", "Dpdk")]
    public void Stateful_firewall_over_vswitchd() => OverVswitchd("firewall.flows", sw => StatefulFirewall(sw, v6: false));

    [Fact]
    [Trait("Category", "Dpdk")]
    public void Ipv6_stateful_firewall_over_vswitchd() => OverVswitchd("firewall.flows", sw => StatefulFirewall(sw, v6: true));

    [Fact]
    [Trait("Category", "Dpdk")]
    public void Snat_of_200_concurrent_connections_over_vswitchd() => OverVswitchd("nat.flows", Snat);

    [Fact]
    [Trait("Category", "Dpdk")]
    public void Port_forward_and_hairpin_over_vswitchd() => OverVswitchd("nat.flows", PortForwardAndHairpin);

    /// <summary>
    /// A SYN flood of a million spoofed sources (or more: rounds of a million until the transfers are
    /// done) from inside host B against a zone limit of 1 000, while A's transfers run: the table
    /// never holds more than the limit, the refused commits are counted, vswitchd's memory stays flat,
    /// and two transfers established before the flood complete during it (md5 checked at both ends).
    /// </summary>
    [Fact]
    [Trait("Category", "Dpdk")]
    public void A_syn_flood_against_a_zone_limit_keeps_the_table_at_the_limit_and_established_transfers_complete()
    {
        using var sw = new VswitchdLabSwitch(_lab, ConntrackLab.Script("firewall.flows"));
        Assert.Equal(0, sw.Ctl("ct-set-limits", "zone=1,limit=1000").Exit);
        string gate = Path.Combine(_lab.Dir, "gate");
        using var srv = _lab.Peer(O, "serve", "--bind", O.Ip4, "--port", "5001", "--hold", "2", "--gate", gate);
        srv.WaitLines("ready");
        var client = _lab.Peer(A, "conn", "--dst", O.Ip4, "--port", "5001", "--count", "2", "--up", $"{8 << 20}", "--down", $"{8 << 20}", "--id", "est");
        srv.WaitLines("open 2", seconds: 30); // both established and in the table, held until the gate opens
        long rss0 = sw.RssBytes();

        string stop = Path.Combine(_lab.Dir, "stop-flood");
        var flood = _lab.Peer(B, "synflood", "--dst", O.Ip4, "--port", "5001", "--count", "1000000", "--until", stop, "--mac", B.Mac, "--router", ConntrackLab.RouterMac);
        long most = 0;
        for (int i = 0; i < 600 && most < 1000; i++)
        {
            most = Math.Max(most, sw.CtStats()["connections"]!.GetValue<long>());
            Thread.Sleep(50);
        }

        Assert.True(most == 1000, $"the flood fills the zone up to its limit: {most} connections seen; flood: {flood.Stdout} {flood.Stderr}; {sw.CtStats().ToJsonString()}");
        File.WriteAllText(gate, ""); // the established transfers run while the flood goes on
        client.WaitExit(180);
        Assert.True(client.ExitCode == 0, $"{client.Stdout}\n{client.Stderr}");
        Assert.False(flood.HasExited, "the transfers completed during the flood");
        File.WriteAllText(stop, ""); // the flood ends after its current round of a million
        while (!flood.HasExited)
        {
            most = Math.Max(most, sw.CtStats()["connections"]!.GetValue<long>());
            Thread.Sleep(100);
        }

        flood.WaitExit(30); // HasExited can turn true before the output readers have the last line
        Assert.True(int.Parse(flood.Stdout.Trim().Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) >= 1_000_000, flood.Stdout);
        output.WriteLine($"flood: {flood.Stdout.Trim()}; most connections seen {most}; {sw.CtStats().ToJsonString()}");
        srv.WaitLines("conn est-", 2, 30);
        var joined = ConnRecord.Join(ConnRecord.Clients(client.Lines), ConnRecord.Servers(srv.Lines));
        Assert.Equal(2, joined.Count); // both md5s agreed at both ends (Join checks them)
        Assert.True(most <= 1000, $"the table held {most} connections over the zone's limit of 1000");
        var stats = sw.CtStats();
        Assert.True(stats["refused"]!.GetValue<ulong>() > 100_000, $"the refused commits are counted: {stats}");
        long rss1 = sw.RssBytes();
        output.WriteLine($"vswitchd RSS {rss0 >> 20} MiB before the flood, {rss1 >> 20} MiB after");
        Assert.True(rss1 - rss0 < 16 << 20, $"memory stays flat: RSS {rss0} -> {rss1}");
        StopsClean(sw);
    }

    /// <summary>
    /// SNAT with the two directions of every connection on different PMDs: the inside ports (A, B) on
    /// the PMD of core 0, the outside port on the PMD of core 1. Each connection is one entry with one
    /// NAT binding (the scenario's assertions), and both PMDs carried traffic.
    /// </summary>
    [Fact]
    [Trait("Category", "Dpdk")]
    public void Snat_of_200_concurrent_connections_over_vswitchd_with_each_direction_on_its_own_pmd()
    {
        using var sw = new VswitchdLabSwitch(_lab, ConntrackLab.Script("nat.flows"), qpairs: 2, extra:
            ["--pmd-cores", "0,1", "--rxq", "p1=2", "--rxq", "p2=2", "--rxq", "p3=2", "--rxq-assign", "p1:0=0", "--rxq-assign", "p1:1=0",
             "--rxq-assign", "p3:0=0", "--rxq-assign", "p3:1=0", "--rxq-assign", "p2:0=1", "--rxq-assign", "p2:1=1"]);
        Snat(sw);
        var rx = sw.PmdRx();
        output.WriteLine($"rx by PMD core: {string.Join(", ", rx.Select(kv => $"{kv.Key}: {kv.Value}"))}");
        Assert.True(rx[0] > 1000 && rx[1] > 1000, "both PMDs forwarded the connections' packets");
        StopsClean(sw);
    }

    /// <summary>
    /// The lab over vswitchd as it is today, with plain.flows (the same routing, no conntrack): proves the
    /// namespaces, the af_packet ports in the switch's namespace, the transfers and md5s, the servers' peer
    /// logs and the rule counters the scenarios read - and that what the firewall must stop passes without it.
    /// </summary>
    [Fact]
    [Trait("Category", "Dpdk")]
    public void The_lab_routes_through_vswitchd_without_conntrack_and_lets_everything_in()
    {
        using var sw = new VswitchdLabSwitch(_lab, ConntrackLab.Script("plain.flows"));
        using var srvO = Serve(O, O.Ip4, 5001);
        using var srvO6 = Serve(O, O.Ip6, 5001);
        using var srvA = Serve(A, A.Ip4, 80);
        using var udpO = Serve(O, O.Ip4, 5353, "--udp");

        var big = Transfer(A, O.Ip4, 5001, srvO, "big", 1, 4 << 20, 4 << 20);
        Assert.Equal(A.Ip4, big.Single().PeerIp);
        var many = Transfer(B, O.Ip4, 5001, srvO, "b", 20, 16 << 10, 64 << 10);
        Assert.All(many, c => Assert.Equal((B.Ip4, c.ClientPort), (c.PeerIp, c.PeerPort))); // no NAT here
        Assert.Equal(A.Ip6, Transfer(A, O.Ip6, 5001, srvO6, "big6", 1, 1 << 20, 1 << 20).Single().PeerIp);

        Assert.Equal("reply", _lab.PeerRun(A, 20, "udp-probe", "--dst", O.Ip4, "--port", "5353"));
        Assert.Equal("refused", _lab.PeerRun(A, 20, "udp-probe", "--dst", O.Ip4, "--port", "9"));
        Assert.Equal(3, _lab.Ping(A, O.Ip4));
        Assert.Equal(3, _lab.Ping(A, O.Ip6));

        // Without a firewall the outside gets in.
        Assert.Equal("connected", _lab.PeerRun(O, 20, "tcp-probe", "--dst", A.Ip4, "--port", "80"));
        Assert.Equal(3, _lab.Ping(O, A.Ip4));
        Assert.Equal(3, _lab.Ping(O, A.Ip6));
        Assert.True(sw.RulePackets("table=2,ip,nw_dst=203.0.113.2") > (4 << 20) / 1500, "the routes' counters count (4 MiB went up)");
        Assert.True(sw.RulePackets("table=2,ipv6,ipv6_dst=2001:db8:1::2") > 0);
        StopsClean(sw);
    }

    /// <summary>
    /// Scenarios 1 and 4: A opens TCP (4 MiB each way, md5 at both ends), UDP and ping outward; the outside
    /// opens nothing inward (TCP times out, ping and UDP get no answer, each counted by its drop rule);
    /// an ICMP port unreachable about A's UDP flow comes back (+rel); the table holds A's connection and
    /// nothing the outside started.
    /// </summary>
    private void StatefulFirewall(ILabSwitch sw, bool v6)
    {
        string a = v6 ? A.Ip6 : A.Ip4, o = v6 ? O.Ip6 : O.Ip4;
        string tcpIn = v6 ? "table=1,tcp6,in_port=2,ct_state=+trk+new" : TcpNewFromOutside;
        string udpIn = v6 ? "table=1,udp6,in_port=2,ct_state=+trk+new" : "table=1,udp,in_port=2,ct_state=+trk+new";
        string icmpIn = v6 ? "table=1,icmp6,in_port=2,ct_state=+trk+new" : "table=1,icmp,in_port=2,ct_state=+trk+new";
        using var srvO = Serve(O, o, 5001);
        using var udpO = Serve(O, o, 5353, "--udp");
        using var srvA = Serve(A, a, 80);
        using var udpA = Serve(A, a, 5353, "--udp");

        // Outward: TCP, UDP, ping.
        var big = Transfer(A, o, 5001, srvO, "big", 1, 4 << 20, 4 << 20).Single();
        Assert.Equal(a, big.PeerIp);
        Assert.Equal("reply", _lab.PeerRun(A, 20, "udp-probe", "--dst", o, "--port", "5353"));
        Assert.Contains($"udp {a} ", udpO.Stdout, StringComparison.Ordinal);
        Assert.Equal(3, _lab.Ping(A, o));

        // Inward: nothing opens, and each refusal is a counted drop of a new connection from port 2.
        long tcp0 = sw.RulePackets(tcpIn), udp0 = sw.RulePackets(udpIn), icmp0 = sw.RulePackets(icmpIn);
        Assert.Equal("timeout", _lab.PeerRun(O, 20, "tcp-probe", "--dst", a, "--port", "80", "--timeout", "3"));
        Assert.Equal("timeout", _lab.PeerRun(O, 20, "udp-probe", "--dst", a, "--port", "5353", "--timeout", "2"));
        Assert.Equal(0, _lab.Ping(O, a, 2, seconds: 1));
        long tcp = Grew(sw, tcpIn, tcp0, 1, "the outside's SYNs were dropped as new");
        long udp = Grew(sw, udpIn, udp0, 1, "the outside's datagram was dropped as new");
        long icmp = Grew(sw, icmpIn, icmp0, 2, "the outside's echo requests were dropped as new");
        output.WriteLine($"{sw.Name}: dropped as new from outside: tcp +{tcp}, udp +{udp}, icmp +{icmp}");
        Assert.DoesNotContain(srvA.Lines, l => l.StartsWith("conn ", StringComparison.Ordinal));
        Assert.DoesNotContain(udpA.Lines, l => l.StartsWith("udp ", StringComparison.Ordinal));

        // An ICMP port unreachable about A's UDP flow to a closed port is related, and let in.
        long rel0 = sw.RulePackets(Related);
        Assert.Equal("refused", _lab.PeerRun(A, 20, "udp-probe", "--dst", o, "--port", "9"));
        output.WriteLine($"{sw.Name}: related +{Grew(sw, Related, rel0, 1, "the port unreachable was related")}");
        var ct = sw.DumpConntrack();
        output.WriteLine(string.Join('\n', ct.Select(e => e.Line)));
        Assert.Contains(ct, e => e.Proto is "tcp" or "tcp6" && e.Zone == 1 && e.O("src") == a && e.O("dst") == o && e.O("dport") == "5001");
        Assert.DoesNotContain(ct, e => e.O("src") == o);
    }

    /// <summary>
    /// Scenario 2: A and B each open 100 connections from the same source ports 40000..40099 to one server
    /// outside, all 200 open at once (the server holds them until the last arrives, and until the test has
    /// read the connection table). The server sees only 203.0.113.1, on 200 distinct ports (so at least one
    /// of each colliding pair was moved), and every transfer's md5 matches at both ends. Then UDP through
    /// the same NAT, and an ICMP port unreachable about a NATed UDP flow back to A (+rel, un-NATed).
    /// </summary>
    private void Snat(ILabSwitch sw)
    {
        const int PerHost = 100;
        string gate = Path.Combine(_lab.Dir, "gate");
        using var srv = _lab.Peer(O, "serve", "--bind", O.Ip4, "--port", "5002", "--hold", $"{2 * PerHost}", "--gate", gate);
        srv.WaitLines("ready");
        var clients = new[] { A, B }.Select(h => (Host: h, Proc: _lab.Peer(h, "conn", "--src", h.Ip4, "--sport-base", "40000", "--dst", O.Ip4,
            "--port", "5002", "--count", $"{PerHost}", "--up", $"{16 << 10}", "--down", $"{64 << 10}", "--id", h.Name))).ToList();
        srv.WaitLines($"open {2 * PerHost}", seconds: 90);

        // All 200 open: each is in the table, source-NATed to the public address on a port of its own.
        var ct = sw.DumpConntrack().Where(e => e.Proto == "tcp" && e.O("dst") == O.Ip4 && e.O("dport") == "5002").ToList();
        output.WriteLine($"{sw.Name}: {ct.Count} open connections to the server, e.g.\n{string.Join('\n', ct.Take(3).Select(e => e.Line))}");
        Assert.True(ct.Count == 2 * PerHost, $"{sw.Name}: {ct.Count} connections to the server in the table:\n{string.Join('\n', ct.Select(e => e.Line))}");
        Assert.All(ct, e => Assert.True(e.Zone == 1 && e.R("dst") == ConntrackLab.Public4 && e.O("src") is "198.51.100.2" or "198.51.100.3", e.Line));
        Assert.Equal(2 * PerHost, ct.Select(e => e.R("dport")).Distinct().Count());
        File.WriteAllText(gate, "");

        var client = new List<ConnRecord>();
        foreach (var (h, p) in clients)
        {
            p.WaitExit(120);
            Assert.True(p.ExitCode == 0, $"{h.Name}: {p.Stdout}\n{p.Stderr}");
            client.AddRange(ConnRecord.Clients(p.Lines));
        }

        srv.WaitLines("conn ", 2 * PerHost, 60);
        var server = ConnRecord.Servers(srv.Lines);
        Assert.Equal(2 * PerHost, server.Count);
        Assert.All(server, s => Assert.Equal(ConntrackLab.Public4, s.PeerIp));
        Assert.Equal(2 * PerHost, server.Select(s => s.PeerPort).Distinct().Count());
        var joined = ConnRecord.Join(client, server);
        Assert.Equal(2 * PerHost, joined.Count);
        int moved = joined.Count(c => c.ClientPort != c.PeerPort);
        output.WriteLine($"{sw.Name}: server-side peer ports {server.Min(s => s.PeerPort)}..{server.Max(s => s.PeerPort)}, {moved} of {joined.Count} differ from the client's");
        Assert.True(moved >= PerHost, "the colliding source ports were translated");
        Assert.DoesNotContain(srv.Lines, l => l.StartsWith("error", StringComparison.Ordinal));

        // UDP is source-NATed too, and an ICMP port unreachable about a NATed flow is related: the
        // switch un-NATs it (its destination and the header it quotes) on its way back to A.
        using var udp = Serve(O, O.Ip4, 5353, "--udp");
        Assert.Equal("reply", _lab.PeerRun(A, 20, "udp-probe", "--dst", O.Ip4, "--port", "5353"));
        Assert.Contains($"udp {ConntrackLab.Public4} ", udp.Stdout, StringComparison.Ordinal);
        long rel0 = sw.RulePackets(Related);
        Assert.Equal("refused", _lab.PeerRun(A, 20, "udp-probe", "--dst", O.Ip4, "--port", "9"));
        Grew(sw, Related, rel0, 1, "the port unreachable about a NATed flow was related");
    }

    /// <summary>
    /// Scenario 3: the outside reaches A's port 80 through 203.0.113.1:8080 (A sees the outside's own
    /// address); B, inside, reaches it through the public address too (the hairpin; A sees B's address,
    /// and its replies are un-NATed on their way to B). Both directions' md5s match. Only the forwarded
    /// port is open: A's address and another public port time out, counted as new TCP dropped from port 2.
    /// </summary>
    private void PortForwardAndHairpin(ILabSwitch sw)
    {
        using var srv = Serve(A, A.Ip4, 80);
        var fromO = Transfer(O, ConntrackLab.Public4, 8080, srv, "o", 3, 256 << 10, 1 << 20);
        Assert.All(fromO, c => Assert.Equal(O.Ip4, c.PeerIp));
        var fromB = Transfer(B, ConntrackLab.Public4, 8080, srv, "b", 2, 256 << 10, 1 << 20);
        Assert.All(fromB, c => Assert.Equal(B.Ip4, c.PeerIp));

        var ct = sw.DumpConntrack();
        output.WriteLine(string.Join('\n', ct.Select(e => e.Line)));
        foreach (var h in new[] { O, B })
        {
            Assert.Contains(ct, e => e.Proto == "tcp" && e.Zone == 1 && e.O("src") == h.Ip4 && e.O("dst") == ConntrackLab.Public4 && e.O("dport") == "8080"
                && e.R("src") == A.Ip4 && e.R("sport") == "80" && e.R("dst") == h.Ip4);
        }

        long d0 = sw.RulePackets(TcpNewFromOutside);
        Assert.Equal("timeout", _lab.PeerRun(O, 20, "tcp-probe", "--dst", A.Ip4, "--port", "80", "--timeout", "3"));
        Assert.Equal("timeout", _lab.PeerRun(O, 20, "tcp-probe", "--dst", ConntrackLab.Public4, "--port", "80", "--timeout", "3"));
        Grew(sw, TcpNewFromOutside, d0, 2, "the outside's other SYNs were dropped as new");
        Assert.Equal(5, ConnRecord.Servers(srv.Lines).Count);
    }

    /// <summary>A TCP (or --udp) ctpeer server in <paramref name="h"/>, ready.</summary>
    private HostProcess Serve(LabHost h, string ip, int port, params string[] extra)
    {
        var p = _lab.Peer(h, ["serve", "--bind", ip, "--port", $"{port}", .. extra]);
        p.WaitLines("ready");
        return p;
    }

    /// <summary>
    /// <paramref name="count"/> concurrent connections from <paramref name="h"/> to <paramref name="dst"/>:<paramref name="port"/>,
    /// each sending <paramref name="up"/> random bytes and receiving <paramref name="down"/>; checks that
    /// every one succeeded and that both ends agree on both md5s; the joined records.
    /// </summary>
    private List<ConnRecord> Transfer(LabHost h, string dst, int port, HostProcess server, string id, int count, int up, int down)
    {
        var c = _lab.Peer(h, "conn", "--dst", dst, "--port", $"{port}", "--count", $"{count}", "--up", $"{up}", "--down", $"{down}", "--id", id);
        c.WaitExit(120);
        Assert.True(c.ExitCode == 0, $"{c.Command}: {c.Stdout}\n{c.Stderr}");
        server.WaitLines($"conn {id}-", count, 30);
        var joined = ConnRecord.Join(ConnRecord.Clients(c.Lines), ConnRecord.Servers(server.Lines).Where(s => s.Id.StartsWith(id + "-", StringComparison.Ordinal)).ToList());
        Assert.Equal(count, joined.Count);
        return joined;
    }

    /// <summary>
    /// Waits (up to 5 s) until the rule <paramref name="match"/> selects has counted at least
    /// <paramref name="atLeast"/> packets since <paramref name="before"/>; the growth. Rule counters may lag the
    /// traffic (Open vSwitch's revalidators push datapath flow statistics to rules periodically).
    /// </summary>
    private static long Grew(ILabSwitch sw, string match, long before, long atLeast, string what)
    {
        var end = DateTime.UtcNow.AddSeconds(5);
        long grew;
        while ((grew = sw.RulePackets(match) - before) < atLeast && DateTime.UtcNow < end)
        {
            Thread.Sleep(100);
        }

        Assert.True(grew >= atLeast, $"{sw.Name}: {what}: '{match}' counted {grew} packets, expected at least {atLeast}");
        return grew;
    }

    private static void StopsClean(VswitchdLabSwitch sw)
    {
        var res = sw.Stop();
        Assert.True(res.ExitCode == 0, res.ToString());
        Assert.Equal("0", res.Field("final: mbufs", "leaked"));
    }
}

/// <summary>One connection as ctpeer.py logged it: the client's "conn ID LOCAL_PORT MD5_UP MD5_DOWN" and
/// the server's "conn ID PEER_IP PEER_PORT MD5_UP MD5_DOWN", joined by ID.</summary>
internal sealed record ConnRecord(string Id, int ClientPort, string PeerIp, int PeerPort, string Up, string Down)
{
    public static List<ConnRecord> Clients(IEnumerable<string> lines) =>
        [.. lines.Select(l => l.Split(' ')).Where(f => f is ["conn", _, _, _, _]).Select(f => new ConnRecord(f[1], int.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture), "", 0, f[3], f[4]))];

    public static List<ConnRecord> Servers(IEnumerable<string> lines) =>
        [.. lines.Select(l => l.Split(' ')).Where(f => f is ["conn", _, _, _, _, _]).Select(f => new ConnRecord(f[1], 0, f[2], int.Parse(f[3], System.Globalization.CultureInfo.InvariantCulture), f[4], f[5]))];

    /// <summary>Each client record with its server's; fails unless the ids pair up one to one and both md5s agree.</summary>
    public static List<ConnRecord> Join(List<ConnRecord> clients, List<ConnRecord> servers)
    {
        Assert.Equal(clients.Select(c => c.Id).Order(), servers.Select(s => s.Id).Order());
        var byId = servers.ToDictionary(s => s.Id);
        return [.. clients.Select(c =>
        {
            var s = byId[c.Id];
            Assert.True(c.Up == s.Up && c.Down == s.Down, $"{c.Id}: md5 up {c.Up} / {s.Up}, down {c.Down} / {s.Down} (client / server)");
            return c with { PeerIp = s.PeerIp, PeerPort = s.PeerPort };
        })];
    }
}
