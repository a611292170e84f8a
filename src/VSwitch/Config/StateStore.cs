// StateStore.cs - keeps the running ports and flow tables across vswitchd restarts.
//
// The store is one JSON file: {"format": 1, "ports": [...], "groups": ["group", ...], "flows": ["rule", ...]}
// where groups and rules are in the ovs-ofctl syntax (docs/FLOWS.md), so an operator can read and
// diff it ("groups" may be absent: a store written before groups existed). Writes are atomic: the
// whole store goes to a temporary file in the same directory, is fsynced, then renamed over the old
// one (and the directory fsynced), so a crash leaves either the old or the new store, never a torn
// one. A store that does not parse, or holds a bad port or rule, is refused at start-up with a
// message naming the file and the problem, and is left in place untouched.
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using VSwitch.FlowText;
using VSwitch.Pipeline;

namespace VSwitch.Config;

/// <param name="NextOfPort">The lowest OpenFlow number never handed out (numbers are not reused, so rules that name a removed port never reach a new one).</param>
public sealed record StoredState(IReadOnlyList<PortConfig> Ports, IReadOnlyList<FlowRule> Rules, int NextOfPort)
{
    /// <summary>The groups the rules may name (restored before them).</summary>
    public IReadOnlyList<FlowGroup> Groups { get; init; } = [];

    /// <summary>Conntrack zone limits and timeouts (null: none stored).</summary>
    public Conntrack.CtSettings? Conntrack { get; init; }

    /// <summary>IPsec SAs, with their keys (the file is written 0600).</summary>
    public IReadOnlyList<Ipsec.SaSpec> Sas { get; init; } = [];

    /// <summary>
    /// Whether vswitchd wrote the SAs (then its outbound SAs may have sent packets, and are restored
    /// stopped: IpsecEngine.Add); a store written by hand holds fresh SAs.
    /// </summary>
    public bool SasWereInUse { get; init; }
}

public static partial class StateStore
{
    public const int Format = 1;

    /// <summary>Reads and fully validates a store; null when the file does not exist.</summary>
    public static StoredState? Load(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        string where = $"state file {path}";
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new VSwitchException($"{where} is corrupt (invalid JSON at line {e.LineNumber + 1}: {e.Message.Split('.')[0]}); it was left as it is: fix or remove it");
        }
        catch (IOException e)
        {
            throw new VSwitchException($"{where}: {e.Message}");
        }

        if (root is not JsonObject o || o["format"]?.GetValue<int>() != Format || o["ports"] is not JsonArray ports || o["flows"] is not JsonArray flows)
        {
            throw new VSwitchException($"{where} is corrupt (expected an object with \"format\": {Format}, \"ports\" and \"flows\"); it was left as it is: fix or remove it");
        }

        var pcs = new List<PortConfig>();
        int i = 0;
        foreach (var p in ports)
        {
            try
            {
                var pc = new PortConfig
                {
                    Name = p!["name"]!.GetValue<string>(),
                    DevArgs = p["devargs"]!.GetValue<string>(),
                    RxQueues = p["rxq"]?.GetValue<int>() ?? 1,
                };
                if (p["vlan"]?.GetValue<string>() is string vlan)
                {
                    pc.SetVlan(vlan, $"{where}: ports[{i}].vlan");
                }

                if (p["ofport"] is JsonNode of)
                {
                    int n = of.GetValue<int>();
                    pc.OfPort = n is >= 1 and <= PortConfig.MaxOfPort && pcs.All(q => q.OfPort != n)
                        ? n : throw new FormatException("ofport");
                }

                pcs.Add(pc);
            }
            catch (Exception e) when (e is InvalidOperationException or NullReferenceException or FormatException)
            {
                throw new VSwitchException($"{where} is corrupt at ports[{i}] (needs \"name\" and \"devargs\" strings, and an \"ofport\" from 1 to {PortConfig.MaxOfPort} used once, if any); it was left as it is: fix or remove it");
            }

            i++;
        }

        var text = string.Join('\n', flows.Select(f => f?.GetValue<string>() ?? ""));
        List<FlowRule> rules;
        try
        {
            rules = FlowParser.ParseRules(text, where + " flows");
        }
        catch (VSwitchException e)
        {
            throw new VSwitchException($"{e.Message} (the state file was left as it is: fix or remove it)");
        }

        List<FlowGroup> groups;
        try
        {
            var groupText = o["groups"] is JsonArray ga ? string.Join('\n', ga.Select(g => g?.GetValue<string>() ?? "")) : "";
            groups = GroupText.ParseGroups(groupText, where + " groups");
            var ids = groups.Select(g => g.Id).ToHashSet();
            foreach (var r in rules)
            {
                foreach (uint g in FlowGroup.Referenced(r.Actions))
                {
                    if (!ids.Contains(g))
                    {
                        throw new VSwitchException($"{r.Origin}: group:{g} names no group of the store");
                    }
                }
            }
        }
        catch (Exception e) when (e is VSwitchException or InvalidOperationException)
        {
            throw new VSwitchException($"{e.Message} (the state file was left as it is: fix or remove it)");
        }

        int next = pcs.Select(p => (p.OfPort ?? 0) + 1).Append(1).Max();
        if (o["next_ofport"] is JsonNode nn)
        {
            try
            {
                next = Math.Max(next, nn.GetValue<int>());
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new VSwitchException($"{where} is corrupt at next_ofport (expected an integer); it was left as it is: fix or remove it");
            }
        }

