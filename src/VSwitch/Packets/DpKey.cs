// DpKey.cs - the datapath's flow key: what the extractor reads from a packet, plus the connection
// a ct gave it, that the caches match: 18 64-bit words (144 bytes).
//
// The pipeline's key (FlowKey) starts with these same 18 words and adds what only rules see:
// metadata and the sixteen registers. Those are zero whenever a packet enters the pipeline, so the
// datapath never needs them: a verdict is a function of these words alone, and a megaflow's mask is
// the pipeline's wildcards cut to them. The words (shared with FlowKey, see its file comment):
//
//   W0  in_port:16  dl_type:16  vlan_tci:16  vlan2_tci:16
//   W1  dl_dst:48   nw_proto:8  nw_tos:8
//   W2  dl_src:48   nw_ttl:8    nw_frag:8
//   W3  tp_src:16   tp_dst:16   tcp_flags:12  ipsec_sa:12  parse:8
//   W4  nw_src:32   nw_dst:32
//   W5..W8  ipv6_src (hi, lo), ipv6_dst (hi, lo)   (ARP: W5 = sha, W6 = tha)
//   W9  ct_state:8  ct_zone:16  recirc_id:8  ct_mark:32
//   W10..W17  the connection's words: ct_label, ct_nw_src/dst, ct_ipv6_src/dst, ct_tp_src/dst, ct_nw_proto
//
// The first ten are the packet's words (PacketWords): the extractor fills them and zeroes the other
// eight; the hash, the microflow cache (EMC) and the "same key as the previous packet" shortcut look
// at those ten only (a hash of 10 CRC32C steps, an EMC entry of 96 bytes, a compare of two 256-bit
// and one 128-bit vectors). The connection's words are filled by ct ops and carried into
// recirculated passes only when some rule of the tables in use reads one of those fields
// (FlowTables.MatchesCtTuple); every recirculated pass then skips the EMC and its shortcut and is
// classified by the megaflow cache alone, whose
// masks cover all 18 words (a mask's zero words cost nothing there). Pipelines that never match
// ct_label or the ct tuple pay nothing for them.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace VSwitch.Packets;

[StructLayout(LayoutKind.Sequential, Size = 144)]
public unsafe struct DpKey : IEquatable<DpKey>
{
    public const int Words = 18;

    /// <summary>The packet's words (W0..W9): what the extractor fills, the hash covers and the EMC keeps.</summary>
    public const int PacketWords = 10;

    /// <summary>The connection's words after them (W10..W17).</summary>
    public const int CtExtWords = Words - PacketWords;

    /// <summary>The key's words (layout in the file comment); FlowKey's first <see cref="Words"/>.</summary>
    public fixed ulong W[Words];

    public ushort InPort { readonly get => (ushort)W[0]; set => W[0] = (W[0] & ~0xFFFFUL) | value; }

    public byte RecircId { readonly get => (byte)(W[FlowKey.CtWord] >> 24); set => W[FlowKey.CtWord] = (W[FlowKey.CtWord] & ~(0xFFUL << 24)) | ((ulong)value << 24); }

    /// <summary>The datapath words of a pipeline key (or of a pipeline mask: a megaflow's mask).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static DpKey Of(in FlowKey key)
    {
        DpKey d;
        fixed (ulong* s = key.W)
        {
            Unsafe.CopyBlockUnaligned(d.W, s, Words * sizeof(ulong));
        }

        return d;
    }

    /// <summary>The pipeline key a packet with this datapath key starts with: metadata and registers zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly FlowKey ToFlowKey()
    {
        FlowKey k = default;
        fixed (ulong* s = W)
        {
            Unsafe.CopyBlockUnaligned(k.W, s, Words * sizeof(ulong));
        }

        return k;
    }

    /// <summary>True when this mask holds every datapath bit of <paramref name="wildcards"/> (a translation's).</summary>
    public readonly bool Covers(in FlowKey wildcards)
    {
        for (int i = 0; i < Words; i++)
        {
            if ((wildcards.W[i] & ~W[i]) != 0)
            {
                return false;
            }
        }

        return true;
    }

    public readonly bool Equals(DpKey other)
    {
        fixed (ulong* a = W)
        {
            return new ReadOnlySpan<ulong>(a, Words).SequenceEqual(new ReadOnlySpan<ulong>(other.W, Words));
        }
    }

    public override readonly bool Equals(object? obj) => obj is DpKey k && Equals(k);

    public override readonly int GetHashCode()
    {
        fixed (ulong* w = W)
        {
            return KeyHash.Of(w, Words);
        }
    }
}

/// <summary>The hash both keys give the control plane's dictionaries (not the caches' CRC32C).</summary>
internal static unsafe class KeyHash
{
    public static int Of(ulong* w, int words)
    {
        ulong h = 0;
        for (int i = 0; i < words; i++)
        {
            h = (h * 0x9E3779B97F4A7C15UL) ^ w[i];
        }

        return (int)(h ^ (h >> 32));
    }
}
