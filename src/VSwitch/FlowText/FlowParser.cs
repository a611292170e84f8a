// FlowParser.cs - the entry points of the ovs-ofctl flow text syntax: rules, match-only strings, trace packets.
//
// One rule per line: "table=0,priority=100,ip,nw_dst=192.0.2.0/24,actions=output:2". A line is
// read by MatchParser (fields, protocols and keywords up to "actions=") and then by ActionParser;
// both walk the line as a span (no regex, no per-token strings; names are looked up through a
// span-keyed dictionary, Keywords), so 200 000 rules parse in a fraction of a second; the hot
// methods are compiled fully optimized at once (a flow file is parsed once, cold). Every error is a
// FlowSyntaxException naming the line, the 1-based column and what was expected there.
// FlowFormatter writes the same syntax back, so that ParseRule(Format(rule, false)) gives an equal
// match and equal actions. docs/FLOWS.md lists the fields and actions.
using System.Globalization;
using System.Runtime.CompilerServices;
using VSwitch.Packets;
using VSwitch.Pipeline;

namespace VSwitch.FlowText;

/// <summary>Parses ovs-ofctl flow syntax (see docs/FLOWS.md).</summary>
public static class FlowParser
{
    /// <summary>
    /// Parses one rule per line; blank lines and lines starting with '#' are skipped, a trailing
    /// '\r' is tolerated. The first bad line throws <see cref="FlowSyntaxException"/> and nothing is
    /// returned. Each rule's Origin is "origin:line".
    /// </summary>
    public static List<FlowRule> ParseRules(string text, string origin) => ParseRules(text, origin, 1);

    /// <summary>As <see cref="ParseRules(string, string)"/> for a piece of a file whose first line is line <paramref name="firstLine"/> there (errors and origins name the file's lines).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static List<FlowRule> ParseRules(string text, string origin, int firstLine) => ParseRules(text, origin, firstLine, null);

    /// <summary>
    /// As <see cref="ParseRules(string, string, int)"/>, where a port number goes (in_port=, output:,
    /// resubmit) a name of <paramref name="ports"/> may stand (name -> OpenFlow number, resolved now:
    /// the rule keeps the number, as ovs-ofctl sends numbers).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static List<FlowRule> ParseRules(string text, string origin, int firstLine, IReadOnlyDictionary<string, int>? ports)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(origin);
        var span = text.AsSpan();
        var rules = new List<FlowRule>(span.Count('\n') + 1);
        var shared = new Dictionary<FlowAction[], FlowAction[]>(ActionListComparer.Instance);
        int lineNo = firstLine - 1;
        while (!span.IsEmpty)
        {
            lineNo++;
            int nl = span.IndexOf('\n');
            ReadOnlySpan<char> line;
            if (nl < 0)
            {
                line = span;
                span = default;
            }
            else
            {
                line = span[..nl];
                span = span[(nl + 1)..];
            }

            if (IsBlankOrComment(line))
            {
                continue;
            }

            rules.Add(ParseRuleSpan(line, origin, lineNo, ports, shared));
        }

