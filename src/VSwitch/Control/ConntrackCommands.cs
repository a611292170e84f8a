// ConntrackCommands.cs - the connection tracker on the control socket: dump-conntrack,
// flush-conntrack, ct-stats-show, ct-set-limits / ct-del-limits / ct-get-limits, ct-set-timeouts /
// ct-del-timeouts / ct-get-timeouts (docs/CONTROL.md). Arguments come as "args": a list of words, as
// ovs-appctl dpctl/... takes them. Limits and timeouts are kept in the state file.
using System.Globalization;
using System.Text.Json.Nodes;
using VSwitch.Conntrack;
using VSwitch.Interop;

namespace VSwitch.Control;

public sealed partial class Commands
{
    private static List<string> Words(JsonObject args) =>
        args["args"] is JsonArray a ? [.. a.Select(x => x?.GetValue<string>() ?? "")] : [];

    private static int ParseInt(string text, string what, int min, int max) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v >= min && v <= max
            ? v : throw new VSwitchException($"expected {what} from {min} to {max}, found '{text}'");

    /// <summary>"zone=N" among the words (removed from them), or null.</summary>
    private static int? ZoneArg(List<string> words)
    {
        int i = words.FindIndex(w => w.StartsWith("zone=", StringComparison.Ordinal));
        if (i < 0)
        {
            return null;
        }

        int z = ParseInt(words[i][5..], "a zone (zone=N)", 0, 65535);
        words.RemoveAt(i);
        return z;
    }

    private JsonObject DumpConntrack(JsonObject args)
    {
        var words = Words(args);
        int? zone = ZoneArg(words);
        if (words.Count > 0)
        {
            throw new VSwitchException($"dump-conntrack takes [zone=N], found '{words[0]}'");
        }

        var conns = dp.Conns;
        var rows = new JsonArray();
        foreach (var c in conns?.Dump(Native.Rdtsc(), zone) ?? [])
        {
            rows.Add((JsonNode?)Line(c));
        }

        return new JsonObject { ["conntrack"] = rows };
    }

    /// <summary>
    /// One connection as ovs-appctl dpctl/dump-conntrack -s writes it: protocol, orig=(...) and
    /// reply=(...) tuples with each direction's packets and bytes, zone (when not 0), mark and
    /// labels (when set), protoinfo for TCP; then this switch's extras, timeout left and NAT.
    /// </summary>
    private static string Line(ConnInfo c)
    {
        var ic = CultureInfo.InvariantCulture;
        string Tuple(CtTuple t, ulong packets, ulong bytes)
        {
            string a = string.Create(ic, $"src={CtTuple.Addr(t.T.Family, t.T.SrcHi, t.T.SrcLo)},dst={CtTuple.Addr(t.T.Family, t.T.DstHi, t.T.DstLo)}");
            string p = t.IsIcmp ? string.Create(ic, $",id={t.T.SrcPort},type={t.T.IcmpType},code={t.T.IcmpCode}")
                : t.T.Protocol is Packets.KeyExtractor.ProtoTcp or Packets.KeyExtractor.ProtoUdp or Packets.KeyExtractor.ProtoSctp ? string.Create(ic, $",sport={t.T.SrcPort},dport={t.T.DstPort}")
                : "";
            return string.Create(ic, $"({a}{p},packets={packets},bytes={bytes})");
        }

        var sb = new System.Text.StringBuilder();
        sb.Append(c.Protocol).Append(",orig=").Append(Tuple(c.Orig, c.PacketsOrig, c.BytesOrig)).Append(",reply=").Append(Tuple(c.Reply, c.PacketsReply, c.BytesReply));
        if (c.Orig.Zone != 0)
        {
            sb.Append(ic, $",zone={c.Orig.Zone}");
        }

        if (c.Mark != 0)
        {
            sb.Append(ic, $",mark={c.Mark}");
        }

        if (c.Label != 0)
        {
            sb.Append(ic, $",labels=0x{c.Label:x}");
        }

        sb.Append(ic, $",timeout={(long)c.SecondsLeft}");
        if (c.Nat != 0)
        {
            sb.Append((c.Nat & (byte)CtState.Snat) != 0 ? ",nat=snat" : ",nat=dnat");
        }

        if (c.Protocol == "tcp")
        {
            sb.Append(",protoinfo=(state=").Append(c.State).Append(')');
        }
        else
        {
            sb.Append(",state=").Append(c.State);
        }

        return sb.ToString();
    }

