// Native.cs - P/Invoke surface of libvswshim.so (native/vsw_shim.h), one method per export.
//
// Only the burst calls (rx/tx burst, bulk alloc/free, rdtsc) carry [SuppressGCTransition]: they are
// short and never block, so skipping the GC transition saves ~20 ns per call on the PMD thread.
// Everything else is control-plane and keeps the normal transition. Runtime marshalling is
// disabled for the assembly: every signature is blittable (integers, pointers, flat structs).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: DisableRuntimeMarshalling]

namespace VSwitch.Interop;

/// <summary>Mirror of <c>struct vsw_mbuf_layout</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NativeMbufLayout
{
    public uint StructSize, Headroom, BufAddr, DataOff, RefCnt, NbSegs, Port, OlFlags, PacketType,
        PktLen, DataLen, VlanTci, RssHash, BufLen, Pool, Next;
    public ulong RssHashFlag, VlanFlag;
}

/// <summary>Mirror of <c>struct vsw_port_stats</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PortHwStats
{
    public ulong IPackets, OPackets, IBytes, OBytes, IMissed, IErrors, OErrors, RxNoMbuf;
}

/// <summary>Mirror of <c>struct vsw_link</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct LinkStatus
{
    public uint SpeedMbps;
    public ushort Up;
    public ushort FullDuplex;
}

/// <summary>Mirror of <c>struct vsw_port_info</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativePortInfo
{
    public ushort MaxRxQueues, MaxTxQueues, MinMtu, MaxMtu;
    public int SocketId;
    public uint RxOffloadCapaLo;
    public fixed byte DriverName[64];
    public fixed byte DeviceName[128];
}

internal static unsafe partial class Native
{
    private const string Lib = "vswshim";

    [LibraryImport(Lib, EntryPoint = "vsw_mbuf_layout_get")]
    internal static partial void MbufLayoutGet(NativeMbufLayout* layout);

    [LibraryImport(Lib, EntryPoint = "vsw_eal_init")]
    internal static partial int EalInit(int argc, byte** argv);

    [LibraryImport(Lib, EntryPoint = "vsw_eal_cleanup")]
    internal static partial int EalCleanup();

    [LibraryImport(Lib, EntryPoint = "vsw_pdump_init")]
    internal static partial int PdumpInit();

    [LibraryImport(Lib, EntryPoint = "vsw_capture_set_quiesce")]
    internal static partial void CaptureSetQuiesce(delegate* unmanaged<void> fn);

    [LibraryImport(Lib, EntryPoint = "vsw_runtime_dir")]
    internal static partial byte* RuntimeDir();

    [LibraryImport(Lib, EntryPoint = "vsw_errno")]
    internal static partial int Errno();

    [LibraryImport(Lib, EntryPoint = "vsw_strerror")]
    internal static partial byte* StrError(int errnum);

    [LibraryImport(Lib, EntryPoint = "vsw_log_capture")]
    internal static partial int LogCapture(int passthrough);

    [LibraryImport(Lib, EntryPoint = "vsw_log_last")]
    internal static partial int LogLast(byte* buf, uint len);

    [LibraryImport(Lib, EntryPoint = "vsw_log_clear")]
    internal static partial void LogClear();

    [LibraryImport(Lib, EntryPoint = "vsw_thread_pin")]
    internal static partial int ThreadPin(int cpu);

    [LibraryImport(Lib, EntryPoint = "vsw_lcore_on_cpu")]
    internal static partial int LcoreOnCpu(int cpu);

    [LibraryImport(Lib, EntryPoint = "vsw_lcore_launch")]
    internal static partial int LcoreLaunch(uint lcore, delegate* unmanaged<void*, int> fn, void* arg);

