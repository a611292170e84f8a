// IpsecNetnsTests.cs - the IPsec feature's live proof: two vswitchd instances as two sites, each with a
// host behind it, over the kernel's real TCP/IP stacks in network namespaces. Ping and TCP transfers
// (md5 checked at both ends) cross the tunnel in both directions, tcpdump on both ends of the link
// between the sites sees nothing but ESP, and an SA is replaced under traffic (add-sa, mod-flows,
// del-sa, as a key daemon rekeys) without losing a packet.
//
// Topology (IpsecLab; namespaces <tag>a, <tag>1, <tag>2, <tag>b, <tag> random per test):
//
//   host A <tag>a              site 1 <tag>1                    site 2 <tag>2              host B <tag>b
//   eth0 ---veth--- h1 (port 1) vswitchd #1 (port 2) w1 ===WAN veth=== w2 (port 2) vswitchd #2 (port 1) h2 ---veth--- eth0
//   198.51.100.2/25             outer 203.0.113.1                outer 203.0.113.2                 198.51.100.130/25
//   gw .1 (router MAC)          02:00:00:00:aa:01                02:00:00:00:aa:02                 gw .129 (router MAC)
//
// As in ConntrackLab, each vswitchd stands in for a router: the hosts' gateways are static neighbour
// entries at the router MAC 02:00:00:00:00:01, so no ARP crosses a switch. Each switch runs in its
// site's namespace with the veth ends h<n> and w<n> as net_af_packet ports 1 and 2 (checksum offload
// off on every veth end; the WAN veth's MTU is 1600 so that a full-size inner packet fits in ESP).
// Each site has an outbound SA (id 1) to the other and an inbound SA (id 2) from it, AES-GCM-128 with
// ESN and a replay window of 1024, given with the rules in a state file (they exist before traffic):
//
//   table 0: from port 1, ip from the local /25 to the remote one -> ipsec(sa=1,table=1)
//            from port 2, ESP from the peer's outer address        -> ipsec(decrypt,table=2)
//            anything else from port 2 (cleartext)                 -> drop (counted), the rest -> drop
//   table 1: ESP -> the WAN MACs, output:2
//   table 2: ipsec_sa=2, ip from the remote /25 to the local one   -> the host's MAC, output:1; else drop
//
// The rekey test's TCP transfer is paced by its sender (ctpeer.py conn --rate, SO_MAX_PACING_RATE) so
// that it spans the rekey whatever the machine's speed. Ping RTTs of up to a few hundred ms are CPU
// contention (2 cores: two busy-polling PMDs share core 1, and every vswitchctl is a dotnet start).
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed partial class IpsecNetnsTests(ITestOutputHelper output) : IDisposable
{
    private readonly IpsecLab _lab = new();

    public void Dispose() => _lab.Dispose();

    /// <summary>
    /// Ping A to B and B to A (5 each, all answered), then TCP both ways at once (A's connection to B and
    /// B's to A, 4 MiB up and 4 MiB down each, md5s equal at both ends); on the WAN only ESP with the two
    /// SAs' SPIs, in both directions; every SA counted packets with no authentication failure or replay
    /// drop, and both switches stop clean.
    /// </summary>
    [Fact]
    public void Ping_and_tcp_cross_the_tunnel_both_ways_and_the_wan_sees_only_esp()
    {
        var t0 = DateTime.UtcNow;
        var s1 = _lab.StartSite(IpsecLab.Site1);
        var s2 = _lab.StartSite(IpsecLab.Site2);
        var cap1 = _lab.Capture(IpsecLab.Site1);
        var cap2 = _lab.Capture(IpsecLab.Site2);
        output.WriteLine($"switches and captures up after {(DateTime.UtcNow - t0).TotalSeconds:F1} s");

        Assert.Equal(5, _lab.Ping(IpsecLab.A, IpsecLab.B.Ip, 5));
        Assert.Equal(5, _lab.Ping(IpsecLab.B, IpsecLab.A.Ip, 5));

        var srvB = _lab.Serve(IpsecLab.B, 5001);
        var srvA = _lab.Serve(IpsecLab.A, 5002);
        var t1 = DateTime.UtcNow;
        var ab = _lab.Peer(IpsecLab.A, "conn", "--dst", IpsecLab.B.Ip, "--port", "5001", "--count", "1", "--up", $"{4 << 20}", "--down", $"{4 << 20}", "--id", "ab");
        var ba = _lab.Peer(IpsecLab.B, "conn", "--dst", IpsecLab.A.Ip, "--port", "5002", "--count", "1", "--up", $"{4 << 20}", "--down", $"{4 << 20}", "--id", "ba");
        var viaA = Transferred(ab, srvB, "ab", IpsecLab.A.Ip);
        var viaB = Transferred(ba, srvA, "ba", IpsecLab.B.Ip);
        output.WriteLine($"16 MiB of TCP through the tunnel in {(DateTime.UtcNow - t1).TotalSeconds:F1} s: {viaA.Up}/{viaA.Down} (A->B), {viaB.Up}/{viaB.Down} (B->A)");

        // The counters: what one site encrypted, the other decrypted, nothing refused.
        var d1 = Settled(s1, s2);
        foreach (var (sw, d) in new[] { (s1, d1.Site1), (s2, d1.Site2) })
        {
            output.WriteLine($"site {sw.Site.N}:\n  {string.Join("\n  ", SaLines(d))}");
            Assert.True(Counter(d, 1, "packets") > (4 << 20) / 1500, $"site {sw.Site.N}: SA 1 encrypted the transfer");
            Assert.True(Counter(d, 2, "packets") > (4 << 20) / 1500, $"site {sw.Site.N}: SA 2 decrypted the transfer");
            NoRefusals(d, sw.Site.N, 1, 2);
        }

        // The WAN: each end's capture holds what it received (the switches send with qdisc bypass, which
        // taps on the sending end do not see), so the two together are both directions.
        var wan1 = cap1.Stop();
        var wan2 = cap2.Stop();
        output.WriteLine($"WAN: {wan2.Count} frames site 1 -> site 2, {wan1.Count} frames site 2 -> site 1");
        OnlyEsp(wan2, IpsecLab.Site1, [IpsecLab.Spi12], (4 << 20) / 1500);
        OnlyEsp(wan1, IpsecLab.Site2, [IpsecLab.Spi21], (4 << 20) / 1500);

        // Cleartext arriving from the WAN (an echo request from A's address to B, sent onto the WAN veth at
        // site 1) is dropped by site 2's rule for it; nothing reaches B.
        const string Cleartext = "table=0,priority=5,in_port=2";
        long drops0 = s2.RulePackets(Cleartext);
        ulong toB = ControlClient.PortTx(s2.Socket, "host");
        _lab.SendOnWan(IpsecLab.Site1, EchoRequest(IpsecLab.Site2.WanMac, IpsecLab.Site1.WanMac, IpsecLab.A.Ip, IpsecLab.B.Ip), 3);
        ControlClient.Eventually(() => s2.RulePackets(Cleartext) - drops0 >= 3, "site 2 dropped the cleartext from the WAN");
        Assert.Equal(toB, ControlClient.PortTx(s2.Socket, "host"));

        StopsClean(s1);
        StopsClean(s2);
        output.WriteLine($"total {(DateTime.UtcNow - t0).TotalSeconds:F1} s");
    }

    /// <summary>
    /// Rekey of the A-to-B direction under traffic: a ping every 10 ms from A to B and a TCP transfer
    /// from A to B run while site 2 adds inbound SA 4 and the rule accepting it, site 1 adds outbound SA 3
    /// (new SPI, new key) and points its rule at it (mod-flows), and then each site deletes the old SA
    /// (and site 2 the old SA's rule). No ping is lost, the md5s match, every packet SA 1 encrypted was
    /// decrypted by SA 2 and every packet of SA 3 by SA 4, and the WAN carried both SPIs, nothing but ESP.
    /// </summary>
    [Fact]
    public void Rekey_under_traffic_loses_nothing()
    {
        const int Pings = 500;
        var t0 = DateTime.UtcNow;
        var s1 = _lab.StartSite(IpsecLab.Site1);
        var s2 = _lab.StartSite(IpsecLab.Site2);
        var cap1 = _lab.Capture(IpsecLab.Site1);
        var cap2 = _lab.Capture(IpsecLab.Site2);
        Assert.Equal(1, _lab.Ping(IpsecLab.A, IpsecLab.B.Ip, 1));

        var srvB = _lab.Serve(IpsecLab.B, 5001);
        var ping = _lab.Run(IpsecLab.A, "ping", "-n", "-q", "-i", "0.01", "-c", $"{Pings}", "-W", "2", "-w", "30", IpsecLab.B.Ip);
        var tcp = _lab.Peer(IpsecLab.A, "conn", "--dst", IpsecLab.B.Ip, "--port", "5001", "--count", "1", "--up", $"{IpsecLab.RekeyUpBytes}",
            "--down", $"{64 << 10}", "--id", "rk", "--rate", $"{IpsecLab.RekeyRate}");

        // Traffic flows on SA 1; then the rekey.
        ControlClient.Eventually(() => Counter(s1.DumpSa(), 1, "packets") > 200, "traffic on SA 1");
        var tr = DateTime.UtcNow;
        string k3 = Hex(20);
        s2.Ctl(["add-sa", .. IpsecLab.SaWords(4, false, IpsecLab.Spi12New, k3, IpsecLab.Site1.Outer, IpsecLab.Site2.Outer)]);
        s2.Ctl("add-flow", IpsecLab.InboundRule(IpsecLab.Site2, 4));
        s1.Ctl(["add-sa", .. IpsecLab.SaWords(3, true, IpsecLab.Spi12New, k3, IpsecLab.Site1.Outer, IpsecLab.Site2.Outer)]);
        s1.Ctl("mod-flows", "--strict", IpsecLab.OutboundRule(IpsecLab.Site1, 3));
        Assert.False(tcp.HasExited, "the TCP transfer was still running at the switch to SA 3");
        Assert.False(ping.HasExited, "the pings were still running at the switch to SA 3");

        // Nothing is encrypted with SA 1 any more; once its last packets arrived, SA 2 decrypted every one.
        long sa1 = Counter(s1.DumpSa(), 1, "packets");
        ControlClient.Eventually(() => Counter(s2.DumpSa(), 2, "packets") == Counter(s1.DumpSa(), 1, "packets"), "site 2's SA 2 decrypted all SA 1 encrypted");
        long sa1End = Counter(s1.DumpSa(), 1, "packets");
        Thread.Sleep(100);
        Assert.Equal(sa1End, Counter(s1.DumpSa(), 1, "packets"));
        s1.Ctl("del-sa", "id=1");
        s2.Ctl("del-sa", "id=2");
        s2.Ctl("del-flows", "--strict", IpsecLab.InboundMatch(IpsecLab.Site2, 2));
        output.WriteLine(string.Join('\n', s1.Log.Concat(s2.Log).Order()));
        output.WriteLine($"rekey done in {(DateTime.UtcNow - tr).TotalMilliseconds:F0} ms; SA 1 carried {sa1End} packets ({sa1} when the rule moved)");
        Assert.False(tcp.HasExited, "the TCP transfer was still running after the old SAs were deleted");

        ping.WaitExit(40);
        string po = ping.Stdout;
        output.WriteLine(po); // RTT spikes of a few hundred ms are CPU contention on 2 cores (each vswitchctl is a dotnet start), not loss
        var m = PingStats().Match(po);
        Assert.True(m.Success && m.Groups[1].Value == $"{Pings}" && m.Groups[2].Value == $"{Pings}", $"every ping answered across the rekey:\n{po}\n{ping.Stderr}");
        var rec = Transferred(tcp, srvB, "rk", IpsecLab.A.Ip, 60);
        output.WriteLine($"TCP across the rekey: {IpsecLab.RekeyUpBytes >> 20} MiB up, md5 {rec.Up} at both ends");

        // After the traffic: SA 3 and SA 4 carried the rest, one for one, nothing refused; the old SAs are gone.
        var d = Settled(s1, s2);
        output.WriteLine($"site 1:\n  {string.Join("\n  ", SaLines(d.Site1))}\nsite 2:\n  {string.Join("\n  ", SaLines(d.Site2))}");
        Assert.Equal(new[] { 2, 3 }, SaIds(d.Site1));
        Assert.Equal(new[] { 1, 4 }, SaIds(d.Site2));
        Assert.True(Counter(d.Site1, 3, "packets") > 200, "SA 3 carried the traffic after the rekey");
        Assert.Equal(Counter(d.Site1, 3, "packets"), Counter(d.Site2, 4, "packets"));
        Assert.Equal(Counter(d.Site2, 1, "packets"), Counter(d.Site1, 2, "packets"));
        NoRefusals(d.Site1, 1, 2);
        NoRefusals(d.Site2, 2, 4);
        Assert.Contains("no_sa_drops=0", (string)d.Site2["crypto_device"]!, StringComparison.Ordinal);

        var wan1 = cap1.Stop();
        var wan2 = cap2.Stop();
        output.WriteLine($"WAN: {wan2.Count} frames site 1 -> site 2, {wan1.Count} frames site 2 -> site 1");
        OnlyEsp(wan2, IpsecLab.Site1, [IpsecLab.Spi12, IpsecLab.Spi12New], 100);
        OnlyEsp(wan1, IpsecLab.Site2, [IpsecLab.Spi21], 100);

        StopsClean(s1);
        StopsClean(s2);
        output.WriteLine($"total {(DateTime.UtcNow - t0).TotalSeconds:F1} s");
    }

    [GeneratedRegex(@"(\d+) packets transmitted, (\d+) received")]
    private static partial Regex PingStats();

    private static string Hex(int n) => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(n));

    /// <summary>Waits for a ctpeer client and its server's record; checks exit, md5s at both ends and the peer address.</summary>
    private static ConnRecord Transferred(HostProcess client, HostProcess server, string id, string fromIp, int seconds = 45)
    {
        client.WaitExit(seconds);
        Assert.True(client.ExitCode == 0, $"{client.Command}: {client.Stdout}\n{client.Stderr}");
        server.WaitLines($"conn {id}-", 1, 20);
        var j = ConnRecord.Join(ConnRecord.Clients(client.Lines), ConnRecord.Servers(server.Lines).Where(s => s.Id.StartsWith(id + "-", StringComparison.Ordinal)).ToList());
        Assert.Equal(fromIp, Assert.Single(j).PeerIp);
        return j[0];
    }

    /// <summary>Both sites' dump-sa once every outbound SA's packets have been decrypted on the other side (up to 10 s).</summary>
    private static (JsonObject Site1, JsonObject Site2) Settled(IpsecSite s1, IpsecSite s2)
    {
        (JsonObject, JsonObject) Read() => (s1.DumpSa(), s2.DumpSa());
        bool Even((JsonObject A, JsonObject B) d) =>
            Pairs(d.A, d.B).All(p => p.Out == p.In) && Pairs(d.B, d.A).All(p => p.Out == p.In);
        var end = DateTime.UtcNow.AddSeconds(10);
        var d = Read();
        while (!Even(d) && DateTime.UtcNow < end)
        {
            Thread.Sleep(100);
            d = Read();
        }

        Assert.True(Even(d), $"every packet one site encrypted was decrypted by the other:\n{d.Item1}\n{d.Item2}");
        return d;
    }

    /// <summary>The packets of each outbound SA of <paramref name="from"/> and of the inbound SA of <paramref name="to"/> with its SPI.</summary>
    private static IEnumerable<(long Out, long In)> Pairs(JsonObject from, JsonObject to) =>
        SaLines(from).Where(l => l.Contains(" dir=out ", StringComparison.Ordinal)).Select(l =>
        {
            string spi = Regex.Match(l, @" spi=(\S+)").Groups[1].Value;
            string? inb = SaLines(to).FirstOrDefault(x => x.Contains(" dir=in ", StringComparison.Ordinal) && x.Contains($" spi={spi} ", StringComparison.Ordinal));
            return (Field(l, "packets"), inb == null ? -1 : Field(inb, "packets"));
        });

    private static List<string> SaLines(JsonObject dump) => [.. dump["sas"]!.AsArray().Select(l => (string)l!)];

    private static List<int> SaIds(JsonObject dump) => [.. SaLines(dump).Select(l => int.Parse(Regex.Match(l, @"^id=(\d+)").Groups[1].Value, CultureInfo.InvariantCulture))];

    private static long Counter(JsonObject dump, int id, string name) =>
        Field(SaLines(dump).Single(l => l.StartsWith($"id={id} ", StringComparison.Ordinal)), name);

    private static long Field(string line, string name)
    {
        var m = Regex.Match(line, $@"\b{name}=(\d+)");
        Assert.True(m.Success, $"no {name} in '{line}'");
        return long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    private static void NoRefusals(JsonObject dump, int site, params int[] ids)
    {
        foreach (int id in ids)
        {
            var line = SaLines(dump).Single(l => l.StartsWith($"id={id} ", StringComparison.Ordinal));
            bool inbound = line.Contains(" dir=in ", StringComparison.Ordinal);
            foreach (var c in inbound ? ["auth_failures", "replay_drops", "check_drops", "queue_full", "lifetime_drops", "mismatch", "in_flight"]
                : new[] { "check_drops", "queue_full", "lifetime_drops", "mismatch", "in_flight" })
            {
                Assert.True(Field(line, c) == 0, $"site {site}: SA {id}: {c} in '{line}'");
            }
        }
    }

    /// <summary>
    /// Every frame <paramref name="from"/> sent on the WAN is IPv4 ESP from its outer address to the peer's
    /// (no cleartext, no ARP, no IPv6), at least <paramref name="atLeast"/> of them, every SPI one of
    /// <paramref name="spis"/> and each of those seen.
    /// </summary>
    private void OnlyEsp(List<byte[]> frames, IpsecLab.SiteSpec from, uint[] spis, int atLeast)
    {
        var peer = from == IpsecLab.Site1 ? IpsecLab.Site2 : IpsecLab.Site1;
        var seen = new Dictionary<uint, int>();
        foreach (var f in frames)
        {
            Assert.True(f.Length >= 14 + 20 + 8, $"a short frame on the WAN: {Convert.ToHexString(f)}");
            Assert.True(f[12] == 0x08 && f[13] == 0x00, $"a frame on the WAN that is not IPv4: {Convert.ToHexString(f.AsSpan(0, Math.Min(f.Length, 64)))}");
            Assert.True(f[14 + 9] == 50, $"an IPv4 packet on the WAN that is not ESP (protocol {f[14 + 9]}): {Convert.ToHexString(f.AsSpan(0, Math.Min(f.Length, 64)))}");
            Assert.Equal(from.Outer, new System.Net.IPAddress(f.AsSpan(26, 4)).ToString());
            Assert.Equal(peer.Outer, new System.Net.IPAddress(f.AsSpan(30, 4)).ToString());
            Assert.Equal(from.WanMac, Mac(f.AsSpan(6, 6)));
            Assert.Equal(peer.WanMac, Mac(f.AsSpan(0, 6)));
            uint spi = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(14 + ((f[14] & 0xF) * 4), 4));
            seen[spi] = seen.GetValueOrDefault(spi) + 1;
        }

        output.WriteLine($"  from site {from.N}: {string.Join(", ", seen.Select(kv => $"SPI 0x{kv.Key:x8}: {kv.Value}"))}");
        Assert.True(frames.Count >= atLeast, $"site {from.N}: {frames.Count} ESP frames on the WAN, expected at least {atLeast}");
        Assert.Equal(spis.Order(), seen.Keys.Order());
    }

    /// <summary>An Ethernet/IPv4/ICMP echo request with valid checksums.</summary>
    private static byte[] EchoRequest(string dstMac, string srcMac, string src, string dst)
    {
        var f = new byte[14 + 20 + 8 + 32];
        Convert.FromHexString(dstMac.Replace(":", "", StringComparison.Ordinal)).CopyTo(f, 0);
        Convert.FromHexString(srcMac.Replace(":", "", StringComparison.Ordinal)).CopyTo(f, 6);
        f[12] = 0x08;
        f[14] = 0x45;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), (ushort)(f.Length - 14));
        f[22] = 64;
        f[23] = 1;
        System.Net.IPAddress.Parse(src).GetAddressBytes().CopyTo(f, 26);
        System.Net.IPAddress.Parse(dst).GetAddressBytes().CopyTo(f, 30);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(24), Checksum(f.AsSpan(14, 20)));
        f[34] = 8; // echo request, id 0x4242, seq 1, then a payload
        f[38] = 0x42;
        f[39] = 0x42;
        f[41] = 1;
        for (int i = 42; i < f.Length; i++)
        {
            f[i] = (byte)i;
        }

        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(36), Checksum(f.AsSpan(34)));
        return f;
    }

    private static ushort Checksum(ReadOnlySpan<byte> b)
    {
        uint sum = 0;
        for (int i = 0; i + 1 < b.Length; i += 2)
        {
            sum += (uint)((b[i] << 8) | b[i + 1]);
        }

        if ((b.Length & 1) != 0)
        {
            sum += (uint)(b[^1] << 8);
        }

        while (sum >> 16 != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)~sum;
    }

    private static string Mac(ReadOnlySpan<byte> b) => string.Join(':', b.ToArray().Select(x => x.ToString("x2", CultureInfo.InvariantCulture)));

    /// <summary>Exit 0, no mbuf leaked, and nothing allocated on the PMD (IpsecEngine.Open builds the burst calls' stubs first).</summary>
    private void StopsClean(IpsecSite sw)
    {
        var res = sw.Stop();
        Assert.True(res.ExitCode == 0, res.ToString());
        output.WriteLine($"site {sw.Site.N}: {string.Join(" | ", res.Stdout.Split('\n').Where(l => l.StartsWith("final:", StringComparison.Ordinal)))}");
        Assert.Equal("0", res.Field("final: mbufs", "leaked"));
        Assert.Equal("0", res.Field("final: pmd 0", "alloc_bytes"));
    }
}

