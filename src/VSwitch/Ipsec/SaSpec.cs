// SaSpec.cs - one ESP security association as an operator (or a key daemon) describes it: the words
// of add-sa, checked completely before anything changes, and written back for dump-sa (without keys)
// and the state file (with them). Cold code: the control thread only.
//
//   add-sa id=N dir=in|out spi=N alg=ALG key=HEX [auth-key=HEX] src=IP dst=IP [inner=ipv4|ipv6]
//          [esn=on|off] [replay-window=N] [natt=SPORT:DPORT] [ttl=N] [df=on|off] [mtu=N] [dscp=copy|N]
//          [lifetime-packets=SOFT:HARD] [lifetime-bytes=SOFT:HARD]
//
// ALG: aes-gcm-128 / aes-gcm-256 (RFC 4106: key = the AES key and the 4-byte salt, 20 or 36 bytes,
// as Linux's rfc4106(gcm(aes)) takes it), aes-cbc-128-sha256 / aes-cbc-256-sha256 (RFC 3602 with
// HMAC-SHA-256-128, RFC 4868: key = the AES key, auth-key = 32 bytes). src/dst are the tunnel's
// outer addresses (both IPv4 or both IPv6): an outbound SA's packets leave from src to dst, an
// inbound SA's arrive from src at dst (inbound ESP is matched by SPI and dst).
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace VSwitch.Ipsec;

public enum SaAlg : byte
{
    AesGcm128 = 1,
    AesGcm256,
    AesCbc128Sha256,
    AesCbc256Sha256,
}

public sealed record SaSpec
{
    /// <summary>Largest SA id (ids are 1 to this; the pipeline's ipsec(sa=N) names one).</summary>
    public const int MaxId = 4095;

    /// <summary>Largest anti-replay window (packets).</summary>
    public const uint MaxReplayWindow = 4096;

    public int Id { get; init; }
    public bool Outbound { get; init; }
    public uint Spi { get; init; }
    public SaAlg Alg { get; init; }
    public byte[] Key { get; init; } = [];
    public byte[] AuthKey { get; init; } = [];
    public IPAddress Src { get; init; } = IPAddress.None;
    public IPAddress Dst { get; init; } = IPAddress.None;
    public bool InnerIpv6 { get; init; }
    public bool Esn { get; init; }
    public uint ReplayWindow { get; init; } = 64;
    public bool Natt { get; init; }
    public ushort NattSport { get; init; } = 4500;
    public ushort NattDport { get; init; } = 4500;
    public byte Ttl { get; init; } = 64;
    public bool Df { get; init; } = true;

    /// <summary>Outbound: the largest outer (ESP) packet, IP bytes; a larger one is refused with an ICMP error to its sender.</summary>
    public int Mtu { get; init; } = 1500;

    /// <summary>Outer DSCP; -1 copies the inner packet's.</summary>
    public int Dscp { get; init; } = -1;
    public ulong SoftPackets { get; init; }
    public ulong HardPackets { get; init; }
    public ulong SoftBytes { get; init; }
    public ulong HardBytes { get; init; }

    public bool OuterIpv6 => Src.AddressFamily == AddressFamily.InterNetworkV6;

    public bool IsGcm => Alg is SaAlg.AesGcm128 or SaAlg.AesGcm256;

    public static string AlgName(SaAlg a) => a switch
    {
        SaAlg.AesGcm128 => "aes-gcm-128",
        SaAlg.AesGcm256 => "aes-gcm-256",
        SaAlg.AesCbc128Sha256 => "aes-cbc-128-sha256",
        _ => "aes-cbc-256-sha256",
    };

    /// <summary>The words of add-sa; every mistake is refused with the word that is wrong.</summary>
    public static SaSpec Parse(IReadOnlyList<string> words)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var s = new SaSpec();
        foreach (string w in words)
        {
            int eq = w.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new VSwitchException(w.Contains("key", StringComparison.OrdinalIgnoreCase)
                    ? "add-sa: expected NAME=VALUE, found a word with 'key' and no '=' (not shown)"
                    : $"add-sa: expected NAME=VALUE, found '{w}'");
            }

