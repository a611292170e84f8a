// GroupText.cs - the ovs-ofctl group syntax: add-group / add-groups / mod-group read it, dump-groups
// and the state store write it.
//
// "group_id=1,type=select,selection_method=hash,fields(ip_src,ip_dst),bucket=weight:2,actions=output:1,
// bucket=watch_port:3,actions=output:3". The items before the first bucket describe the group; each
// "bucket=" runs to the next "bucket=" (outside parentheses) or the end of the line, and holds
// bucket_id/weight/watch_port items (':' or '=') then the actions ("actions=" may be left out, as
// ovs-ofctl allows). Bucket actions are read by ActionParser in bucket mode over the line cut at the
// bucket's end, so every error names the column in the whole line. Counters that dump-groups prints
// (n_packets=, n_bytes=, duration=) are skipped, so its output loads back. Cold code (control thread).
using System.Globalization;
using System.Text;
using VSwitch.Pipeline;
using static VSwitch.FlowText.FlowValues;

namespace VSwitch.FlowText;

/// <summary>Parses and formats groups (docs/FLOWS.md, "Groups").</summary>
public static class GroupText
{
    /// <summary>One group per line; blank lines and '#' comments skipped; the first bad line throws <see cref="FlowSyntaxException"/>.</summary>
    public static List<FlowGroup> ParseGroups(string text, string origin, int firstLine = 1, IReadOnlyDictionary<string, int>? ports = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        var groups = new List<FlowGroup>();
        int lineNo = firstLine - 1;
        foreach (var raw in text.Split('\n'))
        {
            lineNo++;
            var line = raw.TrimEnd('\r');
            if (line.AsSpan().Trim().IsEmpty || line.TrimStart().StartsWith('#'))
            {
                continue;
            }

            var g = ParseGroup(line, origin, lineNo, ports);
            if (groups.Any(o => o.Id == g.Id))
            {
                throw new FlowSyntaxException(origin, lineNo, 1, $"expected each group once, found group_id={g.Id} again");
            }

            groups.Add(g);
        }

        return groups;
    }

    /// <summary>Parses one group.</summary>
    public static FlowGroup ParseGroup(string text, string origin, int lineNo, IReadOnlyDictionary<string, int>? ports = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        var line = new FlowLine(text.AsSpan().TrimEnd('\r'), origin, lineNo, ports);
        var s = line.Text;
        uint? id = null;
        GroupType? type = null;
        int typeAt = 0;
        bool hash = false;
        var fields = new List<FieldDef>();
        var buckets = new List<GroupBucket>();
        int pos = line.SkipSeps(0);
        // The group's own items, up to the first bucket.
        while (pos < s.Length && !IsBucketAt(s, pos))
        {
            int start = pos;
            if (StartsWithWord(s, pos, "fields("))
            {
                int close = s[pos..].IndexOf(')');
                if (close < 0)
                {
                    line.Fail(pos, "expected ')' to close 'fields(', found the end of the line");
                }

                ReadFields(line, pos + 7, pos + close, fields);
                pos = line.SkipSeps(pos + close + 1);
                continue;
            }

            pos = line.TokenEnd(pos);
            var item = s[start..pos];
            int eq = item.IndexOf('=');
            var key = eq < 0 ? item : item[..eq];
            var value = eq < 0 ? default : item[(eq + 1)..];
            int valueAt = start + eq + 1;
            switch (key.ToString().ToLowerInvariant())
            {
                case "group_id":
                    if (!TryParseU64(value, out ulong v) || v > FlowGroup.MaxId)
                    {
                        line.Fail(valueAt, $"expected a group id from 0 to {FlowGroup.MaxId} after 'group_id=', found {FlowLine.Found(value)}");
                    }

                    id = (uint)v;
                    break;
                case "type":
                    typeAt = start;
                    type = value.ToString().ToLowerInvariant() switch
                    {
                        "all" => GroupType.All,
                        "select" => GroupType.Select,
                        "indirect" => GroupType.Indirect,
                        "fast_failover" or "ff" => GroupType.FastFailover,
                        _ => null,
                    };
                    if (type == null)
                    {
                        line.Fail(valueAt, $"expected a group type (all, select, indirect, fast_failover) after 'type=', found {FlowLine.Found(value)}");
                    }

                    break;
                case "selection_method":
                    if (!value.Equals("hash", StringComparison.OrdinalIgnoreCase) && !value.IsEmpty)
                    {
                        line.Fail(valueAt, $"expected 'hash' after 'selection_method=' (the only method), found {FlowLine.Found(value)}");
                    }

                    hash = !value.IsEmpty;
                    break;
                case "selection_method_param":
                    if (!TryParseU64(value, out ulong param) || param != 0)
                    {
                        line.Fail(valueAt, $"expected 0 after 'selection_method_param=' (the hash takes no basis), found {FlowLine.Found(value)}");
                    }

                    break;
                case "fields":
                    ReadFields(line, valueAt, pos, fields);
                    break;
                case "n_packets" or "n_bytes" or "duration" or "packet_count" or "byte_count" or "ref_count":
                    break; // dump-groups' counters
                default:
                    line.Fail(start, $"expected group_id=, type=, selection_method=, fields(...) or bucket=, found {FlowLine.Found(item)}");
                    break;
            }

            pos = line.SkipSeps(pos);
        }

        if (id == null)
        {
            line.Fail(0, "expected 'group_id=N' in the group");
        }

        if (type == null)
        {
            line.Fail(0, "expected 'type=all|select|indirect|fast_failover' in the group");
        }

        if (type != GroupType.Select && (hash || fields.Count > 0))
        {
            line.Fail(typeAt, $"expected type=select with selection_method or fields, found type={Name(type.Value)}");
        }

        while (pos < s.Length)
        {
            int bucketAt = pos;
            pos += "bucket=".Length;
            int end = BucketEnd(s, pos);
            buckets.Add(ParseBucket(text, origin, lineNo, ports, pos, end, buckets.Count));
            pos = line.SkipSeps(end);
            if (type == GroupType.Indirect && buckets.Count > 1)
            {
                line.Fail(bucketAt, "expected one bucket in an indirect group, found a second");
            }
        }

        if (type == GroupType.Indirect && buckets.Count != 1)
        {
            line.Fail(s.Length, "expected one bucket in an indirect group, found none");
        }

        var ids = new HashSet<int>();
        foreach (var b in buckets)
        {
            if (!ids.Add(b.BucketId))
            {
                line.Fail(0, $"expected each bucket_id once, found {b.BucketId} twice");
            }
        }

        return new FlowGroup
        {
            Id = id.Value, Type = type.Value, HashMethod = hash, SelectionFields = [.. fields], Buckets = [.. buckets],
            Origin = $"{origin}:{lineNo}",
        };
    }