/// <summary>The namespaces, veths and processes of IpsecNetnsTests (topology there). Dispose undoes all of it.</summary>
internal sealed class IpsecLab : IDisposable
{
    /// <summary>A host behind a site: namespace suffix, MAC, address, gateway.</summary>
    internal sealed record HostSpec(string Name, string Mac, string Ip, string Gw, string Net);

    /// <summary>A site: its number (namespace suffix, veth names h&lt;n&gt;, w&lt;n&gt;), outer address and WAN MAC, its host, the remote network.</summary>
    internal sealed record SiteSpec(int N, string Outer, string WanMac, HostSpec Host, string RemoteNet, uint SpiOut, uint SpiIn);

    public const string RouterMac = ConntrackLab.RouterMac;
    public const uint Spi12 = 0x1001, Spi21 = 0x2001, Spi12New = 0x1003;

    /// <summary>The rekey test's TCP transfer: bytes up and the sender's pacing rate (bytes/s), so it spans the rekey.</summary>
    public const int RekeyUpBytes = 8 << 20, RekeyRate = 2 << 20;

    public static readonly HostSpec A = new("a", "02:00:00:00:01:02", "198.51.100.2", "198.51.100.1", "198.51.100.0/25");
    public static readonly HostSpec B = new("b", "02:00:00:00:01:03", "198.51.100.130", "198.51.100.129", "198.51.100.128/25");
    public static readonly SiteSpec Site1 = new(1, "203.0.113.1", "02:00:00:00:aa:01", A, B.Net, Spi12, Spi21);
    public static readonly SiteSpec Site2 = new(2, "203.0.113.2", "02:00:00:00:aa:02", B, A.Net, Spi21, Spi12);

