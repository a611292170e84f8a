// FlowFormatter.cs - writes rules, matches, actions and megaflow keys in the syntax FlowParser reads.
//
// Format(rule, false) gives text that ParseRule takes back to an equal match and equal actions;
// with counters it is a dump-flows line. Matches are written in ovs-ofctl's order (metadata and
// registers, the protocol shorthand, in_port, L2, L3, L4), a field's value by its FieldSyntax
// (Fields.cs): decimal or hex, MAC, an IPv4 or IPv6 prefix when the mask is one, flag names for a
// partial tcp_flags or ct_state mask. FormatKeyMask shows a megaflow as raw fields, no shorthands.
// Cold code (control plane and trace): StringBuilder and interpolation are fine here.
using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Text;
using VSwitch.Packets;
using VSwitch.Pipeline;

namespace VSwitch.FlowText;

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
        var sb = new StringBuilder(128);
        AppendRule(sb, r, withCounters, nowTsc, tscHz);
        return sb.ToString();
    }

    /// <summary>
    /// <see cref="Format"/> appended to <paramref name="sb"/>: a caller that formats many rules
    /// (the state writer) reuses one builder instead of making a builder and a string per rule.
    /// </summary>
    public static void AppendRule(StringBuilder sb, FlowRule r, bool withCounters, ulong nowTsc = 0, ulong tscHz = 0)
    {
        ArgumentNullException.ThrowIfNull(sb);
        ArgumentNullException.ThrowIfNull(r);
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
            arp ? Fields.ArpSpa : Fields.NwSrc, arp ? Fields.ArpTpa : Fields.NwDst, arp ? Fields.ArpSha : Fields.Ipv6Src, arp ? Fields.ArpTha : Fields.Ipv6Dst,
            arp ? Fields.ArpOp : Fields.NwProto, Fields.NwTos, Fields.NwTtl, Fields.NwFrag,
            icmp ? Fields.IcmpType : Fields.TpSrc, icmp ? Fields.IcmpCode : Fields.TpDst, Fields.TcpFlags,
            ])
        {
            AppendField(sb, f, m, raw: true);
        }

        foreach (var f in Fields.PipelineFields)
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
        // Allocation-free on purpose, IPv6 addresses aside (IPAddress formats those): the state writer
        // formats every rule after each change. The separator is a static call, not a delegate over a
        // closure, and the field list is walked by index, not through a boxed enumerator.
        int start = sb.Length;

        if (m.HasConjId)
        {
            sb.Append(CultureInfo.InvariantCulture, $"conj_id={m.ConjId}"); // ovs-ofctl writes it before metadata
        }

        // ovs-ofctl's order: metadata, registers and ct_* fields, then the protocol, in_port, L2, L3, L4.
        var pipelineFields = Fields.PipelineFields;
        for (int i = 0; i < pipelineFields.Count; i++)
        {
            var f = pipelineFields[i];
            if (Masked(f, m))
            {
                SepAfter(sb, start);
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
                        KeyExtractor.ProtoSctp => v6 ? "sctp6" : "sctp",
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
            SepAfter(sb, start);
            sb.Append(shorthand);
        }

        if (Masked(Fields.InPort, m))
        {
            SepAfter(sb, start);
            AppendField(sb, Fields.InPort, m, raw: false);
        }

        AppendVlan(sb, m, start);
        foreach (var f in (ReadOnlySpan<FieldDef>)[Fields.Vlan2Tci, Fields.DlSrc, Fields.DlDst])
        {
            if (Masked(f, m))
            {
                SepAfter(sb, start);
                AppendField(sb, f, m, raw: false);
            }
        }

        if (shorthand == null && Masked(Fields.DlType, m))
        {
            SepAfter(sb, start);
            AppendField(sb, Fields.DlType, m, raw: false);
        }

        bool arp = typeExact && dlType == KeyExtractor.EthArp;
        bool icmp = IsIcmp(m);
        FieldDef protoField = arp ? Fields.ArpOp : Fields.NwProto;
        foreach (var f in (ReadOnlySpan<FieldDef>)[
            arp ? Fields.ArpSpa : Fields.NwSrc, arp ? Fields.ArpTpa : Fields.NwDst, arp ? Fields.ArpSha : Fields.Ipv6Src, arp ? Fields.ArpTha : Fields.Ipv6Dst,
            protoField, TosField(m), Fields.NwTtl, Fields.NwFrag,
            icmp ? Fields.IcmpType : Fields.TpSrc, icmp ? Fields.IcmpCode : Fields.TpDst, Fields.TcpFlags])
        {
            if ((ReferenceEquals(f, protoField) && protoDone) || !Masked(f, m))
            {
                continue;
            }

            SepAfter(sb, start);
            AppendField(sb, f, m, raw: false);
        }
    }

    /// <summary>The ToS byte as the rule wrote it: ip_dscp for the DSCP bits alone, nw_ecn for the ECN bits alone, else nw_tos.</summary>
    private static FieldDef TosField(in FlowMatch m) => m.GetMask(Fields.NwTos) switch
    {
        0xFC => Fields.IpDscp,
        0x03 => Fields.NwEcn,
        _ => Fields.NwTos,
    };

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

    /// <summary>A comma unless nothing was appended since <paramref name="start"/>.</summary>
    private static void SepAfter(StringBuilder sb, int start)
    {
        if (sb.Length > start)
        {
            sb.Append(',');
        }
    }

    private static void AppendVlan(StringBuilder sb, in FlowMatch m, int start)
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
                SepAfter(sb, start);
                sb.Append(CultureInfo.InvariantCulture, $"dl_vlan={tv & 0xFFF}");
            }

            if (pcpMask != 0)
            {
                SepAfter(sb, start);
                sb.Append(CultureInfo.InvariantCulture, $"dl_vlan_pcp={tv >> 13}");
            }

            return;
        }

        SepAfter(sb, start);
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

            if (f.Syntax == FieldSyntax.Hex) // ct_label (xxregs are dumped as their regs)
            {
                sb.Append(ic, $"{f.Name}=0x{value:x}");
                if (mask != UInt128.MaxValue)
                {
                    sb.Append(ic, $"/0x{mask:x}");
                }

                return;
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
        switch (f.Syntax)
        {
            case FieldSyntax.Mac:
                AppendMac(sb, v);
                if (mk != full)
                {
                    sb.Append('/');
                    AppendMac(sb, mk);
                }

                return;
            case FieldSyntax.Ipv4:
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
            case FieldSyntax.Frag:
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
            case FieldSyntax.Flags when !raw && mk != full && (mk & ~NamedBits(f.FlagNames)) == 0:
                AppendFlags(sb, f.FlagNames, v, mk);
                return;
        }

        if (mk == full)
        {
            if (f.Syntax == FieldSyntax.Decimal)
            {
                sb.Append(v);
            }
            else if (f.Syntax == FieldSyntax.Hex4)
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

    private static ulong NamedBits((string Name, ushort Bit)[] names)
    {
        ulong bits = 0;
        foreach (var (_, b) in names)
        {
            bits |= b;
        }

        return bits;
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
            sb.Append(CultureInfo.InvariantCulture, $"{(byte)(mac >> (i * 8)):x2}");
            if (i > 0)
            {
                sb.Append(':');
            }
        }
    }

    private static StringBuilder AppendIpv4(StringBuilder sb, uint a) =>
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
                case ActionKind.Output when a.Value != 0:
                    sb.Append(ic, $"output(port={(a.Port == FlowLine.OfPortLocal ? "LOCAL" : a.Port)},max_len={a.Value})");
                    break;
                case ActionKind.Output when a.Port == FlowLine.OfPortLocal:
                    sb.Append("output:LOCAL");
                    break;
                case ActionKind.Output:
                    sb.Append(ic, $"output:{a.Port}");
                    break;
                case ActionKind.Note:
                    sb.Append(ic, $"note:{a.Text}");
                    break;
                case ActionKind.Move:
                    sb.Append(ic, $"move:{a.Field!.Name}[{a.MoveSrcLow}..{a.MoveSrcLow + a.MoveWidth - 1}]->{a.Dst!.Name}[{a.MoveDstLow}..{a.MoveDstLow + a.MoveWidth - 1}]");
                    break;
                case ActionKind.InPort:
                    sb.Append("in_port");
                    break;
                case ActionKind.Drop:
                    sb.Append("drop");
                    break;
                case ActionKind.Flood:
                    sb.Append(a.Value == ActionParser.FloodAll ? "all" : "flood");
                    break;
                case ActionKind.CtClear:
                    sb.Append("ct_clear");
                    break;
                case ActionKind.Ct:
                    AppendCt(sb, a.Ct!);
                    break;
                case ActionKind.Ipsec:
                    if (a.Value == 0)
                    {
                        sb.Append(ic, $"ipsec(decrypt,table={a.Table})");
                    }
                    else
                    {
                        sb.Append(ic, $"ipsec(sa={a.Value},table={a.Table})");
                    }

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
                    if (a.Mask != 0)
                    {
                        sb.Append('(');
                        for (int k = 0; k < (int)a.Mask; k++)
                        {
                            sb.Append(ic, $"{(k == 0 ? "" : ",")}{(a.Value >> (16 * k)) & 0xFFFF}");
                        }

                        sb.Append(')');
                    }

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
                case ActionKind.Recirc:
                    sb.Append(ic, $"recirc({a.Value})");
                    break;
                case ActionKind.Group:
                    sb.Append(ic, $"group:{a.Value}");
                    break;
                case ActionKind.Conjunction:
                    sb.Append(ic, $"conjunction({a.ConjId},{a.ConjClause}/{a.ConjClauses})");
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
        switch (f.Syntax)
        {
            case FieldSyntax.Mac:
                AppendMac(sb, a.Value);
                break;
            case FieldSyntax.Ipv4:
                AppendIpv4(sb, (uint)a.Value);
                break;
            case FieldSyntax.Ipv6:
                sb.Append(Ipv6Text(a.Value128));
                break;
            case FieldSyntax.Hex when f.IsWide:
                sb.Append(CultureInfo.InvariantCulture, $"0x{a.Value128:x}");
                break;
            default:
                // The writable decimal fields (the L4 ports) in decimal, every other integer in hex
                // (a read-only field can only be here when code built the action).
                if (f.Syntax == FieldSyntax.Decimal && f.Writable)
                {
                    sb.Append(a.Value);
                }
                else
                {
                    sb.Append(CultureInfo.InvariantCulture, $"0x{a.Value:x}");
                }

                if (a.Mask != 0)
                {
                    sb.Append(CultureInfo.InvariantCulture, $"/0x{a.Mask:x}"); // metadata and registers only
                }

                break;
        }

        sb.Append("->").Append(f.Name);
    }

    /// <summary>ct(...) as ovs-ofctl writes it (the parser reads it back to the same spec).</summary>
    private static void AppendCt(StringBuilder sb, Conntrack.CtSpec c)
    {
        var ic = CultureInfo.InvariantCulture;
        var parts = new List<string>();
        if (c.Commit)
        {
            parts.Add("commit");
        }

        if (c.Force)
        {
            parts.Add("force");
        }

        if (c.Zone != 0)
        {
            parts.Add(string.Create(ic, $"zone={c.Zone}"));
        }

        if (c.Table >= 0)
        {
            parts.Add(string.Create(ic, $"table={c.Table}"));
        }

        if (c.HasMark || c.HasLabel)
        {
            var x = new List<string>();
            if (c.HasMark)
            {
                x.Add(c.MarkMask == uint.MaxValue ? string.Create(ic, $"set_field:0x{c.MarkValue:x}->ct_mark") : string.Create(ic, $"set_field:0x{c.MarkValue:x}/0x{c.MarkMask:x}->ct_mark"));
            }

            if (c.HasLabel)
            {
                x.Add(c.LabelMask == UInt128.MaxValue ? string.Create(ic, $"set_field:0x{c.LabelValue:x}->ct_label") : string.Create(ic, $"set_field:0x{c.LabelValue:x}/0x{c.LabelMask:x}->ct_label"));
            }

            parts.Add("exec(" + string.Join(",", x) + ")");
        }

        if (c.Nat == Conntrack.CtNatKind.Apply)
        {
            parts.Add("nat");
        }
        else if (c.Nat != Conntrack.CtNatKind.None)
        {
            string addr(UInt128 a) => c.V6 ? "[" + Ipv6Text(a) + "]" : AppendIpv4(new StringBuilder(), (uint)a).ToString();
            string r = (c.Nat == Conntrack.CtNatKind.Src ? "src=" : "dst=") + addr(c.AddrMin) + (c.AddrMax != c.AddrMin ? "-" + addr(c.AddrMax) : "");
            if (c.PortMin != 0)
            {
                r += string.Create(ic, $":{c.PortMin}") + (c.PortMax != c.PortMin ? string.Create(ic, $"-{c.PortMax}") : "");
            }

            parts.Add("nat(" + r + (c.NatFlags.Length != 0 ? "," + c.NatFlags : "") + ")");
        }

        sb.Append("ct(").Append(string.Join(",", parts)).Append(')');
    }
}