    private static GroupBucket ParseBucket(string text, string origin, int lineNo, IReadOnlyDictionary<string, int>? ports, int start, int end, int index)
    {
        var line = new FlowLine(text.AsSpan(0, end), origin, lineNo, ports);
        var s = line.Text;
        int weight = 1, watch = GroupBucket.NoWatchPort, bucketId = index;
        int pos = line.SkipSeps(start);
        while (pos < s.Length)
        {
            int itemEnd = pos;
            while (itemEnd < s.Length && !FlowLine.IsSep(s[itemEnd]) && s[itemEnd] is not (':' or '=' or '('))
            {
                itemEnd++;
            }

            var key = s[pos..itemEnd].ToString().ToLowerInvariant();
            if (key is not ("weight" or "watch_port" or "watch_group" or "bucket_id" or "n_packets" or "n_bytes") || itemEnd >= s.Length || s[itemEnd] is not (':' or '='))
            {
                break; // the actions (with or without "actions=")
            }

            int valueAt = itemEnd + 1;
            int valueEnd = line.TokenEnd(valueAt);
            var value = s[valueAt..valueEnd];
            switch (key)
            {
                case "weight":
                    weight = (int)Int(line, value, valueAt, "a weight", 0xFFFF, key);
                    break;
                case "bucket_id":
                    bucketId = (int)Int(line, value, valueAt, "a bucket id", 0xFFFFFF00, key);
                    break;
                case "watch_port":
                    if (line.TryPortName(value, out int named))
                    {
                        watch = named;
                    }
                    else if (!value.Equals("any", StringComparison.OrdinalIgnoreCase))
                    {
                        watch = (int)Int(line, value, valueAt, "a port number", 0xFF00, key);
                    }

                    break;
                case "watch_group":
                    if (!value.Equals("any", StringComparison.OrdinalIgnoreCase))
                    {
                        line.Fail(valueAt, $"expected 'any' after 'watch_group:' (watching groups is not supported), found {FlowLine.Found(value)}");
                    }

                    break;
            }

            pos = line.SkipSeps(valueEnd);
        }

        if (StartsWithWord(s, pos, "actions="))
        {
            pos += "actions=".Length;
        }

        var actions = pos >= s.Length ? [] : new ActionParser(line, pos, 0, default, bucket: true).Parse();
        if (actions is [{ Kind: ActionKind.Drop }])
        {
            actions = []; // "actions=drop": what dump-groups prints for an empty bucket
        }

        return new GroupBucket { BucketId = bucketId, Weight = weight, WatchPort = watch, Actions = actions };
    }

    private static ulong Int(FlowLine line, ReadOnlySpan<char> value, int at, string what, ulong max, string key)
    {
        if (!TryParseU64(value, out ulong v) || v > max)
        {
            line.Fail(at, $"expected {what} from 0 to {max} after '{key}:', found {FlowLine.Found(value)}");
        }

        return v;
    }