    private static string Python => ConntrackLab.Python;
    private readonly List<IDisposable> _owned = [];
    private readonly string _k12 = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20));
    private readonly string _k21 = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20));

    public IpsecLab()
    {
        Tag = ConntrackLab.NewTag("ip");
        Dir = Directory.CreateTempSubdirectory("vsw-ipseclab-").FullName;
        try
        {
            Build();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Tag { get; }

    public string Dir { get; }

    public string Ns(HostSpec h) => Tag + h.Name;

    public string Ns(SiteSpec s) => Tag + s.N;

    private IEnumerable<string> Namespaces => [Ns(A), Ns(Site1), Ns(Site2), Ns(B)];

    private static string Sh(string cmd) => ConntrackLab.Sh(cmd);

    private void Build()
    {
        foreach (var s in new[] { Site1, Site2 })
        {
            // A site's namespace has no IPv6 (its veth ends would send router solicitations into the switch).
            Sh($"ip netns add {Ns(s)} && ip -n {Ns(s)} link set lo up"
                + $" && ip netns exec {Ns(s)} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
        }

        // The WAN: one veth between the sites, MTU 1600 (a 1500-byte inner packet in ESP is 1557 bytes).
        Sh($"ip -n {Ns(Site1)} link add w1 type veth peer name w2 netns {Ns(Site2)}");
        foreach (var s in new[] { Site1, Site2 })
        {
            Sh($"ip -n {Ns(s)} link set w{s.N} address {s.WanMac} mtu 1600 up && ip netns exec {Ns(s)} ethtool -K w{s.N} tx off >/dev/null");
        }

        foreach (var s in new[] { Site1, Site2 })
        {
            // af_packet reads what the host's stack sent before any checksum offload completed it: "tx off" on both ends.
            var h = s.Host;
            string ns = Ns(h);
            Sh($"ip netns add {ns} && ip -n {Ns(s)} link add h{s.N} type veth peer name eth0 netns {ns}"
                + $" && ip -n {ns} link set eth0 address {h.Mac} && ip -n {ns} link set lo up && ip -n {ns} link set eth0 up"
                + $" && ip -n {Ns(s)} link set h{s.N} up"
                + $" && ip netns exec {ns} ethtool -K eth0 tx off >/dev/null && ip netns exec {Ns(s)} ethtool -K h{s.N} tx off >/dev/null"
                + $" && ip -n {ns} addr add {h.Ip}/25 dev eth0 && ip -n {ns} route add default via {h.Gw}"
                + $" && ip -n {ns} neigh add {h.Gw} lladdr {RouterMac} dev eth0 nud permanent");
        }
    }

    /// <summary>add-sa words: AES-GCM-128, ESN, inbound with a window of 1024.</summary>
    public static string[] SaWords(int id, bool outbound, uint spi, string key, string src, string dst) =>
        [$"id={id}", $"dir={(outbound ? "out" : "in")}", $"spi=0x{spi:x}", "alg=aes-gcm-128", $"key={key}", $"src={src}", $"dst={dst}",
            "inner=ipv4", "esn=on", .. outbound ? Array.Empty<string>() : ["replay-window=1024"]];

    /// <summary>Table 0's rule encrypting the host's packets to the remote network with SA <paramref name="sa"/> (as mod-flows --strict takes it).</summary>
    public static string OutboundRule(SiteSpec s, int sa) =>
        $"table=0,priority=10,in_port=1,ip,nw_src={s.Host.Net},nw_dst={s.RemoteNet},actions=ipsec(sa={sa},table=1)";

    /// <summary>Table 2's match accepting what SA <paramref name="sa"/> decrypted.</summary>
    public static string InboundMatch(SiteSpec s, int sa) =>
        $"table=2,priority=10,ip,ipsec_sa={sa},nw_src={s.RemoteNet},nw_dst={s.Host.Net}";

    public static string InboundRule(SiteSpec s, int sa) =>
        $"{InboundMatch(s, sa)},actions=mod_dl_src:{RouterMac},mod_dl_dst:{s.Host.Mac},output:1";

    private static string Peer(SiteSpec s) => s == Site1 ? Site2.Outer : Site1.Outer;

    private static string PeerMac(SiteSpec s) => s == Site1 ? Site2.WanMac : Site1.WanMac;

    /// <summary>Starts site <paramref name="s"/>'s vswitchd in its namespace with its SAs and rules in a state file.</summary>
    public IpsecSite StartSite(SiteSpec s)
    {
        string kOut = s == Site1 ? _k12 : _k21, kIn = s == Site1 ? _k21 : _k12;
        var state = new JsonObject
        {
            ["format"] = 1,
            ["ports"] = new JsonArray(),
            ["flows"] = new JsonArray([.. new[]
            {
                OutboundRule(s, 1),
                $"table=0,priority=10,in_port=2,ip,nw_proto=50,nw_src={Peer(s)},nw_dst={s.Outer},actions=ipsec(decrypt,table=2)",
                "table=0,priority=5,in_port=2,actions=drop",
                "table=0,priority=0,actions=drop",
                $"table=1,priority=10,ip,nw_proto=50,actions=mod_dl_src:{s.WanMac},mod_dl_dst:{PeerMac(s)},output:2",
                "table=1,priority=0,actions=drop",
                InboundRule(s, 2),
                "table=2,priority=0,actions=drop",
            }.Select(f => (JsonNode?)f)]),
            ["sas"] = new JsonArray([.. new[]
            {
                string.Join(' ', SaWords(1, true, s.SpiOut, kOut, s.Outer, Peer(s))),
                string.Join(' ', SaWords(2, false, s.SpiIn, kIn, Peer(s), s.Outer)),
            }.Select(w => (JsonNode?)w)]),
        };
        string statePath = Path.Combine(Dir, $"site{s.N}.json");
        File.WriteAllText(statePath, state.ToJsonString());
        var args = new List<string>
        {
            "--mode", "pipeline", "--stats-interval", "0", "--control", Path.Combine(Dir, $"site{s.N}.sock"), "--state", statePath,
            "--eal", $"--in-memory --file-prefix vsw-{Tag}-{s.N}",
        };
        foreach (var (name, iface, port) in new[] { ("host", $"h{s.N}", 1), ("wan", $"w{s.N}", 2) })
        {
            args.AddRange(["--port", $"{name}=net_af_packet{port - 1},iface={iface},qdisc_bypass=1,framecnt=2048,qpairs=1", "--ofport", $"{name}={port}"]);
        }

        var site = new IpsecSite(s, new RunningSwitch(args, netns: Ns(s)), Path.Combine(Dir, $"site{s.N}.sock"));
        Own(site);
        site.Switch.WaitFor("port wan link up");
        site.Switch.WaitFor("port host link up");
        return site;
    }

    /// <summary>
    /// tcpdump on site <paramref name="s"/>'s WAN veth end (what arrives there from the other site), ready.
    /// </summary>
    public WanCapture Capture(SiteSpec s)
    {
        string file = Path.Combine(Dir, $"wan{s.N}.pcap");
        var p = Own(new HostProcess("ip", ["netns", "exec", Ns(s), "tcpdump", "-i", $"w{s.N}", "-n", "-p", "--immediate-mode", "-U", "-s", "96", "-w", file]));
        var end = DateTime.UtcNow.AddSeconds(15);
        while (!p.Stderr.Contains("listening on", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < end && !p.HasExited, $"tcpdump did not start: {p.Stderr}");
            Thread.Sleep(50);
        }

        return Own(new WanCapture(p, file));
    }

    /// <summary>Starts <paramref name="file"/> in host <paramref name="h"/>'s namespace.</summary>
    public HostProcess Run(HostSpec h, string file, params string[] args) => Own(new HostProcess("ip", ["netns", "exec", Ns(h), file, .. args]));

    /// <summary>Starts tests/conntrack/ctpeer.py with <paramref name="args"/> in <paramref name="h"/>'s namespace.</summary>
    public HostProcess Peer(HostSpec h, params string[] args) => Run(h, Python, [ConntrackLab.Script("ctpeer.py"), .. args]);

    /// <summary>A ctpeer TCP server on <paramref name="h"/>'s address, ready.</summary>
    public HostProcess Serve(HostSpec h, int port)
    {
        var p = Peer(h, "serve", "--bind", h.Ip, "--port", $"{port}");
        p.WaitLines("ready");
        return p;
    }

    /// <summary>ping from <paramref name="h"/>, 0.2 s apart: how many of <paramref name="count"/> were answered.</summary>
    public int Ping(HostSpec h, string dst, int count) => ConntrackLab.PingIn(Ns(h), dst, count, count + 5, wait: 2);

    /// <summary>Sends <paramref name="frame"/> <paramref name="times"/> times onto site <paramref name="s"/>'s WAN veth end (a packet socket in its namespace): it arrives at the other site.</summary>
    public void SendOnWan(SiteSpec s, byte[] frame, int times) =>
        ConntrackLab.Sh($"ip netns exec {Ns(s)} {Python} -c 'import socket, sys; p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); p.bind((\"w{s.N}\", 0)); [p.send(bytes.fromhex(sys.argv[1])) for _ in range({times})]' {Convert.ToHexString(frame)}");

    private T Own<T>(T d)
        where T : IDisposable
    {
        lock (_owned)
        {
            _owned.Add(d);
        }

        return d;
    }

    /// <summary>Stops the lab's processes a test left running (SIGTERM, SIGKILL if that did not end them), then removes the namespaces.</summary>
    public void Dispose()
    {
        try
        {
            lock (_owned)
            {
                foreach (var d in Enumerable.Reverse(_owned))
                {
                    try
                    {
                        if (d is HostProcess p && !p.HasExited)
                        {
                            ConntrackLab.Sh($"kill -TERM {p.Pid}", check: false);
                            for (int i = 0; i < 40 && !p.HasExited; i++)
                            {
                                Thread.Sleep(50);
                            }
                        }

                        d.Dispose();
                    }
                    catch (InvalidOperationException)
                    {
                        // already released
                    }
                }

                _owned.Clear();
            }
        }
        finally
        {
            foreach (var ns in Namespaces)
            {
                ConntrackLab.Sh($"ip netns del {ns} 2>/dev/null", check: false);
            }
        }

        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A site's running vswitchd and its control socket.</summary>
internal sealed class IpsecSite(IpsecLab.SiteSpec site, RunningSwitch sw, string socket) : IDisposable
{
    private bool _stopped;

    public IpsecLab.SiteSpec Site { get; } = site;

    public RunningSwitch Switch { get; } = sw;

    public string Socket { get; } = socket;

    /// <summary>The changes made through <see cref="Ctl"/>, with their start and end (Unix time, as ping -D prints).</summary>
    public List<string> Log { get; } = [];

    /// <summary>vswitchctl against this site; fails unless it succeeded.</summary>
    public string Ctl(params string[] args)
    {
        double t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        var (exit, o, err) = ControlClient.Vswitchctl(Socket, args);
        if (args[0] != "--json")
        {
            lock (Log)
            {
                Log.Add($"[{t0:F3}-{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0:F3}] site {Site.N}: {string.Join(' ', args.Select(w => w.StartsWith("key=", StringComparison.Ordinal) ? "key=..." : w))}");
            }
        }

        Assert.True(exit == 0, $"site {Site.N}: vswitchctl {string.Join(' ', args)}: exit {exit}: {err}{o}");
        return o;
    }

    public JsonObject DumpSa() => JsonNode.Parse(Ctl("--json", "dump-sa"))!.AsObject();

    /// <summary>The packets of the one rule <paramref name="match"/> (with its priority) names.</summary>
    public long RulePackets(string match)
    {
        var r = JsonNode.Parse(Ctl("--json", "dump-aggregate", "--strict", match))!;
        Assert.True(r["flow_count"]!.GetValue<long>() == 1, $"'{match}' selects one rule: {r}");
        return r["packet_count"]!.GetValue<long>();
    }

    /// <summary>SIGTERM and the whole run (SIGKILL after 30 s).</summary>
    public RunResult Stop()
    {
        _stopped = true;
        return Switch.Stop("TERM");
    }

    public void Dispose()
    {
        if (!_stopped)
        {
            Stop();
        }

        Switch.Dispose();
    }
}

/// <summary>A tcpdump writing a site's WAN end to a pcap file.</summary>
internal sealed class WanCapture(HostProcess p, string file) : IDisposable
{
    /// <summary>SIGTERM (tcpdump writes out what it has and ends); the frames captured.</summary>
    public List<byte[]> Stop()
    {
        Thread.Sleep(300); // the last frames' way through the capture socket
        ConntrackLab.Sh($"kill -TERM {p.Pid}");
        p.WaitExit(10);
        return Pcap.Read(file);
    }

    public void Dispose() => p.Dispose();
}
