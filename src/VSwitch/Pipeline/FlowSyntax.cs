// FlowSyntax.cs - the ovs-ofctl flow text syntax: rules, match-only strings, trace packets, and back.
//
// One rule per line: "table=0,priority=100,ip,nw_dst=192.0.2.0/24,actions=output:2". The parser
// walks each line as a span (no regex, no per-token strings; names are looked up through a
// span-keyed dictionary), so 200 000 rules parse in a fraction of a second; the hot methods are
// compiled fully optimized at once (a flow file is parsed once, cold). Every error is a
// FlowSyntaxException naming the line, the 1-based column and what was expected there. Field
// prerequisites (nw_dst needs ip, tp_dst needs tcp or udp, ...) are checked once the whole match
// has been read, so their order on the line does not matter; actions are checked against the
// final match (mod_nw_src needs ip). The formatter writes the same syntax back, so that
// ParseRule(Format(rule, false)) gives an equal match and equal actions. docs/FLOWS.md lists the
// fields and actions.
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using VSwitch.Packets;

namespace VSwitch.Pipeline;

/// <summary>A flow text error: where (origin, line, column) and what was expected there.</summary>
public sealed class FlowSyntaxException : VSwitchException
{
    public FlowSyntaxException(string origin, int line, int column, string detail)
        : base($"{origin}: line {line}, column {column}: {detail}")
    {
        Origin = origin;
        Line = line;
        Column = column;
        Detail = detail;
    }

    /// <summary>The file or source name given to the parser.</summary>
    public string Origin { get; }

    /// <summary>1-based line number.</summary>
    public int Line { get; }

    /// <summary>1-based column of the offending text.</summary>
    public int Column { get; }

