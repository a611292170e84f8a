// DpAction.cs - the flat, compiled datapath actions a megaflow carries.
//
// The pipeline (upcall) turns rules' OpenFlow-like actions into this list once per megaflow:
// goto_table, resubmit, NORMAL, flood and table misses are resolved to plain outputs; set_field is
// resolved to the exact header rewrite with its checksum kind. The executor then runs the list
// once per group of packets sharing the megaflow with one switch per action, never per-packet
// virtual calls. Each action is 16 bytes; a 128-bit IPv6 address takes a second slot.
using System.Runtime.InteropServices;

namespace VSwitch.Actions;

public enum DpOp : byte
{
    /// <summary>
    /// Send to slot A; with <see cref="DpAction.CloneFlag"/> a copy is sent and the original goes on.
    /// B != 0: what this output sends is cut to its first B bytes (output(port=N,max_len=B), Open
    /// vSwitch's datapath trunc); other outputs get the whole packet.
    /// </summary>
    Output = 1,

    /// <summary>Copy the packet into the PMD's punt ring (reason A).</summary>
    Controller,

    /// <summary>dl_dst = C.</summary>
    SetEthDst,

    /// <summary>dl_src = C.</summary>
    SetEthSrc,

    /// <summary>Push a tag: TPID A, TCI B (without the present bit).</summary>
    PushVlan,

    /// <summary>Remove the outermost tag (no-op on an untagged frame).</summary>
    PopVlan,

    /// <summary>Outermost TCI = (TCI &amp; ~B) | A.</summary>
    SetVlanTci,

    /// <summary>IPv4 source = B (IP checksum, and the L4 checksum of kind Flags &amp; 3).</summary>
    SetIpv4Src,

    /// <summary>IPv4 destination = B.</summary>
    SetIpv4Dst,

    /// <summary>IPv6 source = (C, next slot's C).</summary>
    SetIpv6Src,

    /// <summary>IPv6 destination = (C, next slot's C).</summary>
    SetIpv6Dst,

    /// <summary>L4 source port = A (kind Flags &amp; 3).</summary>
    SetTpSrc,

    /// <summary>L4 destination port = A.</summary>
    SetTpDst,

    /// <summary>TTL/hop limit - 1 (Flags: 1 = IPv4, 2 = IPv6); a packet at TTL 1 or 0 is dropped.</summary>
    DecTtl,

    /// <summary>Second slot of a two-slot action.</summary>
    Ext,

    /// <summary>Send the group back through the caches with recirc_id A (the last action; depth bounded, counted).</summary>
    Recirc,

    /// <summary>Set the IPv4 TTL (Flags 1, header checksum updated) or IPv6 hop limit (Flags 2) to A.</summary>
    SetTtl,

    /// <summary>Set the bits B of the IPv4 ToS (Flags 1, header checksum updated) or IPv6 traffic class (Flags 2) to A.</summary>
    SetTos,

    /// <summary>Does nothing: ends a verdict that drops because a table missed (a drop capture says "table_miss", not "rule_drop").</summary>
    MissNote,

    /// <summary>
    /// Connection tracking with CtSpecs entry A, per packet (Conntrack/ConnTableProcess.cs): the
    /// packet's connection is found or committed, NAT applied, and its ct_state/zone/mark set. With
    /// Flags &amp; <see cref="DpAction.CtRecirc"/> it is the last action: the packets go back through the
    /// caches with recirc_id B (a frozen state: Pipeline/FrozenStates.cs) and that connection state.
    /// </summary>
    Ct,

    /// <summary>ct_clear: the packets' connection state becomes untracked (matters to a later ct or recirculation).</summary>
    CtClear,

    /// <summary>
    /// Hand the group to the IPsec stage (Ipsec/IpsecEngine.cs): encrypt with outbound SA A, or with A = 0
    /// decrypt with the inbound SA each packet's SPI names; the results come back on a later round
    /// and re-enter the caches with recirc_id B (a frozen state). The last action.
    /// </summary>
    Ipsec,
}