    [LibraryImport(Lib, EntryPoint = "vsw_thread_set_name", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int ThreadSetName(string name);

    [LibraryImport(Lib, EntryPoint = "vsw_log_set_pattern", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int LogSetPattern(string pattern, uint level);

    [LibraryImport(Lib, EntryPoint = "vsw_log_set_level")]
    internal static partial int LogSetGlobal(uint level);

    [LibraryImport(Lib, EntryPoint = "vsw_log_global_level")]
    internal static partial uint LogGlobalLevel();

    [LibraryImport(Lib, EntryPoint = "vsw_lcore_wait")]
    internal static partial int LcoreWait(uint lcore);

    [LibraryImport(Lib, EntryPoint = "vsw_thread_register")]
    internal static partial int ThreadRegister();

    [LibraryImport(Lib, EntryPoint = "vsw_gettid")]
    internal static partial int GetTid();

    [LibraryImport(Lib, EntryPoint = "vsw_tid_set_affinity")]
    internal static partial int TidSetAffinity(int tid, ulong cpuMask);

    [LibraryImport(Lib, EntryPoint = "vsw_thread_unregister")]
    internal static partial void ThreadUnregister();

    [LibraryImport(Lib, EntryPoint = "vsw_lcore_id")]
    internal static partial uint LcoreId();

    [LibraryImport(Lib, EntryPoint = "vsw_tsc_hz")]
    internal static partial ulong TscHz();

    [LibraryImport(Lib, EntryPoint = "vsw_rdtsc")]
    [SuppressGCTransition]
    internal static partial ulong Rdtsc();

    /// <summary>Blocking sleep (PMD idle back-off): keeps the GC transition on purpose.</summary>
    [LibraryImport(Lib, EntryPoint = "vsw_sleep_us")]
    internal static partial void SleepMicros(uint us);

    [LibraryImport(Lib, EntryPoint = "vsw_mempool_create")]
    internal static partial nint MempoolCreate(byte* name, uint n, uint cacheSize, ushort dataRoom, int socketId);

    [LibraryImport(Lib, EntryPoint = "vsw_mempool_free")]
    internal static partial void MempoolFree(nint mp);

    [LibraryImport(Lib, EntryPoint = "vsw_mempool_in_use")]
    internal static partial uint MempoolInUse(nint mp);

    [LibraryImport(Lib, EntryPoint = "vsw_mempool_avail")]
    internal static partial uint MempoolAvail(nint mp);

    [LibraryImport(Lib, EntryPoint = "vsw_mbuf_alloc_bulk")]
    [SuppressGCTransition]
    internal static partial int MbufAllocBulk(nint mp, nint* mbufs, uint n);

    [LibraryImport(Lib, EntryPoint = "vsw_mbuf_free_bulk")]
    [SuppressGCTransition]
    internal static partial void MbufFreeBulk(nint* mbufs, uint n);

    [LibraryImport(Lib, EntryPoint = "vsw_mbuf_copy_bulk")]
    [SuppressGCTransition]
    internal static partial uint MbufCopyBulk(nint* src, nint* dst, uint n);

    [LibraryImport(Lib, EntryPoint = "vsw_dev_probe")]
    internal static partial int DevProbe(byte* devargs, ushort* portIds, int maxPorts);

    [LibraryImport(Lib, EntryPoint = "vsw_dev_remove")]
    internal static partial int DevRemove(ushort portId);

    [LibraryImport(Lib, EntryPoint = "vsw_port_info_get")]
    internal static partial int PortInfoGet(ushort portId, NativePortInfo* info);

    [LibraryImport(Lib, EntryPoint = "vsw_port_configure")]
    internal static partial int PortConfigure(ushort portId, ushort nbRxq, ushort nbTxq, ushort nbRxd, ushort nbTxd, nint mp, ushort mtu);

    [LibraryImport(Lib, EntryPoint = "vsw_port_start")]
    internal static partial int PortStart(ushort portId);

    [LibraryImport(Lib, EntryPoint = "vsw_port_direct_queues")]
    internal static partial int PortDirectQueues(ushort portId);

    [LibraryImport(Lib, EntryPoint = "vsw_port_stop")]
    internal static partial int PortStop(ushort portId);

    [LibraryImport(Lib, EntryPoint = "vsw_port_close")]
    internal static partial int PortClose(ushort portId);

    [LibraryImport(Lib, EntryPoint = "vsw_port_link")]
    internal static partial int PortLink(ushort portId, LinkStatus* link);

    [LibraryImport(Lib, EntryPoint = "vsw_port_mac")]
    internal static partial int PortMac(ushort portId, byte* mac6);

    [LibraryImport(Lib, EntryPoint = "vsw_port_promiscuous")]
    internal static partial int PortPromiscuous(ushort portId, int on);

    [LibraryImport(Lib, EntryPoint = "vsw_port_stats")]
    internal static partial int PortStats(ushort portId, PortHwStats* stats);

    [LibraryImport(Lib, EntryPoint = "vsw_port_stats_reset")]
    internal static partial int PortStatsReset(ushort portId);

    [LibraryImport(Lib, EntryPoint = "vsw_port_xstats_count")]
    internal static partial int PortXstatsCount(ushort portId);

    [LibraryImport(Lib, EntryPoint = "vsw_port_xstat_name")]
    internal static partial int PortXstatName(ushort portId, uint index, byte* buf, uint len);

    [LibraryImport(Lib, EntryPoint = "vsw_port_xstats")]
    internal static partial int PortXstats(ushort portId, ulong* values, uint n);

    [LibraryImport(Lib, EntryPoint = "vsw_rx_burst")]
    [SuppressGCTransition]
    internal static partial ushort RxBurst(ushort portId, ushort queueId, nint* mbufs, ushort n);

    [LibraryImport(Lib, EntryPoint = "vsw_tx_burst")]
    [SuppressGCTransition]
    internal static partial ushort TxBurst(ushort portId, ushort queueId, nint* mbufs, ushort n);

    // The same burst calls with the GC transition, for ports whose driver may block inside the call
    // (net_pcap reading a FIFO or a live interface): a PMD blocked there is in preemptive mode, so a
    // garbage collection does not wait for it (and the control plane does not stall behind it).
    [LibraryImport(Lib, EntryPoint = "vsw_rx_burst")]
    internal static partial ushort RxBurstGcSafe(ushort portId, ushort queueId, nint* mbufs, ushort n);

    [LibraryImport(Lib, EntryPoint = "vsw_tx_burst")]
    internal static partial ushort TxBurstGcSafe(ushort portId, ushort queueId, nint* mbufs, ushort n);

    /// <summary>DPDK's text for a (negative or positive) errno value, plus DPDK's last log line if any.</summary>
    internal static string ErrorText(int err)
    {
        var p = StrError(err);
        var text = p == null ? $"errno {err}" : Marshal.PtrToStringUTF8((nint)p) ?? $"errno {err}";
        var said = LastLogLine();
        LogClear();
        return said.Length == 0 ? text : $"{text} (DPDK: {said})";
    }

    /// <summary>The last line DPDK logged since the previous <see cref="LogClear"/>.</summary>
    internal static string LastLogLine()
    {
        byte* buf = stackalloc byte[512];
        int n = LogLast(buf, 512);
        return n <= 0 ? "" : (Marshal.PtrToStringUTF8((nint)buf, n) ?? "").Trim();
    }
}
