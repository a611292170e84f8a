// MatchParser.cs - reads the match part of a line: fields, protocol shorthands and rule keywords.
//
// One pass over the items before "actions=" (or over the whole line for a match-only string or a
// trace packet), each merged into a FlowMatch at once. Every item leaves a claim (the bits it set
// and where it stands on the line) so that a duplicate field, a value that contradicts an earlier
// item and a missing prerequisite are reported at the item's column. Prerequisites (nw_dst needs
// ip, tp_dst needs tcp or udp, ...) are checked once the whole match has been read, so their order
// on the line does not matter. How a value is read follows the field's FieldSyntax (Fields.cs).
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.CompilerServices;
using VSwitch.Packets;
using VSwitch.Pipeline;
using static VSwitch.FlowText.FlowLine;
using static VSwitch.FlowText.FlowValues;

namespace VSwitch.FlowText;

/// <summary>What a line holds: a rule (match, then actions), a match-only string, or a trace packet.</summary>
internal enum MatchMode : byte
{
    /// <summary>add-flow: keywords and fields, then "actions=".</summary>
    Rule,

    /// <summary>del-flows / mod-flows: keywords and fields (masks allowed, cookie/mask), no actions.</summary>
    Match,

    /// <summary>trace: fields with exact values only, no keywords, no actions.</summary>
    Packet,
}