            string name = w[..eq], v = w[(eq + 1)..];
            if (!seen.Add(name))
            {
                throw new VSwitchException($"add-sa: '{name}' given twice");
            }

            s = name switch
            {
                "id" => s with { Id = (int)Num(name, v, 1, MaxId) },
                "dir" => s with { Outbound = v switch { "out" => true, "in" => false, _ => throw Bad(name, v, "in or out") } },
                "spi" => s with { Spi = (uint)Num(name, v, 256, uint.MaxValue) },
                "alg" => s with
                {
                    Alg = v switch
                    {
                        "aes-gcm-128" => SaAlg.AesGcm128,
                        "aes-gcm-256" => SaAlg.AesGcm256,
                        "aes-cbc-128-sha256" => SaAlg.AesCbc128Sha256,
                        "aes-cbc-256-sha256" => SaAlg.AesCbc256Sha256,
                        _ => throw Bad(name, v, "aes-gcm-128, aes-gcm-256, aes-cbc-128-sha256 or aes-cbc-256-sha256"),
                    },
                },
                "key" => s with { Key = Hex(name, v) },
                "auth-key" => s with { AuthKey = Hex(name, v) },
                "src" => s with { Src = Ip(name, v) },
                "dst" => s with { Dst = Ip(name, v) },
                "inner" => s with { InnerIpv6 = v switch { "ipv4" => false, "ipv6" => true, _ => throw Bad(name, v, "ipv4 or ipv6") } },
                "esn" => s with { Esn = OnOff(name, v) },
                "replay-window" => s with { ReplayWindow = (uint)Num(name, v, 0, MaxReplayWindow) },
                "natt" => NattPorts(s, v),
                "ttl" => s with { Ttl = (byte)Num(name, v, 1, 255) },
                "df" => s with { Df = OnOff(name, v) },
                "mtu" => s with { Mtu = (int)Num(name, v, 576, 9216) },
                "dscp" => s with { Dscp = v == "copy" ? -1 : (int)Num(name, v, 0, 63) },
                "lifetime-packets" => Pair(v, name, out ulong sp, out ulong hp) ? s with { SoftPackets = sp, HardPackets = hp } : s,
                "lifetime-bytes" => Pair(v, name, out ulong sb, out ulong hb) ? s with { SoftBytes = sb, HardBytes = hb } : s,
                _ => throw new VSwitchException($"add-sa: unknown '{name}' (id, dir, spi, alg, key, auth-key, src, dst, inner, esn, replay-window, natt, ttl, df, mtu, dscp, lifetime-packets, lifetime-bytes)"),
            };
        }

        foreach (string need in new[] { "id", "dir", "spi", "alg", "key", "src", "dst" })
        {
            if (!seen.Contains(need))
            {
                throw new VSwitchException($"add-sa: '{need}=' is missing");
            }
        }

        int keyLen = s.Alg switch { SaAlg.AesGcm128 => 20, SaAlg.AesGcm256 => 36, SaAlg.AesCbc128Sha256 => 16, _ => 32 };
        if (s.Key.Length != keyLen)
        {
            throw new VSwitchException($"add-sa: key of {s.Key.Length} bytes; {AlgName(s.Alg)} takes {keyLen}{(s.IsGcm ? " (the AES key and the 4-byte salt, RFC 4106)" : "")}");
        }

        if (s.IsGcm ? seen.Contains("auth-key") : s.AuthKey.Length != 32)
        {
            throw new VSwitchException(s.IsGcm ? $"add-sa: {AlgName(s.Alg)} takes no auth-key (GCM authenticates with its key)"
                : $"add-sa: {AlgName(s.Alg)} needs auth-key= of 32 bytes (HMAC-SHA-256), found {s.AuthKey.Length}");
        }

        if (s.Src.AddressFamily != s.Dst.AddressFamily)
        {
            throw new VSwitchException($"add-sa: src {s.Src} and dst {s.Dst} are not of one family");
        }

        if (s.Natt && s.OuterIpv6)
        {
            throw new VSwitchException("add-sa: natt= is for IPv4 tunnels (RFC 3948)");
        }

        int overhead = (s.OuterIpv6 ? 40 : 20) + (s.Natt ? 8 : 0) + 8 + (s.IsGcm ? 8 : 16) + 16 + (s.IsGcm ? 3 : 15) + 2;
        if (s.Outbound && s.InnerIpv6 && s.Mtu < 1280 + overhead)
        {
            throw new VSwitchException($"add-sa: mtu={s.Mtu} cannot carry IPv6's minimum MTU (1280) through this SA: it needs at least {1280 + overhead}");
        }

        if (s.SoftPackets > s.HardPackets || s.SoftBytes > s.HardBytes)
        {
            throw new VSwitchException("add-sa: a soft lifetime above its hard lifetime");
        }

        return s;
    }

    /// <summary>The add-sa words for this SA; <paramref name="withKeys"/> only for the state file.</summary>
    public List<string> ToWords(bool withKeys)
    {
        var w = new List<string>
        {
            $"id={Id}", $"dir={(Outbound ? "out" : "in")}", $"spi=0x{Spi:x8}", $"alg={AlgName(Alg)}",
        };
        if (withKeys)
        {
            w.Add($"key={Convert.ToHexString(Key).ToLowerInvariant()}");
            if (!IsGcm)
            {
                w.Add($"auth-key={Convert.ToHexString(AuthKey).ToLowerInvariant()}");
            }
        }

        w.Add($"src={Src}");
        w.Add($"dst={Dst}");
        w.Add($"inner={(InnerIpv6 ? "ipv6" : "ipv4")}");
        w.Add($"esn={(Esn ? "on" : "off")}");
        if (!Outbound)
        {
            w.Add($"replay-window={ReplayWindow}");
        }

        if (Natt)
        {
            w.Add($"natt={NattSport}:{NattDport}");
        }

        if (Outbound)
        {
            w.Add($"ttl={Ttl}");
            w.Add($"df={(Df ? "on" : "off")}");
            w.Add($"mtu={Mtu}");
            w.Add($"dscp={(Dscp < 0 ? "copy" : Dscp.ToString(CultureInfo.InvariantCulture))}");
        }

        if (HardPackets != 0)
        {
            w.Add($"lifetime-packets={SoftPackets}:{HardPackets}");
        }

        if (HardBytes != 0)
        {
            w.Add($"lifetime-bytes={SoftBytes}:{HardBytes}");
        }

        return w;
    }

    private static VSwitchException Bad(string name, string v, string expected) => new($"add-sa: {name}= takes {expected}, found '{v}'");

    private static ulong Num(string name, string v, ulong min, ulong max)
    {
        bool ok = v.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(v.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong x)
            : ulong.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out x);
        return ok && x >= min && x <= max ? x : throw Bad(name, v, $"an integer from {min} to {max}");
    }

    private static bool OnOff(string name, string v) => v switch { "on" or "yes" => true, "off" or "no" => false, _ => throw Bad(name, v, "on or off") };

    private static byte[] Hex(string name, string v)
    {
        var t = v.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? v[2..] : v;
        try
        {
            return t.Length % 2 == 0 && t.Length > 0 ? Convert.FromHexString(t) : throw Bad(name, "<hidden>", "an even number of hex digits");
        }
        catch (FormatException)
        {
            throw Bad(name, "<hidden>", "hex digits"); // never echo key material
        }
    }

    private static IPAddress Ip(string name, string v) =>
        IPAddress.TryParse(v, out var a) && a.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6 && !v.Contains('%', StringComparison.Ordinal)
            ? a : throw Bad(name, v, "an IPv4 or IPv6 address");

    private static SaSpec NattPorts(SaSpec s, string v)
    {
        var p = v.Split(':');
        if (p.Length != 2)
        {
            throw Bad("natt", v, "SPORT:DPORT (4500:4500)");
        }

        return s with { Natt = true, NattSport = (ushort)Num("natt", p[0], 1, 65535), NattDport = (ushort)Num("natt", p[1], 1, 65535) };
    }

    private static bool Pair(string v, string name, out ulong soft, out ulong hard)
    {
        var p = v.Split(':');
        if (p.Length != 2)
        {
            throw Bad(name, v, "SOFT:HARD");
        }

        soft = Num(name, p[0], 0, ulong.MaxValue);
        hard = Num(name, p[1], 1, ulong.MaxValue);
        return true;
    }
}