    /// <summary>flush-conntrack [zone=N] [ct_nw_src=A,ct_nw_dst=B,ct_nw_proto=P,ct_tp_src=S,ct_tp_dst=D] (the original direction's tuple).</summary>
    private JsonObject FlushConntrack(JsonObject args)
    {
        var words = Words(args);
        int? zone = ZoneArg(words);
        Func<ConnInfo, bool> tupleFilter = _ => true;
        if (words.Count > 1)
        {
            throw new VSwitchException($"flush-conntrack takes [zone=N] [TUPLE], found '{words[1]}'");
        }

        if (words.Count == 1)
        {
            tupleFilter = TupleFilter(words[0]);
        }

        int n = dp.SweepConntrack(c => (zone == null || c.Orig.Zone == zone) && tupleFilter(c));
        return new JsonObject { ["flushed"] = n };
    }

    private static Func<ConnInfo, bool> TupleFilter(string text)
    {
        var tests = new List<Func<CtTuple, bool>>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=');
            string k = eq < 0 ? part : part[..eq], v = eq < 0 ? "" : part[(eq + 1)..];
            switch (k)
            {
                case "ct_nw_src" or "ct_nw_dst" or "ct_ipv6_src" or "ct_ipv6_dst":
                {
                    if (!System.Net.IPAddress.TryParse(v, out var ip) || (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork) != k.StartsWith("ct_nw", StringComparison.Ordinal))
                    {
                        throw new VSwitchException($"expected an {(k.StartsWith("ct_nw", StringComparison.Ordinal) ? "IPv4" : "IPv6")} address after '{k}=', found '{v}'");
                    }

                    var b = ip.GetAddressBytes();
                    ulong hi = b.Length == 16 ? System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(b) : 0;
                    ulong lo = b.Length == 16 ? System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(8)) : System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(b);
                    bool src = k.EndsWith("src", StringComparison.Ordinal);
                    tests.Add(t => src ? t.T.SrcHi == hi && t.T.SrcLo == lo : t.T.DstHi == hi && t.T.DstLo == lo);
                    break;
                }

                case "ct_nw_proto":
                {
                    int p = ParseInt(v, "a protocol number (ct_nw_proto)", 0, 255);
                    tests.Add(t => t.T.Protocol == p);
                    break;
                }

                case "ct_tp_src" or "ct_tp_dst":
                {
                    int p = ParseInt(v, $"a port ({k})", 0, 65535);
                    bool src = k == "ct_tp_src";
                    tests.Add(t => (src ? t.T.SrcPort : t.T.DstPort) == p);
                    break;
                }

                default:
                    throw new VSwitchException($"expected a tuple field (ct_nw_src, ct_nw_dst, ct_ipv6_src, ct_ipv6_dst, ct_nw_proto, ct_tp_src, ct_tp_dst), found '{part}'");
            }
        }

        return c => tests.All(f => f(c.Orig));
    }

    private JsonObject CtStatsShow()
    {
        var conns = dp.Conns;
        var byProto = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var byState = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var byZone = new SortedDictionary<int, int>();
        foreach (var c in conns?.Dump(Native.Rdtsc()) ?? [])
        {
            byProto[c.Protocol] = byProto.GetValueOrDefault(c.Protocol) + 1;
            byState[c.Protocol + ":" + c.State] = byState.GetValueOrDefault(c.Protocol + ":" + c.State) + 1;
            byZone[c.Orig.Zone] = byZone.GetValueOrDefault(c.Orig.Zone) + 1;
        }

        ulong lookups = 0, commits = 0, invalid = 0, full = 0;
        foreach (var p in dp.TakeSnapshot().Pmds)
        {
            lookups += p.Raw.CtLookups;
            commits += p.Raw.CtCommits;
            invalid += p.Raw.CtInvalid;
            full += p.Raw.CtFull;
        }

        var o = new JsonObject
        {
            ["connections"] = conns?.Count ?? 0,
            ["capacity"] = conns?.Capacity ?? 0,
            ["bytes_per_connection"] = conns?.BytesPerConnection ?? 0,
            ["lookups"] = lookups,
            ["committed"] = commits,
            ["invalid"] = invalid,
            ["refused"] = full,
            ["waiting_reuse"] = conns?.RetiredCount ?? 0,
            ["frozen_states"] = Flows.Shared.Frozen.Count,
            ["frozen_states_reclaimed"] = Flows.Shared.Frozen.Reclaimed,
        };
        var protos = new JsonObject();
        foreach (var (k, v) in byProto)
        {
            protos[k] = v;
        }

        var states = new JsonObject();
        foreach (var (k, v) in byState)
        {
            states[k] = v;
        }

        var zones = new JsonObject();
        foreach (var (k, v) in byZone)
        {
            zones[k.ToString(CultureInfo.InvariantCulture)] = v;
        }

        o["by_protocol"] = protos;
        o["by_state"] = states;
        o["by_zone"] = zones;
        return o;
    }

    /// <summary>ct-set-limits [default=N] [zone=Z,limit=N]...: a zone at its limit refuses new connections.</summary>
    private JsonObject CtSetLimits(JsonObject args)
    {
        var words = Words(args);
        if (words.Count == 0)
        {
            throw new VSwitchException("ct-set-limits takes [default=N] [zone=Z,limit=N]...");
        }

        var s = Flows.Shared.CtSettings;
        var next = CloneSettings(s);
        foreach (var w in words)
        {
            if (w.StartsWith("default=", StringComparison.Ordinal))
            {
                next.DefaultZoneLimit = ParseInt(w[8..], "a default limit (default=N)", 0, int.MaxValue);
                continue;
            }

            var parts = w.Split(',');
            if (parts.Length != 2 || !parts[0].StartsWith("zone=", StringComparison.Ordinal) || !parts[1].StartsWith("limit=", StringComparison.Ordinal))
            {
                throw new VSwitchException($"expected default=N or zone=Z,limit=N, found '{w}'");
            }

            next.ZoneLimits[ParseInt(parts[0][5..], "a zone", 0, 65535)] = ParseInt(parts[1][6..], "a limit", 0, int.MaxValue);
        }

        Flows.Shared.CtSettings = next;
        dp.ConntrackSettingsChanged();
        return CtGetLimits();
    }

    private JsonObject CtDelLimits(JsonObject args)
    {
        var next = CloneSettings(Flows.Shared.CtSettings);
        foreach (var w in Words(args))
        {
            int z = w.StartsWith("zone=", StringComparison.Ordinal) ? ParseInt(w[5..], "a zone", 0, 65535) : throw new VSwitchException($"expected zone=Z, found '{w}'");
            next.ZoneLimits.Remove(z);
        }

        Flows.Shared.CtSettings = next;
        dp.ConntrackSettingsChanged();
        return CtGetLimits();
    }

    private JsonObject CtGetLimits()
    {
        var s = Flows.Shared.CtSettings;
        var conns = dp.Conns;
        var rows = new JsonArray();
        foreach (var (z, l) in s.ZoneLimits)
        {
            rows.Add((JsonNode)new JsonObject { ["zone"] = z, ["limit"] = l, ["count"] = conns?.ZoneCount((ushort)z) ?? 0 });
        }

        return new JsonObject { ["default_limit"] = s.DefaultZoneLimit, ["limits"] = rows };
    }

    /// <summary>
    /// ct-set-timeouts [zone=Z] NAME=SECONDS...: the timeout of each protocol state (Linux's names and
    /// defaults) for every zone, or with zone=Z that zone's own policy (the states it names; the
    /// others keep the default), as Open vSwitch's zone timeout policies.
    /// </summary>
    private JsonObject CtSetTimeouts(JsonObject args)
    {
        var words = Words(args);
        int zone = words.Count > 0 && words[0].StartsWith("zone=", StringComparison.Ordinal) ? ParseInt(words[0][5..], "a zone", 0, 65535) : -1;
        if (zone >= 0)
        {
            words.RemoveAt(0);
        }

        if (words.Count == 0)
        {
            throw new VSwitchException($"ct-set-timeouts takes [zone=Z] NAME=SECONDS... ({string.Join(", ", CtSettings.TimeoutNames)})");
        }

        var next = CloneSettings(Flows.Shared.CtSettings);
        foreach (var w in words)
        {
            int eq = w.IndexOf('=');
            int i = eq < 0 ? -1 : CtSettings.TimeoutIndex(w[..eq]);
            if (i < 0)
            {
                throw new VSwitchException($"expected NAME=SECONDS with NAME one of {string.Join(", ", CtSettings.TimeoutNames)}{(zone < 0 ? " (zone=Z first for a zone's own)" : "")}, found '{w}'");
            }

            int secs = ParseInt(w[(eq + 1)..], $"seconds for {w[..eq]}", 1, CtSettings.MaxTimeoutSeconds);
            if (zone < 0)
            {
                next.Timeouts[i] = secs;
            }
            else
            {
                if (!next.ZoneTimeouts.TryGetValue(zone, out var own))
                {
                    next.ZoneTimeouts[zone] = own = new SortedDictionary<string, int>(StringComparer.Ordinal);
                }

                own[w[..eq]] = secs;
            }
        }

        Flows.Shared.CtSettings = next;
        dp.ConntrackSettingsChanged();
        return TimeoutsJson(zone);
    }

    /// <summary>ct-del-timeouts zone=Z...: removes zones' own timeout policies (they take the default again).</summary>
    private JsonObject CtDelTimeouts(JsonObject args)
    {
        var words = Words(args);
        if (words.Count == 0)
        {
            throw new VSwitchException("ct-del-timeouts takes zone=Z...");
        }

        var next = CloneSettings(Flows.Shared.CtSettings);
        foreach (var w in words)
        {
            int z = w.StartsWith("zone=", StringComparison.Ordinal) ? ParseInt(w[5..], "a zone", 0, 65535) : throw new VSwitchException($"expected zone=Z, found '{w}'");
            if (!next.ZoneTimeouts.Remove(z))
            {
                throw new VSwitchException($"zone {z} has no timeout policy of its own");
            }
        }

        Flows.Shared.CtSettings = next;
        dp.ConntrackSettingsChanged();
        return TimeoutsJson(-1);
    }

    /// <summary>ct-get-timeouts [zone=Z]: the timeouts in force (for zone Z: with its policy), and every zone's own policy.</summary>
    private JsonObject CtGetTimeouts(JsonObject args)
    {
        var words = Words(args);
        int zone = -1;
        if (words.Count == 1 && words[0].StartsWith("zone=", StringComparison.Ordinal))
        {
            zone = ParseInt(words[0][5..], "a zone", 0, 65535);
        }
        else if (words.Count != 0)
        {
            throw new VSwitchException($"ct-get-timeouts takes nothing or zone=Z, found '{string.Join(' ', words)}'");
        }

        return TimeoutsJson(zone);
    }

    private JsonObject TimeoutsJson(int zone)
    {
        var s = Flows.Shared.CtSettings;
        int[] t = zone < 0 ? s.Timeouts : s.TimeoutsOf(zone);
        var o = new JsonObject();
        for (int i = 0; i < CtSettings.TimeoutNames.Length; i++)
        {
            o[CtSettings.TimeoutNames[i]] = t[i];
        }

        var zones = new JsonObject();
        foreach (var (z, own) in s.ZoneTimeouts)
        {
            var p = new JsonObject();
            foreach (var (name, secs) in own)
            {
                p[name] = secs;
            }

            zones[z.ToString(System.Globalization.CultureInfo.InvariantCulture)] = p;
        }

        var result = new JsonObject { ["timeouts"] = o, ["zone_policies"] = zones };
        if (zone >= 0)
        {
            result["zone"] = zone;
        }

        return result;
    }

    private static CtSettings CloneSettings(CtSettings s) => CtSettings.FromJson(s.ToJson());
}