/// <summary>Parses the match part of one line (see <see cref="MatchMode"/>).</summary>
internal unsafe ref struct MatchParser
{
    /// <summary>Who set which bits of the match (for duplicate, contradiction and prerequisite messages).</summary>
    private struct Claim
    {
        /// <summary>The field matched, or null for a protocol shorthand.</summary>
        public FieldDef? Field;

        /// <summary>Where the item stands on the line: [Start, End).</summary>
        public int Start;
        public int End;

        /// <summary>The first key word the item set, and its bits there.</summary>
        public int W1;
        public ulong B1;

        /// <summary>The second key word (-1: none), and its bits there.</summary>
        public int W2;
        public ulong B2;
    }

    [InlineArray(48)]
    private struct ClaimBuffer
    {
        private Claim _e;
    }

    private readonly FlowLine _line;
    private readonly MatchMode _mode;
    private ClaimBuffer _claims;
    private int _nClaims;
    private bool _sawIdle;
    private bool _sawHard;

    public FlowMatch Match;
    public int? Table;
    public int? Priority;
    public ulong? Cookie;
    public ulong? CookieMask;
    public int IdleTimeout;
    public int HardTimeout;

    public MatchParser(FlowLine line, MatchMode mode)
    {
        _line = line;
        _mode = mode;
        ActionsAt = -1;
    }

    /// <summary>Where the actions start (just after "actions="); -1 until <see cref="Run"/> found them.</summary>
    public int ActionsAt { get; private set; }

    /// <summary>Reads everything before "actions=" (or the whole line outside rule mode) and checks prerequisites.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run()
    {
        var s = _line.Text;
        int pos = 0;
        while (true)
        {
            pos = _line.SkipSeps(pos);
            if (pos >= s.Length)
            {
                break;
            }

            int start = pos;
            while (pos < s.Length && s[pos] != '=' && !FlowLine.IsSep(s[pos]))
            {
                pos++;
            }

            var name = s[start..pos];
            bool hasValue = pos < s.Length && s[pos] == '=';
            if (name.IsEmpty)
            {
                _line.Fail(start, $"expected a field name, found {_line.FoundAt(start)}");
            }

            if (!Keywords.TryFind(name, out var kw))
            {
                string what = _mode == MatchMode.Packet ? "a field name or protocol" : "a field name, protocol or keyword";
                _line.Fail(start, $"expected {what}, found '{name}'{Keywords.Suggest(name)}");
            }

            if (kw.Kind == KeywordKind.Actions)
            {
                if (_mode != MatchMode.Rule)
                {
                    _line.Fail(start, _mode == MatchMode.Match
                        ? "expected a match field (a match-only string takes no 'actions='), found 'actions'"
                        : "expected a packet field (a packet takes no 'actions='), found 'actions'");
                }

                if (!hasValue)
                {
                    _line.Fail(pos, $"expected '=' after 'actions', found {_line.FoundAt(pos)}");
                }

                ActionsAt = pos + 1;
                break;
            }

            if (kw.Kind == KeywordKind.Shorthand)
            {
                if (hasValue)
                {
                    _line.Fail(pos, $"expected ',' after '{name}' (a protocol takes no value), found {_line.FoundAt(pos)}");
                }

                ApplyShorthand(kw, start, pos);
                continue;
            }

            if (!hasValue)
            {
                _line.Fail(pos, $"expected '=' and a value after '{name}', found {_line.FoundAt(pos)}");
            }

            int valStart = pos + 1;
            int valEnd = _line.TokenEnd(valStart);
            var value = s[valStart..valEnd];
            if (kw.Kind == KeywordKind.Field)
            {
                ParseField(kw.Field!, name, start, valStart, value);
            }
            else
            {
                ParseKeyword(kw, name, start, valStart, value);
            }

            pos = valEnd;
        }

        if (_mode == MatchMode.Rule && ActionsAt < 0)
        {
            _line.Fail(s.Length, "expected 'actions=' at the end of the rule, found the end of the line");
        }

        CheckPrerequisites();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ParseKeyword(Keyword kw, ReadOnlySpan<char> name, int start, int valStart, ReadOnlySpan<char> value)
    {
        if (_mode == MatchMode.Packet)
        {
            _line.Fail(start, $"expected a packet field, found '{name}' (a rule keyword)");
        }

        switch (kw.Kind)
        {
            case KeywordKind.Cookie:
            {
                if (Cookie.HasValue)
                {
                    _line.Fail(start, "duplicate 'cookie'");
                }

                int slash = value.IndexOf('/');
                var v = slash < 0 ? value : value[..slash];
                if (!TryParseU64(v, out ulong c))
                {
                    _line.Fail(valStart, $"expected a 64-bit cookie (0x hex or decimal) after 'cookie=', found {Found(value)}");
                }

                Cookie = c;
                if (slash >= 0)
                {
                    if (_mode == MatchMode.Rule)
                    {
                        _line.Fail(valStart + slash, "expected a cookie without '/mask' (masks are for del-flows and mod-flows matches)");
                    }

                    if (!TryParseU64(value[(slash + 1)..], out ulong cm))
                    {
                        _line.Fail(valStart + slash + 1, $"expected a 64-bit cookie mask after '/', found {Found(value[(slash + 1)..])}");
                    }

                    CookieMask = cm;
                }

                return;
            }

            case KeywordKind.IdleTimeout or KeywordKind.HardTimeout when _mode == MatchMode.Match:
                _line.Fail(start, $"expected a match field, found '{name}' (timeouts belong to add-flow rules)");
                return;
            case KeywordKind.ConjId:
                ParseConjId(name, start, valStart, value);
                return;
        }

        if (!TryParseU64(value, out ulong n) || n > kw.Max)
        {
            _line.Fail(valStart, $"expected an integer from 0 to {kw.Max} after '{name}=', found {Found(value)}");
        }

        bool dup;
        switch (kw.Kind)
        {
            case KeywordKind.Table:
                dup = Table.HasValue;
                Table = (int)n;
                break;
            case KeywordKind.Priority:
                dup = Priority.HasValue;
                Priority = (int)n;
                break;
            case KeywordKind.IdleTimeout:
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
            _line.Fail(start, $"duplicate '{name}'");
        }
    }

    /// <summary>conj_id=N (32 bits, exact): held in FlowMatch.ConjId, beside the key.</summary>
    private void ParseConjId(ReadOnlySpan<char> name, int start, int valStart, ReadOnlySpan<char> value)
    {
        if (Match.HasConjId)
        {
            _line.Fail(start, $"duplicate '{name}'");
        }

        if (value.Contains('/'))
        {
            _line.Fail(valStart + value.IndexOf('/'), "expected 'conj_id' without a mask (it is matched exactly)");
        }

        if (!TryParseU64(value, out ulong id) || id > uint.MaxValue)
        {
            _line.Fail(valStart, $"expected a conjunction id from 0 to 4294967295 after '{name}=', found {Found(value)}");
        }

        if (id == 0 && _mode == MatchMode.Rule)
        {
            // In Open vSwitch a packet outside a conjunction has conj_id 0, so such a rule would also
            // match every packet as an ordinary rule: refused rather than given two meanings.
            _line.Fail(valStart, "expected a conjunction id from 1 to 4294967295 after 'conj_id=' (conj_id=0 is refused: it would also match packets outside any conjunction)");
        }

        Match.ConjId = (uint)id;
        Match.HasConjId = true;
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
            _line.Fail(c.Start, "expected at most 48 match items in one rule");
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
                _line.Fail(start, $"'{_line.Text[start..end]}' contradicts '{_line.Text[c.Start..c.End]}' at column {c.Start + 1}");
            }
        }

        _line.Fail(start, $"'{_line.Text[start..end]}' contradicts an earlier item");
    }

    private readonly void CheckDuplicate(FieldDef f, ReadOnlySpan<char> name, int start)
    {
        for (int i = 0; i < _nClaims; i++)
        {
            ref readonly var c = ref _claims[i];
            if (c.Field is { } g && Overlap(f, g))
            {
                var other = _line.Text[c.Start..c.End];
                int eq = other.IndexOf('=');
                var otherName = eq < 0 ? other : other[..eq];
                string also = otherName.SequenceEqual(name) ? "" : $" as '{otherName}'";
                _line.Fail(start, $"duplicate field '{name}' (already matched at column {c.Start + 1}{also})");
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
    private void ParseField(FieldDef f, ReadOnlySpan<char> name, int start, int valStart, ReadOnlySpan<char> value)
    {
        CheckDuplicate(f, name, start);
        int end = valStart + value.Length;
        int word = f.Word;
        int shift = f.Shift;
        ulong v, m;
        switch (f.Syntax)
        {
            case FieldSyntax.Ipv6:
            case FieldSyntax.Hex when f.IsWide:
            {
                UInt128 v128, m128;
                if (f.Syntax == FieldSyntax.Ipv6)
                {
                    ParseIpv6Value(name, valStart, value, _mode == MatchMode.Packet, out v128, out m128);
                }
                else
                {
                    ParseWideInt(name, valStart, value, out v128, out m128);
                }

                ulong hiM = (ulong)(m128 >> 64), loM = (ulong)m128;
                ulong hiV = (ulong)(v128 >> 64), loV = (ulong)v128;
                CheckConsistent(word, hiM, hiV, start, end);
                CheckConsistent(word + 1, loM, loV, start, end);
                Merge(word, hiM, hiV);
                Merge(word + 1, loM, loV);
                AddClaim(new Claim { Field = f, Start = start, End = end, W1 = word, B1 = hiM, W2 = word + 1, B2 = loM });
                return;
            }

            case FieldSyntax.Vlan:
                ParseVlan(name, valStart, value, out v, out m);
                word = Fields.VlanTci.Word;
                shift = Fields.VlanTci.Shift;
                break;
            case FieldSyntax.VlanPcp:
                if (!TryParseU64(value, out v) || v > 7)
                {
                    _line.Fail(valStart, $"expected a priority from 0 to 7 after '{name}=', found {Found(value)}");
                }

                v = (v << 13) | KeyExtractor.VlanPresent;
                m = 0xE000 | KeyExtractor.VlanPresent;
                word = Fields.VlanTci.Word;
                shift = Fields.VlanTci.Shift;
                break;
            case FieldSyntax.Mac:
                ParseMacValue(name, valStart, value, _mode == MatchMode.Packet, out v, out m);
                break;
            case FieldSyntax.Ipv4:
                ParseIpv4Value(name, valStart, value, _mode == MatchMode.Packet, out v, out m);
                break;
            case FieldSyntax.Frag:
                ParseFrag(name, valStart, value, out v, out m);
                break;
            case FieldSyntax.Flags:
                ParseFlagsOrInt(f, name, valStart, value, out v, out m);
                break;
            default:
                if (f == Fields.InPort && _line.TryPortName(value, out int named))
                {
                    v = (ulong)named; // a port name where OpenFlow takes a port (as ovs-ofctl's names)
                    m = 0xFFFF;
                    break;
                }

                ParseIntValue(f, name, valStart, value, f.Exact || _mode == MatchMode.Packet, out v, out m);
                break;
        }

        ulong wm = m << shift;
        ulong wv = (v << shift) & wm;
        CheckConsistent(word, wm, wv, start, end);
        Merge(word, wm, wv);
        AddClaim(new Claim { Field = f, Start = start, End = end, W1 = word, B1 = wm, W2 = -1 });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private readonly void ParseIntValue(FieldDef f, ReadOnlySpan<char> name, int valStart, ReadOnlySpan<char> value,
        bool exact, out ulong v, out ulong m)
    {
        ulong full = f.WordMask >> f.Shift;
        int slash = value.IndexOf('/');
        var vs = slash < 0 ? value : value[..slash];
        if (!TryParseU64(vs, out v) || v > f.Max)
        {
            string range = f.Max > 0xFFFF ? $"0 to 0x{f.Max:x}" : $"0 to {f.Max}";
            _line.Fail(valStart, $"expected an integer from {range} after '{name}=', found {Found(value)}");
        }

        if (slash < 0)
        {
            m = full;
            return;
        }

        if (exact)
        {
            string why = _mode == MatchMode.Packet ? "a packet field takes an exact value" : $"'{name}' cannot be masked";
            _line.Fail(valStart + slash, $"expected an exact value after '{name}=' ({why}), found {Found(value)}");
        }

        var ms = value[(slash + 1)..];
        if (!TryParseU64(ms, out m) || m > full)
        {
            _line.Fail(valStart + slash + 1, $"expected a mask from 0 to 0x{full:x} after '{name}={vs}/', found {Found(ms)}");
        }
    }

    private readonly void ParseFlagsOrInt(FieldDef f, ReadOnlySpan<char> name, int valStart, ReadOnlySpan<char> value,
        out ulong v, out ulong m)
    {
        if (value.IsEmpty || (value[0] != '+' && value[0] != '-'))
        {
            ParseIntValue(f, name, valStart, value, _mode == MatchMode.Packet, out v, out m);
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
                _line.Fail(valStart + i, $"expected '+' or '-' before a flag name in '{name}=', found {Found(value[i..])}");
            }

            i++;
            int ns = i;
            while (i < value.Length && value[i] != '+' && value[i] != '-')
            {
                i++;
            }

            var flag = value[ns..i];
            ushort bit = 0;
            foreach (var (n, b) in f.FlagNames)
            {
                if (flag.SequenceEqual(n))
                {
                    bit = b;
                    break;
                }
            }

            if (bit == 0)
            {
                string names = string.Join(", ", f.FlagNames.Select(t => t.Name));
                _line.Fail(valStart + ns, $"expected a flag name ({names}) after '{value[at]}', found {Found(flag)}");
            }

            if ((m & bit) != 0)
            {
                _line.Fail(valStart + ns, $"duplicate flag '{flag}' in '{name}='");
            }

            m |= bit;
            if (plus)
            {
                v |= bit;
            }
        }

        if (_mode == MatchMode.Packet)
        {
            m = f.WordMask >> f.Shift;
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
            _line.Fail(valStart, max == 0xFFF
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
            if (_mode == MatchMode.Packet)
            {
                FailMasked(name, valStart + slash, value);
            }

            var ms = value[(slash + 1)..];
            if (!TryParseU64(ms, out vm) || vm > 0x1FFF)
            {
                _line.Fail(valStart + slash + 1, $"expected a VLAN id mask from 0 to 0xfff after '{name}={vs}/', found {Found(ms)}");
            }

            vm &= 0xFFF;
        }

        v = (vid & 0xFFF) | KeyExtractor.VlanPresent;
        m = vm | KeyExtractor.VlanPresent;
    }

    private readonly void ParseFrag(ReadOnlySpan<char> name, int valStart, ReadOnlySpan<char> value, out ulong v, out ulong m)
    {
        bool packet = _mode == MatchMode.Packet;
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
            ParseIntValue(Fields.NwFrag, name, valStart, value, packet, out v, out m);
            if (v <= 3)
            {
                return;
            }
        }

        _line.Fail(valStart, packet
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
            _line.Fail(valStart, $"expected a MAC address (aa:bb:cc:dd:ee:ff) after '{name}=', found {Found(value)}");
        }

        m = FlowKey.Mac48;
        if (slash < 0)
        {
            return;
        }

        if (exact)
        {
            FailMasked(name, valStart + slash, value);
        }

        var ms = value[(slash + 1)..];
        if (!TryParseMac(ms, out m))
        {
            _line.Fail(valStart + slash + 1, $"expected a MAC mask (ff:ff:ff:00:00:00) after '{name}={vs}/', found {Found(ms)}");
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
            _line.Fail(valStart, exact
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
            FailMasked(name, valStart + slash, value);
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

        _line.Fail(valStart + slash + 1, $"expected a prefix length from 0 to 32 or a dotted mask after '{name}={vs}/', found {Found(ms)}");
    }

    private readonly void ParseIpv6Value(ReadOnlySpan<char> name, int valStart, ReadOnlySpan<char> value, bool exact,
        out UInt128 v, out UInt128 m)
    {
        int slash = value.IndexOf('/');
        var vs = slash < 0 ? value : value[..slash];
        if (!TryParseIpv6(vs, out v))
        {
            _line.Fail(valStart, exact
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
            FailMasked(name, valStart + slash, value);
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

        _line.Fail(valStart + slash + 1, $"expected a prefix length from 0 to 128 or an IPv6 mask after '{name}={vs}/', found {Found(ms)}");
    }

    /// <summary>A 128-bit register's value: an integer (0x... or decimal), optionally /MASK.</summary>
    private readonly void ParseWideInt(ReadOnlySpan<char> name, int valStart, ReadOnlySpan<char> value, out UInt128 v, out UInt128 m)
    {
        int slash = value.IndexOf('/');
        var vs = slash < 0 ? value : value[..slash];
        m = UInt128.MaxValue;
        if (!TryParseU128(vs, out v) || (slash >= 0 && (!TryParseU128(value[(slash + 1)..], out m) || m == 0)))
        {
            _line.Fail(valStart, $"expected a 128-bit integer (or VALUE/MASK) after '{name}=', found {Found(value)}");
        }

        if (slash >= 0 && _mode == MatchMode.Packet)
        {
            FailMasked(name, valStart + slash, value);
        }

        v &= m;
    }

    /// <summary>Fails on a mask in a trace packet, whose fields take exact values.</summary>
    [DoesNotReturn]
    private readonly void FailMasked(ReadOnlySpan<char> name, int slashAt, ReadOnlySpan<char> value) =>
        _line.Fail(slashAt, $"expected an exact value after '{name}=' (a packet field takes an exact value), found {Found(value)}");

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private readonly void CheckPrerequisites()
    {
        for (int i = 0; i < _nClaims; i++)
        {
            ref readonly var c = ref _claims[i];
            if (c.Field is not { } f || f.Prereq == Prerequisite.Vlan || Prerequisites.Satisfied(f.Prereq, Match))
            {
                continue;
            }

            var tok = _line.Text[c.Start..c.End];
            int eq = tok.IndexOf('=');
            _line.Fail(c.Start, $"missing prerequisite for '{(eq < 0 ? tok : tok[..eq])}': expected {Prerequisites.Describe(f.Prereq)} in the match");
        }
    }
}
