// DifferentialConjunctions.cs - conjunctive matches for the differential test's rule sets.
//
// Half the cases get one to three conjunctions (2 to 4 dimensions, 1 to 3 clause rules per
// dimension) in table 0 or a later table. Clauses are cut from the case's own frames (in_port, MACs,
// addresses or prefixes, ports, protocols; every dimension's first two from the same two frames),
// sometimes with a value no frame has, so conjunctions both complete and fail; they sit at priorities the generator's ordinary rules also use, so they
// overlap those; some clause rules carry a second conjunction; some have a lower-priority ordinary
// rule with the identical match beneath them (uncovered when the conjunction fails); some ids have
// no conj_id rule, some a conj_id rule with an extra match, or one below the ordinary rules.
//
// What OpenFlow leaves undefined is kept out, as for ordinary rules: a conj_id rule gets a priority
// no other rule of its table has; ids that share a priority (shared clause rules) get conj_id rules
// alike but for the id, since which of two ids completing together is searched first is unspecified
// ("conjunctive flows must not overlap with each other, at a given priority", ovs-fields(7)).
using System.Globalization;
using System.Net;
using VSwitch.FlowText;
using VSwitch.Packets;
using VSwitch.Tests.Oracle;

namespace VSwitch.Tests.Differential;

public sealed partial class OvsDifferentialTests
{
    internal sealed partial class DiffRun
    {
        /// <summary>Conjunction lines (clauses, conj_id rules, shadowed ordinary rules) for a case with these rules and frames.</summary>
        internal static List<string> Conjunctions(Random rnd, IReadOnlyList<string> lines, IReadOnlyList<OraclePacket> packets)
        {
            var taken = new HashSet<(int Table, int Priority)>(lines.Select(TableAndPriority));
            var keys = packets.Select(KeyOf).ToList();
            var outLines = new List<string>();
            int table = rnd.Next(3) == 0 ? 1 + rnd.Next(3) : 0;
            int groups = 1 + rnd.Next(3);
            int nextId = 1 + rnd.Next(1000);
            var groupPris = new HashSet<int>();
            for (int g = 0; g < groups; g++)
            {
                // each group its own priority (two groups completing at one priority: unspecified which is searched)
                int pri = new[] { 100, 150, 200, 200, 250, 32768, 40000 }[rnd.Next(7)];
                while (!groupPris.Add(pri))
                {
                    pri++;
                }

                int[] ids = rnd.Next(4) == 0 ? [nextId++, nextId++] : [nextId++];
                int n = 2 + rnd.Next(3);
                // each dimension's first clauses are cut from two frames of the case, so those often complete it
                var targets = new[] { keys[rnd.Next(keys.Count)], keys[rnd.Next(keys.Count)] };
                for (int k = 1; k <= n; k++)
                {
                    for (int c = 0; c < 1 + rnd.Next(3); c++)
                    {
                        string match = Clause(rnd, c < 2 ? targets[c] : keys[rnd.Next(keys.Count)]);
                        // with two ids, some clauses are shared (both ids' dimension k) and some belong to one
                        var conj = ids.Where((_, i) => ids.Length == 1 || rnd.Next(3) != 0 || i == 0).Select(id => $"conjunction({id},{k}/{n})");
                        outLines.Add($"table={table},priority={pri},{match},actions={string.Join(",", conj)}");
                        if (rnd.Next(6) == 0)
                        {
                            int below = Free(taken, table, pri - 1 - rnd.Next(40), down: true);
                            outLines.Add($"table={table},priority={below},{match},actions=output:{1 + rnd.Next(Ports)}");
                        }
                    }
                }

                if (rnd.Next(6) == 0)
                {
                    continue; // no conj_id rule: the conjunction completes and is then ignored
                }

                // ids of one group share the conj_id rules' shape (see the file comment)
                int conjPri = Free(taken, table, rnd.Next(4) == 0 ? 5 : new[] { 90, 120, 300, 33000 }[rnd.Next(4)], down: false);
                string extra = rnd.Next(4) == 0 ? $",in_port={1 + rnd.Next(Ports)}" : rnd.Next(5) == 0 ? ",ip" : "";
                string actions = ConjActions(rnd, table, extra == ",ip");
                bool fallback = extra.Length > 0 && rnd.Next(2) == 0;
                int fallbackPri = fallback ? Free(taken, table, conjPri - 1, down: true) : 0;
                foreach (int id in ids)
                {
                    outLines.Add($"table={table},priority={conjPri},conj_id={id}{extra},actions={actions}");
                    if (fallback)
                    {
                        outLines.Add($"table={table},priority={fallbackPri},conj_id={id},actions=output:{1 + rnd.Next(Ports)}");
                    }
                }
            }

            return outLines;
        }

