// Keywords.cs - every name a match may start an item with, looked up from a span, with "did you mean".
//
// The names are the fields of Fields (with their synonyms), the protocol shorthands (ip, tcp6, ...:
// a dl_type and maybe an nw_proto), the rule keywords (table, priority, cookie, timeouts) and
// "actions". One dictionary holds them all and is searched with the line's own span, so looking a
// name up allocates nothing; only an unknown name pays for the suggestions in its message.
using System.Diagnostics.CodeAnalysis;
using VSwitch.Packets;

namespace VSwitch.FlowText;

internal enum KeywordKind : byte
{
    Field,
    Shorthand,
    Table,
    Priority,
    Cookie,
    IdleTimeout,
    HardTimeout,
    Actions,

    /// <summary>conj_id=N: the rule applies after conjunction N matched (held beside the match, not in the key).</summary>
    ConjId,
}

/// <summary>
/// One name: a field (<see cref="Field"/>), a shorthand (<see cref="DlType"/> and <see cref="Proto"/>,
/// -1 for none) or a rule keyword whose integer value goes up to <see cref="Max"/>.
/// </summary>
internal sealed record Keyword(KeywordKind Kind, FieldDef? Field, ulong Max, ushort DlType, int Proto);

internal static class Keywords
{
    private static readonly Dictionary<string, Keyword> s_keywords = Build();

    private static readonly Dictionary<string, Keyword>.AlternateLookup<ReadOnlySpan<char>> s_lookup =
        s_keywords.GetAlternateLookup<ReadOnlySpan<char>>();

    private static Dictionary<string, Keyword> Build()
    {
        var d = new Dictionary<string, Keyword>(StringComparer.Ordinal);
        foreach (var name in Fields.Names)
        {
            d[name] = new Keyword(KeywordKind.Field, Fields.Find(name)!, 0, 0, -1);
        }

        d["table"] = new Keyword(KeywordKind.Table, null, 254, 0, -1);
        d["priority"] = new Keyword(KeywordKind.Priority, null, 65535, 0, -1);
        d["cookie"] = new Keyword(KeywordKind.Cookie, null, ulong.MaxValue, 0, -1);
        d["idle_timeout"] = new Keyword(KeywordKind.IdleTimeout, null, 65535, 0, -1);
        d["hard_timeout"] = new Keyword(KeywordKind.HardTimeout, null, 65535, 0, -1);
        d["actions"] = new Keyword(KeywordKind.Actions, null, 0, 0, -1);
        d["conj_id"] = new Keyword(KeywordKind.ConjId, null, uint.MaxValue, 0, -1);
        void Sh(string n, ushort dlType, int proto) => d[n] = new Keyword(KeywordKind.Shorthand, null, 0, dlType, proto);
        Sh("ip", KeyExtractor.EthIp, -1);
        Sh("ipv6", KeyExtractor.EthIpv6, -1);
        Sh("arp", KeyExtractor.EthArp, -1);
        Sh("tcp", KeyExtractor.EthIp, KeyExtractor.ProtoTcp);
        Sh("udp", KeyExtractor.EthIp, KeyExtractor.ProtoUdp);
        Sh("icmp", KeyExtractor.EthIp, KeyExtractor.ProtoIcmp);
        Sh("tcp6", KeyExtractor.EthIpv6, KeyExtractor.ProtoTcp);
        Sh("udp6", KeyExtractor.EthIpv6, KeyExtractor.ProtoUdp);
        Sh("icmp6", KeyExtractor.EthIpv6, KeyExtractor.ProtoIcmpv6);
        Sh("sctp", KeyExtractor.EthIp, KeyExtractor.ProtoSctp);
        Sh("sctp6", KeyExtractor.EthIpv6, KeyExtractor.ProtoSctp);
        return d;
    }

    public static bool TryFind(ReadOnlySpan<char> name, [NotNullWhen(true)] out Keyword? kw) => s_lookup.TryGetValue(name, out kw);

    /// <summary>The field named <paramref name="name"/> (a field name or synonym, not another keyword).</summary>
    public static bool TryFindField(ReadOnlySpan<char> name, [NotNullWhen(true)] out FieldDef? field)
    {
        field = s_lookup.TryGetValue(name, out var kw) && kw.Kind == KeywordKind.Field ? kw.Field : null;
        return field != null;
    }

    /// <summary>" (did you mean 'a' or 'b'?)" for up to three close names, or "".</summary>
    public static string Suggest(ReadOnlySpan<char> name)
    {
        var s = name.ToString();
        var close = s_keywords.Keys
            .Select(k => (k, d: Distance(s, k)))
            .Where(x => x.d <= 2 || (s.Length >= 3 && (x.k.StartsWith(s, StringComparison.Ordinal) || x.k.Contains(s, StringComparison.Ordinal))))
            .OrderBy(x => x.d).ThenBy(x => x.k, StringComparer.Ordinal)
            .Take(3).Select(x => "'" + x.k + "'").ToList();
        return close.Count == 0 ? "" : $" (did you mean {string.Join(" or ", close)}?)";
    }

    /// <summary>Levenshtein distance.</summary>
    private static int Distance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            prev[j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost);
            }

            (prev, cur) = (cur, prev);
        }

        return prev[b.Length];
    }
}