    private static void ReadFields(FlowLine line, int from, int to, List<FieldDef> fields)
    {
        var s = line.Text;
        int pos = from;
        while (pos < to)
        {
            int start = pos;
            while (pos < to && s[pos] != ',')
            {
                pos++;
            }

            var name = s[start..pos].Trim();
            if (!name.IsEmpty)
            {
                if (name.IndexOf('=') >= 0)
                {
                    line.Fail(start, $"expected a field name in fields(...) (masks are not supported), found {FlowLine.Found(name)}");
                }

                var f = Fields.Find(name.ToString().ToLowerInvariant());
                if (f == null || f.PipelineOnly || f == Fields.InPort || f == Fields.RecircId)
                {
                    line.Fail(start, $"expected a packet field in fields(...) (such as eth_src, ip_src, ip_dst, ipv6_src, ip_proto, tcp_src, udp_dst), found {FlowLine.Found(name)}");
                }

                if (!fields.Contains(f))
                {
                    fields.Add(f);
                }
            }

            pos++;
        }
    }

    private static bool StartsWithWord(ReadOnlySpan<char> s, int pos, string word) =>
        s.Length - pos >= word.Length && s.Slice(pos, word.Length).Equals(word, StringComparison.OrdinalIgnoreCase);

    private static bool IsBucketAt(ReadOnlySpan<char> s, int pos) => StartsWithWord(s, pos, "bucket=");

    /// <summary>Where the bucket starting at <paramref name="pos"/> ends: the separator before the next top-level "bucket=", or the end.</summary>
    private static int BucketEnd(ReadOnlySpan<char> s, int pos)
    {
        int depth = 0;
        for (int i = pos; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '(')
            {
                depth++;
            }
            else if (c == ')')
            {
                depth--;
            }
            else if (depth == 0 && FlowLine.IsSep(c) && IsBucketAt(s, i + 1))
            {
                return i;
            }
        }

        return s.Length;
    }

    public static string Name(GroupType t) => t switch
    {
        GroupType.All => "all",
        GroupType.Select => "select",
        GroupType.Indirect => "indirect",
        _ => "fast_failover",
    };

    /// <summary>
    /// The group as add-group takes it back; with counters, dump-groups' line (n_packets/n_bytes after
    /// the group id and in each bucket, skipped when read back).
    /// </summary>
    public static string Format(FlowGroup g, bool withCounters)
    {
        ArgumentNullException.ThrowIfNull(g);
        var ic = CultureInfo.InvariantCulture;
        var sb = new StringBuilder(128);
        sb.Append(ic, $"group_id={g.Id},");
        if (withCounters)
        {
            sb.Append(ic, $"n_packets={g.Counters.Packets},n_bytes={g.Counters.Bytes},");
        }

        sb.Append("type=").Append(Name(g.Type));
        if (g.HashMethod)
        {
            sb.Append(",selection_method=hash");
        }

        if (g.SelectionFields.Length > 0)
        {
            sb.Append(",fields(").AppendJoin(',', g.SelectionFields.Select(f => f.Name)).Append(')');
        }

        for (int i = 0; i < g.Buckets.Length; i++)
        {
            var b = g.Buckets[i];
            sb.Append(",bucket=");
            if (b.BucketId != i)
            {
                sb.Append(ic, $"bucket_id:{b.BucketId},");
            }

            if (withCounters)
            {
                sb.Append(ic, $"n_packets={b.Counters.Packets},n_bytes={b.Counters.Bytes},");
            }

            if (g.Type == GroupType.Select || b.Weight != 1)
            {
                sb.Append(ic, $"weight:{b.Weight},");
            }

            if (b.WatchPort != GroupBucket.NoWatchPort)
            {
                sb.Append(ic, $"watch_port:{b.WatchPort},");
            }

            sb.Append("actions=").Append(b.Actions.Length == 0 ? "drop" : FlowFormatter.FormatActions(b.Actions));
        }

        return sb.ToString();
    }

    /// <summary>dump-group-stats' line, as ovs-ofctl prints it.</summary>
    public static string FormatStats(FlowGroup g, int refCount, ulong nowTsc, ulong tscHz)
    {
        ArgumentNullException.ThrowIfNull(g);
        var ic = CultureInfo.InvariantCulture;
        double duration = tscHz == 0 || g.InstalledTsc == 0 || nowTsc < g.InstalledTsc ? 0 : (nowTsc - g.InstalledTsc) / (double)tscHz;
        var sb = new StringBuilder(96);
        sb.Append(ic, $"group_id={g.Id},duration={duration:F3}s,ref_count={refCount},packet_count={g.Counters.Packets},byte_count={g.Counters.Bytes}");
        for (int i = 0; i < g.Buckets.Length; i++)
        {
            sb.Append(ic, $",bucket{i}:packet_count={g.Buckets[i].Counters.Packets},byte_count={g.Buckets[i].Counters.Bytes}");
        }

        return sb.ToString();
    }
}
