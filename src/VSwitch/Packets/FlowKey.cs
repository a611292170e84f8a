// FlowKey.cs - the pipeline's flow key: the datapath key's 18 words plus metadata and the sixteen
// registers, 27 64-bit words (216 bytes).
//
// Rules match it and the translator rewrites it. A key, a mask and a masked key are all the same 27
// words, so matching is "(key & mask) == value" word by word. Fields are stored as host-order
// integers (a MAC is the 48-bit big-endian number of its six bytes, an IPv4 address the usual 32-bit
// number), so CIDR prefixes and bit masks are plain integer masks. The word layout:
//
//   W0  in_port:16  dl_type:16  vlan_tci:16  vlan2_tci:16   (TCI with 0x1000 set when the tag exists)
//   W1  dl_dst:48   nw_proto:8  nw_tos:8                   (ARP: nw_proto = opcode low byte)
//   W2  dl_src:48   nw_ttl:8    nw_frag:8                   (frag: 1 = fragment, 2 = not the first)
//   W3  tp_src:16   tp_dst:16   tcp_flags:12  ipsec_sa:12  parse:8   (ICMP: tp_src = type, tp_dst = code)
//   W4  nw_src:32   nw_dst:32                               (IPv4, ARP spa/tpa)
//   W5..W8  ipv6_src (hi, lo), ipv6_dst (hi, lo)
//   W9  ct_state:8 ct_zone:16 recirc_id:8 ct_mark:32        (recirc_id: set by the recirc action)
//   -- the packet's words end here: the extractor fills W0..W9 and zeroes the rest of the DpKey --
//   W10 W11  ct_label (hi, lo)                              (the connection's, after a ct)
//   W12 ct_nw_src:32 ct_nw_dst:32                           (the connection's original direction,
//   W13..W16 ct_ipv6_src (hi, lo), ct_ipv6_dst (hi, lo)      filled on a pass after ct(table=N) when
//   W17 ct_tp_src:16 ct_tp_dst:16 ct_nw_proto:8              some rule matches them: see DpKey.cs)
//   -- the datapath key (DpKey) ends here --
//   W18 metadata:64
//   W19..W26 xreg0..xreg7: reg(2n):32 in the high half, reg(2n+1):32 in the low (as Open vSwitch);
//            xxreg n is words 19+2n (high) and 20+2n (low)
//
// Metadata and registers start at zero for every packet, so they are not part of the datapath key:
// the caches match DpKey's 18 words, and a rule's match on a register costs nothing per packet (the
// translator's wildcards on those words are dropped when a megaflow is installed).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace VSwitch.Packets;

[StructLayout(LayoutKind.Sequential, Size = 216)]
public unsafe struct FlowKey : IEquatable<FlowKey>
{
    public const int Words = 27;

    /// <summary>The word of ct_state, ct_zone, recirc_id and ct_mark (the packet words' last).</summary>
    public const int CtWord = 9;

    /// <summary>The first of the connection's words (ct_label, the original direction's tuple): <see cref="DpKey.CtExtWords"/> of them.</summary>
    public const int CtExtWord = 10;

    /// <summary>The word of ct_tp_src, ct_tp_dst and ct_nw_proto.</summary>
    public const int CtL4Word = 17;

    /// <summary>The metadata word (the first after the datapath key).</summary>
    public const int MetadataWord = 18;

    /// <summary>The key's 27 words (layout in the file comment).</summary>
    public fixed ulong W[Words];

