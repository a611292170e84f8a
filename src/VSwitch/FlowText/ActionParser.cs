// ActionParser.cs - reads the actions of a rule: everything after "actions=".
//
// Actions are checked against the rule's final match (mod_nw_src needs ip in the match;
// mod_dl_src on a VLAN field needs a tag, from the match or from an earlier push_vlan or
// mod_vlan_vid) and against each other (drop is the only action, goto_table the last and to a later
// table). set_field and load take any writable field of Fields and read its value by its
// FieldSyntax; dl_vlan and dl_vlan_pcp become the VLAN actions, as mod_vlan_vid/mod_vlan_pcp do.
// The list is gathered in a per-thread scratch list, so a rule allocates only its final array.
using System.Globalization;
using System.Runtime.CompilerServices;
using VSwitch.Packets;
using VSwitch.Pipeline;
using static VSwitch.FlowText.FlowLine;
using static VSwitch.FlowText.FlowValues;

namespace VSwitch.FlowText;

/// <summary>Parses the action list of one rule (see docs/FLOWS.md for the actions).</summary>
internal readonly ref partial struct ActionParser
{
    [ThreadStatic]
    private static List<FlowAction>? t_actions;

    private readonly FlowLine _line;
    private readonly int _start;
    private readonly int _table;
    private readonly FlowMatch _match;
    private readonly bool _bucket;

    /// <param name="line">The rule's line.</param>
    /// <param name="start">Where the actions start (just after "actions=").</param>
    /// <param name="table">The rule's table (goto_table must go later, resubmit defaults to it).</param>
    /// <param name="match">The rule's whole match (for the actions' prerequisites).</param>
    /// <param name="bucket">A group bucket's actions (GroupParser): no match, so no prerequisites (as
    /// Open vSwitch: translation checks the packet), and no instructions (goto_table, write_metadata, recirc).</param>
    public ActionParser(FlowLine line, int start, int table, in FlowMatch match, bool bucket = false)
    {
        _bucket = bucket;
        _line = line;
        _start = start;
        _table = table;
        _match = match;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public FlowAction[] Parse()
    {
        var list = t_actions ??= new List<FlowAction>(8);
        list.Clear();
        var s = _line.Text;
        int table = _table;
        int pos = _start;
        int dropAt = -1;
        int gotoAt = -1;
        int conjAt = -1; // the first conjunction action
        int ctTableAt = -1; // a ct(table=N): nothing but notes may follow it
        int otherAt = -1, otherEnd = -1; // the first action that is neither conjunction nor note
        bool vlan = _bucket || Prerequisites.Satisfied(Prerequisite.Vlan, _match);
        Span<char> lower = stackalloc char[24];
        while (true)
        {
            pos = _line.SkipSeps(pos);
            if (pos >= s.Length)
            {
                break;
            }

            int start = pos;
            while (pos < s.Length && !FlowLine.IsSep(s[pos]) && s[pos] is not (':' or '=' or '('))
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
                pos = _line.TokenEnd(pos);
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
                    _line.Fail(start, $"expected ')' to close '{name}(', found the end of the line");
                }

                arg = s[argAt..pos];
                pos++;
                hasArg = true;
                if (pos < s.Length && !FlowLine.IsSep(s[pos]))
                {
                    _line.Fail(pos, $"expected ',' after '{s[start..pos]}', found {_line.FoundAt(pos)}");
                }
            }

            var token = s[start..pos];
            if (gotoAt >= 0)
            {
                _line.Fail(start, $"expected nothing after 'goto_table' (it must be the last action), found '{token}'");
            }

            if (dropAt >= 0)
            {
                _line.Fail(start, $"expected nothing after 'drop' (it must be the only action), found '{token}'");
            }

            if (name.IsEmpty)
            {
                _line.Fail(start, $"expected an action, found '{token}'");
            }

            var head = s[start..argAt]; // "output:", "resubmit(": quoted by the messages below
            if (IsDigits(name) && !hasArg)
            {
                list.Add(new FlowAction(ActionKind.Output, Port: ParsePort(name, start, default)));
                continue;
            }

            int n = name.Length <= lower.Length ? name.ToLowerInvariant(lower) : -1;
            var lname = n < 0 ? "" : (ReadOnlySpan<char>)lower[..n];
            if (_bucket && lname is "goto_table" or "write_metadata" or "recirc")
            {
                _line.Fail(start, $"expected a bucket action ('{name}' is not allowed in a group bucket)");
            }

            FlowAction a;
            switch (lname)
            {
                case "output" when sep == '(':
                    a = OutputParams(arg, argAt);
                    break;
                case "group":
                    a = new FlowAction(ActionKind.Group, Value: IntArg(hasArg, name, pos, arg, argAt, head, "a group id", FlowGroup.MaxId));
                    break;
                case "output":
                    NeedArg(hasArg, name, pos, "a port number");
                    if (arg.Equals("in_port", StringComparison.OrdinalIgnoreCase))
                    {
                        a = new FlowAction(ActionKind.InPort);
                        break;
                    }

                    if (arg.Equals("all", StringComparison.OrdinalIgnoreCase))
                    {
                        a = new FlowAction(ActionKind.Flood, Value: FloodAll);
                        break;
                    }

                    a = new FlowAction(ActionKind.Output, Port: ParsePort(arg, argAt, head));
                    break;
                case "local":
                    // OpenFlow's LOCAL port as a bare action (ovs-ofctl's "LOCAL"): this switch has none, so it sends nothing.
                    NoArg(hasArg, name, pos);
                    a = new FlowAction(ActionKind.Output, Port: FlowLine.OfPortLocal);
                    break;
                case "in_port":
                    NoArg(hasArg, name, pos);
                    a = new FlowAction(ActionKind.InPort);
                    break;
                case "drop":
                    NoArg(hasArg, name, pos);
                    if (list.Count > 0)
                    {
                        _line.Fail(start, "expected 'drop' to be the only action, found it after other actions");
                    }

                    dropAt = start;
                    a = new FlowAction(ActionKind.Drop);
                    break;
                case "flood":
                    NoArg(hasArg, name, pos);
                    a = new FlowAction(ActionKind.Flood);
                    break;
                case "all":
                    // OpenFlow's ALL: every port but the input port. This switch has no no-flood
                    // port setting, so it is flood's port set; it is kept apart for dumps.
                    NoArg(hasArg, name, pos);
                    a = new FlowAction(ActionKind.Flood, Value: FloodAll);
                    break;
                case "ct_clear":
                    NoArg(hasArg, name, pos);
                    a = new FlowAction(ActionKind.CtClear);
                    break;
                case "normal":
                    NoArg(hasArg, name, pos);
                    a = new FlowAction(ActionKind.Normal);
                    break;
                case "controller":
                    if (hasArg && sep != '(' && !TryParseU64(arg, out _))
                    {
                        _line.Fail(argAt, $"expected a max_len (an integer) after '{name}:', found {Found(arg)}");
                    }

                    a = new FlowAction(ActionKind.Controller);
                    break;
                case "push_vlan":
                {
                    NeedArg(hasArg, name, pos, "a TPID (0x8100 or 0x88a8)");
                    if (!TryParseU64(arg, out ulong tpid) || (tpid != KeyExtractor.EthVlan && tpid != KeyExtractor.EthQinQ))
                    {
                        _line.Fail(argAt, $"expected a TPID (0x8100 or 0x88a8) after '{head}', found {Found(arg)}");
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
                    a = new FlowAction(ActionKind.SetVlanVid, Value: IntArg(hasArg, name, pos, arg, argAt, head, "a VLAN id", 4095));
                    vlan = true;
                    break;
                case "mod_vlan_pcp":
                    a = new FlowAction(ActionKind.SetVlanPcp, Value: IntArg(hasArg, name, pos, arg, argAt, head, "a priority", 7));
                    vlan = true;
                    break;
                case "mod_dl_src" or "mod_dl_dst" or "mod_nw_src" or "mod_nw_dst" or "mod_tp_src" or "mod_tp_dst" or "mod_nw_ttl" or "mod_nw_ecn":
                    a = SetField(ModField(lname), name, start, hasArg, pos, arg, argAt, head, vlan);
                    break;
                case "mod_nw_tos":
                {
                    // ovs-ofctl: the DSCP bits, given as the ToS byte's value (a multiple of 4); ECN is kept.
                    ulong tos = IntArg(hasArg, name, pos, arg, argAt, head, "a ToS value (a multiple of 4)", 255);
                    if ((tos & 3) != 0)
                    {
                        _line.Fail(argAt, $"expected a multiple of 4 after '{head}' (mod_nw_tos sets the DSCP bits; mod_nw_ecn sets the other two), found {Found(arg)}");
                    }

                    CheckActionPrereq(Fields.IpDscp, name, start, vlan);
                    a = new FlowAction(ActionKind.SetField, Field: Fields.IpDscp, Value: tos >> 2);
                    break;
                }

                case "set_field" or "load":
                {
                    bool load = lname[0] == 'l';
                    NeedArg(hasArg, name, pos, load ? "VALUE->FIELD[]" : "VALUE->FIELD");
                    int arrow = arg.IndexOf("->");
                    if (arrow < 0)
                    {
                        _line.Fail(argAt, $"expected VALUE->FIELD{(load ? "[]" : "")} after '{head}', found {Found(arg)}");
                    }

                    var fname = arg[(arrow + 2)..];
                    int fAt = argAt + arrow + 2;
                    int bitLo = -1, bitHi = -1; // load:V->F[a..b] / F[n]: a bit range (-1: the whole field)
                    FieldDef field;
                    if (load)
                    {
                        field = Subfield(fname, fAt, out bitLo, out bitHi, out fname);
                    }
                    else if (!Keywords.TryFindField(fname, out field!))
                    {
                        FailField(fname, fAt, "'->'");
                    }

                    if (!field.Writable)
                    {
                        _line.Fail(fAt, $"expected a writable field after '->' ({WritableNames()}), found '{fname}' (read-only)");
                    }

                    var valueText = arg[..arrow];
                    int slash = load ? -1 : valueText.IndexOf('/');
                    if (bitLo >= 0 && (bitLo > 0 || bitHi < field.Width - 1) && !(bitLo == 0 && bitHi == field.SubfieldWidth - 1))
                    {
                        a = PartialLoad(field, valueText, argAt, fname, fAt, bitLo, bitHi);
                    }
                    else if (slash >= 0)
                    {
                        a = MaskedSet(field, valueText[..slash], valueText[(slash + 1)..], argAt, fname, fAt);
                    }
                    else
                    {
                        a = load
                            ? LoadField(field, valueText, argAt, fname, start, vlan)
                            : SetField(field, name, start, true, pos, valueText, argAt, head, vlan, fname);
                    }

                    break;
                }

                case "dec_ttl":
                    a = hasArg ? DecTtlIds(arg, argAt, head) : new FlowAction(ActionKind.DecTtl);
                    break;
                case "write_metadata":
                {
                    NeedArg(hasArg, name, pos, "VALUE[/MASK]");
                    int slash = arg.IndexOf('/');
                    var vs = slash < 0 ? arg : arg[..slash];
                    if (!TryParseU64(vs, out ulong mv))
                    {
                        _line.Fail(argAt, $"expected a 64-bit value after '{head}', found {Found(arg)}");
                    }

                    ulong mm = ulong.MaxValue;
                    if (slash >= 0 && !TryParseU64(arg[(slash + 1)..], out mm))
                    {
                        _line.Fail(argAt + slash + 1, $"expected a 64-bit mask after '{head}{vs}/', found {Found(arg[(slash + 1)..])}");
                    }

                    a = new FlowAction(ActionKind.WriteMetadata, Value: mv & mm, Mask: mm);
                    break;
                }

                case "goto_table":
                {
                    NeedArg(hasArg, name, pos, "a table number");
                    if (!TryParseU64(arg, out ulong t) || t > 254 || (int)t <= table)
                    {
                        _line.Fail(argAt, table >= 254
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
                case "recirc":
                {
                    NeedArg(hasArg, name, pos, "a recirculation id (1-127)");
                    if (!TryParseU64(arg, out ulong id) || id < 1 || id >= (ulong)FrozenStates.First)
                    {
                        _line.Fail(argAt, $"expected a recirculation id from 1 to {FrozenStates.First - 1} after 'recirc' ({FrozenStates.First}-255 are ct(table=N)'s), found {Found(arg)}");
                    }

                    a = new FlowAction(ActionKind.Recirc, Value: id);
                    break;
                }

                case "move":
                    NeedArg(hasArg, name, pos, "SRC[]->DST[]");
                    a = Move(arg, argAt, start, vlan);
                    break;
                case "note":
                    NeedArg(hasArg, name, pos, "hex bytes (01.02.ab)");
                    a = Note(arg, argAt);
                    break;
                case "conjunction":
                    if (_bucket)
                    {
                        _line.Fail(start, "expected a bucket action ('conjunction' is not allowed in a group bucket)");
                    }

                    if (sep != '(')
                    {
                        _line.Fail(argAt - (hasArg ? 1 : 0), $"expected '(' after 'conjunction' (conjunction(ID,K/N)), found '{s[start..pos]}'");
                    }

                    a = Conjunction(arg, argAt);
                    conjAt = conjAt < 0 ? start : conjAt;
                    break;
                case "meter":
                    _line.Fail(start, "'meter' is not supported: this switch has no meters (OpenFlow rate limiting; see docs/FLOWS.md), so a rule that needs one is refused rather than forwarded unmetered");
                    return [];
                case "ct":
                    if (sep != '(')
                    {
                        _line.Fail(start, "expected 'ct(ARGUMENTS)' (for example ct(commit,zone=1,table=2))");
                    }

                    a = Ct(arg, argAt, start);
                    ctTableAt = a.Table >= 0 ? start : ctTableAt;
                    break;
                case "ipsec":
                    if (sep != '(')
                    {
                        _line.Fail(start, "expected 'ipsec(sa=N,table=T)' or 'ipsec(decrypt,table=T)'");
                    }

                    a = Ipsec(arg, argAt, start);
                    ctTableAt = start;
                    break;
                default:
                    _line.Fail(start, $"expected an action (output:PORT, in_port, drop, flood, normal, controller, push_vlan, "
                        + $"pop_vlan, mod_vlan_vid, mod_vlan_pcp, mod_dl_src, mod_dl_dst, mod_nw_src, mod_nw_dst, mod_tp_src, "
                        + $"mod_tp_dst, mod_nw_ttl, mod_nw_tos, mod_nw_ecn, set_field, load, move, note, dec_ttl, write_metadata, goto_table, resubmit, recirc, all, ct, ct_clear, ipsec, group, conjunction), found '{name}'");
                    return [];
            }

            if (ctTableAt >= 0 && ctTableAt != start && a.Kind != ActionKind.Note)
            {
                _line.Fail(start, "expected nothing after ct(...,table=N) or ipsec(...) (the packet continues in table N; put these actions there), found "
                    + Found(s[start..pos]));
            }

            if (a.Kind is not (ActionKind.Conjunction or ActionKind.Note) && otherAt < 0)
            {
                otherAt = start;
                otherEnd = pos;
            }

            list.Add(a);
        }

        if (conjAt >= 0)
        {
            CheckConjunctionRule(conjAt, otherAt, otherEnd);
        }

        if (list.Count == 0)
        {
            return [new FlowAction(ActionKind.Drop)];
        }

        return [.. list];
    }

    /// <summary>
    /// conjunction(ID,K/N): ID 32 bits, N from 2 to 64, K from 1 to N (Open vSwitch's limits and
    /// messages); spaces around the numbers are allowed.
    /// </summary>
    private FlowAction Conjunction(ReadOnlySpan<char> arg, int argAt)
    {
        const string Syntax = "expected 'conjunction(ID,K/N)' (ID a 32-bit id, clause K of N)";
        int comma = arg.IndexOf(',');
        int slash = arg.IndexOf('/');
        if (comma < 0 || slash < comma)
        {
            _line.Fail(argAt, $"{Syntax}, found 'conjunction({arg})'");
        }

        var idText = arg[..comma];
        var kText = arg[(comma + 1)..slash];
        var nText = arg[(slash + 1)..];
        if (!TryParseU64(idText.Trim(), out ulong id) || id > uint.MaxValue)
        {
            _line.Fail(argAt, $"{Syntax}: the id must be from 0 to 4294967295, found {Found(idText)}");
        }

        int kAt = argAt + comma + 1, nAt = argAt + slash + 1;
        if (!TryParseU64(kText.Trim(), out ulong k) || k > 255)
        {
            _line.Fail(kAt, $"{Syntax}: K must be an integer, found {Found(kText)}");
        }

        if (!TryParseU64(nText.Trim(), out ulong n) || n > 255)
        {
            _line.Fail(nAt, $"{Syntax}: N must be an integer, found {Found(nText)}");
        }

        if (n < 2)
        {
            _line.Fail(nAt, $"conjunction must have at least 2 clauses (a conjunction of one dimension is an ordinary rule), found N={n}");
        }

        if (n > 64)
        {
            _line.Fail(nAt, $"conjunction must have at most 64 clauses, found N={n}");
        }

        if (k < 1)
        {
            _line.Fail(kAt, "conjunction clause index must be positive, found K=0");
        }

        if (k > n)
        {
            _line.Fail(kAt, $"conjunction clause index must be less than or equal to the number of clauses, found K={k} of N={n}");
        }

        return FlowAction.Conjunction((uint)id, (int)k, (int)n);
    }

    /// <summary>A rule with conjunction actions may have note actions besides, nothing else, and no conj_id match.</summary>
    private void CheckConjunctionRule(int conjAt, int otherAt, int otherEnd)
    {
        if (otherAt >= 0)
        {
            _line.Fail(Math.Max(conjAt, otherAt), "'conjunction' actions may be used along with 'note' but not any other kind of action "
                + $"(such as '{_line.Text[otherAt..otherEnd]}' here)");
        }

        if (_match.HasConjId)
        {
            _line.Fail(conjAt, "expected no 'conjunction' action in a rule matching conj_id (that rule is looked up only after a conjunction matched, and clause rules are not)");
        }
    }

    /// <summary>FlowAction.Value of a Flood written as "all" (OpenFlow's ALL port).</summary>
    public const ulong FloodAll = 1;

    /// <summary>Most controller ids dec_ttl(ID,...) keeps (16 bits each, packed in Value; Mask holds the count).</summary>
    public const int MaxDecTtlIds = 4;

    /// <summary>
    /// dec_ttl(ID[,ID...]): the controller ids an expired TTL would be reported to. This switch has no
    /// controller connection, so they change nothing; they are kept so that dumps show them. dec_ttl(0)
    /// is plain dec_ttl (Open vSwitch's default id).
    /// </summary>
    private FlowAction DecTtlIds(ReadOnlySpan<char> arg, int argAt, ReadOnlySpan<char> head)
    {
        ulong packed = 0;
        int count = 0;
        int at = 0;
        while (true)
        {
            int comma = arg[at..].IndexOf(',');
            var item = comma < 0 ? arg[at..] : arg[at..(at + comma)];
            if (!TryParseU64(item.Trim(), out ulong id) || id > 0xFFFF)
            {
                _line.Fail(argAt + at, $"expected a controller id from 0 to 65535 in '{head}', found {Found(item)}");
            }

            if (count == MaxDecTtlIds)
            {
                _line.Fail(argAt + at, $"expected at most {MaxDecTtlIds} controller ids in '{head}', found more");
            }

            packed |= id << (16 * count++);
            if (comma < 0)
            {
                break;
            }

            at += comma + 1;
        }

        return count == 1 && packed == 0 ? new FlowAction(ActionKind.DecTtl) : new FlowAction(ActionKind.DecTtl, Value: packed, Mask: (ulong)count);
    }

    /// <summary>
    /// output(port=N,max_len=M): output to N of the packet's first M bytes (the datapath's trunc, as
    /// in Open vSwitch); other outputs get the whole packet. M is 14 (an Ethernet header) to
    /// 2^32 - 1, as ovs-ofctl takes it.
    /// </summary>
    /// <summary>The smallest max_len output(...) takes (ovs-ofctl's: ETH_HEADER_LEN).</summary>
    private const int MinTruncLen = 14;

    private FlowAction OutputParams(ReadOnlySpan<char> arg, int argAt)
    {
        int port = -1;
        ulong maxLen = 0;
        int at = 0;
        while (at <= arg.Length)
        {
            int comma = arg[at..].IndexOf(',');
            var item = (comma < 0 ? arg[at..] : arg[at..(at + comma)]).Trim();
            int eq = item.IndexOf('=');
            var key = eq < 0 ? item : item[..eq];
            var val = eq < 0 ? default : item[(eq + 1)..];
            if (key.SequenceEqual("port") && !val.IsEmpty)
            {
                port = ParsePort(val, argAt + at, "output(port=");
            }
            else if (key.SequenceEqual("max_len") && TryParseU64(val, out maxLen) && maxLen <= uint.MaxValue)
            {
                if (maxLen < MinTruncLen)
                {
                    _line.Fail(argAt + at, $"expected max_len of at least {MinTruncLen} (an Ethernet header) in 'output(...)', found {Found(item)}");
                }
            }
            else
            {
                _line.Fail(argAt + at, $"expected 'port=N' or 'max_len=N' ({MinTruncLen} to 4294967295) in 'output(...)', found {Found(item)}");
            }

            if (comma < 0)
            {
                break;
            }

            at += comma + 1;
        }

        if (port < 0)
        {
            _line.Fail(argAt, $"expected 'port=N' in 'output(...)', found {Found(arg)}");
        }

        return new FlowAction(ActionKind.Output, Port: port, Value: maxLen);
    }

    /// <summary>note:HEX: hex bytes, '.' between any two bytes allowed; kept, as Open vSwitch shows it, zero-padded to 6 + 8n bytes.</summary>
    private FlowAction Note(ReadOnlySpan<char> arg, int argAt)
    {
        var bytes = new List<byte>();
        int i = 0;
        while (i < arg.Length)
        {
            if (arg[i] == '.')
            {
                i++;
                continue;
            }

            if (i + 1 >= arg.Length || !char.IsAsciiHexDigit(arg[i]) || !char.IsAsciiHexDigit(arg[i + 1]))
            {
                _line.Fail(argAt + i, $"expected hex bytes (two hex digits each, '.' between them allowed) after 'note:', found {Found(arg[i..])}");
            }

            bytes.Add(byte.Parse(arg.Slice(i, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            i += 2;
        }

        // The NXAST_NOTE action is 10 bytes of header and the bytes, padded to a multiple of 8.
        while ((bytes.Count + 10) % 8 != 0)
        {
            bytes.Add(0);
        }

        return new FlowAction(ActionKind.Note, Text: string.Join('.', bytes.Select(b => b.ToString("x2", CultureInfo.InvariantCulture))));
    }

    /// <summary>move:SRC[a..b]->DST[c..d]: both bit ranges of one width; the destination writable.</summary>
    private FlowAction Move(ReadOnlySpan<char> arg, int argAt, int start, bool vlan)
    {
        int arrow = arg.IndexOf("->");
        if (arrow < 0)
        {
            _line.Fail(argAt, $"expected SRC[]->DST[] after 'move:', found {Found(arg)}");
        }

        var src = Subfield(arg[..arrow], argAt, out int sLo, out int sHi, out var srcName);
        int dAt = argAt + arrow + 2;
        var dst = Subfield(arg[(arrow + 2)..], dAt, out int dLo, out int dHi, out var dstName);
        if (sLo < 0)
        {
            (sLo, sHi) = (0, src.SubfieldWidth - 1);
        }

        if (dLo < 0)
        {
            (dLo, dHi) = (0, dst.SubfieldWidth - 1);
        }

        if (src.IsWide || dst.IsWide)
        {
            _line.Fail(src.IsWide ? argAt : dAt, $"expected a field of at most 64 bits in 'move' (128-bit fields are not moved whole by this switch: IPv6 addresses not at all, an xxreg by a bit range within one 64-bit half), found '{(src.IsWide ? srcName : dstName)}'");
        }

        if (sHi >= src.SubfieldWidth || dHi >= dst.SubfieldWidth)
        {
            bool s = sHi >= src.SubfieldWidth;
            _line.Fail(s ? argAt : dAt, $"expected bits 0..{(s ? src : dst).SubfieldWidth - 1} of '{(s ? srcName : dstName)}', found {(s ? sLo : dLo)}..{(s ? sHi : dHi)}");
        }

        if (sHi - sLo != dHi - dLo)
        {
            _line.Fail(argAt, $"expected bit ranges of one width in 'move', found {sHi - sLo + 1} bits of '{srcName}' and {dHi - dLo + 1} bits of '{dstName}'");
        }

        if (!dst.Writable)
        {
            _line.Fail(dAt, $"expected a writable field after '->' ({WritableNames()}), found '{dstName}' (read-only)");
        }

        if (!Prerequisites.Satisfied(src.Prereq, _match) && src.Prereq != Prerequisite.Vlan)
        {
            _line.Fail(start, $"missing prerequisite for '{srcName}' in the actions: expected {Prerequisites.Describe(src.Prereq)} in the match");
        }

        CheckActionPrereq(dst, dstName, start, vlan);
        return new FlowAction(ActionKind.Move, Field: src, Dst: dst, Value: (uint)sLo | ((uint)dLo << 8) | ((uint)(sHi - sLo + 1) << 16));
    }

    /// <summary>
    /// FIELD[], FIELD[BIT] or FIELD[LOW..HIGH], FIELD a field name or an NXM/OXM name
    /// (NXM_OF_IP_SRC, NXM_NX_REG2); lo = hi = -1 for "[]".
    /// </summary>
    private FieldDef Subfield(ReadOnlySpan<char> text, int at, out int lo, out int hi, out ReadOnlySpan<char> name)
    {
        lo = hi = -1;
        int open = text.IndexOf('[');
        if (open < 0 || text[^1] != ']')
        {
            _line.Fail(at, $"expected 'FIELD[]', 'FIELD[BIT]' or 'FIELD[LOW..HIGH]', found {Found(text)}");
        }

        name = text[..open];
        var range = text[(open + 1)..^1];
        if (!range.IsEmpty)
        {
            int dots = range.IndexOf("..");
            var l = dots < 0 ? range : range[..dots];
            var h = dots < 0 ? range : range[(dots + 2)..];
            ulong lv = 0, hv = 0;
            if (!TryParseU64(l, out lv) || !TryParseU64(h, out hv) || hv < lv || hv > 127)
            {
                _line.Fail(at + open + 1, $"expected a bit range LOW..HIGH (or one BIT) in '{text}', found {Found(range)}");
            }

            lo = (int)lv;
            hi = (int)hv;
        }

        var f = Fields.FindNxm(name);
        if (f == null && !Keywords.TryFindField(name, out f))
        {
            FailField(name, at, "'move:' or 'load:'");
        }

        if (f.IsWide && f.PipelineOnly && lo >= 0 && !(lo == 0 && hi == 127))
        {
            // A bit range of xxregN is a range of one of its two xregs (bits 64..127: xreg 2N).
            int x = f.Word - FlowKey.RegWord(0);
            if (lo >= 64)
            {
                (f, lo, hi) = (Fields.Xregs[x], lo - 64, hi - 64);
            }
            else if (hi <= 63)
            {
                f = Fields.Xregs[x + 1];
            }
            else
            {
                _line.Fail(at + open + 1, $"expected a bit range of '{name}' within bits 0..63 or 64..127 (this switch moves and loads a 128-bit register in 64-bit halves), found {lo}..{hi}");
            }
        }

        return f;
    }

    /// <summary>The error for an unknown field name.</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void FailField(ReadOnlySpan<char> name, int at, string where)
    {
        _line.Fail(at, $"expected a field name after {where}, found {Found(name)}{(name.IsEmpty ? "" : Keywords.Suggest(name))}");
    }

    /// <summary>The field a mod_* action (ovs-ofctl's OpenFlow 1.0 names) sets.</summary>
    private static FieldDef ModField(ReadOnlySpan<char> action) => action switch
    {
        "mod_dl_src" => Fields.DlSrc,
        "mod_dl_dst" => Fields.DlDst,
        "mod_nw_src" => Fields.NwSrc,
        "mod_nw_dst" => Fields.NwDst,
        "mod_tp_src" => Fields.TpSrc,
        "mod_nw_ttl" => Fields.NwTtl,
        "mod_nw_ecn" => Fields.NwEcn,
        _ => Fields.TpDst,
    };

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

    private void NeedArg(bool hasArg, ReadOnlySpan<char> name, int pos, string what)
    {
        if (!hasArg)
        {
            _line.Fail(pos, $"expected ':' and {what} after '{name}', found {_line.FoundAt(pos)}");
        }
    }

    /// <summary>The argument of "name:N", an integer from 0 to <paramref name="max"/>.</summary>
    private ulong IntArg(bool hasArg, ReadOnlySpan<char> name, int pos, ReadOnlySpan<char> arg, int argAt,
        ReadOnlySpan<char> head, string what, ulong max)
    {
        NeedArg(hasArg, name, pos, what);
        if (!TryParseU64(arg, out ulong v) || v > max)
        {
            _line.Fail(argAt, $"expected {what} from 0 to {max} after '{head}', found {Found(arg)}");
        }

        return v;
    }

    private void NoArg(bool hasArg, ReadOnlySpan<char> name, int pos)
    {
        if (hasArg)
        {
            _line.Fail(pos, $"expected ',' after '{name}' (it takes no argument), found {_line.FoundAt(pos)}");
        }
    }

    private int ParsePort(ReadOnlySpan<char> s, int at, ReadOnlySpan<char> head)
    {
        if (_line.TryPortName(s, out int named))
        {
            return named;
        }

        if (!TryParseU64(s, out ulong p) || p == 0 || (p > 0xFF00 && p != FlowLine.OfPortLocal))
        {
            string names = _line.PortNamesHint;
            _line.Fail(at, head.IsEmpty
                ? $"expected an output port from 1 to 65280{names}, found {Found(s)}"
                : head[^1] == '('
                    ? $"expected a port number from 1 to 65280{names} (or nothing for the packet's in_port) in '{head}PORT,TABLE)', found {Found(s)}"
                    : $"expected a port number from 1 to 65280{names} after '{head}', found {Found(s)}");
        }

        return (int)p;
    }

    private FlowAction ParseResubmit(ReadOnlySpan<char> arg, int argAt, bool paren, int table)
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
                    _line.Fail(argAt + comma + 1, $"expected a table from 0 to 254 in 'resubmit(PORT,TABLE)', found {Found(ts)}");
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
            _line.Fail(argAt, "expected a port after 'resubmit:', found nothing");
        }

        return new FlowAction(ActionKind.Resubmit, Port: port, Table: t);
    }

    private FlowAction SetField(FieldDef f, ReadOnlySpan<char> name, int start, bool hasArg, int pos,
        ReadOnlySpan<char> arg, int argAt, ReadOnlySpan<char> head, bool vlan, ReadOnlySpan<char> fieldName = default)
    {
        NeedArg(hasArg, name, pos, "a value");
        var shown = fieldName.IsEmpty ? name : fieldName;
        CheckActionPrereq(f, shown, start, vlan);
        switch (f.Syntax)
        {
            case FieldSyntax.Mac:
                if (!TryParseMac(arg, out ulong mac))
                {
                    _line.Fail(argAt, $"expected a MAC address (aa:bb:cc:dd:ee:ff) after {After(head, fieldName)}, found {Found(arg)}");
                }

                return new FlowAction(ActionKind.SetField, Field: f, Value: mac);
            case FieldSyntax.Ipv4:
                if (!TryParseIpv4(arg, out uint ip))
                {
                    _line.Fail(argAt, $"expected an IPv4 address after {After(head, fieldName)}, found {Found(arg)}");
                }

                return new FlowAction(ActionKind.SetField, Field: f, Value: ip);
            case FieldSyntax.Ipv6:
                if (!TryParseIpv6(arg, out var ip6))
                {
                    _line.Fail(argAt, $"expected an IPv6 address after {After(head, fieldName)}, found {Found(arg)}");
                }

                return new FlowAction(ActionKind.SetField, Field: f, Value128: ip6);
            default:
                if (f.IsWide)
                {
                    return LoadField(f, arg, argAt, shown, start, vlan); // xxregN: a 128-bit integer
                }

                return IntSet(f, arg, argAt, head, fieldName);
        }
    }

    /// <summary>load:V->F[LOW..HIGH]: V into those bits of F (metadata and registers).</summary>
    private FlowAction PartialLoad(FieldDef f, ReadOnlySpan<char> value, int at, ReadOnlySpan<char> fieldName, int fAt, int lo, int hi)
    {
        if (!f.PipelineOnly)
        {
            _line.Fail(fAt, $"expected a whole packet field 'F[]' (bit ranges are for metadata and registers), found '{fieldName}[{lo}..{hi}]'");
        }

        if (hi >= f.Width)
        {
            _line.Fail(fAt, $"expected bits 0..{f.Width - 1} of '{fieldName}', found {lo}..{hi}");
        }

        int n = hi - lo + 1;
        ulong max = n >= 64 ? ulong.MaxValue : (1UL << n) - 1;
        if (!TryParseU64(value, out ulong v) || v > max)
        {
            _line.Fail(at, $"expected an integer from 0 to 0x{max:x} (bits {lo}..{hi}) after 'load:', found {Found(value)}");
        }

        return new FlowAction(ActionKind.SetField, Field: f, Value: v << lo, Mask: max << lo);
    }

    /// <summary>set_field:V/M->F: V into the bits M selects (metadata and registers).</summary>
    private FlowAction MaskedSet(FieldDef f, ReadOnlySpan<char> value, ReadOnlySpan<char> mask, int at, ReadOnlySpan<char> fieldName, int fAt)
    {
        if (!f.PipelineOnly)
        {
            _line.Fail(fAt, $"expected metadata or a register after a masked 'set_field:V/M->' (a packet field takes no mask), found '{fieldName}'");
        }

        if (f.IsWide)
        {
            _line.Fail(fAt, $"expected a field of at most 64 bits after a masked 'set_field:V/M->' (set a 128-bit register's halves, xreg2N and xreg2N+1), found '{fieldName}'");
        }

        ulong v = 0, m = 0;
        if (!TryParseU64(value, out v) || v > f.Max || !TryParseU64(mask, out m) || m > f.Max || m == 0)
        {
            _line.Fail(at, $"expected VALUE/MASK, integers from 0 to 0x{f.Max:x} (mask not 0), after 'set_field:', found {Found(value)}/{Found(mask)}");
        }

        return m == f.Max ? new FlowAction(ActionKind.SetField, Field: f, Value: v) : new FlowAction(ActionKind.SetField, Field: f, Value: v & m, Mask: m);
    }

    private FlowAction LoadField(FieldDef f, ReadOnlySpan<char> value, int at, ReadOnlySpan<char> fieldName,
        int start, bool vlan)
    {
        CheckActionPrereq(f, fieldName, start, vlan);
        if (f.IsWide)
        {
            if (!TryParseU128(value, out var v128))
            {
                _line.Fail(at, $"expected a 128-bit integer after {After("load:", fieldName)}, found {Found(value)}");
            }

            return new FlowAction(ActionKind.SetField, Field: f, Value128: v128);
        }

        return IntSet(f, value, at, "load:", fieldName);
    }

    private static string After(ReadOnlySpan<char> head, ReadOnlySpan<char> fieldName) =>
        fieldName.IsEmpty ? $"'{head}'" : $"'{head}' (for '{fieldName}')";

    private FlowAction IntSet(FieldDef f, ReadOnlySpan<char> arg, int argAt, ReadOnlySpan<char> head,
        ReadOnlySpan<char> fieldName)
    {
        bool of12Vid = fieldName.SequenceEqual("vlan_vid");
        ulong max = f.Max;
        if (!TryParseU64(arg, out ulong v) || (v > max && !(of12Vid && v is >= 0x1000 and <= 0x1FFF)))
        {
            _line.Fail(argAt, $"expected an integer from 0 to {(max > 0xFFFF ? "0x" + max.ToString("x", CultureInfo.InvariantCulture) : max.ToString(CultureInfo.InvariantCulture))} after {After(head, fieldName)}, found {Found(arg)}");
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

    private void CheckActionPrereq(FieldDef f, ReadOnlySpan<char> name, int start, bool vlan)
    {
        bool ok = _bucket || (f.Prereq == Prerequisite.Vlan ? vlan : Prerequisites.Satisfied(f.Prereq, _match));
        if (!ok)
        {
            _line.Fail(start, $"missing prerequisite for '{name}' in the actions: expected {Prerequisites.Describe(f.Prereq)} in the match");
        }

    }

    private static string WritableNames() => string.Join(", ", Fields.All.Where(f => f.Writable).Select(f => f.Name));
}
