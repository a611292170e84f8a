// IpsecDpdkTests.cs - ESP tunnels end to end over real DPDK ports (net_pcap) and a DPDK crypto device
// (crypto_aesni_mb), checked against implementations that are not ours: Scapy's ESP encrypts what the
// switch must decrypt and decrypts what the switch encrypted (ICV, sequence numbers, padding, next
// header: tests/ipsec/espref.py), and tshark decrypts the switch's ESP with the SA's keys. The inner
// frames are built by Scapy too. Every case runs both directions through one vswitchd: port 1 is the
// protected site (cleartext), port 2 the tunnel side (ESP).
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Xunit;

namespace VSwitch.Tests;

[Collection("dpdk")]
[Trait("Category", "Dpdk")]
public sealed class IpsecDpdkTests : IDisposable
{
    private const string Python = "/usr/bin/python3"; // Debian's, with Scapy (the one on PATH may not have it)
    private static readonly string s_espref = Path.Combine(Repo.Root, "tests", "ipsec", "espref.py");
    private readonly string _dir = Directory.CreateTempSubdirectory("vsw-ipsec-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private JsonObject CtlJson(params string[] args)
    {
        var r = ControlClient.Vswitchctl(P("ctl.sock"), ["--json", .. args]);
        Assert.True(r.Exit == 0, $"vswitchctl {string.Join(' ', args)}: {r.Err}{r.Out}");
        return JsonNode.Parse(r.Out)!.AsObject();
    }

    private static (int Exit, string Out, string Err) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string o = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(120_000), $"{file} {string.Join(' ', args)} did not finish");
        return (p.ExitCode, o, err.Result);
    }

    private (int Exit, string Out, string Err) Espref(params string[] args) => Run(Python, [s_espref, .. args]);

    /// <summary>Inner frames built by Scapy: sizes from 64 to 1400 bytes of IP, ICMP, UDP and TCP, 37 in all (loop tails).</summary>
    private void InnerFrames(string path, bool v6, int count = 37)
    {
        string script = $$"""
            import sys, logging
            logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
            from scapy.all import Ether, IP, IPv6, ICMP, UDP, TCP, Raw, ICMPv6EchoRequest, wrpcap
            e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
            v6 = {{(v6 ? "True" : "False")}}
            out = []
            for i in range({{count}}):
                size = [64, 100, 1400, 576, 1000][i % 5] + (i // 5)
                size = min(size, 1400)
                if v6:
                    ip = IPv6(src="2001:db8:1::10", dst="2001:db8:2::10", tc=(i % 4) * 4)
                    hdr = 40
                else:
                    ip = IP(src="198.51.100.10", dst="203.0.113.10", tos=(i % 4) * 4, id=i, flags="DF" if i % 2 else 0)
                    hdr = 20
                if i % 3 == 0:
                    l4 = (ICMPv6EchoRequest(id=7, seq=i) if v6 else ICMP(id=7, seq=i)); lh = 8
                elif i % 3 == 1:
                    l4 = UDP(sport=1000 + i, dport=2000); lh = 8
                else:
                    l4 = TCP(sport=40000 + i, dport=80, flags="PA", seq=i * 1000); lh = 20
                pad = max(0, size - hdr - lh)
                out.append(Ether(bytes(e / ip / l4 / Raw(bytes((i + j) & 0xFF for j in range(pad))))))
            wrpcap(sys.argv[1], out)
            """;
        File.WriteAllText(P("mk.py"), script);
        var r = Run(Python, P("mk.py"), path);
        Assert.True(r.Exit == 0, r.Err);
    }

    private static string Hex(int n) => Convert.ToHexString(RandomNumberGenerator.GetBytes(n)).ToLowerInvariant();

    public sealed record Case(string Alg, bool OuterV6, bool InnerV6, bool Esn, bool Natt)
    {
        public override string ToString() => $"{Alg} outer={(OuterV6 ? "v6" : "v4")} inner={(InnerV6 ? "v6" : "v4")} esn={Esn} natt={Natt}";
    }

    public static TheoryData<Case> Cases() =>
    [
        new("aes-gcm-128", false, false, false, false),
        new("aes-gcm-256", true, true, true, false),
        new("aes-cbc-128-sha256", false, true, false, false),
        new("aes-cbc-256-sha256", true, false, true, false),
        new("aes-gcm-128", false, false, true, true),
        new("aes-cbc-128-sha256", false, false, false, true),
        new("aes-gcm-256", false, true, false, true),
    ];

    /// <summary>SA words for add-sa / the state file, and the same SA as espref's JSON.</summary>
    private static (string Words, JsonObject Json) Sa(Case c, int id, bool outbound, uint spi, string src, string dst, string key, string? authKey)
    {
        string words = $"id={id} dir={(outbound ? "out" : "in")} spi={spi} alg={c.Alg} key={key}{(authKey != null ? $" auth-key={authKey}" : "")} src={src} dst={dst} "
            + $"inner={(c.InnerV6 ? "ipv6" : "ipv4")} esn={(c.Esn ? "on" : "off")}{(c.Natt ? " natt=4500:4500" : "")}{(outbound ? " df=off" : " replay-window=1024")}";
        var json = new JsonObject
        {
            ["spi"] = spi, ["alg"] = c.Alg, ["key"] = key, ["esn"] = c.Esn, ["outer_src"] = src, ["outer_dst"] = dst,
            ["natt"] = c.Natt, ["natt_sport"] = 4500, ["natt_dport"] = 4500, ["ttl"] = 64,
            ["eth_src"] = "02:00:00:00:00:03", ["eth_dst"] = "02:00:00:00:00:04",
        };
        if (authKey != null)
        {
            json["auth_key"] = authKey;
        }

        return (words, json);
    }

    private string State(IEnumerable<string> flows, IEnumerable<string> sas)
    {
        var o = new JsonObject
        {
            ["format"] = 1, ["ports"] = new JsonArray(),
            ["flows"] = new JsonArray([.. flows.Select(f => (JsonNode?)f)]),
            ["sas"] = new JsonArray([.. sas.Select(s => (JsonNode?)s)]),
        };
        File.WriteAllText(P("state.json"), o.ToJsonString());
        return P("state.json");
    }

    private static byte[] IpOf(byte[] frame) => frame[14..];

    private RunningSwitch Start(string prefix, string inRx, string outRx) => new(["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"),
        "--state", P("state.json"), "--eal", $"--in-memory --file-prefix {prefix}",
        "--port", $"site=net_pcap0,rx_pcap={inRx},tx_pcap={P("to-site.pcap")}",
        "--port", $"tunnel=net_pcap1,rx_pcap={outRx},tx_pcap={P("to-tunnel.pcap")}"]);

    private void WaitPackets(Func<JsonObject, bool> done, string what)
    {
        for (int i = 0; i < 300; i++)
        {
            if (done(CtlJson("dump-sa")))
            {
                return;
            }

            Thread.Sleep(50);
        }

        Assert.Fail($"timed out waiting for {what}: {CtlJson("dump-sa").ToJsonString()}");
    }

    private static long Counter(JsonObject dump, int id, string name)
    {
        string line = dump["sas"]!.AsArray().Select(l => (string)l!).Single(l => l.StartsWith($"id={id} ", StringComparison.Ordinal));
        var m = System.Text.RegularExpressions.Regex.Match(line, $@"(?<![\w-]){name}=(\d+)");
        Assert.True(m.Success, $"no {name} in '{line}'");
        return long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Both_directions_match_scapy_and_tshark(Case c)
    {
        const int N = 37;
        bool gcm = c.Alg.StartsWith("aes-gcm", StringComparison.Ordinal);
        int keyLen = c.Alg switch { "aes-gcm-128" => 20, "aes-gcm-256" => 36, "aes-cbc-128-sha256" => 16, _ => 32 };
        string local = c.OuterV6 ? "2001:db8:ff::1" : "198.51.100.1", peer = c.OuterV6 ? "2001:db8:ff::2" : "198.51.100.2";
        var outSa = Sa(c, 1, true, 0x1001, local, peer, Hex(keyLen), gcm ? null : Hex(32));
        var inSa = Sa(c, 2, false, 0x2002, peer, local, Hex(keyLen), gcm ? null : Hex(32));
        File.WriteAllText(P("out.json"), outSa.Json.ToJsonString());
        File.WriteAllText(P("in.json"), inSa.Json.ToJsonString());

        InnerFrames(P("inner.pcap"), c.InnerV6, N);
        // The peer's packets: sequence numbers from 2^32 - 3 with ESN (the low half wraps inside the run), else from 1.
        // With ESN the first three come first, alone: a receiver infers the high half from its window, and
        // an SA's window starts at 0 (a stream that begins just below 2^32 is the peer's whole history here).
        string seq = c.Esn ? "4294967293" : "1";
        var enc = Espref("encrypt", "--sa", P("in.json"), "--in", P("inner.pcap"), "--out", P("esp-all.pcap"), "--seq", seq);
        Assert.True(enc.Exit == 0, enc.Err);
        var espIn = Pcap.Read(P("esp-all.pcap"));
        int first = c.Esn ? 3 : N;
        Pcap.Write(P("esp-in.pcap"), espIn.Take(first).ToList());
        Pcap.Write(P("esp-in2.pcap"), espIn.Skip(first).ToList());

        string inner = c.InnerV6 ? "ipv6" : "ip";
        string outer = c.OuterV6 ? "ipv6" : "ip";
        string espMatch = c.Natt ? $"{outer},udp,tp_dst=4500" : $"{outer},nw_proto=50";
        State([
            $"table=0,priority=10,in_port=1,{inner},actions=ipsec(sa=1,table=1)",
            "table=1,priority=10,actions=output:2",
            $"table=0,priority=10,in_port=2,{espMatch},actions=ipsec(decrypt,table=2)",
            $"table=0,priority=10,in_port=3,{espMatch},actions=ipsec(decrypt,table=2)",
            "table=2,priority=10,ipsec_sa=2,actions=output:1",
            "table=2,priority=0,actions=drop",
        ], [outSa.Words, inSa.Words]);

        using var sw = Start($"vsw-ipsec-{Environment.ProcessId}", P("inner.pcap"), P("esp-in.pcap"));
        sw.WaitFor("port tunnel link up");
        if (first < N)
        {
            WaitPackets(d => Counter(d, 2, "packets") == first, $"the first {first} inbound packets");
            var add = ControlClient.Vswitchctl(P("ctl.sock"), "add-port", "tunnel2", $"net_pcap2,rx_pcap={P("esp-in2.pcap")},tx_pcap={P("to-tunnel2.pcap")}", "--ofport", "3");
            Assert.True(add.Exit == 0, add.Err);
        }

        WaitPackets(d => Counter(d, 1, "packets") == N && Counter(d, 2, "packets") == N, $"{N} packets each way");
        var dump = CtlJson("dump-sa");
        Assert.DoesNotContain(dump["sas"]!.AsArray().Select(l => (string)l!), l => l.Contains(outSa.Json["key"]!.ToString(), StringComparison.Ordinal)); // keys never printed
        Assert.Equal(N, Counter(dump, 1, "seq"));
        Assert.Equal(0, Counter(dump, 2, "auth_failures") + Counter(dump, 2, "replay_drops") + Counter(dump, 2, "check_drops"));
        var stop = sw.Stop("TERM");
        Assert.Equal(0, stop.ExitCode);
        Assert.Equal("0", stop.Field("final: mbufs", "leaked"));
        Assert.Equal("0", stop.Field("final: pmd 0", "alloc_bytes"));

        // Outbound: Scapy decrypts the switch's ESP (sequence numbers 1..N in order, ICV, padding, next header).
        var dec = Espref("decrypt", "--sa", P("out.json"), "--in", P("to-tunnel.pcap"), "--out", P("decrypted.pcap"), "--seq", "1", "--expect-count", N.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(dec.Exit == 0, dec.Err + dec.Out);
        var want = Pcap.Read(P("inner.pcap")).Select(IpOf).ToList();
        var got = Pcap.Read(P("decrypted.pcap")).Select(IpOf).ToList();
        Assert.Equal(want.Count, got.Count);
        // Every packet once, byte for byte; packets of one flow (one megaflow: ICMP, UDP, TCP here) in their order
        // (a burst's packets run group by group, so flows interleave differently than they came, as in Open vSwitch).
        var at = want.Select(w => got.FindIndex(g => g.AsSpan().SequenceEqual(w))).ToList();
        Assert.DoesNotContain(-1, at);
        Assert.Equal(N, at.Distinct().Count());
        foreach (var flow in Enumerable.Range(0, N).GroupBy(i => i % 3))
        {
            var order = flow.Select(i => at[i]).ToList();
            Assert.Equal(order.Order(), order);
        }

        if (!c.Esn)
        {
            // tshark (Wireshark's ESP dissector) with the SA's keys: every ICV good (tshark 4.0 cannot check ESN ICVs).
            var ts = Espref("tshark-check", "--sa", P("out.json"), "--in", P("to-tunnel.pcap"), "--expect-count", N.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(ts.Exit == 0, ts.Err + ts.Out);
        }

        // The ESP frames keep the inner frames' Ethernet addresses (the rules after the hand-off may set others);
        // their outer header has the SA's TTL (64), DF clear (df=off) and the inner packet's DSCP (dscp=copy).
        var espOut = Pcap.Read(P("to-tunnel.pcap"));
        Assert.All(espOut, f => Assert.Equal("020000000002020000000001", Convert.ToHexString(f, 0, 12)));
        static int Dscp(byte[] f) => (f[14] >> 4) == 4 ? f[15] >> 2 : ((((f[14] & 0xF) << 4) | (f[15] >> 4)) >> 2);
        Assert.All(espOut, f => Assert.Equal(64, c.OuterV6 ? f[14 + 7] : f[14 + 8]));
        if (!c.OuterV6)
        {
            Assert.All(espOut, f => Assert.Equal(0, f[14 + 6] & 0x40));
        }

        Assert.Equal(want.Select(w => Dscp([.. new byte[14], .. w])).Order(), espOut.Select(Dscp).Order());

        // Inbound: what Scapy encrypted comes out of port 1 byte for byte, in order, each once, behind
        // the ESP frame's Ethernet addresses.
        var delivered = Pcap.Read(P("to-site.pcap"));
        Assert.All(delivered, f => Assert.Equal("020000000004020000000003", Convert.ToHexString(f, 0, 12)));
        Assert.Equal(N, delivered.Count);
        for (int i = 0; i < N; i++)
        {
            Assert.True(want[i].AsSpan().SequenceEqual(IpOf(delivered[i])), $"inbound packet {i + 1}: delivered inner packet differs from what the peer encrypted");
            Assert.Equal(c.InnerV6 ? 0x86DD : 0x0800, (delivered[i][12] << 8) | delivered[i][13]);
        }
    }

    [Fact]
    public void Wrong_keys_replays_and_cleartext_are_counted_and_nothing_is_delivered_twice()
    {
        const int N = 33;
        var c = new Case("aes-gcm-128", false, false, false, false);
        string key = Hex(20);
        var inSa = Sa(c, 2, false, 0x2002, "198.51.100.2", "198.51.100.1", key, null);
        var wrong = Sa(c, 2, false, 0x2002, "198.51.100.2", "198.51.100.1", Hex(20), null);
        var other = Sa(c, 9, false, 0x9999, "198.51.100.2", "198.51.100.1", key, null); // an SPI this switch has no SA for
        File.WriteAllText(P("in.json"), inSa.Json.ToJsonString());
        File.WriteAllText(P("wrong.json"), wrong.Json.ToJsonString());
        File.WriteAllText(P("other.json"), other.Json.ToJsonString());
        InnerFrames(P("inner.pcap"), false, N);
        Assert.Equal(0, Espref("encrypt", "--sa", P("wrong.json"), "--in", P("inner.pcap"), "--out", P("bad.pcap"), "--seq", "1").Exit);
        Assert.Equal(0, Espref("encrypt", "--sa", P("in.json"), "--in", P("inner.pcap"), "--out", P("good.pcap"), "--seq", "100").Exit);
        Assert.Equal(0, Espref("encrypt", "--sa", P("other.json"), "--in", P("inner.pcap"), "--out", P("nosa.pcap"), "--seq", "1").Exit);
        var bad = Pcap.Read(P("bad.pcap"));
        var good = Pcap.Read(P("good.pcap"));
        var cleartext = Pcap.Read(P("inner.pcap")); // the peer network's packets arriving unprotected on the tunnel side
        // wrong key, then the good ones, then a replay of all of them (a captured and replayed ESP stream), then cleartext, then an unknown SPI
        Pcap.Write(P("tunnel.pcap"), [.. bad, .. good, .. good, .. cleartext, .. Pcap.Read(P("nosa.pcap"))]);
        Pcap.Write(P("empty.pcap"), []);
        State([
            "table=0,priority=10,in_port=2,ip,nw_proto=50,actions=ipsec(decrypt,table=2)",
            "table=0,priority=5,in_port=2,ip,actions=goto_table:2",
            "table=2,priority=20,ip,nw_src=198.51.100.0/24,ipsec_sa=0,actions=drop", // the inbound policy: the peer's network only through an SA
            "table=2,priority=10,ipsec_sa=2,actions=output:1",
            "table=2,priority=0,actions=drop",
        ], [inSa.Words]);

        using var sw = Start($"vsw-ipsec-neg-{Environment.ProcessId}", P("empty.pcap"), P("tunnel.pcap"));
        sw.WaitFor("port tunnel link up");
        WaitPackets(d => Counter(d, 2, "packets") + Counter(d, 2, "auth_failures") + Counter(d, 2, "replay_drops") == 3 * N, "every ESP packet handled");
        Thread.Sleep(200);
        var dump = CtlJson("dump-sa");
        Assert.True(Counter(dump, 2, "auth_failures") == N && Counter(dump, 2, "replay_drops") == N, dump.ToJsonString());
        Assert.Equal(N, Counter(dump, 2, "packets"));
        Assert.Contains($"no_sa_drops={N}", (string)dump["crypto_device"]!, StringComparison.Ordinal);
        var flows = CtlJson("dump-flows", "table=2")["flows"]!.AsArray().Select(l => (string)l!).ToList();
        Assert.Contains(flows, f => f.Contains($"n_packets={N},", StringComparison.Ordinal) && f.Contains("ipsec_sa=0", StringComparison.Ordinal)); // cleartext refused by the policy rule

        // An operator adds an SA with its key in a file vswitchctl reads: kept in the state file (0600),
        // never printed or logged; a bad one is refused saying what is wrong; del-sa removes it.
        string secret = Hex(20);
        File.WriteAllText(P("sa7.key"), secret + "\n");
        var add = ControlClient.Vswitchctl(P("ctl.sock"), "add-sa", "id=7", "dir=out", "spi=0x7007", "alg=aes-gcm-128", $"key-file={P("sa7.key")}", "src=198.51.100.1", "dst=198.51.100.2");
        Assert.True(add.Exit == 0, add.Err);
        var refused = ControlClient.Vswitchctl(P("ctl.sock"), "add-sa", "id=8", "dir=out", "spi=0x7008", "alg=aes-gcm-256", $"key={secret}", "src=198.51.100.1", "dst=198.51.100.2");
        Assert.Equal(1, refused.Exit);
        Assert.Contains("key of 20 bytes; aes-gcm-256 takes 36", refused.Err, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, refused.Err, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(secret, CtlJson("dump-sa").ToJsonString(), StringComparison.OrdinalIgnoreCase);
        for (int i = 0; i < 100 && !File.ReadAllText(P("state.json")).Contains("id=7 ", StringComparison.Ordinal); i++)
        {
            Thread.Sleep(50);
        }

        Assert.Contains($"id=7 dir=out spi=0x00007007 alg=aes-gcm-128 key={secret}", File.ReadAllText(P("state.json")), StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(P("state.json")));
        Assert.Equal(0, ControlClient.Vswitchctl(P("ctl.sock"), "del-sa", "id=7").Exit);
        Assert.NotEqual(0, ControlClient.Vswitchctl(P("ctl.sock"), "del-sa", "id=7").Exit); // gone
        var stop = sw.Stop("TERM");
        Assert.DoesNotContain(secret, stop.Stdout + stop.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain($"id=7 ", File.ReadAllText(P("state.json")), StringComparison.Ordinal);
        Assert.Equal(0, stop.ExitCode);
        Assert.Equal("0", stop.Field("final: mbufs", "leaked"));
        var delivered = Pcap.Read(P("to-site.pcap")).Select(IpOf).ToList();
        Assert.Equal(N, delivered.Count); // each good packet once: no wrong-key packet, no replay, no cleartext
        var want = Pcap.Read(P("inner.pcap")).Select(IpOf).ToList();
        for (int i = 0; i < N; i++)
        {
            Assert.True(want[i].AsSpan().SequenceEqual(delivered[i]), $"packet {i + 1} differs");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Too_big_packets_get_an_icmp_error_a_hard_lifetime_stops_the_sa_and_trace_shows_the_hand_off(bool innerV6)
    {
        const int N = 37;
        var c = new Case("aes-gcm-128", false, innerV6, false, false);
        var outSa = Sa(c, 1, true, 0x1001, "198.51.100.1", "198.51.100.2", Hex(20), null);
        int mtu = innerV6 ? 1400 : 1000; // an IPv6 SA must carry 1280-byte packets
        int innerMax = ((mtu - 52) & ~3) - 2; // 52: IPv4 (20), ESP header (8), IV (8), ICV (16); the trailer's 2 bytes, 4-aligned
        string words = outSa.Words.Replace(" df=off", $" df=on mtu={mtu} lifetime-packets=5:20", StringComparison.Ordinal);
        InnerFrames(P("inner.pcap"), innerV6, N);
        Pcap.Write(P("empty.pcap"), []);
        string inner = innerV6 ? "ipv6" : "ip";
        State([$"table=0,priority=10,in_port=1,{inner},actions=ipsec(sa=1,table=1)", "table=1,priority=10,actions=output:2"], [words]);
        using var sw = Start($"vsw-ipsec-mtu-{Environment.ProcessId}", P("inner.pcap"), P("empty.pcap"));
        sw.WaitFor("port tunnel link up");
        // sizes cycle 64, 100, 1400, 576, 1000 (+ i / 5): the 1400 and 1000 ones do not fit in 1000 bytes of ESP
        var sizes = Pcap.Read(P("inner.pcap")).Select(f => f.Length - 14).ToList();
        int tooBig = sizes.Count(l => l > innerMax), fit = N - tooBig;
        Assert.True(tooBig > 0 && fit > 20);
        WaitPackets(d => Counter(d, 1, "packets") == 20 && Counter(d, 1, "too_big") == tooBig && Counter(d, 1, "lifetime_drops") == fit - 20, "the MTU and lifetime verdicts");
        var dump = CtlJson("dump-sa");
        Assert.EndsWith(" hard_expired", (string)dump["sas"]!.AsArray()[0]!, StringComparison.Ordinal);

        var trace = CtlJson("trace", innerV6 ? "in_port=1,ipv6,ipv6_src=2001:db8:1::10,ipv6_dst=2001:db8:2::10,nw_proto=17" : "in_port=1,ip,nw_src=198.51.100.10,nw_dst=203.0.113.10,nw_proto=17");
        string lines = string.Join("\n", trace["trace"]!.AsArray().Select(l => (string)l!));
        Assert.Contains("handed to the crypto device to be encrypted by SA 1", lines, StringComparison.Ordinal);
        Assert.Contains("re-enters with recirc_id=", lines, StringComparison.Ordinal);
        var stop = sw.Stop("TERM");
        Assert.Equal(0, stop.ExitCode);
        Assert.Equal("0", stop.Field("final: mbufs", "leaked"));
        Assert.Equal(20, Pcap.Read(P("to-tunnel.pcap")).Count);

        // A restart from the state file vswitchd wrote: the outbound SA is back but stopped (its sequence
        // numbers, and so its GCM nonces, would start again at 1), until a new SA replaces it.
        Assert.Contains("\"sas_written_by\"", File.ReadAllText(P("state.json")), StringComparison.Ordinal);
        File.Move(P("to-tunnel.pcap"), P("first-run.pcap"));
        using (var again = Start($"vsw-ipsec-mtu2-{Environment.ProcessId}", P("inner.pcap"), P("empty.pcap")))
        {
            again.WaitFor("port tunnel link up");
            WaitPackets(d => Counter(d, 1, "lifetime_drops") == fit, "the restored SA refusing every packet that fits");
            Assert.EndsWith(" restored_needs_rekey", (string)CtlJson("dump-sa")["sas"]!.AsArray()[0]!, StringComparison.Ordinal);
            Assert.Equal(0, again.Stop("TERM").ExitCode);
        }

        Assert.Empty(Pcap.Read(P("to-tunnel.pcap")));
        File.Move(P("first-run.pcap"), P("to-tunnel.pcap"), overwrite: true);

        // The errors, as tshark (not this switch's code) reads them: type, code, MTU, checksums, and the quoted packet.
        var errors = Pcap.Read(P("to-site.pcap"));
        Assert.Equal(tooBig, errors.Count);
        string fields = innerV6
            ? "-e icmpv6.type -e icmpv6.code -e icmpv6.mtu -e icmpv6.checksum.status -e ipv6.dst"
            : "-e icmp.type -e icmp.code -e icmp.mtu -e icmp.checksum.status -e ip.dst -e ip.checksum.status";
        var ts = Run("tshark", ["-r", P("to-site.pcap"), "-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=,", "-E", "occurrence=f", .. fields.Split(' ')]);
        Assert.True(ts.Exit == 0, ts.Err);
        var rows = ts.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(tooBig, rows.Length);
        foreach (var row in rows)
        {
            var f = row.Split(',');
            Assert.Equal(innerV6 ? "2" : "3", f[0]);
            Assert.Equal(innerV6 ? "0" : "4", f[1]);
            Assert.Equal(innerMax.ToString(System.Globalization.CultureInfo.InvariantCulture), f[2]); // the largest inner packet that fits
            Assert.Equal("1", f[3]); // checksum good
            Assert.Equal(innerV6 ? "2001:db8:1::10" : "198.51.100.10", f[4]); // back to the sender
            if (!innerV6)
            {
                Assert.Equal("1", f[5]);
            }
        }
    }

    [Fact]
    public void A_full_crypto_queue_drops_and_counts_and_every_mbuf_comes_back()
    {
        // Two ports feed one SA through a 32-descriptor queue pair: two bursts a round against one
        // burst of completions collected a round, so the queue fills.
        const int N = 2000;
        var c = new Case("aes-gcm-128", false, false, false, false);
        var outSa = Sa(c, 1, true, 0x1001, "198.51.100.1", "198.51.100.2", Hex(20), null);
        InnerFrames(P("inner.pcap"), false, N);
        State(["table=0,priority=10,ip,actions=ipsec(sa=1,table=1)", "table=1,priority=10,actions=drop"], [outSa.Words]);
        using var sw = new RunningSwitch(["--mode", "pipeline", "--stats-interval", "0", "--control", P("ctl.sock"), "--state", P("state.json"),
            "--crypto-queue-size", "32", "--eal", $"--in-memory --file-prefix vsw-ipsec-full-{Environment.ProcessId}",
            "--port", $"a=net_pcap0,rx_pcap={P("inner.pcap")}", "--port", $"b=net_pcap1,rx_pcap={P("inner.pcap")}"]);
        sw.WaitFor("port b link up");
        WaitPackets(d => Counter(d, 1, "packets") + Counter(d, 1, "queue_full") == 2 * N, "every packet encrypted or counted as a full queue");
        var dump = CtlJson("dump-sa");
        Assert.True(Counter(dump, 1, "queue_full") > 0, dump.ToJsonString());
        Assert.Equal(0, Counter(dump, 1, "in_flight"));
        var stop = sw.Stop("TERM");
        Assert.Equal(0, stop.ExitCode);
        Assert.Equal("0", stop.Field("final: mbufs", "leaked"));
        Assert.Equal("0", stop.Field("final: pmd 0", "alloc_bytes"));
    }

    [Fact]
    public void The_esp_reference_passes_its_self_test_against_tshark_and_hand_built_icvs()
    {
        // The reference is only as good as its own checks: every combination round trips, tshark
        // decrypts it, ESN ICVs match ones built by hand, and each deliberate corruption is caught.
        var r = Run("bash", Path.Combine(Repo.Root, "tests", "ipsec", "selftest.sh"));
        Assert.True(r.Exit == 0, r.Out + r.Err);
        Assert.Matches(@"selftest: matrix \d+ passed, 0 failed.*checks \d+ passed, 0 failed", r.Out);
    }

    [Fact]
    public void Ike_on_the_nat_t_port_passes_in_cleartext_beside_esp_in_udp()
    {
        const int N = 5;
        var c = new Case("aes-gcm-128", false, false, false, true);
        var inSa = Sa(c, 2, false, 0x2002, "198.51.100.2", "198.51.100.1", Hex(20), null);
        File.WriteAllText(P("in.json"), inSa.Json.ToJsonString());
        InnerFrames(P("inner.pcap"), false, N);
        Assert.Equal(0, Espref("encrypt", "--sa", P("in.json"), "--in", P("inner.pcap"), "--out", P("esp.pcap")).Exit);
        // an IKE message on port 4500: UDP, the 4-byte non-ESP marker (zero), then IKE's header
        byte[] ike = FrameBuilder.Build(new FrameSpec
        {
            Proto = 17, NwSrc = FrameBuilder.Ip("198.51.100.2"), NwDst = FrameBuilder.Ip("198.51.100.1"), SrcPort = 4500, DstPort = 4500,
            Payload = [0, 0, 0, 0, .. Enumerable.Range(1, 28).Select(b => (byte)b)],
        });
        Pcap.Write(P("tunnel.pcap"), [ike, .. Pcap.Read(P("esp.pcap"))]);
        Pcap.Write(P("empty.pcap"), []);
        State([
            "table=0,priority=10,in_port=2,ip,udp,tp_dst=4500,actions=ipsec(decrypt,table=2)",
            "table=2,priority=10,ipsec_sa=2,actions=output:1",
            "table=2,priority=5,ipsec_sa=0,udp,tp_dst=4500,actions=output:1", // to the key daemon
            "table=2,priority=0,actions=drop",
        ], [inSa.Words]);
        using var sw = Start($"vsw-ipsec-ike-{Environment.ProcessId}", P("empty.pcap"), P("tunnel.pcap"));
        sw.WaitFor("port tunnel link up");
        WaitPackets(d => Counter(d, 2, "packets") == N, "the ESP packets");
        Thread.Sleep(200);
        Assert.Contains("no_sa_drops=0", (string)CtlJson("dump-sa")["crypto_device"]!, StringComparison.Ordinal);
        Assert.Equal(0, sw.Stop("TERM").ExitCode);
        var delivered = Pcap.Read(P("to-site.pcap"));
        Assert.Equal(N + 1, delivered.Count);
        Assert.Contains(delivered, f => f.AsSpan().SequenceEqual(ike)); // IKE as it came
    }
}