    // Field positions: (word, shift, width). Kept as constants so accessors fold to one shift/mask.
    public ushort InPort { readonly get => (ushort)W[0]; set => Set(0, 0, 16, value); }
    public ushort DlType { readonly get => (ushort)(W[0] >> 16); set => Set(0, 16, 16, value); }
    public ushort VlanTci { readonly get => (ushort)(W[0] >> 32); set => Set(0, 32, 16, value); }
    public ushort Vlan2Tci { readonly get => (ushort)(W[0] >> 48); set => Set(0, 48, 16, value); }
    public ulong DlDst { readonly get => W[1] & Mac48; set => Set(1, 0, 48, value); }
    public byte NwProto { readonly get => (byte)(W[1] >> 48); set => Set(1, 48, 8, value); }
    public byte NwTos { readonly get => (byte)(W[1] >> 56); set => Set(1, 56, 8, value); }
    public ulong DlSrc { readonly get => W[2] & Mac48; set => Set(2, 0, 48, value); }
    public byte NwTtl { readonly get => (byte)(W[2] >> 48); set => Set(2, 48, 8, value); }
    public byte NwFrag { readonly get => (byte)(W[2] >> 56); set => Set(2, 56, 8, value); }
    public ushort TpSrc { readonly get => (ushort)W[3]; set => Set(3, 0, 16, value); }
    public ushort TpDst { readonly get => (ushort)(W[3] >> 16); set => Set(3, 16, 16, value); }
    public ushort TcpFlags { readonly get => (ushort)((W[3] >> 32) & 0xFFF); set => Set(3, 32, 12, value); }

    /// <summary>The inbound SA a decrypted packet came through (0: it did not come through one): Ipsec/IpsecEngine.cs.</summary>
    public ushort IpsecSa { readonly get => (ushort)((W[3] >> IpsecSaShift) & 0xFFF); set => Set(3, IpsecSaShift, 12, value); }
    public ushort Parse { readonly get => (ushort)(W[3] >> ParseShift); set => Set(3, ParseShift, 8, value); }

    /// <summary>Where ipsec_sa (12 bits) and the parse flags (8 bits) sit in word 3.</summary>
    public const int IpsecSaShift = 44;
    public const int ParseShift = 56;
    public uint NwSrc { readonly get => (uint)W[4]; set => Set(4, 0, 32, value); }
    public uint NwDst { readonly get => (uint)(W[4] >> 32); set => Set(4, 32, 32, value); }
    public UInt128 Ipv6Src { readonly get => new(W[5], W[6]); set { W[5] = (ulong)(value >> 64); W[6] = (ulong)value; } }

    /// <summary>ARP sender hardware address (an ARP packet's word 5; IPv6 packets use it for ipv6_src).</summary>
    public ulong ArpSha { readonly get => W[5]; set => W[5] = value; }

    /// <summary>ARP target hardware address (word 6).</summary>
    public ulong ArpTha { readonly get => W[6]; set => W[6] = value; }
    public UInt128 Ipv6Dst { readonly get => new(W[7], W[8]); set { W[7] = (ulong)(value >> 64); W[8] = (ulong)value; } }
    public ulong Metadata { readonly get => W[MetadataWord]; set => W[MetadataWord] = value; }
    public uint Reg0 { readonly get => (uint)(W[MetadataWord + 1] >> 32); set => Set(MetadataWord + 1, 32, 32, value); }
    public uint Reg1 { readonly get => (uint)W[MetadataWord + 1]; set => Set(MetadataWord + 1, 0, 32, value); }

    /// <summary>Register <paramref name="n"/> (0 to <see cref="Registers"/> - 1): even ones the high half of their word.</summary>
    public readonly uint Reg(int n) => (uint)(W[RegWord(n)] >> ((n & 1) == 0 ? 32 : 0));

    /// <summary>The registers the key holds (reg0 to reg15, as Open vSwitch).</summary>
    public const int Registers = 16;