        return rules;
    }

    /// <summary>
    /// Equal action lists (element by element): the rules of one ParseRules call that have equal
    /// actions share one array (a rule's actions are never changed in place). A big table's rules
    /// mostly differ in their matches only, and each array they do not keep is one object fewer for
    /// the collections that stop the PMDs while a load runs.
    /// </summary>
    private sealed class ActionListComparer : IEqualityComparer<FlowAction[]>
    {
        public static readonly ActionListComparer Instance = new();

        public bool Equals(FlowAction[]? a, FlowAction[]? b) => ReferenceEquals(a, b) || (a != null && b != null && a.AsSpan().SequenceEqual(b));

        public int GetHashCode(FlowAction[] a)
        {
            var h = new HashCode();
            foreach (var x in a)
            {
                h.Add(x);
            }

            return h.ToHashCode();
        }
    }

    /// <summary>Parses one rule (a trailing '\r' is tolerated); errors name <paramref name="lineNo"/>.</summary>
    public static FlowRule ParseRule(string line, string origin, int lineNo, IReadOnlyDictionary<string, int>? ports = null)
    {
        ArgumentNullException.ThrowIfNull(line);
        ArgumentNullException.ThrowIfNull(origin);
        return ParseRuleSpan(line, origin, lineNo, ports);
    }

    /// <summary>
    /// Parses a match-only string (del-flows / mod-flows): fields, protocols, table=, priority= and
    /// cookie=VALUE[/MASK]; no actions. The empty string matches everything. CookieMask is null when
    /// the cookie was given without a mask.
    /// </summary>
    public static (FlowMatch Match, int? Table, int? Priority, ulong? Cookie, ulong? CookieMask) ParseMatch(
        string text, string origin, IReadOnlyDictionary<string, int>? ports = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(origin);
        var p = new MatchParser(new FlowLine(TrimCr(text), origin, 1, ports), MatchMode.Match);
        p.Run();
        return (p.Match, p.Table, p.Priority, p.Cookie, p.CookieMask);
    }

    /// <summary>
    /// Parses a packet description for trace: the match syntax with exact values only. Protocol
    /// shorthands set dl_type and nw_proto, dl_vlan sets the tag-present bit, nw_ttl defaults to 64
    /// for IP, and the Parse word gets L2, L3 and L4 as an extracted packet of that kind would.
    /// </summary>
    public static FlowKey ParsePacket(string text, string origin, IReadOnlyDictionary<string, int>? ports = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(origin);
        var p = new MatchParser(new FlowLine(TrimCr(text), origin, 1, ports), MatchMode.Packet);
        p.Run();
        FlowKey key = p.Match.Value;
        ushort dlType = key.DlType;
        bool v4 = dlType == KeyExtractor.EthIp;
        bool v6 = dlType == KeyExtractor.EthIpv6;
        ushort parse = ParseFlags.L2;
        if (v4 || v6)
        {
            if (p.Match.GetMask(Fields.NwTtl) == 0)
            {
                key.NwTtl = 64;
            }

            parse |= ParseFlags.L3;
            byte proto = key.NwProto;
            bool l4 = proto is KeyExtractor.ProtoTcp or KeyExtractor.ProtoUdp
                || (v4 && proto == KeyExtractor.ProtoIcmp) || (v6 && proto == KeyExtractor.ProtoIcmpv6);
            if (l4 && (key.NwFrag & 2) == 0)
            {
                parse |= ParseFlags.L4;
            }
        }
        else if (dlType == KeyExtractor.EthArp)
        {
            parse |= ParseFlags.L3;
        }

        key.Parse = parse;
        return key;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static FlowRule ParseRuleSpan(ReadOnlySpan<char> line, string origin, int lineNo, IReadOnlyDictionary<string, int>? ports,
        Dictionary<FlowAction[], FlowAction[]>? shared = null)
    {
        var text = new FlowLine(TrimCr(line), origin, lineNo, ports);
        var p = new MatchParser(text, MatchMode.Rule);
        p.Run();
        var actions = new ActionParser(text, p.ActionsAt, p.Table ?? 0, p.Match).Parse();
        if (shared != null)
        {
            ref var same = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(shared, actions, out bool exists);
            if (exists)
            {
                actions = same!;
            }
            else
            {
                same = actions;
            }
        }
        var rule = new FlowRule
        {
            Table = p.Table ?? 0,
            Priority = p.Priority ?? 32768,
            Cookie = p.Cookie ?? 0,
            IdleTimeout = p.IdleTimeout,
            HardTimeout = p.HardTimeout,
            Actions = actions,
            OriginFile = origin, // Origin is "origin:line", composed when asked for (a string per rule would be a GC object per rule)
            OriginLine = lineNo,
            Match = p.Match,
        };
        return rule;
    }

    private static ReadOnlySpan<char> TrimCr(ReadOnlySpan<char> s) => s.Length > 0 && s[^1] == '\r' ? s[..^1] : s;

    private static bool IsBlankOrComment(ReadOnlySpan<char> line)
    {
        var t = line.TrimStart(" \t\r");
        return t.IsEmpty || t[0] == '#';
    }
}