    /// <summary>The message without the location prefix.</summary>
    public string Detail { get; }
}

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
    public static List<FlowRule> ParseRules(string text, string origin, int firstLine)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(origin);
        var span = text.AsSpan();
        var rules = new List<FlowRule>(span.Count('\n') + 1);
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

            rules.Add(ParseRuleSpan(line, origin, lineNo));
        }

        return rules;
    }

    /// <summary>Parses one rule (a trailing '\r' is tolerated); errors name <paramref name="lineNo"/>.</summary>
    public static FlowRule ParseRule(string line, string origin, int lineNo)
    {
        ArgumentNullException.ThrowIfNull(line);
        ArgumentNullException.ThrowIfNull(origin);
        return ParseRuleSpan(line, origin, lineNo);
    }

    /// <summary>
    /// Parses a match-only string (del-flows / mod-flows): fields, protocols, table=, priority= and
    /// cookie=VALUE[/MASK]; no actions. The empty string matches everything. CookieMask is null when
    /// the cookie was given without a mask.
    /// </summary>
    public static (FlowMatch Match, int? Table, int? Priority, ulong? Cookie, ulong? CookieMask) ParseMatch(
        string text, string origin)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(origin);
        var p = new LineParser(TrimCr(text), origin, 1, Mode.Match);
        p.Run();
        return (p.Match, p.Table, p.Priority, p.Cookie, p.CookieMask);
    }

    /// <summary>
    /// Parses a packet description for trace: the match syntax with exact values only. Protocol
    /// shorthands set dl_type and nw_proto, dl_vlan sets the tag-present bit, nw_ttl defaults to 64
    /// for IP, and the Parse word gets L2, L3 and L4 as an extracted packet of that kind would.
    /// </summary>
    public static FlowKey ParsePacket(string text, string origin)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(origin);
        var p = new LineParser(TrimCr(text), origin, 1, Mode.Packet);
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
    private static FlowRule ParseRuleSpan(ReadOnlySpan<char> line, string origin, int lineNo)
    {
        var p = new LineParser(TrimCr(line), origin, lineNo, Mode.Rule);
        p.Run();
        var actions = p.ParseActions();
        var rule = new FlowRule
        {
            Table = p.Table ?? 0,
            Priority = p.Priority ?? 32768,
            Cookie = p.Cookie ?? 0,
            IdleTimeout = p.IdleTimeout,
            HardTimeout = p.HardTimeout,
            Actions = actions,
            Origin = string.Concat(origin, ":", lineNo.ToString(CultureInfo.InvariantCulture)),
        };
        rule.Match = p.Match;
        return rule;
    }

    private static ReadOnlySpan<char> TrimCr(ReadOnlySpan<char> s) => s.Length > 0 && s[^1] == '\r' ? s[..^1] : s;

    private static bool IsBlankOrComment(ReadOnlySpan<char> line)
    {
        var t = line.TrimStart(" \t\r");
        return t.IsEmpty || t[0] == '#';
    }

    // ---------------------------------------------------------------------------------------------
    // Names

    private enum Mode : byte
    {
        Rule,
        Match,
        Packet,
    }

    private enum KwKind : byte
    {
        Field,
        Shorthand,
        Table,
        Priority,
        Cookie,
        IdleTimeout,
        HardTimeout,
        Actions,
    }

    internal enum Style : byte
    {
        Int,
        IntExact,
        Mac,
        Ipv4,
        Ipv6,
        Vlan,
        VlanPcp,
        Frag,
        TcpFlags,
        CtState,
    }

    private sealed record Keyword(KwKind Kind, FieldDef? Field, Style Style, ulong Max, ushort DlType, int Proto);

    private static readonly Dictionary<string, Keyword> s_keywords = BuildKeywords();

    private static readonly Dictionary<string, Keyword>.AlternateLookup<ReadOnlySpan<char>> s_lookup =
        s_keywords.GetAlternateLookup<ReadOnlySpan<char>>();

    private static Dictionary<string, Keyword> BuildKeywords()
    {
        var d = new Dictionary<string, Keyword>(StringComparer.Ordinal);
        foreach (var name in Fields.Names)
        {
            var f = Fields.Find(name)!;
            d[name] = new Keyword(KwKind.Field, f, StyleOf(f), MaxOf(f), 0, -1);
        }

        d["table"] = new Keyword(KwKind.Table, null, Style.Int, 254, 0, -1);
        d["priority"] = new Keyword(KwKind.Priority, null, Style.Int, 65535, 0, -1);
        d["cookie"] = new Keyword(KwKind.Cookie, null, Style.Int, ulong.MaxValue, 0, -1);
        d["idle_timeout"] = new Keyword(KwKind.IdleTimeout, null, Style.Int, 65535, 0, -1);
        d["hard_timeout"] = new Keyword(KwKind.HardTimeout, null, Style.Int, 65535, 0, -1);
        d["actions"] = new Keyword(KwKind.Actions, null, Style.Int, 0, 0, -1);
        void Sh(string n, ushort dlType, int proto) => d[n] = new Keyword(KwKind.Shorthand, null, Style.Int, 0, dlType, proto);
        Sh("ip", KeyExtractor.EthIp, -1);
        Sh("ipv6", KeyExtractor.EthIpv6, -1);
        Sh("arp", KeyExtractor.EthArp, -1);
        Sh("tcp", KeyExtractor.EthIp, KeyExtractor.ProtoTcp);
        Sh("udp", KeyExtractor.EthIp, KeyExtractor.ProtoUdp);
        Sh("icmp", KeyExtractor.EthIp, KeyExtractor.ProtoIcmp);
        Sh("tcp6", KeyExtractor.EthIpv6, KeyExtractor.ProtoTcp);
        Sh("udp6", KeyExtractor.EthIpv6, KeyExtractor.ProtoUdp);
        Sh("icmp6", KeyExtractor.EthIpv6, KeyExtractor.ProtoIcmpv6);
        return d;
    }

    internal static Style StyleOf(FieldDef f)
    {
        if (ReferenceEquals(f, Fields.InPort) || ReferenceEquals(f, Fields.DlType) || ReferenceEquals(f, Fields.NwProto)
            || ReferenceEquals(f, Fields.ArpOp))
        {
            return Style.IntExact;
        }

        if (ReferenceEquals(f, Fields.DlSrc) || ReferenceEquals(f, Fields.DlDst))
        {
            return Style.Mac;
        }

        if (ReferenceEquals(f, Fields.NwSrc) || ReferenceEquals(f, Fields.NwDst) || ReferenceEquals(f, Fields.ArpSpa)
            || ReferenceEquals(f, Fields.ArpTpa))
        {
            return Style.Ipv4;
        }

        if (f.IsWide)
        {
            return Style.Ipv6;
        }

        if (ReferenceEquals(f, Fields.DlVlan))
        {
            return Style.Vlan;
        }

        if (ReferenceEquals(f, Fields.DlVlanPcp))
        {
            return Style.VlanPcp;
        }

        if (ReferenceEquals(f, Fields.NwFrag))
        {
            return Style.Frag;
        }

        if (ReferenceEquals(f, Fields.TcpFlags))
        {
            return Style.TcpFlags;
        }

        return ReferenceEquals(f, Fields.CtState) ? Style.CtState : Style.Int;
    }

    private static ulong MaxOf(FieldDef f)
    {
        if (ReferenceEquals(f, Fields.IcmpType) || ReferenceEquals(f, Fields.IcmpCode))
        {
            return 255;
        }

        if (ReferenceEquals(f, Fields.TcpFlags))
        {
            return 0xFFF;
        }

        if (ReferenceEquals(f, Fields.DlVlan))
        {
            return 4095;
        }

        return f.IsWide ? ulong.MaxValue : f.WordMask >> f.Shift;
    }

    internal static readonly (string Name, ushort Bit)[] TcpFlagNames =
    [
        ("fin", 0x001), ("syn", 0x002), ("rst", 0x004), ("psh", 0x008), ("ack", 0x010), ("urg", 0x020),
        ("ece", 0x040), ("cwr", 0x080), ("ns", 0x100),
    ];

    internal static readonly (string Name, ushort Bit)[] CtStateNames =
    [
        ("new", 0x01), ("est", 0x02), ("rel", 0x04), ("rpl", 0x08), ("inv", 0x10), ("trk", 0x20), ("snat", 0x40),
        ("dnat", 0x80),
    ];

    private static string Suggest(ReadOnlySpan<char> name)
    {
        var s = name.ToString();
        var close = s_keywords.Keys
            .Select(k => (k, d: Distance(s, k)))
            .Where(x => x.d <= 2 || (s.Length >= 3 && (x.k.StartsWith(s, StringComparison.Ordinal) || x.k.Contains(s, StringComparison.Ordinal))))
            .OrderBy(x => x.d).ThenBy(x => x.k, StringComparer.Ordinal)
            .Take(3).Select(x => "'" + x.k + "'").ToList();
        return close.Count == 0 ? "" : $" (did you mean {string.Join(" or ", close)}?)";
    }

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

    // ---------------------------------------------------------------------------------------------
    // Value syntax (shared with the formatter's tests and the action parser)

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool TryParseU64(ReadOnlySpan<char> s, out ulong v)
    {
        if (s.Length > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        {
            return ulong.TryParse(s[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out v);
        }

        return ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v);
    }

    private static bool TryParseU128(ReadOnlySpan<char> s, out UInt128 v)
    {
        if (s.Length > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        {
            return UInt128.TryParse(s[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out v);
        }

        return UInt128.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool TryParseIpv4(ReadOnlySpan<char> s, out uint a)
    {
        a = 0;
        int i = 0;
        for (int k = 0; k < 4; k++)
        {
            if (k > 0)
            {
                if (i >= s.Length || s[i] != '.')
                {
                    return false;
                }

                i++;
            }

            int start = i;
            uint x = 0;
            while (i < s.Length && char.IsAsciiDigit(s[i]) && i - start < 3)
            {
                x = (x * 10) + (uint)(s[i] - '0');
                i++;
            }

            if (i == start || x > 255)
            {
                return false;
            }

            a = (a << 8) | x;
        }

        return i == s.Length;
    }

    internal static bool TryParseIpv6(ReadOnlySpan<char> s, out UInt128 a)
    {
        a = default;
        if (s.IsEmpty || s.IndexOf('%') >= 0 || !IPAddress.TryParse(s, out var ip) || ip.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return false;
        }

        Span<byte> b = stackalloc byte[16];
        if (!ip.TryWriteBytes(b, out int n) || n != 16)
        {
            return false;
        }

        a = BinaryPrimitives.ReadUInt128BigEndian(b);
        return true;
    }

    internal static bool TryParseMac(ReadOnlySpan<char> s, out ulong mac)
    {
        mac = 0;
        int i = 0;
        for (int k = 0; k < 6; k++)
        {
            if (k > 0)
            {
                if (i >= s.Length || s[i] != ':')
                {
                    return false;
                }

                i++;
            }

            int start = i;
            ulong x = 0;
            while (i < s.Length && char.IsAsciiHexDigit(s[i]) && i - start < 2)
            {
                x = (x << 4) | HexVal(s[i]);
                i++;
            }

            if (i == start)
            {
                return false;
            }

            mac = (mac << 8) | x;
        }

        return i == s.Length;
    }

    private static ulong HexVal(char c) => (ulong)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);

    private static string Found(ReadOnlySpan<char> s) => s.IsEmpty ? "nothing" : "'" + s.ToString() + "'";

    // ---------------------------------------------------------------------------------------------
    // The line parser

    /// <summary>Who set which bits of the match (for duplicate, contradiction and prerequisite messages).</summary>
    private struct Claim
    {
        public FieldDef? Field;
        public int Start;
        public int End;
        public int W1;
        public ulong B1;
        public int W2;
        public ulong B2;
    }

    [InlineArray(48)]
    private struct ClaimBuffer
    {
        private Claim _e;
    }

    [ThreadStatic]
    private static List<FlowAction>? t_actions;

    private unsafe ref struct LineParser
    {
        private readonly ReadOnlySpan<char> _s;
        private readonly string _origin;
        private readonly int _lineNo;
        private readonly Mode _mode;
        private ClaimBuffer _claims;
        private int _nClaims;
        private int _actionsAt;
        private bool _sawIdle;
        private bool _sawHard;

        public FlowMatch Match;
        public int? Table;
        public int? Priority;
        public ulong? Cookie;
        public ulong? CookieMask;
        public int IdleTimeout;
        public int HardTimeout;

        public LineParser(ReadOnlySpan<char> s, string origin, int lineNo, Mode mode)
        {
            _s = s;
            _origin = origin;
            _lineNo = lineNo;
            _mode = mode;
            _actionsAt = -1;
        }

        [DoesNotReturn]
        private readonly void Fail(int index, string detail) =>
            throw new FlowSyntaxException(_origin, _lineNo, index + 1, detail);

        private static bool IsSep(char c) => c is ',' or ' ' or '\t';

        private readonly int SkipSeps(int pos)
        {
            while (pos < _s.Length && IsSep(_s[pos]))
            {
                pos++;
            }

            return pos;
        }

        private readonly int TokenEnd(int pos)
        {
            while (pos < _s.Length && !IsSep(_s[pos]))
            {
                pos++;
            }

            return pos;
        }

        /// <summary>Reads everything before "actions=" (or the whole line outside rule mode) and checks prerequisites.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run()
        {
            var s = _s;
            int pos = 0;
            while (true)
            {
                pos = SkipSeps(pos);
                if (pos >= s.Length)
                {
                    break;
                }

                int start = pos;
                while (pos < s.Length && s[pos] != '=' && !IsSep(s[pos]))
                {
                    pos++;
                }

                var name = s[start..pos];
                bool hasValue = pos < s.Length && s[pos] == '=';
                if (name.IsEmpty)
                {
                    Fail(start, $"expected a field name, found {Found(s[start..TokenEnd(start)])}");
                }

                if (!s_lookup.TryGetValue(name, out var kw))
                {
                    string what = _mode == Mode.Packet ? "a field name or protocol" : "a field name, protocol or keyword";
                    Fail(start, $"expected {what}, found '{name}'{Suggest(name)}");
                }

                if (kw.Kind == KwKind.Actions)
                {
                    if (_mode != Mode.Rule)
                    {
                        Fail(start, _mode == Mode.Match
                            ? "expected a match field (a match-only string takes no 'actions='), found 'actions'"
                            : "expected a packet field (a packet takes no 'actions='), found 'actions'");
                    }

                    if (!hasValue)
                    {
                        Fail(pos, $"expected '=' after 'actions', found {Found(s[pos..TokenEnd(pos)])}");
                    }

                    _actionsAt = pos + 1;
                    break;
                }

                if (kw.Kind == KwKind.Shorthand)
                {
                    if (hasValue)
                    {
                        Fail(pos, $"expected ',' after '{name}' (a protocol takes no value), found {Found(s[pos..TokenEnd(pos)])}");
                    }

                    ApplyShorthand(kw, start, pos);
                    continue;
                }

                if (!hasValue)
                {
                    Fail(pos, $"expected '=' and a value after '{name}', found {Found(s[pos..TokenEnd(pos)])}");
                }

                int valStart = pos + 1;
                int valEnd = TokenEnd(valStart);
                var value = s[valStart..valEnd];
                if (kw.Kind == KwKind.Field)
                {
                    ParseField(kw, name, start, valStart, value);
                }
                else
                {
                    ParseKeyword(kw, name, start, valStart, value);
                }

                pos = valEnd;
            }

            if (_mode == Mode.Rule && _actionsAt < 0)
            {
                Fail(s.Length, "expected 'actions=' at the end of the rule, found the end of the line");
            }

            CheckPrerequisites();
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void ParseKeyword(Keyword kw, ReadOnlySpan<char> name, int start, int valStart, ReadOnlySpan<char> value)
        {
            if (_mode == Mode.Packet)
            {
                Fail(start, $"expected a packet field, found '{name}' (a rule keyword)");
            }

            switch (kw.Kind)
            {
                case KwKind.Cookie:
                {
                    if (Cookie.HasValue)
                    {
                        Fail(start, "duplicate 'cookie'");
                    }

                    int slash = value.IndexOf('/');
                    var v = slash < 0 ? value : value[..slash];
                    if (!TryParseU64(v, out ulong c))
                    {
                        Fail(valStart, $"expected a 64-bit cookie (0x hex or decimal) after 'cookie=', found {Found(value)}");
                    }

                    Cookie = c;
                    if (slash >= 0)
                    {
                        if (_mode == Mode.Rule)
                        {
                            Fail(valStart + slash, "expected a cookie without '/mask' (masks are for del-flows and mod-flows matches)");
                        }

                        if (!TryParseU64(value[(slash + 1)..], out ulong cm))
                        {
                            Fail(valStart + slash + 1, $"expected a 64-bit cookie mask after '/', found {Found(value[(slash + 1)..])}");
                        }

                        CookieMask = cm;
                    }

                    return;
                }

                case KwKind.IdleTimeout or KwKind.HardTimeout when _mode == Mode.Match:
                    Fail(start, $"expected a match field, found '{name}' (timeouts belong to add-flow rules)");
                    return;
            }

            if (!TryParseU64(value, out ulong n) || n > kw.Max)
            {
                Fail(valStart, $"expected an integer from 0 to {kw.Max} after '{name}=', found {Found(value)}");
            }

            bool dup;
            switch (kw.Kind)
            {
                case KwKind.Table:
                    dup = Table.HasValue;
                    Table = (int)n;
                    break;
                case KwKind.Priority:
                    dup = Priority.HasValue;
                    Priority = (int)n;
                    break;
                case KwKind.IdleTimeout:
                    dup = _sawIdle;
                    _sawIdle = true;
                    IdleTimeout = (int)n;
                    break;
                default:
                    dup = _sawHard;
                    _sawHard = true;
                    HardTimeout = (int)n;
                    break;
            }

            if (dup)
            {
                Fail(start, $"duplicate '{name}'");
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void ApplyShorthand(Keyword kw, int start, int end)
        {
            ulong typeBits = 0xFFFFUL << 16;
            ulong protoBits = 0xFFUL << 48;
            ulong typeVal = (ulong)kw.DlType << 16;
            ulong protoVal = kw.Proto >= 0 ? (ulong)kw.Proto << 48 : 0;
            CheckConsistent(0, typeBits, typeVal, start, end);
            if (kw.Proto >= 0)
            {
                CheckConsistent(1, protoBits, protoVal, start, end);
            }

            Merge(0, typeBits, typeVal);
            if (kw.Proto >= 0)
            {
                Merge(1, protoBits, protoVal);
            }

            AddClaim(new Claim
            {
                Field = null, Start = start, End = end, W1 = 0, B1 = typeBits, W2 = 1, B2 = kw.Proto >= 0 ? protoBits : 0,
            });
        }

        private void AddClaim(in Claim c)
        {
            if (_nClaims == 48)
            {
                Fail(c.Start, "expected at most 48 match items in one rule");
            }

            _claims[_nClaims++] = c;
        }

        private void Merge(int word, ulong mask, ulong value)
        {
            Match.Mask.W[word] |= mask;
            Match.Value.W[word] |= value & mask;
        }

        /// <summary>Fails when bits already matched by an earlier item disagree with the new value.</summary>
        private readonly void CheckConsistent(int word, ulong mask, ulong value, int start, int end)
        {
            ulong both = Match.Mask.W[word] & mask;
            ulong diff = (Match.Value.W[word] ^ value) & both;
            if (diff == 0)
            {
                return;
            }

            for (int i = 0; i < _nClaims; i++)
            {
                ref readonly var c = ref _claims[i];
                if ((c.W1 == word && (c.B1 & diff) != 0) || (c.W2 == word && (c.B2 & diff) != 0))
                {
                    Fail(start, $"'{_s[start..end]}' contradicts '{_s[c.Start..c.End]}' at column {c.Start + 1}");
                }
            }

            Fail(start, $"'{_s[start..end]}' contradicts an earlier item");
        }

        private readonly void CheckDuplicate(FieldDef f, ReadOnlySpan<char> name, int start)
        {
            for (int i = 0; i < _nClaims; i++)
            {
                ref readonly var c = ref _claims[i];
                if (c.Field is { } g && Overlap(f, g))
                {
                    var other = _s[c.Start..c.End];
                    int eq = other.IndexOf('=');
                    var otherName = eq < 0 ? other : other[..eq];
                    string also = otherName.SequenceEqual(name) ? "" : $" as '{otherName}'";
                    Fail(start, $"duplicate field '{name}' (already matched at column {c.Start + 1}{also})");
                }
            }
        }

        private static bool Overlap(FieldDef a, FieldDef b)
        {
            if (ReferenceEquals(a, b))
            {
                return true;
            }

            if (a.IsWide || b.IsWide)
            {
                int a2 = a.IsWide ? a.Word + 1 : a.Word;
                int b2 = b.IsWide ? b.Word + 1 : b.Word;
                return a.Word <= b2 && b.Word <= a2;
            }

            return a.Word == b.Word && (a.WordMask & b.WordMask) != 0;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void ParseField(Keyword kw, ReadOnlySpan<char> name, int start, int valStart, ReadOnlySpan<char> value)
        {
            var f = kw.Field!;
            CheckDuplicate(f, name, start);
            int end = valStart + value.Length;
            int word = f.Word;
            int shift = f.Shift;
            ulong v, m;
            switch (kw.Style)
            {
                case Style.Ipv6:
                {
                    ParseIpv6Value(name, valStart, value, _mode == Mode.Packet, out var v128, out var m128);
                    ulong hiM = (ulong)(m128 >> 64), loM = (ulong)m128;
                    ulong hiV = (ulong)(v128 >> 64), loV = (ulong)v128;
                    CheckConsistent(word, hiM, hiV, start, end);
                    CheckConsistent(word + 1, loM, loV, start, end);
                    Merge(word, hiM, hiV);
                    Merge(word + 1, loM, loV);
                    AddClaim(new Claim { Field = f, Start = start, End = end, W1 = word, B1 = hiM, W2 = word + 1, B2 = loM });
                    return;
                }

                case Style.Vlan:
                    ParseVlan(name, valStart, value, out v, out m);
                    word = Fields.VlanTci.Word;
                    shift = Fields.VlanTci.Shift;
                    break;
                case Style.VlanPcp:
                    if (!TryParseU64(value, out v) || v > 7)
                    {
                        Fail(valStart, $"expected a priority from 0 to 7 after '{name}=', found {Found(value)}");
                    }

                    v = (v << 13) | KeyExtractor.VlanPresent;
                    m = 0xE000 | KeyExtractor.VlanPresent;
                    word = Fields.VlanTci.Word;
                    shift = Fields.VlanTci.Shift;
                    break;
                case Style.Mac:
                    ParseMacValue(name, valStart, value, _mode == Mode.Packet, out v, out m);
                    break;
                case Style.Ipv4:
                    ParseIpv4Value(name, valStart, value, _mode == Mode.Packet, out v, out m);
                    break;
                case Style.Frag:
                    ParseFrag(name, valStart, value, out v, out m);
                    break;
                case Style.TcpFlags:
                    ParseFlagsOrInt(kw, name, valStart, value, TcpFlagNames, out v, out m);
                    break;
                case Style.CtState:
                    ParseFlagsOrInt(kw, name, valStart, value, CtStateNames, out v, out m);
                    break;
                default:
                    ParseIntValue(kw, name, valStart, value, kw.Style == Style.IntExact || _mode == Mode.Packet, out v, out m);
                    break;
            }

            ulong wm = m << shift;
            ulong wv = (v << shift) & wm;
            CheckConsistent(word, wm, wv, start, end);
            Merge(word, wm, wv);
            AddClaim(new Claim { Field = f, Start = start, End = end, W1 = word, B1 = wm, W2 = -1 });
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void ParseIntValue(Keyword kw, ReadOnlySpan<char> name, int valStart, ReadOnlySpan<char> value,
            bool exact, out ulong v, out ulong m)
        {
            var f = kw.Field!;
            ulong full = f.WordMask >> f.Shift;
            int slash = value.IndexOf('/');
            var vs = slash < 0 ? value : value[..slash];
            if (!TryParseU64(vs, out v) || v > kw.Max)
            {
                string range = kw.Max > 0xFFFF ? $"0 to 0x{kw.Max:x}" : $"0 to {kw.Max}";
                Fail(valStart, $"expected an integer from {range} after '{name}=', found {Found(value)}");
            }

            if (slash < 0)
            {
                m = full;
                return;
            }

            if (exact)
            {
                string why = _mode == Mode.Packet ? "a packet field takes an exact value" : $"'{name}' cannot be masked";
                Fail(valStart + slash, $"expected an exact value after '{name}=' ({why}), found {Found(value)}");
            }

            var ms = value[(slash + 1)..];
            if (!TryParseU64(ms, out m) || m > full)
            {
                Fail(valStart + slash + 1, $"expected a mask from 0 to 0x{full:x} after '{name}={vs}/', found {Found(ms)}");
            }
        }

        private readonly void ParseFlagsOrInt(Keyword kw, ReadOnlySpan<char> name, int valStart, ReadOnlySpan<char> value,
            (string Name, ushort Bit)[] table, out ulong v, out ulong m)
        {
            if (value.IsEmpty || (value[0] != '+' && value[0] != '-'))
            {
                ParseIntValue(kw, name, valStart, value, _mode == Mode.Packet, out v, out m);
                return;
            }

            v = 0;
            m = 0;
            int i = 0;
            while (i < value.Length)
            {
                int at = i;
                bool plus = value[i] == '+';
                if (!plus && value[i] != '-')
                {
                    Fail(valStart + i, $"expected '+' or '-' before a flag name in '{name}=', found {Found(value[i..])}");
                }

                i++;
                int ns = i;
                while (i < value.Length && value[i] != '+' && value[i] != '-')
                {
                    i++;
                }

                var flag = value[ns..i];
                ushort bit = 0;
                foreach (var (n, b) in table)
                {
                    if (flag.SequenceEqual(n))
                    {
                        bit = b;
                        break;
                    }
                }

                if (bit == 0)
                {
                    string names = string.Join(", ", table.Select(t => t.Name));
                    Fail(valStart + ns, $"expected a flag name ({names}) after '{value[at]}', found {Found(flag)}");
                }

                if ((m & bit) != 0)
                {
                    Fail(valStart + ns, $"duplicate flag '{flag}' in '{name}='");
                }

                m |= bit;
                if (plus)
                {
                    v |= bit;
                }
            }

            if (_mode == Mode.Packet)
            {
                m = kw.Field!.WordMask >> kw.Field.Shift;
            }
        }

        private readonly void ParseVlan(ReadOnlySpan<char> name, int valStart, ReadOnlySpan<char> value, out ulong v, out ulong m)
        {
            int slash = value.IndexOf('/');
            var vs = slash < 0 ? value : value[..slash];
            // vlan_vid also takes OpenFlow 1.2's form, 0x1000 | VID (the tag-present bit included).
            ulong max = name.SequenceEqual("vlan_vid") ? 0x1FFFUL : 0xFFFUL;
            if (!TryParseU64(vs, out ulong vid) || (vid > max && vid != 0xFFFF) || (vid == 0xFFFF && slash >= 0))
            {
                Fail(valStart, max == 0xFFF
                    ? $"expected a VLAN id from 0 to 4095 (or 0xffff: no tag) after '{name}=', found {Found(value)}"
                    : $"expected a VLAN id from 0 to 4095 or 0x1000|VID (or 0xffff: no tag) after '{name}=', found {Found(value)}");
            }

            if (vid == 0xFFFF)
            {
                v = 0;
                m = KeyExtractor.VlanPresent;
                return;
            }

            ulong vm = 0xFFF;
            if (slash >= 0)
            {
                if (_mode == Mode.Packet)
                {
                    Fail(valStart + slash, $"expected an exact value after '{name}=' (a packet field takes an exact value), found {Found(value)}");
                }

                var ms = value[(slash + 1)..];
                if (!TryParseU64(ms, out vm) || vm > 0x1FFF)
                {
                    Fail(valStart + slash + 1, $"expected a VLAN id mask from 0 to 0xfff after '{name}={vs}/', found {Found(ms)}");
                }

                vm &= 0xFFF;
            }

            v = (vid & 0xFFF) | KeyExtractor.VlanPresent;
            m = vm | KeyExtractor.VlanPresent;
        }

        private readonly void ParseFrag(ReadOnlySpan<char> name, int valStart, ReadOnlySpan<char> value, out ulong v, out ulong m)
        {
            bool packet = _mode == Mode.Packet;
            switch (value)
            {
                case "no":
                    (v, m) = (0, packet ? 0xFFUL : 1);
                    return;
                case "first":
                    (v, m) = (1, packet ? 0xFFUL : 3);
                    return;
                case "later":
                    (v, m) = (3, packet ? 0xFFUL : 3);
                    return;
                case "yes" when !packet:
                    (v, m) = (1, 1);
                    return;
                case "not_later" when !packet:
                    (v, m) = (0, 2);
                    return;
            }

            var vs = value.IndexOf('/') is var sl and >= 0 ? value[..sl] : value;
            if (TryParseU64(vs, out _))
            {
                ParseIntValue(s_keywords["ip_frag"], name, valStart, value, packet, out v, out m);
                if (v <= 3)
                {
                    return;
                }
            }

            Fail(valStart, packet
                ? $"expected no, first or later after '{name}=', found {Found(value)}"
                : $"expected no, yes, first, later or not_later after '{name}=', found {Found(value)}");
            v = m = 0;
        }

        private readonly void ParseMacValue(ReadOnlySpan<char> name, int valStart, ReadOnlySpan<char> value, bool exact,
            out ulong v, out ulong m)
        {
            int slash = value.IndexOf('/');
            var vs = slash < 0 ? value : value[..slash];
            if (!TryParseMac(vs, out v))
            {
                Fail(valStart, $"expected a MAC address (aa:bb:cc:dd:ee:ff) after '{name}=', found {Found(value)}");
            }

            m = FlowKey.Mac48;
            if (slash < 0)
            {
                return;
            }

            if (exact)
            {
                Fail(valStart + slash, $"expected an exact value after '{name}=' (a packet field takes an exact value), found {Found(value)}");
            }

            var ms = value[(slash + 1)..];
            if (!TryParseMac(ms, out m))
            {
                Fail(valStart + slash + 1, $"expected a MAC mask (ff:ff:ff:00:00:00) after '{name}={vs}/', found {Found(ms)}");
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void ParseIpv4Value(ReadOnlySpan<char> name, int valStart, ReadOnlySpan<char> value, bool exact,
            out ulong v, out ulong m)
        {
            int slash = value.IndexOf('/');
            var vs = slash < 0 ? value : value[..slash];
            if (!TryParseIpv4(vs, out uint a))
            {
                Fail(valStart, exact
                    ? $"expected an IPv4 address after '{name}=', found {Found(value)}"
                    : $"expected an IPv4 address or prefix after '{name}=', found {Found(value)}");
            }

            v = a;
            m = 0xFFFF_FFFF;
            if (slash < 0)
            {
                return;
            }

            if (exact)
            {
                Fail(valStart + slash, $"expected an exact value after '{name}=' (a packet field takes an exact value), found {Found(value)}");
            }

            var ms = value[(slash + 1)..];
            if (TryParseU64(ms, out ulong len) && ms.IndexOf('.') < 0)
            {
                if (len <= 32)
                {
                    m = len == 0 ? 0 : (0xFFFF_FFFFUL << (32 - (int)len)) & 0xFFFF_FFFF;
                    return;
                }
            }
            else if (TryParseIpv4(ms, out uint dm))
            {
                m = dm;
                return;
            }

            Fail(valStart + slash + 1, $"expected a prefix length from 0 to 32 or a dotted mask after '{name}={vs}/', found {Found(ms)}");
        }

        private readonly void ParseIpv6Value(ReadOnlySpan<char> name, int valStart, ReadOnlySpan<char> value, bool exact,
            out UInt128 v, out UInt128 m)
        {
            int slash = value.IndexOf('/');
            var vs = slash < 0 ? value : value[..slash];
            if (!TryParseIpv6(vs, out v))
            {
                Fail(valStart, exact
                    ? $"expected an IPv6 address after '{name}=', found {Found(value)}"
                    : $"expected an IPv6 address or prefix after '{name}=', found {Found(value)}");
            }

            m = UInt128.MaxValue;
            if (slash < 0)
            {
                return;
            }

            if (exact)
            {
                Fail(valStart + slash, $"expected an exact value after '{name}=' (a packet field takes an exact value), found {Found(value)}");
            }

            var ms = value[(slash + 1)..];
            if (ulong.TryParse(ms, NumberStyles.None, CultureInfo.InvariantCulture, out ulong len))
            {
                if (len <= 128)
                {
                    m = len == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - (int)len);
                    return;
                }
            }
            else if (TryParseIpv6(ms, out m))
            {
                return;
            }

            Fail(valStart + slash + 1, $"expected a prefix length from 0 to 128 or an IPv6 mask after '{name}={vs}/', found {Found(ms)}");
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void CheckPrerequisites()
        {
            for (int i = 0; i < _nClaims; i++)
            {
                ref readonly var c = ref _claims[i];
                if (c.Field is not { } f || f.Prereq == Prerequisite.Vlan || PrereqOk(f.Prereq, Match))
                {
                    continue;
                }

                var tok = _s[c.Start..c.End];
                int eq = tok.IndexOf('=');
                Fail(c.Start, $"missing prerequisite for '{(eq < 0 ? tok : tok[..eq])}': expected {PrereqText(f.Prereq)} in the match");
            }
        }

        // -----------------------------------------------------------------------------------------
        // Actions

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly FlowAction[] ParseActions()
        {
            var list = t_actions ??= new List<FlowAction>(8);
            list.Clear();
            var s = _s;
            int table = Table ?? 0;
            int pos = _actionsAt;
            int dropAt = -1;
            int gotoAt = -1;
            bool vlan = PrereqOk(Prerequisite.Vlan, Match);
            Span<char> lower = stackalloc char[24];
            while (true)
            {
                pos = SkipSeps(pos);
                if (pos >= s.Length)
                {
                    break;
                }

                int start = pos;
                while (pos < s.Length && !IsSep(s[pos]) && s[pos] is not (':' or '=' or '('))
                {
                    pos++;
                }

                var name = s[start..pos];
                char sep = pos < s.Length ? s[pos] : '\0';
                bool hasArg = false;
                int argAt = pos;
                ReadOnlySpan<char> arg = default;
                if (sep is ':' or '=')
                {
                    pos++;
                    argAt = pos;
                    pos = TokenEnd(pos);
                    arg = s[argAt..pos];
                    hasArg = true;
                }
                else if (sep == '(')
                {
                    pos++;
                    argAt = pos;
                    int depth = 1;
                    while (pos < s.Length)
                    {
                        if (s[pos] == '(')
                        {
                            depth++;
                        }
                        else if (s[pos] == ')' && --depth == 0)
                        {
                            break;
                        }

                        pos++;
                    }

                    if (pos >= s.Length)
                    {
                        Fail(start, $"expected ')' to close '{name}(', found the end of the line");
                    }

                    arg = s[argAt..pos];
                    pos++;
                    hasArg = true;
                    if (pos < s.Length && !IsSep(s[pos]))
                    {
                        Fail(pos, $"expected ',' after '{s[start..pos]}', found {Found(s[pos..TokenEnd(pos)])}");
                    }
                }

                var token = s[start..pos];
                if (gotoAt >= 0)
                {
                    Fail(start, $"expected nothing after 'goto_table' (it must be the last action), found '{token}'");
                }

                if (dropAt >= 0)
                {
                    Fail(start, $"expected nothing after 'drop' (it must be the only action), found '{token}'");
                }

                if (name.IsEmpty)
                {
                    Fail(start, $"expected an action, found '{token}'");
                }

                var head = s[start..argAt]; // "output:", "resubmit(": quoted by the messages below
                if (IsDigits(name) && !hasArg)
                {
                    list.Add(new FlowAction(ActionKind.Output, Port: ParsePort(name, start, default)));
                    continue;
                }

                int n = name.Length <= lower.Length ? name.ToLowerInvariant(lower) : -1;
                var lname = n < 0 ? "" : (ReadOnlySpan<char>)lower[..n];
                FlowAction a;
                switch (lname)
                {
                    case "output":
                        NeedArg(hasArg, name, pos, "a port number");
                        if (arg.Equals("in_port", StringComparison.OrdinalIgnoreCase))
                        {
                            a = new FlowAction(ActionKind.InPort);
                            break;
                        }

                        a = new FlowAction(ActionKind.Output, Port: ParsePort(arg, argAt, head));
                        break;
                    case "in_port":
                        NoArg(hasArg, name, pos);
                        a = new FlowAction(ActionKind.InPort);
                        break;
                    case "drop":
                        NoArg(hasArg, name, pos);
                        if (list.Count > 0)
                        {
                            Fail(start, "expected 'drop' to be the only action, found it after other actions");
                        }

                        dropAt = start;
                        a = new FlowAction(ActionKind.Drop);
                        break;
                    case "flood":
                        NoArg(hasArg, name, pos);
                        a = new FlowAction(ActionKind.Flood);
                        break;
                    case "normal":
                        NoArg(hasArg, name, pos);
                        a = new FlowAction(ActionKind.Normal);
                        break;
                    case "controller":
                        if (hasArg && sep != '(' && !TryParseU64(arg, out _))
                        {
                            Fail(argAt, $"expected a max_len (an integer) after '{name}:', found {Found(arg)}");
                        }

                        a = new FlowAction(ActionKind.Controller);
                        break;
                    case "push_vlan":
                    {
                        NeedArg(hasArg, name, pos, "a TPID (0x8100 or 0x88a8)");
                        if (!TryParseU64(arg, out ulong tpid) || (tpid != KeyExtractor.EthVlan && tpid != KeyExtractor.EthQinQ))
                        {
                            Fail(argAt, $"expected a TPID (0x8100 or 0x88a8) after '{head}', found {Found(arg)}");
                        }

                        vlan = true;
                        a = new FlowAction(ActionKind.PushVlan, Value: tpid);
                        break;
                    }

                    case "pop_vlan" or "strip_vlan":
                        NoArg(hasArg, name, pos);
                        vlan = false;
                        a = new FlowAction(ActionKind.PopVlan);
                        break;
                    case "mod_vlan_vid":
                    {
                        NeedArg(hasArg, name, pos, "a VLAN id");
                        if (!TryParseU64(arg, out ulong vid) || vid > 4095)
                        {
                            Fail(argAt, $"expected a VLAN id from 0 to 4095 after '{head}', found {Found(arg)}");
                        }

                        vlan = true;
                        a = new FlowAction(ActionKind.SetVlanVid, Value: vid);
                        break;
                    }

                    case "mod_vlan_pcp":
                    {
                        NeedArg(hasArg, name, pos, "a priority");
                        if (!TryParseU64(arg, out ulong pcp) || pcp > 7)
                        {
                            Fail(argAt, $"expected a priority from 0 to 7 after '{head}', found {Found(arg)}");
                        }

                        vlan = true;
                        a = new FlowAction(ActionKind.SetVlanPcp, Value: pcp);
                        break;
                    }

                    case "mod_dl_src":
                        a = SetField(Fields.DlSrc, name, start, hasArg, pos, arg, argAt, head, vlan);
                        break;
                    case "mod_dl_dst":
                        a = SetField(Fields.DlDst, name, start, hasArg, pos, arg, argAt, head, vlan);
                        break;
                    case "mod_nw_src":
                        a = SetField(Fields.NwSrc, name, start, hasArg, pos, arg, argAt, head, vlan);
                        break;
                    case "mod_nw_dst":
                        a = SetField(Fields.NwDst, name, start, hasArg, pos, arg, argAt, head, vlan);
                        break;
                    case "mod_tp_src":
                        a = SetField(Fields.TpSrc, name, start, hasArg, pos, arg, argAt, head, vlan);
                        break;
                    case "mod_tp_dst":
                        a = SetField(Fields.TpDst, name, start, hasArg, pos, arg, argAt, head, vlan);
                        break;
                    case "set_field" or "load":
                    {
                        bool load = lname[0] == 'l';
                        NeedArg(hasArg, name, pos, load ? "VALUE->FIELD[]" : "VALUE->FIELD");
                        int arrow = arg.IndexOf("->");
                        if (arrow < 0)
                        {
                            Fail(argAt, $"expected VALUE->FIELD{(load ? "[]" : "")} after '{head}', found {Found(arg)}");
                        }

                        var fname = arg[(arrow + 2)..];
                        int fAt = argAt + arrow + 2;
                        if (load)
                        {
                            if (!fname.EndsWith("[]"))
                            {
                                Fail(fAt, $"expected a whole field 'FIELD[]' after '->' (partial loads are not supported), found {Found(fname)}");
                            }

                            fname = fname[..^2];
                        }

                        if (!s_lookup.TryGetValue(fname, out var fkw) || fkw.Kind != KwKind.Field)
                        {
                            Fail(fAt, $"expected a field name after '->', found {Found(fname)}{(fname.IsEmpty ? "" : Suggest(fname))}");
                        }

                        var field = fkw.Field!;
                        if (!field.Writable)
                        {
                            Fail(fAt, $"expected a writable field after '->' ({WritableNames()}), found '{fname}' (read-only)");
                        }

                        a = load
                            ? LoadField(field, arg[..arrow], argAt, fname, start, vlan)
                            : SetField(field, name, start, true, pos, arg[..arrow], argAt, head, vlan, fname);
                        break;
                    }

                    case "dec_ttl":
                        NoArg(hasArg, name, pos);
                        a = new FlowAction(ActionKind.DecTtl);
                        break;
                    case "write_metadata":
                    {
                        NeedArg(hasArg, name, pos, "VALUE[/MASK]");
                        int slash = arg.IndexOf('/');
                        var vs = slash < 0 ? arg : arg[..slash];
                        if (!TryParseU64(vs, out ulong mv))
                        {
                            Fail(argAt, $"expected a 64-bit value after '{head}', found {Found(arg)}");
                        }

                        ulong mm = ulong.MaxValue;
                        if (slash >= 0 && !TryParseU64(arg[(slash + 1)..], out mm))
                        {
                            Fail(argAt + slash + 1, $"expected a 64-bit mask after '{head}{vs}/', found {Found(arg[(slash + 1)..])}");
                        }

                        a = new FlowAction(ActionKind.WriteMetadata, Value: mv & mm, Mask: mm);
                        break;
                    }

                    case "goto_table":
                    {
                        NeedArg(hasArg, name, pos, "a table number");
                        if (!TryParseU64(arg, out ulong t) || t > 254 || (int)t <= table)
                        {
                            Fail(argAt, table >= 254
                                ? $"expected no goto_table in a rule of table {table} (no later table exists), found '{token}'"
                                : $"expected a table from {table + 1} to 254 after '{head}' (later than the rule's table {table}), found {Found(arg)}");
                        }

                        gotoAt = start;
                        a = new FlowAction(ActionKind.GotoTable, Table: (int)t);
                        break;
                    }

                    case "resubmit":
                        NeedArg(hasArg, name, pos, "a port or (PORT,TABLE)");
                        a = ParseResubmit(arg, argAt, sep == '(', table);
                        break;
                    default:
                        Fail(start, $"expected an action (output:PORT, in_port, drop, flood, normal, controller, push_vlan, "
                            + $"pop_vlan, mod_vlan_vid, mod_vlan_pcp, mod_dl_src, mod_dl_dst, mod_nw_src, mod_nw_dst, mod_tp_src, "
                            + $"mod_tp_dst, set_field, load, dec_ttl, write_metadata, goto_table, resubmit), found '{name}'");
                        return [];
                }

                list.Add(a);
            }

            if (list.Count == 0)
            {
                return [new FlowAction(ActionKind.Drop)];
            }

            return [.. list];
        }

        private static bool IsDigits(ReadOnlySpan<char> s)
        {
            foreach (char c in s)
            {
                if (!char.IsAsciiDigit(c))
                {
                    return false;
                }
            }

            return s.Length > 0;
        }

        private readonly void NeedArg(bool hasArg, ReadOnlySpan<char> name, int pos, string what)
        {
            if (!hasArg)
            {
                Fail(pos, $"expected ':' and {what} after '{name}', found {Found(_s[pos..TokenEnd(pos)])}");
            }
        }

        private readonly void NoArg(bool hasArg, ReadOnlySpan<char> name, int pos)
        {
            if (hasArg)
            {
                Fail(pos, $"expected ',' after '{name}' (it takes no argument), found {Found(_s[pos..TokenEnd(pos)])}");
            }
        }

        private readonly int ParsePort(ReadOnlySpan<char> s, int at, ReadOnlySpan<char> head)
        {
            if (!TryParseU64(s, out ulong p) || p == 0 || p > 0xFF00)
            {
                Fail(at, head.IsEmpty
                    ? $"expected an output port from 1 to 65280, found {Found(s)}"
                    : head[^1] == '('
                        ? $"expected a port number from 1 to 65280 (or nothing for the packet's in_port) in '{head}PORT,TABLE)', found {Found(s)}"
                        : $"expected a port number from 1 to 65280 after '{head}', found {Found(s)}");
            }

            return (int)p;
        }

        private readonly FlowAction ParseResubmit(ReadOnlySpan<char> arg, int argAt, bool paren, int table)
        {
            int port = -1;
            int t = table;
            ReadOnlySpan<char> ps = arg;
            int comma = paren ? arg.IndexOf(',') : -1;
            if (comma >= 0)
            {
                ps = arg[..comma];
                var ts = arg[(comma + 1)..].Trim();
                if (!ts.IsEmpty)
                {
                    if (!TryParseU64(ts, out ulong tv) || tv > 254)
                    {
                        Fail(argAt + comma + 1, $"expected a table from 0 to 254 in 'resubmit(PORT,TABLE)', found {Found(ts)}");
                    }

                    t = (int)tv;
                }
            }

            ps = ps.Trim();
            if (!ps.IsEmpty && !ps.Equals("in_port", StringComparison.OrdinalIgnoreCase))
            {
                port = ParsePort(ps, argAt, paren ? "resubmit(" : "resubmit:");
            }
            else if (ps.IsEmpty && !paren)
            {
                Fail(argAt, "expected a port after 'resubmit:', found nothing");
            }

            return new FlowAction(ActionKind.Resubmit, Port: port, Table: t);
        }

        private readonly FlowAction SetField(FieldDef f, ReadOnlySpan<char> name, int start, bool hasArg, int pos,
            ReadOnlySpan<char> arg, int argAt, ReadOnlySpan<char> head, bool vlan, ReadOnlySpan<char> fieldName = default)
        {
            NeedArg(hasArg, name, pos, "a value");
            var shown = fieldName.IsEmpty ? name : fieldName;
            CheckActionPrereq(f, shown, start, vlan);
            string after = fieldName.IsEmpty ? $"'{head}'" : $"'{head}' (for '{fieldName}')";
            switch (StyleOf(f))
            {
                case Style.Mac:
                    if (!TryParseMac(arg, out ulong mac))
                    {
                        Fail(argAt, $"expected a MAC address (aa:bb:cc:dd:ee:ff) after {After(head, fieldName)}, found {Found(arg)}");
                    }

                    return new FlowAction(ActionKind.SetField, Field: f, Value: mac);
                case Style.Ipv4:
                    if (!TryParseIpv4(arg, out uint ip))
                    {
                        Fail(argAt, $"expected an IPv4 address after {After(head, fieldName)}, found {Found(arg)}");
                    }

                    return new FlowAction(ActionKind.SetField, Field: f, Value: ip);
                case Style.Ipv6:
                    if (!TryParseIpv6(arg, out var ip6))
                    {
                        Fail(argAt, $"expected an IPv6 address after {After(head, fieldName)}, found {Found(arg)}");
                    }

                    return new FlowAction(ActionKind.SetField, Field: f, Value128: ip6);
                default:
                    return IntSet(f, arg, argAt, head, fieldName);
            }
        }

        private readonly FlowAction LoadField(FieldDef f, ReadOnlySpan<char> value, int at, ReadOnlySpan<char> fieldName,
            int start, bool vlan)
        {
            CheckActionPrereq(f, fieldName, start, vlan);
            if (f.IsWide)
            {
                if (!TryParseU128(value, out var v128))
                {
                    Fail(at, $"expected a 128-bit integer after {After("load:", fieldName)}, found {Found(value)}");
                }

                return new FlowAction(ActionKind.SetField, Field: f, Value128: v128);
            }

            return IntSet(f, value, at, "load:", fieldName);
        }

        private static string After(ReadOnlySpan<char> head, ReadOnlySpan<char> fieldName) =>
            fieldName.IsEmpty ? $"'{head}'" : $"'{head}' (for '{fieldName}')";

        private readonly FlowAction IntSet(FieldDef f, ReadOnlySpan<char> arg, int argAt, ReadOnlySpan<char> head,
            ReadOnlySpan<char> fieldName)
        {
            bool of12Vid = fieldName.SequenceEqual("vlan_vid");
            ulong max = ReferenceEquals(f, Fields.DlVlan) ? 4095 : f.WordMask >> f.Shift;
            if (!TryParseU64(arg, out ulong v) || (v > max && !(of12Vid && v is >= 0x1000 and <= 0x1FFF)))
            {
                Fail(argAt, $"expected an integer from 0 to {(max > 0xFFFF ? "0x" + max.ToString("x", CultureInfo.InvariantCulture) : max.ToString(CultureInfo.InvariantCulture))} after {After(head, fieldName)}, found {Found(arg)}");
            }

            if (ReferenceEquals(f, Fields.DlVlan))
            {
                return new FlowAction(ActionKind.SetVlanVid, Value: v & 0xFFF);
            }

            if (ReferenceEquals(f, Fields.DlVlanPcp))
            {
                return new FlowAction(ActionKind.SetVlanPcp, Value: v);
            }

            return new FlowAction(ActionKind.SetField, Field: f, Value: v);
        }

        private readonly void CheckActionPrereq(FieldDef f, ReadOnlySpan<char> name, int start, bool vlan)
        {
            bool ok = f.Prereq == Prerequisite.Vlan ? vlan : PrereqOk(f.Prereq, Match);
            if (!ok)
            {
                Fail(start, $"missing prerequisite for '{name}' in the actions: expected {PrereqText(f.Prereq)} in the match");
            }
        }

        private static string WritableNames() => string.Join(", ", Fields.All.Where(f => f.Writable).Select(f => f.Name));
    }

    // ---------------------------------------------------------------------------------------------
    // Prerequisites

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool PrereqOk(Prerequisite p, in FlowMatch m)
    {
        int dlType = m.GetMask(Fields.DlType) == 0xFFFF ? (int)m.GetValue(Fields.DlType) : -1;
        int proto = m.GetMask(Fields.NwProto) == 0xFF ? (int)m.GetValue(Fields.NwProto) : -1;
        bool v4 = dlType == KeyExtractor.EthIp;
        bool v6 = dlType == KeyExtractor.EthIpv6;
        return p switch
        {
            Prerequisite.None => true,
            Prerequisite.Ip => v4,
            Prerequisite.Ipv6 => v6,
            Prerequisite.IpAny => v4 || v6,
            Prerequisite.Arp => dlType == KeyExtractor.EthArp,
            Prerequisite.Tcp => (v4 || v6) && proto == KeyExtractor.ProtoTcp,
            Prerequisite.Udp => (v4 || v6) && proto == KeyExtractor.ProtoUdp,
            Prerequisite.TcpUdp => (v4 || v6) && proto is KeyExtractor.ProtoTcp or KeyExtractor.ProtoUdp,
            Prerequisite.Icmp => (v4 && proto == KeyExtractor.ProtoIcmp) || (v6 && proto == KeyExtractor.ProtoIcmpv6),
            Prerequisite.Vlan => (m.GetMask(Fields.VlanTci) & m.GetValue(Fields.VlanTci) & KeyExtractor.VlanPresent) != 0,
            _ => false,
        };
    }

    private static string PrereqText(Prerequisite p) => p switch
    {
        Prerequisite.Ip => "'ip' (dl_type=0x0800)",
        Prerequisite.Ipv6 => "'ipv6' (dl_type=0x86dd)",
        Prerequisite.IpAny => "'ip' or 'ipv6' (dl_type=0x0800 or 0x86dd)",
        Prerequisite.Arp => "'arp' (dl_type=0x0806)",
        Prerequisite.Tcp => "'tcp' or 'tcp6' (nw_proto=6 with ip or ipv6)",
        Prerequisite.Udp => "'udp' or 'udp6' (nw_proto=17 with ip or ipv6)",
        Prerequisite.TcpUdp => "'tcp', 'udp', 'tcp6' or 'udp6' (nw_proto=6 or 17 with ip or ipv6)",
        Prerequisite.Icmp => "'icmp' or 'icmp6' (nw_proto=1 with ip, or 58 with ipv6)",
        Prerequisite.Vlan => "a VLAN tag (dl_vlan=N, or push_vlan / mod_vlan_vid earlier in the actions)",
        _ => "nothing",
    };
}

/// <summary>Writes rules, matches, actions and megaflow keys in the syntax <see cref="FlowParser"/> reads.</summary>
public static class FlowFormatter
{
    /// <summary>
    /// With counters, a dump-flows line ("cookie=0x0, duration=1.234s, table=0, n_packets=3,
    /// n_bytes=180, priority=100,ip,nw_dst=192.0.2.0/24,actions=output:2"); duration needs the
    /// current TSC and its frequency (0 prints 0.000s). Without counters, the rule as add-flow takes
    /// it back ("table=0,priority=100,ip,nw_dst=192.0.2.0/24,actions=output:2").
    /// </summary>
    public static string Format(FlowRule r, bool withCounters, ulong nowTsc = 0, ulong tscHz = 0)
    {
        ArgumentNullException.ThrowIfNull(r);
        var sb = new StringBuilder(128);
        var ic = CultureInfo.InvariantCulture;
        if (withCounters)
        {
            double duration = tscHz == 0 || r.InstalledTsc == 0 || nowTsc < r.InstalledTsc
                ? 0
                : (nowTsc - r.InstalledTsc) / (double)tscHz;
            sb.Append(ic, $"cookie=0x{r.Cookie:x}, duration={duration:F3}s, table={r.Table}, ");
            sb.Append(ic, $"n_packets={r.Counters.Packets}, n_bytes={r.Counters.Bytes}, ");
            if (r.IdleTimeout != 0)
            {
                sb.Append(ic, $"idle_timeout={r.IdleTimeout}, ");
            }

            if (r.HardTimeout != 0)
            {
                sb.Append(ic, $"hard_timeout={r.HardTimeout}, ");
            }

            sb.Append(ic, $"priority={r.Priority}");
        }
        else
        {
            sb.Append(ic, $"table={r.Table},priority={r.Priority}");
            if (r.Cookie != 0)
            {
                sb.Append(ic, $",cookie=0x{r.Cookie:x}");
            }

            if (r.IdleTimeout != 0)
            {
                sb.Append(ic, $",idle_timeout={r.IdleTimeout}");
            }

            if (r.HardTimeout != 0)
            {
                sb.Append(ic, $",hard_timeout={r.HardTimeout}");
            }
        }

        int before = sb.Length;
        sb.Append(',');
        AppendMatch(sb, r.Match);
        if (sb.Length == before + 1)
        {
            sb.Length = before;
        }

        sb.Append(",actions=");
        AppendActions(sb, r.Actions);
        return sb.ToString();
    }

    /// <summary>The match as comma-separated fields ("" for match-all).</summary>
    public static string FormatMatch(in FlowMatch m)
    {
        var sb = new StringBuilder(64);
        AppendMatch(sb, m);
        return sb.ToString();
    }

    /// <summary>The action list ("drop" when empty).</summary>
    public static string FormatActions(FlowAction[] a)
    {
        ArgumentNullException.ThrowIfNull(a);
        var sb = new StringBuilder(32);
        AppendActions(sb, a);
        return sb.ToString();
    }

    /// <summary>
    /// A megaflow's key and mask as fields (no protocol shorthands): every field with a non-zero
    /// mask, "field=value" when the mask covers the field and "field=value/mask" otherwise.
    /// </summary>
    public static string FormatKeyMask(in FlowKey key, in FlowKey mask)
    {
        var m = new FlowMatch { Value = key.MaskedBy(mask), Mask = mask };
        var sb = new StringBuilder(96);
        bool arp = m.GetMask(Fields.DlType) == 0xFFFF && m.GetValue(Fields.DlType) == KeyExtractor.EthArp;
        bool icmp = IsIcmp(m);
        foreach (var f in (ReadOnlySpan<FieldDef>)[
            Fields.InPort, Fields.VlanTci, Fields.Vlan2Tci, Fields.DlSrc, Fields.DlDst, Fields.DlType,
            arp ? Fields.ArpSpa : Fields.NwSrc, arp ? Fields.ArpTpa : Fields.NwDst, Fields.Ipv6Src, Fields.Ipv6Dst,
            arp ? Fields.ArpOp : Fields.NwProto, Fields.NwTos, Fields.NwTtl, Fields.NwFrag,
            icmp ? Fields.IcmpType : Fields.TpSrc, icmp ? Fields.IcmpCode : Fields.TpDst, Fields.TcpFlags,
            Fields.Metadata, Fields.Reg0, Fields.Reg1, Fields.CtState, Fields.CtZone, Fields.CtMark])
        {
            AppendField(sb, f, m, raw: true);
        }

        ushort pm = mask.Parse;
        if (pm != 0)
        {
            Sep(sb);
            sb.Append(CultureInfo.InvariantCulture, $"parse=0x{key.Parse & pm:x}");
            if (pm != 0xFFFF)
            {
                sb.Append(CultureInfo.InvariantCulture, $"/0x{pm:x}");
            }
        }

        return sb.ToString();
    }

    private static bool IsIcmp(in FlowMatch m)
    {
        if (m.GetMask(Fields.NwProto) != 0xFF || m.GetMask(Fields.DlType) != 0xFFFF)
        {
            return false;
        }

        ulong t = m.GetValue(Fields.DlType), p = m.GetValue(Fields.NwProto);
        return (t == KeyExtractor.EthIp && p == KeyExtractor.ProtoIcmp) || (t == KeyExtractor.EthIpv6 && p == KeyExtractor.ProtoIcmpv6);
    }

    private static void Sep(StringBuilder sb)
    {
        if (sb.Length > 0 && sb[^1] != ',')
        {
            sb.Append(',');
        }
    }

    private static void AppendMatch(StringBuilder sb, in FlowMatch m)
    {
        int start = sb.Length;
        void S()
        {
            if (sb.Length > start)
            {
                sb.Append(',');
            }
        }

        // ovs-ofctl's order: metadata and registers, then the protocol, in_port, L2, L3, L4.
        foreach (var f in (ReadOnlySpan<FieldDef>)[Fields.Metadata, Fields.Reg0, Fields.Reg1, Fields.CtState, Fields.CtZone, Fields.CtMark])
        {
            if (Masked(f, m))
            {
                S();
                AppendField(sb, f, m, raw: false);
            }
        }

        bool typeExact = m.GetMask(Fields.DlType) == 0xFFFF;
        ulong dlType = m.GetValue(Fields.DlType);
        bool protoExact = m.GetMask(Fields.NwProto) == 0xFF;
        ulong proto = m.GetValue(Fields.NwProto);
        string? shorthand = null;
        bool protoDone = false;
        if (typeExact)
        {
            bool v6 = dlType == KeyExtractor.EthIpv6;
            if (dlType == KeyExtractor.EthIp || v6)
            {
                shorthand = v6 ? "ipv6" : "ip";
                if (protoExact)
                {
                    string? p = proto switch
                    {
                        KeyExtractor.ProtoTcp => v6 ? "tcp6" : "tcp",
                        KeyExtractor.ProtoUdp => v6 ? "udp6" : "udp",
                        KeyExtractor.ProtoIcmp when !v6 => "icmp",
                        KeyExtractor.ProtoIcmpv6 when v6 => "icmp6",
                        _ => null,
                    };
                    if (p != null)
                    {
                        shorthand = p;
                        protoDone = true;
                    }
                }
            }
            else if (dlType == KeyExtractor.EthArp)
            {
                shorthand = "arp";
            }
        }

        if (shorthand != null)
        {
            S();
            sb.Append(shorthand);
        }

        if (Masked(Fields.InPort, m))
        {
            S();
            AppendField(sb, Fields.InPort, m, raw: false);
        }

        AppendVlan(sb, m, S);
        foreach (var f in (ReadOnlySpan<FieldDef>)[Fields.Vlan2Tci, Fields.DlSrc, Fields.DlDst])
        {
            if (Masked(f, m))
            {
                S();
                AppendField(sb, f, m, raw: false);
            }
        }

        if (shorthand == null && Masked(Fields.DlType, m))
        {
            S();
            AppendField(sb, Fields.DlType, m, raw: false);
        }

        bool arp = typeExact && dlType == KeyExtractor.EthArp;
        bool icmp = IsIcmp(m);
        FieldDef protoField = arp ? Fields.ArpOp : Fields.NwProto;
        foreach (var f in (ReadOnlySpan<FieldDef>)[
            arp ? Fields.ArpSpa : Fields.NwSrc, arp ? Fields.ArpTpa : Fields.NwDst, Fields.Ipv6Src, Fields.Ipv6Dst,
            protoField, Fields.NwTos, Fields.NwTtl, Fields.NwFrag,
            icmp ? Fields.IcmpType : Fields.TpSrc, icmp ? Fields.IcmpCode : Fields.TpDst, Fields.TcpFlags])
        {
            if ((ReferenceEquals(f, protoField) && protoDone) || !Masked(f, m))
            {
                continue;
            }

            S();
            AppendField(sb, f, m, raw: false);
        }
    }

    private static bool Masked(FieldDef f, in FlowMatch m)
    {
        if (f.IsWide)
        {
            unsafe
            {
                return (m.Mask.W[f.Word] | m.Mask.W[f.Word + 1]) != 0;
            }
        }

        return m.GetMask(f) != 0;
    }

    private static void AppendVlan(StringBuilder sb, in FlowMatch m, Action sep)
    {
        ulong tm = m.GetMask(Fields.VlanTci);
        if (tm == 0)
        {
            return;
        }

        ulong tv = m.GetValue(Fields.VlanTci);
        ulong vidMask = tm & 0xFFF, pcpMask = tm & 0xE000;
        if ((tm & KeyExtractor.VlanPresent) != 0 && (tv & KeyExtractor.VlanPresent) != 0
            && vidMask is 0 or 0xFFF && pcpMask is 0 or 0xE000 && (vidMask | pcpMask) != 0)
        {
            if (vidMask != 0)
            {
                sep();
                sb.Append(CultureInfo.InvariantCulture, $"dl_vlan={tv & 0xFFF}");
            }

            if (pcpMask != 0)
            {
                sep();
                sb.Append(CultureInfo.InvariantCulture, $"dl_vlan_pcp={tv >> 13}");
            }

            return;
        }

        sep();
        AppendField(sb, Fields.VlanTci, m, raw: true);
    }

    /// <summary>Appends "name=value[/mask]" for one field of the match.</summary>
    private static void AppendField(StringBuilder sb, FieldDef f, in FlowMatch m, bool raw)
    {
        var ic = CultureInfo.InvariantCulture;
        if (f.IsWide)
        {
            UInt128 mask, value;
            unsafe
            {
                mask = new UInt128(m.Mask.W[f.Word], m.Mask.W[f.Word + 1]);
                value = new UInt128(m.Value.W[f.Word], m.Value.W[f.Word + 1]);
            }

            if (mask == 0)
            {
                return;
            }

            if (raw)
            {
                Sep(sb);
            }

            sb.Append(f.Name).Append('=').Append(Ipv6Text(value));
            if (mask != UInt128.MaxValue)
            {
                int len = PrefixLen128(mask);
                sb.Append('/');
                if (len >= 0)
                {
                    sb.Append(len);
                }
                else
                {
                    sb.Append(Ipv6Text(mask));
                }
            }

            return;
        }

        ulong mk = m.GetMask(f);
        if (mk == 0)
        {
            return;
        }

        if (raw)
        {
            Sep(sb);
        }

        ulong v = m.GetValue(f);
        ulong full = f.WordMask >> f.Shift;
        sb.Append(f.Name).Append('=');
        switch (FlowParser.StyleOf(f))
        {
            case FlowParser.Style.Mac:
                AppendMac(sb, v);
                if (mk != full)
                {
                    sb.Append('/');
                    AppendMac(sb, mk);
                }

                return;
            case FlowParser.Style.Ipv4:
                AppendIpv4(sb, (uint)v);
                if (mk != full)
                {
                    int len = PrefixLen32((uint)mk);
                    sb.Append('/');
                    if (len >= 0)
                    {
                        sb.Append(len);
                    }
                    else
                    {
                        AppendIpv4(sb, (uint)mk);
                    }
                }

                return;
            case FlowParser.Style.Frag:
                string? name = (v, mk) switch
                {
                    (0, 1) => "no",
                    (1, 1) => "yes",
                    (1, 3) => "first",
                    (3, 3) => "later",
                    (0, 2) => "not_later",
                    _ => null,
                };
                if (name != null && !raw)
                {
                    sb.Append(name);
                    return;
                }

                break;
            case FlowParser.Style.TcpFlags when !raw && mk != full && (mk & ~0x1FFUL) == 0:
                AppendFlags(sb, FlowParser.TcpFlagNames, v, mk);
                return;
            case FlowParser.Style.CtState when !raw && mk != full:
                AppendFlags(sb, FlowParser.CtStateNames, v, mk);
                return;
        }

        bool dec = ReferenceEquals(f, Fields.InPort) || ReferenceEquals(f, Fields.TpSrc) || ReferenceEquals(f, Fields.TpDst)
            || ReferenceEquals(f, Fields.IcmpType) || ReferenceEquals(f, Fields.IcmpCode) || ReferenceEquals(f, Fields.NwProto)
            || ReferenceEquals(f, Fields.ArpOp) || ReferenceEquals(f, Fields.NwTos) || ReferenceEquals(f, Fields.NwTtl)
            || ReferenceEquals(f, Fields.CtZone);
        if (mk == full)
        {
            if (dec)
            {
                sb.Append(v);
            }
            else if (ReferenceEquals(f, Fields.DlType) || ReferenceEquals(f, Fields.VlanTci) || ReferenceEquals(f, Fields.Vlan2Tci))
            {
                sb.Append(ic, $"0x{v:x4}");
            }
            else
            {
                sb.Append(ic, $"0x{v:x}");
            }
        }
        else
        {
            sb.Append(ic, $"0x{v:x}/0x{mk:x}");
        }
    }

    private static void AppendFlags(StringBuilder sb, (string Name, ushort Bit)[] names, ulong v, ulong mk)
    {
        foreach (var (n, b) in names)
        {
            if ((mk & b) != 0)
            {
                sb.Append((v & b) != 0 ? '+' : '-').Append(n);
            }
        }
    }

    /// <summary>A MAC (48-bit number) as aa:bb:cc:dd:ee:ff.</summary>
    public static string FormatMac(ulong mac)
    {
        var sb = new StringBuilder(17);
        AppendMac(sb, mac);
        return sb.ToString();
    }

    private static void AppendMac(StringBuilder sb, ulong mac)
    {
        for (int i = 5; i >= 0; i--)
        {
            sb.Append(((byte)(mac >> (i * 8))).ToString("x2", CultureInfo.InvariantCulture));
            if (i > 0)
            {
                sb.Append(':');
            }
        }
    }

    private static void AppendIpv4(StringBuilder sb, uint a) =>
        sb.Append(a >> 24).Append('.').Append((a >> 16) & 0xFF).Append('.').Append((a >> 8) & 0xFF).Append('.').Append(a & 0xFF);

    private static string Ipv6Text(UInt128 a)
    {
        Span<byte> b = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(b, a);
        return new IPAddress(b).ToString();
    }

    private static int PrefixLen32(uint m)
    {
        int len = System.Numerics.BitOperations.PopCount(m);
        return len == 0 ? (m == 0 ? 0 : -1) : (m == (0xFFFF_FFFFU << (32 - len)) ? len : -1);
    }

    private static int PrefixLen128(UInt128 m)
    {
        int len = (int)UInt128.PopCount(m);
        return len == 0 ? 0 : (m == (UInt128.MaxValue << (128 - len)) ? len : -1);
    }

    private static void AppendActions(StringBuilder sb, FlowAction[] actions)
    {
        if (actions.Length == 0)
        {
            sb.Append("drop");
            return;
        }

        var ic = CultureInfo.InvariantCulture;
        for (int i = 0; i < actions.Length; i++)
        {
            if (i > 0)
            {
                sb.Append(',');
            }

            var a = actions[i];
            switch (a.Kind)
            {
                case ActionKind.Output:
                    sb.Append(ic, $"output:{a.Port}");
                    break;
                case ActionKind.InPort:
                    sb.Append("in_port");
                    break;
                case ActionKind.Drop:
                    sb.Append("drop");
                    break;
                case ActionKind.Flood:
                    sb.Append("flood");
                    break;
                case ActionKind.Normal:
                    sb.Append("normal");
                    break;
                case ActionKind.Controller:
                    sb.Append("controller");
                    break;
                case ActionKind.PushVlan:
                    sb.Append(ic, $"push_vlan:0x{a.Value:x4}");
                    break;
                case ActionKind.PopVlan:
                    sb.Append("pop_vlan");
                    break;
                case ActionKind.SetVlanVid:
                    sb.Append(ic, $"mod_vlan_vid:{a.Value}");
                    break;
                case ActionKind.SetVlanPcp:
                    sb.Append(ic, $"mod_vlan_pcp:{a.Value}");
                    break;
                case ActionKind.SetField:
                    AppendSetField(sb, a);
                    break;
                case ActionKind.DecTtl:
                    sb.Append("dec_ttl");
                    break;
                case ActionKind.WriteMetadata:
                    sb.Append(ic, $"write_metadata:0x{a.Value:x}");
                    if (a.Mask != ulong.MaxValue)
                    {
                        sb.Append(ic, $"/0x{a.Mask:x}");
                    }

                    break;
                case ActionKind.GotoTable:
                    sb.Append(ic, $"goto_table:{a.Table}");
                    break;
                case ActionKind.Resubmit:
                    sb.Append("resubmit(");
                    if (a.Port >= 0)
                    {
                        sb.Append(a.Port);
                    }

                    sb.Append(ic, $",{a.Table})");
                    break;
                default:
                    sb.Append(ic, $"unknown_action_{(int)a.Kind}");
                    break;
            }
        }
    }

    private static void AppendSetField(StringBuilder sb, in FlowAction a)
    {
        var f = a.Field;
        if (f == null)
        {
            sb.Append("set_field:?->?");
            return;
        }

        sb.Append("set_field:");
        switch (FlowParser.StyleOf(f))
        {
            case FlowParser.Style.Mac:
                AppendMac(sb, a.Value);
                break;
            case FlowParser.Style.Ipv4:
                AppendIpv4(sb, (uint)a.Value);
                break;
            case FlowParser.Style.Ipv6:
                sb.Append(Ipv6Text(a.Value128));
                break;
            default:
                if (ReferenceEquals(f, Fields.TpSrc) || ReferenceEquals(f, Fields.TpDst))
                {
                    sb.Append(a.Value);
                }
                else
                {
                    sb.Append(CultureInfo.InvariantCulture, $"0x{a.Value:x}");
                }

                break;
        }

        sb.Append("->").Append(f.Name);
    }
}
