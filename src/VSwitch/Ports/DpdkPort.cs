// DpdkPort.cs - one DPDK ethdev port: probe by devargs, configure queues, start/stop, stats.
// Control-plane only; the PMD threads touch a port solely through DpdkIo's burst calls.
using System.Runtime.InteropServices;
using System.Text;
using VSwitch.Interop;

namespace VSwitch.Ports;

/// <summary>An operator-visible port backed by a DPDK ethdev.</summary>
public sealed unsafe class DpdkPort
{
    public string Name { get; }

    public string DevArgs { get; }

    public ushort PortId { get; }

    public int RxQueues { get; private set; }

    public int TxQueues { get; private set; }

    public string Driver { get; }

    /// <summary>
    /// The driver may block the calling thread inside rx/tx_burst: net_pcap reads and writes through
    /// libpcap, and a FIFO or a live interface can block there. The PMD uses the GC-safe burst calls
    /// for such ports (about 20 ns more per call), so a stuck PMD never holds up a garbage
    /// collection, and with it the control plane. Not a net_pcap port that replays a file from
    /// memory (infinite_rx=1: read whole at start) and writes nowhere (no tx_pcap, tx_iface or iface:
    /// its tx drops): neither call can block there.
    /// </summary>
    public bool MayBlock => Driver == "net_pcap" && !ReplaysFromMemoryOnly(DevArgs);

    private static bool ReplaysFromMemoryOnly(string devArgs)
    {
        var args = devArgs.Split(',').Skip(1).Select(a => a.Trim()).ToList();
        return args.Contains("infinite_rx=1")
            && !args.Any(a => a.StartsWith("tx_pcap=", StringComparison.Ordinal) || a.StartsWith("tx_iface=", StringComparison.Ordinal)
                || a.StartsWith("iface=", StringComparison.Ordinal) || a.StartsWith("rx_iface", StringComparison.Ordinal));
    }

    public byte[] Mac { get; } = new byte[6];

    public bool Started { get; private set; }

    private DpdkPort(string name, string devArgs, ushort portId, string driver)
    {
        Name = name;
        DevArgs = devArgs;
        PortId = portId;
        Driver = driver;
    }

    /// <summary>True when the devargs name a PCI device (domain:bus:dev.fn or bus:dev.fn).</summary>
    public static bool IsPciDevArgs(string devArgs)
    {
        var name = devArgs.Split(',')[0];
        return System.Text.RegularExpressions.Regex.IsMatch(name, @"^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$");
    }

    /// <summary>Probes the device named by <paramref name="devArgs"/> (hot-plug) and wraps its port.</summary>
    public static DpdkPort Probe(string name, string devArgs)
    {
        var bytes = Encoding.UTF8.GetBytes(devArgs + "\0");
        ushort* ids = stackalloc ushort[8];
        int n;
        Native.LogClear();
        fixed (byte* p = bytes)
        {
            n = Native.DevProbe(p, ids, 8);
        }

        const int eexist = 17;
        if (n == -eexist)
        {
            throw new VSwitchException($"port '{name}': device '{devArgs.Split(',')[0]}' already exists (another port uses it); a device can back one port only");
        }

        if (n < 0)
        {
            throw new VSwitchException($"port '{name}': cannot probe device '{devArgs}': {Native.ErrorText(n)} (check the driver name and its arguments)");
        }

        if (n != 1)
        {
            throw new VSwitchException($"port '{name}': device '{devArgs}' created {n} ports; one port per device is supported");
        }

        NativePortInfo info;
        int rc = Native.PortInfoGet(ids[0], &info);
        if (rc != 0)
        {
            throw new VSwitchException($"port '{name}': cannot read device info: {Native.ErrorText(rc)}");
        }

        var port = new DpdkPort(name, devArgs, ids[0], Marshal.PtrToStringUTF8((nint)info.DriverName) ?? "?");
        fixed (byte* m = port.Mac)
        {
            Native.PortMac(ids[0], m);
        }

        return port;
    }

