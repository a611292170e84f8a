// Mbuf.cs - read and write the rte_mbuf fields the switch needs, at compile-time offsets.
//
// The offsets are constants so the JIT folds them into single mov instructions on the PMD path.
// They are DPDK 22.11's x86_64 layout; MbufLayout.Check compares them with the offsets the native
// shim reports (offsetof in C) at start-up and refuses to run on a DPDK build that differs.
using System.Runtime.CompilerServices;

namespace VSwitch.Interop;

/// <summary>Field access on an <c>rte_mbuf*</c> held as <see cref="nint"/>.</summary>
internal static unsafe class Mbuf
{
    public const int StructSize = 128;
    public const int Headroom = 128;
    public const int BufAddrOffset = 0;
    public const int DataOffOffset = 16;
    public const int RefCntOffset = 18;
    public const int NbSegsOffset = 20;
    public const int PortOffset = 22;
    public const int OlFlagsOffset = 24;
    public const int PacketTypeOffset = 32;
    public const int PktLenOffset = 36;
    public const int DataLenOffset = 40;
    public const int VlanTciOffset = 42;
    public const int RssHashOffset = 44;

    /// <summary>
    /// The upper half of the hash union (hash.fdir.hi), which this switch never reads from a NIC: the
    /// pipeline keeps a packet's ipsec_sa there across its passes (Forwarding/PipelineForwarder.cs).
    /// </summary>
    public const int IpsecSaOffset = RssHashOffset + 4;
    public const int BufLenOffset = 54;
    public const int PoolOffset = 56;
    public const int NextOffset = 64;
    public const ulong RxRssHashFlag = 1UL << 1;
    public const ulong RxVlanFlag = 1UL << 0;

    /// <summary>Pointer to the first byte of packet data.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Data(nint m) => *(byte**)m + *(ushort*)(m + DataOffOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort DataLen(nint m) => *(ushort*)(m + DataLenOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint PktLen(nint m) => *(uint*)(m + PktLenOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Port(nint m) => *(ushort*)(m + PortOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort NbSegs(nint m) => *(ushort*)(m + NbSegsOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort DataOff(nint m) => *(ushort*)(m + DataOffOffset);

    /// <summary>Grows (<paramref name="delta"/> &gt; 0, into the headroom) or shrinks the front of a one-segment packet.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void AdjustFront(nint m, int delta)
    {
        *(ushort*)(m + DataOffOffset) = (ushort)(*(ushort*)(m + DataOffOffset) - delta);
        *(ushort*)(m + DataLenOffset) = (ushort)(*(ushort*)(m + DataLenOffset) + delta);
        *(uint*)(m + PktLenOffset) = (uint)(*(uint*)(m + PktLenOffset) + delta);
    }
}

/// <summary>The start-up check of the compiled-in mbuf offsets against the native build.</summary>
internal static class MbufLayout
{
    /// <summary>Reads the layout the shim was compiled with.</summary>
    public static unsafe NativeMbufLayout ReadNative()
    {
        NativeMbufLayout layout;
        Native.MbufLayoutGet(&layout);
        return layout;
    }

    /// <summary>The expected layout (what <see cref="Mbuf"/>'s constants assume).</summary>
    public static NativeMbufLayout Expected => new()
    {
        StructSize = Mbuf.StructSize, Headroom = Mbuf.Headroom, BufAddr = Mbuf.BufAddrOffset,
        DataOff = Mbuf.DataOffOffset, RefCnt = Mbuf.RefCntOffset, NbSegs = Mbuf.NbSegsOffset,
        Port = Mbuf.PortOffset, OlFlags = Mbuf.OlFlagsOffset, PacketType = Mbuf.PacketTypeOffset,
        PktLen = Mbuf.PktLenOffset, DataLen = Mbuf.DataLenOffset, VlanTci = Mbuf.VlanTciOffset,
        RssHash = Mbuf.RssHashOffset, BufLen = Mbuf.BufLenOffset, Pool = Mbuf.PoolOffset,
        Next = Mbuf.NextOffset, RssHashFlag = Mbuf.RxRssHashFlag, VlanFlag = Mbuf.RxVlanFlag,
    };

    /// <summary>Null when <paramref name="actual"/> matches; else one line naming every field that differs.</summary>
    public static string? Check(in NativeMbufLayout actual)
    {
        var e = Expected;
        var diffs = new List<string>();
        void Cmp(string name, ulong want, ulong got)
        {
            if (want != got)
            {
                diffs.Add($"{name} is {got}, expected {want}");
            }
        }

        Cmp("sizeof(rte_mbuf)", e.StructSize, actual.StructSize);
        Cmp("RTE_PKTMBUF_HEADROOM", e.Headroom, actual.Headroom);
        Cmp("buf_addr", e.BufAddr, actual.BufAddr);
        Cmp("data_off", e.DataOff, actual.DataOff);
        Cmp("refcnt", e.RefCnt, actual.RefCnt);
        Cmp("nb_segs", e.NbSegs, actual.NbSegs);
        Cmp("port", e.Port, actual.Port);
        Cmp("ol_flags", e.OlFlags, actual.OlFlags);
        Cmp("packet_type", e.PacketType, actual.PacketType);
        Cmp("pkt_len", e.PktLen, actual.PktLen);
        Cmp("data_len", e.DataLen, actual.DataLen);
        Cmp("vlan_tci", e.VlanTci, actual.VlanTci);
        Cmp("hash.rss", e.RssHash, actual.RssHash);
        Cmp("buf_len", e.BufLen, actual.BufLen);
        Cmp("pool", e.Pool, actual.Pool);
        Cmp("next", e.Next, actual.Next);
        Cmp("RTE_MBUF_F_RX_RSS_HASH", e.RssHashFlag, actual.RssHashFlag);
        Cmp("RTE_MBUF_F_RX_VLAN", e.VlanFlag, actual.VlanFlag);
        return diffs.Count == 0
            ? null
            : "the DPDK build's rte_mbuf layout differs from the one this switch was compiled for (DPDK 22.11): "
              + string.Join("; ", diffs) + ". Rebuild against DPDK 22.11 or update src/VSwitch/Interop/Mbuf.cs.";
    }
}