        private static (int, int) TableAndPriority(string line)
        {
            int Value(string name)
            {
                int at = line.IndexOf(name + "=", StringComparison.Ordinal);
                if (at < 0)
                {
                    return name == "priority" ? 32768 : 0;
                }

                int end = line.IndexOf(',', at);
                return int.Parse(line[(at + name.Length + 1)..end], CultureInfo.InvariantCulture);
            }

            return (Value("table"), Value("priority"));
        }

        /// <summary>A priority of <paramref name="table"/> no rule has yet, from <paramref name="want"/> on (down or up); taken.</summary>
        private static int Free(HashSet<(int, int)> taken, int table, int want, bool down)
        {
            int p = Math.Clamp(want, 1, 65535);
            while (!taken.Add((table, p)))
            {
                if (down && p == 1)
                {
                    down = false; // nothing free below: search upwards (turning back at 1 each time looped for ever between 1 and 2)
                    p = Math.Clamp(want, 1, 65535);
                }

                p += down ? -1 : 1;
            }

            return p;
        }

        private static FlowKey KeyOf(OraclePacket p) => KeyExtractor.PipelineKeyOf(p.Frame, (ushort)p.InPort, out _);

        /// <summary>A clause matching a field (or two) of <paramref name="k"/>, or sometimes a value no frame has.</summary>
        private static string Clause(Random rnd, FlowKey k)
        {
            bool v4 = k.DlType == KeyExtractor.EthIp, v6 = k.DlType == KeyExtractor.EthIpv6;
            bool l4 = (k.Parse & ParseFlags.L4) != 0 && k.NwProto is KeyExtractor.ProtoTcp or KeyExtractor.ProtoUdp;
            bool miss = rnd.Next(6) == 0;
            string proto = (k.NwProto == KeyExtractor.ProtoTcp ? "tcp" : "udp") + (v6 ? "6" : "");
            var options = new List<string>
            {
                $"in_port={(miss ? 1 + ((k.InPort + 1) % Ports) : k.InPort)}",
                $"dl_src={FlowFormatter.FormatMac(miss ? 0x02DEAD000001UL : k.DlSrc)}",
                $"dl_dst={FlowFormatter.FormatMac(k.DlDst)}",
            };
            if (v4)
            {
                options.Add($"ip,nw_src={V4(miss ? k.NwSrc ^ 0x80 : k.NwSrc)}");
                options.Add($"ip,nw_dst={V4(k.NwDst)}/{8 * (1 + rnd.Next(4))}");
                options.Add($"ip,nw_src={V4(k.NwSrc)},nw_dst={V4(k.NwDst)}");
            }
            else if (v6)
            {
                options.Add($"ipv6,ipv6_src={V6(k.Ipv6Src)}");
                options.Add("ipv6");
            }
            else
            {
                options.Add($"dl_type=0x{k.DlType:x4}");
            }

            if (l4)
            {
                options.Add($"{proto},tp_dst={(miss ? k.TpDst ^ 1 : k.TpDst)}");
                options.Add($"{proto},tp_src={k.TpSrc}");
                options.Add($"{proto},tp_dst=0x{k.TpDst & 0xFF00:x}/0xff00");
            }

            if ((k.VlanTci & 0x1000) != 0)
            {
                options.Add($"dl_vlan={k.VlanTci & 0xFFF}");
            }

            return options[rnd.Next(options.Count)];
        }

        private static string V4(uint a) => new IPAddress([(byte)(a >> 24), (byte)(a >> 16), (byte)(a >> 8), (byte)a]).ToString();

        private static string V6(UInt128 a)
        {
            var b = new byte[16];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(b, a);
            return new IPAddress(b).ToString();
        }

        /// <summary>The conj_id rule's actions: outputs, a rewrite, a later table, a drop, NORMAL.</summary>
        private static string ConjActions(Random rnd, int table, bool ip)
        {
            int port = 1 + rnd.Next(Ports);
            return rnd.Next(8) switch
            {
                0 => "drop",
                1 => $"mod_dl_src:02:00:00:00:00:{rnd.Next(256):x2},output:{port}",
                2 when table < 3 => $"resubmit(,{table + 1}),output:{port}",
                3 when table < 3 => $"goto_table:{table + 1 + rnd.Next(3 - table)}",
                4 when ip => $"mod_nw_src:10.99.0.{rnd.Next(256)},output:{port}",
                5 => "normal",
                6 => $"output:{port},output:{1 + rnd.Next(Ports)}",
                _ => $"output:{port}",
            };
        }
    }
}
