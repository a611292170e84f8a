// DropReason.cs - why a PMD dropped a packet; carried with each drop so that a drop capture
// (`vswitchctl capture --drops`) can say it in each packet's comment.
namespace VSwitch.Pmd;

public enum DropReason : byte
{
    None = 0,

    /// <summary>The parser refused the frame (truncated or inconsistent headers).</summary>
    Malformed,

    /// <summary>No rule matched and the table's miss policy is drop.</summary>
    TableMiss,

    /// <summary>A rule matched whose actions send the packet nowhere (an ACL's drop rule).</summary>
    RuleDrop,

    /// <summary>An action could not be applied (TTL expired, no room for a tag).</summary>
    ActionFailed,

    /// <summary>The output port's tx queue was full.</summary>
    TxFull,

    /// <summary>The translation of the packet's flow failed (logged).</summary>
    TranslationError,

    /// <summary>Recirculated more times than the depth limit.</summary>
    RecircLimit,

    /// <summary>l2fwd: the input port has no peer.</summary>
    NoPeer,

    /// <summary>The verdict's only destination was the controller: its copy went to the punt ring, the original ends here.</summary>
    Punted,

    /// <summary>Refused by the IPsec stage (no SA, expired SA, full crypto queue, ICV or replay check); counted per SA.</summary>
    Ipsec,
}

public static class DropReasons
{
    /// <summary>The reason as operators read it (pcapng comment, counters).</summary>
    public static string Name(DropReason r) => r switch
    {
        DropReason.Malformed => "malformed",
        DropReason.TableMiss => "table_miss",
        DropReason.RuleDrop => "rule_drop",
        DropReason.ActionFailed => "action_failed",
        DropReason.TxFull => "tx_full",
        DropReason.TranslationError => "translation_error",
        DropReason.RecircLimit => "recirc_limit",
        DropReason.NoPeer => "no_peer",
        DropReason.Punted => "punted",
        DropReason.Ipsec => "ipsec",
        _ => "unknown",
    };
}
