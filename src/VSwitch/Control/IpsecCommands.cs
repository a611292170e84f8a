// IpsecCommands.cs - IPsec SAs on the control socket: add-sa, del-sa, dump-sa (docs/CONTROL.md).
// Arguments come as "args", a list of words (Ipsec/SaSpec.cs). Keys are taken, never printed: dump-sa
// shows everything else and the per-SA counters. A key daemon rekeys with add-sa (a new id),
// mod-flows (the rule names the new id), del-sa (the old one), with traffic flowing.
using System.Text.Json.Nodes;
using VSwitch.Ipsec;

namespace VSwitch.Control;

public sealed partial class Commands
{
    private JsonObject AddSa(JsonObject args)
    {
        var spec = SaSpec.Parse(Words(args));
        dp.AddSa(spec);
        return new JsonObject { ["added"] = spec.Id };
    }

    private JsonObject DelSa(JsonObject args)
    {
        var words = Words(args);
        if (words.Count == 0)
        {
            throw new VSwitchException("del-sa takes id=N...");
        }

        var ids = words.Select(w => w.StartsWith("id=", StringComparison.Ordinal) ? ParseInt(w[3..], "an SA id (id=N)", 1, SaSpec.MaxId)
            : throw new VSwitchException($"del-sa takes id=N..., found '{w}'")).ToList();
        var missing = ids.Where(id => dp.Ipsec?.Specs().Exists(s => s.Id == id) != true).ToList();
        if (missing.Count > 0)
        {
            throw new VSwitchException($"del-sa: no SA {string.Join(", ", missing)}");
        }

        foreach (int id in ids)
        {
            dp.DelSa(id);
        }

        return new JsonObject { ["deleted"] = new JsonArray([.. ids.Select(i => (JsonNode?)i)]) };
    }

    private unsafe JsonObject DumpSa(JsonObject args)
    {
        var words = Words(args);
        int? only = words.Count == 0 ? null : words.Count == 1 && words[0].StartsWith("id=", StringComparison.Ordinal)
            ? ParseInt(words[0][3..], "an SA id (id=N)", 1, SaSpec.MaxId) : throw new VSwitchException($"dump-sa takes [id=N], found '{words[0]}'");
        var rows = new JsonArray();
        var e = dp.Ipsec;
        foreach (var s in e?.Specs() ?? [])
        {
            if (only != null && s.Id != only)
            {
                continue;
            }

            SaSlot* c = e!.Slot(s.Id);
            string expired = c->Restored != 0 ? " restored_needs_rekey" : Volatile.Read(ref c->Expired) switch { 0 => "", 1 => " soft_expired", _ => " hard_expired" };
            string counters = s.Outbound
                ? $"packets={c->Packets} bytes={c->Bytes} seq={c->Prepared} queue_full={c->QueueFull} lifetime_drops={c->LifetimeDrops} too_big={c->TooBig} mismatch={c->Mismatch} check_drops={c->CheckDrops} in_flight={c->InFlight}"
                : $"packets={c->Packets} bytes={c->Bytes} received={c->Prepared} auth_failures={c->AuthFailures} replay_drops={c->ReplayDrops} check_drops={c->CheckDrops} queue_full={c->QueueFull} lifetime_drops={c->LifetimeDrops} mismatch={c->Mismatch} in_flight={c->InFlight}";
            rows.Add((JsonNode?)$"{string.Join(' ', s.ToWords(withKeys: false))} {counters}{expired}");
        }

        var result = new JsonObject { ["sas"] = rows };
        if (e != null)
        {
            result["crypto_device"] = $"{e.DeviceName} ({e.Driver}), {e.QueuePairs} queue pair(s), ops in use {e.OpsInUse}, no_sa_drops={e.NoSaDrops}";
        }

        return result;
    }
}