    /// <summary>The word of register <paramref name="n"/> (the word of xreg n/2).</summary>
    public static int RegWord(int n) => MetadataWord + 1 + (n >> 1);
    public byte CtState { readonly get => (byte)W[CtWord]; set => Set(CtWord, 0, 8, value); }
    public ushort CtZone { readonly get => (ushort)(W[CtWord] >> 8); set => Set(CtWord, 8, 16, value); }
    public uint CtMark { readonly get => (uint)(W[CtWord] >> 32); set => Set(CtWord, 32, 32, value); }
    public byte RecircId { readonly get => (byte)(W[CtWord] >> 24); set => Set(CtWord, 24, 8, value); }
    public UInt128 CtLabel { readonly get => new(W[CtExtWord], W[CtExtWord + 1]); set { W[CtExtWord] = (ulong)(value >> 64); W[CtExtWord + 1] = (ulong)value; } }
    public uint CtNwSrc { readonly get => (uint)W[CtExtWord + 2]; set => Set(CtExtWord + 2, 0, 32, value); }
    public uint CtNwDst { readonly get => (uint)(W[CtExtWord + 2] >> 32); set => Set(CtExtWord + 2, 32, 32, value); }
    public UInt128 CtIpv6Src { readonly get => new(W[CtExtWord + 3], W[CtExtWord + 4]); set { W[CtExtWord + 3] = (ulong)(value >> 64); W[CtExtWord + 4] = (ulong)value; } }
    public UInt128 CtIpv6Dst { readonly get => new(W[CtExtWord + 5], W[CtExtWord + 6]); set { W[CtExtWord + 5] = (ulong)(value >> 64); W[CtExtWord + 6] = (ulong)value; } }
    public ushort CtTpSrc { readonly get => (ushort)W[CtL4Word]; set => Set(CtL4Word, 0, 16, value); }
    public ushort CtTpDst { readonly get => (ushort)(W[CtL4Word] >> 16); set => Set(CtL4Word, 16, 16, value); }
    public byte CtNwProto { readonly get => (byte)(W[CtL4Word] >> 32); set => Set(CtL4Word, 32, 8, value); }

    public const ulong Mac48 = 0xFFFF_FFFF_FFFFUL;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set(int word, int shift, int width, ulong value)
    {
        ulong m = (width == 64 ? ulong.MaxValue : ((1UL << width) - 1)) << shift;
        W[word] = (W[word] & ~m) | ((value << shift) & m);
    }

    public readonly bool Equals(FlowKey other)
    {
        fixed (ulong* a = W)
        {
            return new ReadOnlySpan<ulong>(a, Words).SequenceEqual(new ReadOnlySpan<ulong>(other.W, Words));
        }
    }

    public override readonly bool Equals(object? obj) => obj is FlowKey k && Equals(k);

    public override readonly int GetHashCode()
    {
        fixed (ulong* w = W)
        {
            return KeyHash.Of(w, Words);
        }
    }

    /// <summary>True when every bit set in this mask is also set in <paramref name="other"/>.</summary>
    public readonly bool IsSubsetOf(in FlowKey other)
    {
        for (int i = 0; i < Words; i++)
        {
            if ((W[i] & ~other.W[i]) != 0)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>This key with every bit outside <paramref name="mask"/> cleared.</summary>
    public readonly FlowKey MaskedBy(in FlowKey mask)
    {
        FlowKey r = default;
        for (int i = 0; i < Words; i++)
        {
            r.W[i] = W[i] & mask.W[i];
        }

        return r;
    }

    /// <summary>Bitwise OR of <paramref name="other"/> into this key (used to grow a wildcard mask).</summary>
    public void Or(in FlowKey other)
    {
        for (int i = 0; i < Words; i++)
        {
            W[i] |= other.W[i];
        }
    }
}

/// <summary>Bits of <see cref="FlowKey.Parse"/>: how far extraction got and what went wrong.</summary>
public static class ParseFlags
{
    /// <summary>An Ethernet header (and any VLAN tags) was read.</summary>
    public const ushort L2 = 0x0001;

    /// <summary>A network header (IPv4, IPv6 or ARP) was read and is consistent.</summary>
    public const ushort L3 = 0x0002;

    /// <summary>A transport header (TCP, UDP, ICMP, ICMPv6) was read.</summary>
    public const ushort L4 = 0x0004;

    /// <summary>The outer VLAN tag's TPID is 802.1ad (0x88a8), not 802.1Q: NORMAL puts a tag it popped back with it.</summary>
    public const ushort OuterQinQ = 0x0010;

    /// <summary>The frame ended inside a header.</summary>
    public const ushort Truncated = 0x0020;

    /// <summary>A header's fields are inconsistent (IHL below 5, length beyond the frame, bad version).</summary>
    public const ushort Bad = 0x0040;

    /// <summary>IPv6 extension headers nested deeper than the parser follows.</summary>
    public const ushort TooDeep = 0x0080;

    /// <summary>Any of the error bits: such a packet is counted as malformed and dropped.</summary>
    public const ushort Errors = Truncated | Bad | TooDeep;
}