        Conntrack.CtSettings? ct = null;
        if (o["conntrack"] is JsonNode cn)
        {
            try
            {
                ct = VSwitch.Conntrack.CtSettings.FromJson(cn);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            {
                throw new VSwitchException($"{where} is corrupt at conntrack (expected default_zone_limit, zone_limits {{\"ZONE\": LIMIT}}, timeouts {{NAME: SECONDS}} and zone_timeouts {{\"ZONE\": {{NAME: SECONDS}}}}); it was left as it is: fix or remove it");
            }
        }

        var sas = new List<Ipsec.SaSpec>();
        if (o["sas"] is JsonArray sa)
        {
            int si = 0;
            foreach (var s in sa)
            {
                try
                {
                    sas.Add(Ipsec.SaSpec.Parse((s?.GetValue<string>() ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries)));
                }
                catch (Exception e) when (e is VSwitchException or InvalidOperationException)
                {
                    throw new VSwitchException($"{where} is corrupt at sas[{si}]: {e.Message}; it was left as it is: fix or remove it");
                }

                si++;
            }
        }

        return new StoredState(pcs, rules, next) { Groups = groups, Conntrack = ct, Sas = sas, SasWereInUse = o["sas_written_by"] is not null };
    }

    private static void WriteNode(Utf8JsonWriter w, JsonNode? node)
    {
        if (node == null)
        {
            w.WriteNullValue();
        }
        else
        {
            node.WriteTo(w);
        }
    }

    /// <summary>Writes the store atomically (temp file, fsync, rename, fsync of the directory).</summary>
    public static void Save(string path, IEnumerable<PortConfig> ports, IEnumerable<FlowRule> rules, int nextOfPort, IEnumerable<FlowGroup>? groups = null,
        Conntrack.CtSettings? conntrack = null, IEnumerable<Ipsec.SaSpec>? sas = null)
    {
        var o = new JsonObject
        {
            ["format"] = Format,
            ["next_ofport"] = nextOfPort,
            ["ports"] = new JsonArray(ports.Select(p =>
            {
                var j = new JsonObject { ["name"] = p.Name, ["devargs"] = p.DevArgs, ["rxq"] = p.RxQueues };
                if (p.OfPort is int of)
                {
                    j["ofport"] = of;
                }

                if (p.VlanMode != VlanMode.None)
                {
                    j["vlan"] = p.VlanSpec;
                }

                return (JsonNode?)j;
            }).ToArray()),
            ["groups"] = new JsonArray((groups ?? []).OrderBy(g => g.Id).Select(g => (JsonNode?)GroupText.Format(g, false)).ToArray()),
        };

        // The rules are written one by one as they are formatted (below), not held as a document: a
        // 200 000-rule store would otherwise keep 200 000 strings and nodes alive through several
        // collections, each of which stops the PMDs.
        var tail = new JsonObject();
        if (conntrack != null)
        {
            tail["conntrack"] = conntrack.ToJson();
        }

        if (sas != null)
        {
            tail["sas"] = new JsonArray(sas.Select(s => (JsonNode?)string.Join(' ', s.ToWords(withKeys: true))).ToArray());
            tail["sas_written_by"] = "vswitchd"; // its outbound SAs may have been used: restored stopped
        }

        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        try
        {
            // 0600: the store holds IPsec keys
            using (var fs = new FileStream(tmp, new FileStreamOptions
            {
                Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            }))
            {
                File.SetUnixFileMode(fs.SafeFileHandle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                using (var w = new Utf8JsonWriter(fs, new JsonWriterOptions { Indented = true }))
                {
                    w.WriteStartObject();
                    foreach (var (name, node) in o)
                    {
                        w.WritePropertyName(name);
                        WriteNode(w, node);
                    }

                    w.WriteStartArray("flows");
                    var text = new StringBuilder(256); // one builder and buffer for every rule: no string per rule
                    char[] chars = new char[256];
                    foreach (var r in rules)
                    {
                        text.Clear();
                        FlowFormatter.AppendRule(text, r, false);
                        if (text.Length > chars.Length)
                        {
                            chars = new char[Math.Max(text.Length, chars.Length * 2)];
                        }

                        text.CopyTo(0, chars, text.Length);
                        w.WriteStringValue(chars.AsSpan(0, text.Length));
                        if (w.BytesPending > 1 << 16)
                        {
                            w.Flush(); // to the file: the writer's buffer would otherwise grow to the whole store
                        }
                    }

                    w.WriteEndArray();
                    foreach (var (name, node) in tail)
                    {
                        w.WritePropertyName(name);
                        WriteNode(w, node);
                    }

                    w.WriteEndObject();
                }

                fs.Flush(flushToDisk: true);
            }
        }
        catch
        {
            File.Delete(tmp); // a rule that failed to format (or a full disk) leaves no temporary file behind
            throw;
        }

        File.Move(tmp, path, overwrite: true);
        int fd = open(dir, 0); // O_RDONLY: fsync the directory so the rename itself is durable
        if (fd >= 0)
        {
            fsync(fd);
            close(fd);
        }
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc")]
    private static partial int fsync(int fd);

    [LibraryImport("libc")]
    private static partial int close(int fd);
}
