// Fuzz.cs - random rule sets (within the grammar: prerequisites chosen first, then fields and
// actions valid for them) and random frames, valid and malformed, for the fuzz tests of the
// pipeline (in memory) and of a running vswitchd.
using System.Globalization;
using System.Text;

namespace VSwitch.Tests;

internal static class Fuzz
{
    private static readonly string[] s_protos = ["", "ip", "tcp", "udp", "icmp", "ipv6", "tcp6", "udp6", "arp"];

    private static T Pick<T>(Random r, IReadOnlyList<T> xs) => xs[r.Next(xs.Count)];

    /// <summary>A random rule for a switch with <paramref name="ports"/> ports.</summary>
    public static string Rule(Random r, int ports)
    {
        var ic = CultureInfo.InvariantCulture;
        int table = r.Next(4);
        string proto = Pick(r, s_protos);
        bool v4 = proto is "ip" or "tcp" or "udp" or "icmp";
        bool v6 = proto is "ipv6" or "tcp6" or "udp6";
        bool l4 = proto is "tcp" or "udp" or "tcp6" or "udp6";
        var m = new List<string> { $"table={table}", $"priority={r.Next(1, 200)}" };
        if (proto.Length > 0)
        {
            m.Add(proto);
        }

        if (r.Next(3) == 0)
        {
            m.Add($"in_port={r.Next(1, ports + 1)}");
        }

        if (r.Next(4) == 0)
        {
            m.Add(r.Next(2) == 0 ? $"dl_vlan={r.Next(1, 5)}" : "vlan_tci=0x0000/0x1000");
        }

        if (r.Next(5) == 0)
        {
            m.Add($"dl_dst=02:00:00:00:00:0{r.Next(1, 5)}");
        }

        if (v4 && r.Next(2) == 0)
        {
            m.Add(string.Create(ic, $"nw_dst=198.51.100.{r.Next(0, 4) * 64}/{Pick(r, new[] { 24, 26, 32 })}"));
        }

        if (v4 && r.Next(4) == 0)
        {
            m.Add($"nw_ttl={r.Next(0, 3)}");
        }

        if (v6 && r.Next(2) == 0)
        {
            m.Add("ipv6_dst=2001:db8::/32");
        }

        if (l4 && r.Next(2) == 0)
        {
            m.Add($"tp_dst={Pick(r, new[] { 53, 80, 443 })}");
        }

        if (r.Next(6) == 0)
        {
            m.Add($"recirc_id={r.Next(0, 3)}");
        }

        var a = new List<string>();
        int n = 1 + r.Next(4);
        bool last = false;
        for (int i = 0; i < n && !last; i++)
        {
            switch (r.Next(16))
            {
                case 0: a.Add("flood"); break;
                case 1: a.Add("normal"); break;
                case 2: a.Add("dec_ttl"); break;
                case 3: a.Add("push_vlan:0x8100"); break;
                case 4: a.Add("pop_vlan"); break;
                case 5: a.Add($"mod_vlan_vid:{r.Next(1, 5)}"); break;
                case 6: a.Add($"mod_dl_src:02:00:00:00:00:{r.Next(16, 99)}"); break;
                case 7 when v4: a.Add($"mod_nw_dst:203.0.113.{r.Next(1, 9)}"); break;
                case 8 when l4: a.Add($"mod_tp_dst:{r.Next(1, 65535)}"); break;
                case 9 when v6: a.Add("set_field:2001:db8::99->ipv6_src"); break;
                case 10 when table < 3: a.Add($"resubmit(,{r.Next(table + 1, 4)})"); break;
                case 11 when table < 3: a.Add($"goto_table:{r.Next(table + 1, 4)}"); last = true; break;
                case 12: a.Add($"recirc({r.Next(1, 3)})"); last = true; break;
                case 13: a.Add("controller"); break;
                default: a.Add($"output:{r.Next(1, ports + 1)}"); break;
            }
        }

        return string.Join(',', m) + ",actions=" + (a.Count == 0 ? "drop" : string.Join(',', a));
    }

    /// <summary>A rule set of <paramref name="count"/> random rules, one per line.</summary>
    public static string Rules(Random r, int count, int ports)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < count; i++)
        {
            sb.Append(Rule(r, ports)).Append('\n');
        }

        return sb.ToString();
    }

    /// <summary>A random frame: valid (IPv4/IPv6/ARP, 0-2 tags, TTL 0-2 or 64) or malformed (truncated, lying lengths, junk).</summary>
    public static byte[] Frame(Random r)
    {
        var s = new FrameSpec
        {
            Dst = r.Next(4) == 0 ? 0xFFFFFFFFFFFF : 0x020000000000UL + (ulong)r.Next(1, 5),
            Src = 0x020000000000UL + (ulong)r.Next(1, 5),
            EthType = Pick(r, new ushort[] { 0x0800, 0x0800, 0x86DD, 0x0806, 0x88CC }),
            Proto = Pick(r, new byte[] { 6, 17, 1, 58, 47 }),
            Ttl = (byte)(r.Next(3) == 0 ? r.Next(0, 3) : 64),
            NwDst = 0xC6336400u + (uint)r.Next(0, 256),
            DstPort = Pick(r, new ushort[] { 53, 80, 443, 9 }),
            FragField = (ushort)(r.Next(10) == 0 ? 0x2000 | r.Next(0, 3) : 0),
            Payload = new byte[r.Next(0, 80)],
        };
        if (s.EthType == 0x86DD && s.Proto == 1)
        {
            s.Proto = 58;
        }

        for (int t = r.Next(0, 3) - 1; t >= 0 && r.Next(2) == 0; t--)
        {
            s.Tags.Add((Pick(r, new ushort[] { 0x8100, 0x88A8 }), (ushort)r.Next(0, 5)));
        }

        byte[] f = FrameBuilder.Build(s);
        switch (r.Next(8))
        {
            case 0: // truncated anywhere
                return f[..r.Next(1, f.Length)];
            case 1: // a byte of the headers changed
            {
                f[r.Next(12, Math.Min(f.Length, 60))] ^= (byte)(1 << r.Next(8));
                return f;
            }

            case 2: // junk
            {
                var junk = new byte[r.Next(1, 120)];
                r.NextBytes(junk);
                return junk;
            }

            default:
                return f;
        }
    }
}