    /// <summary>Sets up <paramref name="rxq"/> rx and <paramref name="txq"/> tx queues and starts the port.</summary>
    /// <param name="mtu">The device MTU to set (0: the device's default).</param>
    public void ConfigureAndStart(int rxq, int txq, int rxd, int txd, Mempool pool, int mtu = 0)
    {
        NativePortInfo info;
        Native.PortInfoGet(PortId, &info);
        if (rxq < 1 || rxq > info.MaxRxQueues)
        {
            throw new VSwitchException($"port '{Name}': {rxq} rx queues requested, the {Driver} device supports 1 to {info.MaxRxQueues}");
        }

        if (txq < 1 || txq > info.MaxTxQueues)
        {
            throw new VSwitchException($"port '{Name}': {txq} tx queues needed (one per PMD thread), the {Driver} device supports at most {info.MaxTxQueues}");
        }

        if (mtu != 0 && (mtu < info.MinMtu || mtu > info.MaxMtu))
        {
            throw new VSwitchException($"port '{Name}': MTU {mtu} is outside what the {Driver} device supports ({info.MinMtu} to {info.MaxMtu})");
        }

        int rc = Native.PortConfigure(PortId, (ushort)rxq, (ushort)txq, (ushort)rxd, (ushort)txd, pool.Handle, (ushort)mtu);
        if (rc != 0)
        {
            throw new VSwitchException($"port '{Name}': cannot configure {rxq} rx / {txq} tx queues: {Native.ErrorText(rc)}");
        }

        RxQueues = rxq;
        TxQueues = txq;
        rc = Native.PortStart(PortId);
        if (rc != 0)
        {
            throw new VSwitchException($"port '{Name}': cannot start: {Native.ErrorText(rc)}");
        }

        Native.PortPromiscuous(PortId, 1); // best effort: virtual devices may not support it
        DirectQueues = Native.PortDirectQueues(PortId);
        Started = true;
    }

    /// <summary>
    /// How many of the port's rx and tx queues the shim serves with its direct vhost-user path
    /// (rte_vhost_dequeue/enqueue_burst without net_vhost's per-packet pass); 0 for other drivers.
    /// </summary>
    public int DirectQueues { get; private set; }

    /// <summary>Receives and frees whatever is still queued on the port's rx queues (shutdown).</summary>
    public int DrainRx()
    {
        nint* buf = stackalloc nint[32];
        int total = 0;
        if (!Started)
        {
            return 0; // a port that never started has no rx queues set up to poll
        }

        for (int q = 0; q < RxQueues; q++)
        {
            for (int guard = 0; guard < 2048; guard++)
            {
                ushort n = Native.RxBurst(PortId, (ushort)q, buf, 32);
                if (n == 0)
                {
                    break;
                }

                Native.MbufFreeBulk(buf, n);
                total += n;
            }
        }

        return total;
    }

    public void Stop()
    {
        if (Started)
        {
            Native.PortStop(PortId);
            Started = false;
        }
    }

    /// <summary>Stops, closes and detaches the device (hot-unplug).</summary>
    public void Remove()
    {
        Stop();
        Native.DevRemove(PortId);
    }

    public PortHwStats Stats()
    {
        PortHwStats s;
        Native.PortStats(PortId, &s);
        return s;
    }

    public LinkStatus Link()
    {
        LinkStatus l;
        Native.PortLink(PortId, &l);
        return l;
    }

    /// <summary>Extended statistics as name/value pairs.</summary>
    public IReadOnlyList<KeyValuePair<string, ulong>> ExtendedStats()
    {
        int n = Native.PortXstatsCount(PortId);
        if (n <= 0)
        {
            return [];
        }

        var values = new ulong[n];
        fixed (ulong* v = values)
        {
            n = Math.Min(n, Native.PortXstats(PortId, v, (uint)n));
        }

        var result = new List<KeyValuePair<string, ulong>>(n);
        byte* name = stackalloc byte[128];
        for (int i = 0; i < n; i++)
        {
            if (Native.PortXstatName(PortId, (uint)i, name, 128) == 0)
            {
                result.Add(new(Marshal.PtrToStringUTF8((nint)name) ?? "?", values[i]));
            }
        }

        return result;
    }

    public string MacString => string.Join(':', Mac.Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
}