[StructLayout(LayoutKind.Sequential, Size = 16)]
public struct DpAction
{
    public const byte CloneFlag = 0x80;

    /// <summary>Ct: recirculate with recirc_id B afterwards.</summary>
    public const byte CtRecirc = 1;
    public const byte L4None = 0;
    public const byte L4Tcp = 1;
    public const byte L4Udp = 2;
    public const byte L4Icmp6 = 3;

    /// <summary>SCTP: its CRC32c covers the SCTP packet only (no pseudo-header); a port rewrite recomputes it.</summary>
    public const byte L4Sctp = 4;

    /// <summary>What to do.</summary>
    public DpOp Op;

    /// <summary>Op-specific flags (clone, checksum kind).</summary>
    public byte Flags;

    /// <summary>16-bit argument (slot, port number, TPID, TCI).</summary>
    public ushort A;

    /// <summary>32-bit argument (IPv4 address, TCI mask, TCI).</summary>
    public uint B;

    /// <summary>64-bit argument (MAC, half an IPv6 address).</summary>
    public ulong C;

    public DpAction(DpOp op, byte flags = 0, ushort a = 0, uint b = 0, ulong c = 0)
    {
        Op = op;
        Flags = flags;
        A = a;
        B = b;
        C = c;
    }

    /// <summary>Whether the op changes packet bytes (and so must not follow the last output).</summary>
    public readonly bool Modifies => Op is not (DpOp.Output or DpOp.Controller or DpOp.Ext or DpOp.Recirc or DpOp.MissNote or DpOp.Ct or DpOp.Ipsec);

    public override readonly string ToString() => Format(null);

    /// <summary>The op as text; an output names the port's OpenFlow number (<paramref name="ofPortOfSlot"/>; without it, slot + 1).</summary>
    public readonly string Format(Func<int, int>? ofPortOfSlot) => Op switch
    {
        DpOp.Output => $"{(B != 0 ? $"trunc({B})," : "")}output:{(ofPortOfSlot == null ? A + 1 : ofPortOfSlot(A))}{((Flags & CloneFlag) != 0 ? "(clone)" : "")}",
        DpOp.Controller => "controller",
        DpOp.SetEthDst => $"set(eth_dst={FlowText.FlowFormatter.FormatMac(C)})",
        DpOp.SetEthSrc => $"set(eth_src={FlowText.FlowFormatter.FormatMac(C)})",
        DpOp.PushVlan => $"push_vlan(tpid=0x{A:x4},vid={B & 0xFFF},pcp={B >> 13})",
        DpOp.PopVlan => "pop_vlan",
        DpOp.SetVlanTci => $"set(vlan_tci=0x{A:x4}/0x{B:x4})",
        DpOp.SetIpv4Src => $"set(ipv4_src={new System.Net.IPAddress(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(B))})",
        DpOp.SetIpv4Dst => $"set(ipv4_dst={new System.Net.IPAddress(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(B))})",
        DpOp.SetIpv6Src => "set(ipv6_src)",
        DpOp.SetIpv6Dst => "set(ipv6_dst)",
        DpOp.SetTpSrc => $"set(tp_src={A})",
        DpOp.SetTpDst => $"set(tp_dst={A})",
        DpOp.DecTtl => "dec_ttl",
        DpOp.SetTtl => $"set(ttl={A})",
        DpOp.SetTos => $"set(tos=0x{A:x2}/0x{B:x2})",
        DpOp.Recirc => $"recirc({A})",
        DpOp.Ct => (Flags & CtRecirc) != 0 ? $"ct(spec={A}),recirc({B})" : $"ct(spec={A})",
        DpOp.CtClear => "ct_clear",
        DpOp.Ipsec => A == 0 ? $"ipsec(decrypt),recirc({B})" : $"ipsec(sa={A}),recirc({B})",
        _ => Op.ToString(),
    };
}
