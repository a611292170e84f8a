// CtActionParser.cs - ct(...) in ovs-ofctl's syntax: commit, force, zone=N, table=N,
// nat[(src|dst=ADDR[-ADDR][:PORT[-PORT]][,random|hash|persistent])], exec(set_field or load of
// ct_mark / ct_label). Each refusal says what was expected and where.
using VSwitch.Conntrack;
using VSwitch.Packets;
using VSwitch.Pipeline;
using static VSwitch.FlowText.FlowLine;
using static VSwitch.FlowText.FlowValues;

namespace VSwitch.FlowText;

internal readonly ref partial struct ActionParser
{
    /// <summary>ct(ARGS): the whole argument text at <paramref name="argAt"/>.</summary>
    /// <summary>ipsec(sa=N,table=T) or ipsec(decrypt,table=T) (Ipsec/SaSpec.cs: N is an SA id of add-sa).</summary>
    private FlowAction Ipsec(ReadOnlySpan<char> arg, int argAt, int start)
    {
        if (_bucket)
        {
            _line.Fail(start, "expected a bucket action ('ipsec' is not allowed in a group bucket)");
        }

        if (!Prerequisites.Satisfied(Prerequisite.IpAny, _match))
        {
            _line.Fail(start, "'ipsec' needs ip or ipv6 in the match (ESP carries IP packets)");
        }

        int sa = -1, table = -1;
        bool decrypt = false;
        foreach (var (item, at) in TopLevel(arg, argAt))
        {
            int eq = item.IndexOf('=');
            string key = eq >= 0 ? item[..eq].ToLowerInvariant() : item.ToLowerInvariant();
            string value = eq >= 0 ? item[(eq + 1)..] : "";
            switch (key)
            {
                case "decrypt" when eq < 0:
                    decrypt = true;
                    break;
                case "sa" when eq > 0:
                    sa = int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int s) && s >= 1 && s <= VSwitch.Ipsec.SaSpec.MaxId
                        ? s : _line.Fail<int>(at + eq + 1, $"expected an SA id from 1 to {VSwitch.Ipsec.SaSpec.MaxId} after 'sa=', found '{value}'");
                    break;
                case "table" when eq > 0:
                    table = int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int tb) && tb <= 254
                        ? tb : _line.Fail<int>(at + eq + 1, $"expected a table from 0 to 254 after 'table=', found '{value}'");
                    break;
                default:
                    _line.Fail(at, $"expected sa=N, decrypt or table=T in ipsec(...), found '{item}'");
                    break;
            }
        }

        if (decrypt == (sa > 0))
        {
            _line.Fail(start, decrypt ? "expected either sa=N (encrypt) or decrypt in ipsec(...), not both" : "expected sa=N (encrypt with SA N) or decrypt in ipsec(...)");
        }

        if (table < 0)
        {
            _line.Fail(start, "expected table=T in ipsec(...): the table where the packet continues after the crypto device");
        }

        return new FlowAction(ActionKind.Ipsec, Table: table, Value: decrypt ? 0UL : (ulong)sa);
    }

    private FlowAction Ct(ReadOnlySpan<char> arg, int argAt, int start)
    {
        if (_bucket)
        {
            _line.Fail(start, "expected a bucket action ('ct' is not allowed in a group bucket)");
        }

        if (!Prerequisites.Satisfied(Prerequisite.IpAny, _match))
        {
            _line.Fail(start, "'ct' needs ip or ipv6 in the match (as Open vSwitch: connection tracking is for IP packets)");
        }

        bool commit = false, force = false;
        int zone = 0, table = -1;
        var nat = CtNatKind.None;
        bool v6 = false, hasMark = false, hasLabel = false;
        UInt128 addrMin = 0, addrMax = 0, labelValue = 0, labelMask = 0;
        ushort portMin = 0, portMax = 0;
        uint markValue = 0, markMask = 0;
        string natFlags = "";
        foreach (var (item, at) in TopLevel(arg, argAt))
        {
            int eq = item.IndexOf('=');
            int paren = item.IndexOf('(');
            bool hasValue = eq >= 0 && (paren < 0 || eq < paren);
            var key = hasValue ? item.AsSpan(0, eq) : paren >= 0 ? item.AsSpan(0, paren) : item.AsSpan();
            var value = hasValue ? item.AsSpan(eq + 1) : default;
            int valueAt = at + eq + 1;
            switch (key.ToString().ToLowerInvariant())
            {
                case "commit":
                    commit = true;
                    break;
                case "force":
                    force = true;
                    break;
                case "zone":
                    if (!TryParseU64(value, out ulong z) || z > 65535)
                    {
                        _line.Fail(valueAt, value.IndexOf('[') >= 0
                            ? $"expected a zone number from 0 to 65535 after 'zone=' (a zone taken from a field is not supported), found {Found(value)}"
                            : $"expected a zone number from 0 to 65535 after 'zone=', found {Found(value)}");
                    }

                    zone = (int)z;
                    break;
                case "table":
                    if (!TryParseU64(value, out ulong t) || t > 254)
                    {
                        _line.Fail(valueAt, $"expected a table from 0 to 254 after 'table=', found {Found(value)}");
                    }

                    table = (int)t;
                    break;
                case "nat":
                    if (paren < 0)
                    {
                        nat = CtNatKind.Apply;
                        break;
                    }

                    if (item[^1] != ')')
                    {
                        _line.Fail(at + item.Length, $"expected ')' to close 'nat(', found {Found(item.AsSpan(paren + 1))}");
                    }

                    ParseNat(item.AsSpan(paren + 1, item.Length - paren - 2), at + paren + 1, out nat, out v6, out addrMin, out addrMax, out portMin, out portMax, out natFlags);
                    break;
                case "exec":
                    if (paren < 0 || item[^1] != ')')
                    {
                        _line.Fail(at, $"expected 'exec(ACTIONS)', found {Found(item)}");
                    }

                    foreach (var (x, xAt) in TopLevel(item.AsSpan(paren + 1, item.Length - paren - 2), at + paren + 1))
                    {
                        ParseExec(x, xAt, ref hasMark, ref markValue, ref markMask, ref hasLabel, ref labelValue, ref labelMask);
                    }

                    break;
                case "alg":
                    _line.Fail(at, "ct alg= (application-level gateways such as ftp or tftp) is not supported");
                    break;
                default:
                    _line.Fail(at, $"expected a ct argument (commit, force, zone=N, table=N, nat, nat(...), exec(...)), found {Found(item)}");
                    break;
            }
        }

        if ((hasMark || hasLabel) && !commit)
        {
            _line.Fail(start, "ct exec(...) sets ct_mark/ct_label of the connection and needs commit (as Open vSwitch)");
        }

        if (nat is CtNatKind.Src or CtNatKind.Dst && !commit)
        {
            _line.Fail(start, $"ct nat({(nat == CtNatKind.Src ? "src" : "dst")}=...) chooses the NAT of a new connection and needs commit (use a bare 'nat' to apply an existing connection's NAT)");
        }

        if (nat is CtNatKind.Src or CtNatKind.Dst && Prerequisites.Satisfied(v6 ? Prerequisite.Ip : Prerequisite.Ipv6, _match))
        {
            _line.Fail(start, $"ct nat range is {(v6 ? "IPv6" : "IPv4")} but the match is {(v6 ? "ip" : "ipv6")}");
        }

        var spec = new CtSpec(commit, force, (ushort)zone, table, nat, v6, addrMin, addrMax, portMin, portMax, natFlags,
            hasMark, markValue, markMask, hasLabel, labelValue, labelMask);
        return new FlowAction(ActionKind.Ct, Table: table, Value: (ulong)CtSpecs.Intern(spec), Ct: spec);
    }

    /// <summary>The comma-separated items of <paramref name="s"/> outside parentheses, with their positions.</summary>
    private static List<(string Item, int At)> TopLevel(ReadOnlySpan<char> s, int at)
    {
        var list = new List<(string, int)>();
        int depth = 0, from = 0;
        for (int i = 0; i <= s.Length; i++)
        {
            if (i == s.Length || (s[i] == ',' && depth == 0))
            {
                var item = s[from..i].Trim();
                if (!item.IsEmpty)
                {
                    list.Add((item.ToString(), at + from + (s[from..i].Length - s[from..i].TrimStart().Length)));
                }

                from = i + 1;
            }
            else if (s[i] == '(')
            {
                depth++;
            }
            else if (s[i] == ')')
            {
                depth--;
            }
        }

        return list;
    }

    /// <summary>nat(src=ADDR[-ADDR][:PORT[-PORT]][,FLAGS]) or nat(dst=...).</summary>
    private void ParseNat(ReadOnlySpan<char> s, int at, out CtNatKind kind, out bool v6, out UInt128 min, out UInt128 max, out ushort pmin, out ushort pmax, out string flags)
    {
        const string Syntax = "expected nat(src=ADDR[-ADDR][:PORT[-PORT]]) or nat(dst=...)";
        v6 = false;
        min = max = 0;
        pmin = pmax = 0;
        flags = "";
        kind = CtNatKind.Apply;
        var items = TopLevel(s, at);
        if (items.Count == 0)
        {
            return;
        }

        var (range, rAt) = items[0];
        foreach (var (f, fAt) in items.Skip(1))
        {
            if (f is not ("random" or "hash" or "persistent"))
            {
                _line.Fail(fAt, $"expected a nat flag (random, hash, persistent), found {Found(f)}");
            }

            flags = flags.Length == 0 ? f : flags + "," + f;
        }

        if (range.StartsWith("src=", StringComparison.Ordinal))
        {
            kind = CtNatKind.Src;
        }
        else if (range.StartsWith("dst=", StringComparison.Ordinal))
        {
            kind = CtNatKind.Dst;
        }
        else
        {
            _line.Fail(rAt, $"{Syntax}, found {Found(range)}");
        }

        var r = range.AsSpan(4);
        int rangeAt = rAt + 4;
        // Addresses: IPv4 "a.b.c.d[-a.b.c.d]", IPv6 "[x::y][-[x::z]]"; then ":PORT[-PORT]".
        int portColon = -1;
        ReadOnlySpan<char> addrs;
        if (r.StartsWith("["))
        {
            v6 = true;
            int last = r.LastIndexOf(']');
            if (last < 0)
            {
                _line.Fail(rangeAt, $"expected ']' closing an IPv6 address in nat, found {Found(r)}");
            }

            addrs = r[..(last + 1)];
            portColon = last + 1 < r.Length ? last + 1 : -1;
            if (portColon >= 0 && r[portColon] != ':')
            {
                _line.Fail(rangeAt + portColon, $"expected ':PORT' after the addresses, found {Found(r[portColon..])}");
            }
        }
        else
        {
            portColon = r.IndexOf(':');
            addrs = portColon >= 0 ? r[..portColon] : r;
        }

        int dash = v6 ? addrs.IndexOf("]-[") + 1 : addrs.IndexOf('-');
        var a1 = dash > 0 ? addrs[..dash] : addrs;
        var a2 = dash > 0 ? addrs[(dash + 1)..] : addrs;
        min = Address(a1, rangeAt, v6);
        max = Address(a2, rangeAt + (dash > 0 ? dash + 1 : 0), v6);
        if (max < min)
        {
            _line.Fail(rangeAt, $"nat address range {Found(addrs)} ends before it starts");
        }

        if (v6 && (ulong)(max >> 64) != (ulong)(min >> 64))
        {
            _line.Fail(rangeAt, $"nat IPv6 address range {Found(addrs)} must lie within one /64");
        }

        if (portColon >= 0)
        {
            var ps = r[(portColon + 1)..];
            int pAt = rangeAt + portColon + 1;
            int pd = ps.IndexOf('-');
            ulong p2 = 0;
            if (!TryParseU64(pd >= 0 ? ps[..pd] : ps, out ulong p1) || p1 is 0 or > 65535
                || !TryParseU64(pd >= 0 ? ps[(pd + 1)..] : ps, out p2) || p2 is 0 or > 65535 || p2 < p1)
            {
                _line.Fail(pAt, $"expected a port or port range from 1 to 65535 after ':' in nat, found {Found(ps)}");
            }

            pmin = (ushort)p1;
            pmax = (ushort)p2;
        }
    }

    private UInt128 Address(ReadOnlySpan<char> s, int at, bool v6)
    {
        if (v6)
        {
            UInt128 a6 = 0;
            if (s.Length < 2 || s[0] != '[' || s[^1] != ']' || !TryParseIpv6(s[1..^1], out a6))
            {
                _line.Fail(at, $"expected an IPv6 address in brackets ([2001:db8::1]) in nat, found {Found(s)}");
            }

            return a6;
        }

        if (!TryParseIpv4(s, out uint a))
        {
            _line.Fail(at, $"expected an IPv4 address in nat, found {Found(s)}");
        }

        return a;
    }

    /// <summary>One action of exec(...): set_field:V[/M]->ct_mark|ct_label, or load:V->NXM_NX_CT_MARK[] / NXM_NX_CT_LABEL[].</summary>
    private void ParseExec(string x, int at, ref bool hasMark, ref uint markValue, ref uint markMask, ref bool hasLabel, ref UInt128 labelValue, ref UInt128 labelMask)
    {
        const string Syntax = "expected set_field:VALUE[/MASK]->ct_mark or ->ct_label (or load:VALUE->NXM_NX_CT_MARK[] / NXM_NX_CT_LABEL[]) in ct exec(...)";
        int colon = x.IndexOf(':');
        int arrow = x.IndexOf("->", StringComparison.Ordinal);
        if (colon < 0 || arrow < colon)
        {
            _line.Fail(at, $"{Syntax}, found {Found(x)}");
        }

        var verb = x[..colon];
        var target = x[(arrow + 2)..];
        bool mark = target is "ct_mark" or "NXM_NX_CT_MARK[]";
        bool label = target is "ct_label" or "NXM_NX_CT_LABEL[]";
        if ((verb != "set_field" && verb != "load") || (!mark && !label))
        {
            _line.Fail(at, $"{Syntax}, found {Found(x)}");
        }

        var vtext = x.AsSpan(colon + 1, arrow - colon - 1);
        int slash = vtext.IndexOf('/');
        var vs = slash >= 0 ? vtext[..slash] : vtext;
        UInt128 mask = UInt128.MaxValue;
        if (!UInt128.TryParse(vs.StartsWith("0x") ? vs[2..] : vs, vs.StartsWith("0x") ? System.Globalization.NumberStyles.HexNumber : System.Globalization.NumberStyles.None, null, out UInt128 v)
            || (slash >= 0 && !UInt128.TryParse(vtext[(slash + 1)..].StartsWith("0x") ? vtext[(slash + 3)..] : vtext[(slash + 1)..],
                vtext[(slash + 1)..].StartsWith("0x") ? System.Globalization.NumberStyles.HexNumber : System.Globalization.NumberStyles.None, null, out mask)))
        {
            _line.Fail(at + colon + 1, $"expected a number (decimal or 0x hex) in {Found(x)}");
        }

        if (mark)
        {
            if (v > uint.MaxValue || (slash >= 0 && mask > uint.MaxValue))
            {
                _line.Fail(at + colon + 1, $"ct_mark is 32 bits, found {Found(vtext)}");
            }

            hasMark = true;
            markMask = slash >= 0 ? (uint)mask : uint.MaxValue;
            markValue = (uint)v & markMask;
        }
        else
        {
            hasLabel = true;
            labelMask = mask;
            labelValue = v & mask;
        }
    }
}
