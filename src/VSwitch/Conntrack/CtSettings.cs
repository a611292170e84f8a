// CtSettings.cs - the operator's conntrack settings: zone limits (ct-set-limits) and timeouts
// (ct-set-timeouts), for every zone and as zones' own timeout policies (the states a zone names
// override the default, as Open vSwitch's zone timeout policies), kept in the state file and put in
// force on the connection table.
using System.Text.Json.Nodes;

namespace VSwitch.Conntrack;

public sealed class CtSettings
{
    /// <summary>Timeout names, in ConnTable's order: the TCP classes (TcpTimeout), then OtherTimeout's.</summary>
    public static readonly string[] TimeoutNames =
        ["tcp_syn_sent", "tcp_syn_recv", "tcp_established", "tcp_fin_wait", "tcp_last_ack", "tcp_time_wait", "tcp_close", "udp_first", "udp_stream", "icmp", "other"];

    /// <summary>The limit of a zone without its own (0: none).</summary>
    public int DefaultZoneLimit { get; set; }

    /// <summary>Zones with their own limit.</summary>
    public SortedDictionary<int, int> ZoneLimits { get; } = [];

    /// <summary>Seconds per timeout name (TimeoutNames order).</summary>
    public int[] Timeouts { get; } = [.. TcpTracker.DefaultTimeoutSeconds, .. UdpIcmpTracker.DefaultTimeoutSeconds];

    /// <summary>Zones' own timeout policies: the names each overrides, with their seconds.</summary>
    public SortedDictionary<int, SortedDictionary<string, int>> ZoneTimeouts { get; } = [];

    /// <summary>The longest timeout ct-set-timeouts takes (100 days).</summary>
    public const int MaxTimeoutSeconds = 100 * 86400;

    /// <summary>The index of a timeout name, or -1.</summary>
    public static int TimeoutIndex(string name) => Array.IndexOf(TimeoutNames, name);

    /// <summary>The seconds per name in force for <paramref name="zone"/>: the defaults with its policy's overrides.</summary>
    public int[] TimeoutsOf(int zone)
    {
        int[] t = [.. Timeouts];
        if (ZoneTimeouts.TryGetValue(zone, out var own))
        {
            foreach (var (name, secs) in own)
            {
                t[TimeoutIndex(name)] = secs;
            }
        }

        return t;
    }

    public void ApplyTo(ConnTable t)
    {
        t.DefaultZoneLimit = DefaultZoneLimit;
        for (int z = 0; z < 65536; z++)
        {
            t.SetZoneLimit((ushort)z, ZoneLimits.GetValueOrDefault(z));
        }

        t.Timeouts = new TimeoutPolicies([.. Timeouts], ZoneTimeouts.Keys.ToDictionary(z => z, TimeoutsOf));
    }

    public JsonObject ToJson()
    {
        var limits = new JsonObject();
        foreach (var (z, l) in ZoneLimits)
        {
            limits[z.ToString(System.Globalization.CultureInfo.InvariantCulture)] = l;
        }

        var timeouts = new JsonObject();
        for (int i = 0; i < TimeoutNames.Length; i++)
        {
            timeouts[TimeoutNames[i]] = Timeouts[i];
        }

        var zoneTimeouts = new JsonObject();
        foreach (var (z, own) in ZoneTimeouts)
        {
            var o = new JsonObject();
            foreach (var (name, secs) in own)
            {
                o[name] = secs;
            }

            zoneTimeouts[z.ToString(System.Globalization.CultureInfo.InvariantCulture)] = o;
        }

        return new JsonObject { ["default_zone_limit"] = DefaultZoneLimit, ["zone_limits"] = limits, ["timeouts"] = timeouts, ["zone_timeouts"] = zoneTimeouts };
    }

    /// <summary>Reads what <see cref="ToJson"/> wrote; throws FormatException on anything else.</summary>
    public static CtSettings FromJson(JsonNode n)
    {
        var s = new CtSettings { DefaultZoneLimit = n["default_zone_limit"]?.GetValue<int>() ?? 0 };
        if (s.DefaultZoneLimit < 0)
        {
            throw new FormatException("default_zone_limit");
        }

        foreach (var (k, v) in n["zone_limits"]?.AsObject() ?? [])
        {
            if (!int.TryParse(k, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int z) || z > 65535 || v!.GetValue<int>() < 0)
            {
                throw new FormatException("zone_limits");
            }

            s.ZoneLimits[z] = v.GetValue<int>();
        }

        foreach (var (k, v) in n["timeouts"]?.AsObject() ?? [])
        {
            int i = TimeoutIndex(k);
            int secs = v!.GetValue<int>();
            if (i < 0 || secs < 1 || secs > MaxTimeoutSeconds)
            {
                throw new FormatException("timeouts");
            }

            s.Timeouts[i] = secs;
        }

        foreach (var (k, v) in n["zone_timeouts"]?.AsObject() ?? [])
        {
            if (!int.TryParse(k, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int z) || z > 65535)
            {
                throw new FormatException("zone_timeouts");
            }

            var own = new SortedDictionary<string, int>(StringComparer.Ordinal);
            foreach (var (name, secs) in v!.AsObject())
            {
                if (TimeoutIndex(name) < 0 || secs!.GetValue<int>() < 1 || secs.GetValue<int>() > MaxTimeoutSeconds)
                {
                    throw new FormatException("zone_timeouts");
                }

                own[name] = secs.GetValue<int>();
            }

            s.ZoneTimeouts[z] = own;
        }

        return s;
    }
}
