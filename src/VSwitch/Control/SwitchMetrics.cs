// SwitchMetrics.cs - the switch's statistics as Prometheus metrics (prometheus-net), collected at
// scrape time.
//
// Nothing here runs on a PMD and nothing here writes to a PMD's memory: each scrape takes the same
// snapshots pmd-stats-show and dump-ports take (SwitchDatapath.TakeSnapshot copies each PMD's
// counters with plain loads; the device counters and xstats come from DPDK on this thread) and
// sets the metric values from them in the registry's before-collect callback. The values are
// totals since start (pmd-stats-clear moves only pmd-stats-show's baseline), so counters only
// grow; a port that is removed loses its series, and one added again under the same name starts
// from zero. Label values are port names and PMD indexes; metric names are fixed, so they are
// valid whatever a port is called. Derived figures (busy share, cycles per packet, cache hit
// shares) are best taken with rate() over the counters; the since-start gauges are the figures of
// vswitchd's final report.
using System.Globalization;
using Prometheus;
using VSwitch.Datapath;
using VSwitch.Pmd;

namespace VSwitch.Control;

public sealed class SwitchMetrics
{
    /// <summary>Bucket bounds of the round-gap histogram, in seconds.</summary>
    internal static readonly double[] GapBounds =
    [
        1e-7, 2e-7, 5e-7, 1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4,
        1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1,
    ];

    private delegate ulong PmdField(in PmdCounters c);

    /// <summary>Per-PMD counters read straight from <see cref="PmdCounters"/> (both modes).</summary>
    private static readonly (string Name, string Help, PmdField Field)[] s_pmdCounters =
    [
        ("vswitch_pmd_rx_packets_total", "Packets the PMD received from its rx queues.", static (in c) => c.RxPackets),
        ("vswitch_pmd_tx_packets_total", "Packets the output ports accepted from the PMD.", static (in c) => c.TxPackets),
        ("vswitch_pmd_tx_drops_total", "Packets the PMD dropped because an output port did not take them.", static (in c) => c.TxDrops),
        ("vswitch_pmd_fwd_drops_total", "Packets the forwarding decision dropped (pipeline: the sum of vswitch_pmd_fwd_drop_reasons_total).", static (in c) => c.FwdDrops),
        ("vswitch_pmd_busy_cycles_total", "TSC cycles of polling rounds that received packets.", static (in c) => c.BusyCycles),
        ("vswitch_pmd_idle_cycles_total", "TSC cycles of polling rounds that received nothing (sleeps excluded).", static (in c) => c.IdleCycles),
        ("vswitch_pmd_rounds_total", "Polling rounds over the PMD's rx queues.", static (in c) => c.Rounds),
    ];

    /// <summary>Per-PMD counters of the pipeline mode (0 in l2fwd mode, so not exported there).</summary>
    private static readonly (string Name, string Help, PmdField Field)[] s_pipelineCounters =
    [
        ("vswitch_pmd_emc_hits_total", "Lookups answered by the exact-match microflow cache.", static (in c) => c.EmcHits),
        ("vswitch_pmd_megaflow_hits_total", "Lookups answered by the megaflow cache.", static (in c) => c.MegaflowHits),
        ("vswitch_pmd_upcalls_total", "Lookups that missed both caches and went through the flow tables.", static (in c) => c.Upcalls),
        ("vswitch_pmd_revalidations_total", "Stale megaflows checked again against new flow tables.", static (in c) => c.Revalidations),
        ("vswitch_pmd_megaflow_full_total", "Upcalls whose megaflow could not be installed (cache full).", static (in c) => c.MegaflowFull),
        ("vswitch_pmd_punted_total", "Packets copied to the punt ring (controller action).", static (in c) => c.Punted),
        ("vswitch_pmd_punt_drops_total", "Punts dropped because the punt ring was full.", static (in c) => c.PuntDrops),
        ("vswitch_pmd_learn_drops_total", "MAC learning events dropped because the learn ring was full.", static (in c) => c.LearnDrops),
        ("vswitch_pmd_recirculations_total", "Passes made by the recirc action.", static (in c) => c.Recirculations),
        ("vswitch_pmd_clones_total", "Copies made for outputs that are not the last action.", static (in c) => c.Clones),
        ("vswitch_pmd_copy_failures_total", "Copies the mempool could not supply (that output missed the packet).", static (in c) => c.CopyFailures),
    ];

    /// <summary>The pipeline's reasons for fwd_drops: they add up to vswitch_pmd_fwd_drops_total.</summary>
    private static readonly (string Reason, PmdField Field)[] s_dropReasons =
    [
        ("malformed", static (in c) => c.Malformed),
        ("action", static (in c) => c.ActionDrops),
        ("translation_error", static (in c) => c.TranslationErrors),
        ("recirc_limit", static (in c) => c.RecircDrops),
        ("no_output", static (in c) => c.NoOutputDrops),
    ];

    private readonly SwitchDatapath _dp;
    private readonly object _lock = new();
    private readonly Dictionary<string, Counter> _counters = [];
    private readonly Dictionary<int, ulong[]> _gapSeen = [];

    private readonly Counter _portRxPackets, _portTxPackets, _portTxDrops, _portRxBytes, _portTxBytes, _portDevRxPackets,
        _portDevTxPackets, _portRxMissed, _portRxErrors, _portTxErrors, _portRxNoMbuf, _xstats, _gcCollections, _gcPauseSeconds, _gcAllocated;

    private readonly Gauge _portInfo, _portLinkUp, _pmdInfo, _pmdBusyRatio, _pmdCyclesPerPacket, _pmdGapMax, _gcPauseMax, _gcHeap, _info;

    /// <summary>The pipeline mode's metrics (null in l2fwd mode, where they would all be 0).</summary>
    private readonly PipelineMetrics? _pipeline;

    private sealed record PipelineMetrics(Counter DropReasons, Counter UpcallSeconds, Gauge Megaflows, Gauge Rules);

    private readonly Histogram _pmdGap;

    public SwitchMetrics(SwitchDatapath dp)
    {
        _dp = dp ?? throw new ArgumentNullException(nameof(dp));
        Registry = Metrics.NewCustomRegistry();
        var f = Metrics.WithCustomRegistry(Registry);
        Counter PortCounter(string name, string help) => f.CreateCounter(name, help, "port");
        _portRxPackets = PortCounter("vswitch_port_rx_packets_total", "Packets the PMDs received on the port.");
        _portTxPackets = PortCounter("vswitch_port_tx_packets_total", "Packets the port accepted from the PMDs.");
        _portTxDrops = PortCounter("vswitch_port_tx_drops_total", "Packets dropped because the port did not take them (tx queue full, link down).");
        _portRxBytes = PortCounter("vswitch_port_rx_bytes_total", "Bytes received, as the device counts them.");
        _portTxBytes = PortCounter("vswitch_port_tx_bytes_total", "Bytes sent, as the device counts them.");
        _portDevRxPackets = PortCounter("vswitch_port_device_rx_packets_total", "Packets received, as the device counts them.");
        _portDevTxPackets = PortCounter("vswitch_port_device_tx_packets_total", "Packets sent, as the device counts them.");
        _portRxMissed = PortCounter("vswitch_port_rx_missed_total", "Packets the device dropped because its rx queue was full (imissed).");
        _portRxErrors = PortCounter("vswitch_port_rx_errors_total", "Erroneous received packets (ierrors).");
        _portTxErrors = PortCounter("vswitch_port_tx_errors_total", "Failed transmissions (oerrors).");
        _portRxNoMbuf = PortCounter("vswitch_port_rx_nombuf_total", "Receive failures for want of an mbuf (rx_nombuf).");
        _xstats = f.CreateCounter("vswitch_port_xstats_total", "DPDK extended statistics of the port; name is the driver's xstat name.", "port", "name");
        _portInfo = f.CreateGauge("vswitch_port_info", "1 for each port, with its OpenFlow number and DPDK driver.", "port", "ofport", "driver");
        _portLinkUp = f.CreateGauge("vswitch_port_link_up", "1 when the port's link is up, else 0.", "port");

        foreach (var (name, help, _) in dp.Flows == null ? s_pmdCounters : s_pmdCounters.Concat(s_pipelineCounters))
        {
            _counters[name] = f.CreateCounter(name, help, "pmd");
        }

        _pmdInfo = f.CreateGauge("vswitch_pmd_info", "1 for each PMD thread, with its core.", "pmd", "core");
        _pmdBusyRatio = f.CreateGauge("vswitch_pmd_busy_ratio", "Share of the PMD's polling cycles spent in rounds that received packets, since start (recent: rate of busy over busy plus idle cycles).", "pmd");
        _pmdCyclesPerPacket = f.CreateGauge("vswitch_pmd_cycles_per_packet", "Busy TSC cycles per received packet, since start (recent: rate of busy cycles over rate of rx packets).", "pmd");
        _pmdGapMax = f.CreateGauge("vswitch_pmd_round_gap_max_seconds", "Longest gap between the starts of two polling rounds since start or the last pmd-stats-clear.", "pmd");
        _pmdGap = f.CreateHistogram("vswitch_pmd_round_gap_seconds",
            "Gaps between the starts of consecutive polling rounds (sleeps excluded): how long rx queues went unpolled. "
            + "Each gap counts at the upper bound of its internal bucket (at most 25% above it), so a le count never includes a longer gap.",
            new HistogramConfiguration { Buckets = GapBounds, LabelNames = ["pmd"] });
        _gcCollections = f.CreateCounter("vswitch_gc_collections_total", "Garbage collections of this generation or an older one (each stops every PMD).", "generation");
        _gcPauseSeconds = f.CreateCounter("vswitch_gc_pause_seconds_total", "Time the runtime held every managed thread, PMDs included, paused for garbage collection.");
        _gcPauseMax = f.CreateGauge("vswitch_gc_pause_max_seconds", "Longest GC pause since start or the last pmd-stats-clear.");
        _gcHeap = f.CreateGauge("vswitch_gc_heap_bytes", "Bytes of the managed heap in use.");
        _gcAllocated = f.CreateCounter("vswitch_gc_allocated_bytes_total", "Bytes the process allocated on the managed heap (the PMDs allocate none).");
        _info = f.CreateGauge("vswitch_info", "1, with the forwarding mode.", "mode");
        if (dp.Flows != null)
        {
            _pipeline = new PipelineMetrics(
                f.CreateCounter("vswitch_pmd_fwd_drop_reasons_total", "Packets dropped by the forwarding decision, by reason.", "pmd", "reason"),
                f.CreateCounter("vswitch_pmd_upcall_seconds_total", "Time spent in upcalls (translation and megaflow install).", "pmd"),
                f.CreateGauge("vswitch_pmd_megaflows", "Megaflows installed in the PMD's cache.", "pmd"),
                f.CreateGauge("vswitch_flow_rules", "Rules in the flow tables."));
        }

        Registry.AddBeforeCollectCallback(Update);
    }

    /// <summary>The registry that holds these metrics (and nothing else: no default process metrics).</summary>
    public CollectorRegistry Registry { get; }

    /// <summary>Sets every metric from fresh snapshots; runs on the scraping thread.</summary>
    private void Update()
    {
        lock (_lock)
        {
            var snap = _dp.TakeSnapshot();
            var details = _dp.TakePortDetails();
            double tscHz = _dp.Eal?.TscHz ?? 1e9;
            _info.WithLabels(_dp.Config.Mode.ToString().ToLowerInvariant()).Set(1);
            UpdatePorts(snap, details);
            foreach (var p in snap.Pmds)
            {
                UpdatePmd(p, tscHz);
            }

            if (_pipeline != null && _dp.Flows is { } flows)
            {
                _pipeline.Rules.Set(flows.Current.RuleCount);
            }

            for (int g = 0; g <= GC.MaxGeneration; g++)
            {
                SetCounter(_gcCollections, GC.CollectionCount(g), g.ToString(CultureInfo.InvariantCulture));
            }

            _gcPauseSeconds.IncTo(GC.GetTotalPauseDuration().TotalSeconds);
            _gcPauseMax.Set(_dp.Gc.PauseMaxMs / 1000);
            _gcHeap.Set(GC.GetTotalMemory(false));
            _gcAllocated.IncTo(GC.GetTotalAllocatedBytes());
        }
    }

    private void UpdatePorts(Snapshot snap, IReadOnlyList<PortDetails> details)
    {
        var names = snap.Ports.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        bool Gone(string[] labels) => !names.Contains(labels[0]);
        foreach (var c in new[] { _portRxPackets, _portTxPackets, _portTxDrops, _portRxBytes, _portTxBytes, _portDevRxPackets,
            _portDevTxPackets, _portRxMissed, _portRxErrors, _portTxErrors, _portRxNoMbuf, _xstats })
        {
            Forget(c, Gone);
        }

        Forget(_portInfo, Gone);
        Forget(_portLinkUp, Gone);

        foreach (var p in snap.Ports)
        {
            SetCounter(_portRxPackets, p.RxPackets, p.Name);
            SetCounter(_portTxPackets, p.TxPackets, p.Name);
            SetCounter(_portTxDrops, p.TxDrops, p.Name);
            SetCounter(_portRxBytes, p.Hw.IBytes, p.Name);
            SetCounter(_portTxBytes, p.Hw.OBytes, p.Name);
            SetCounter(_portDevRxPackets, p.Hw.IPackets, p.Name);
            SetCounter(_portDevTxPackets, p.Hw.OPackets, p.Name);
            SetCounter(_portRxMissed, p.Hw.IMissed, p.Name);
            SetCounter(_portRxErrors, p.Hw.IErrors, p.Name);
            SetCounter(_portTxErrors, p.Hw.OErrors, p.Name);
            SetCounter(_portRxNoMbuf, p.Hw.RxNoMbuf, p.Name);
        }

        foreach (var d in details)
        {
            var ofport = snap.Ports.FirstOrDefault(p => p.Name == d.Name)?.OfPort ?? 0;
            Forget(_portInfo, labels => labels[0] == d.Name && (labels[1] != ofport.ToString(CultureInfo.InvariantCulture) || labels[2] != d.Driver));
            _portInfo.WithLabels(d.Name, ofport.ToString(CultureInfo.InvariantCulture), d.Driver).Set(1);
            _portLinkUp.WithLabels(d.Name).Set(d.LinkUp ? 1 : 0);
            foreach (var (name, value) in d.Xstats)
            {
                SetCounter(_xstats, value, d.Name, name);
            }
        }
    }

    private void UpdatePmd(PmdSnapshot p, double tscHz)
    {
        string pmd = p.Index.ToString(CultureInfo.InvariantCulture);
        var c = p.Raw;
        foreach (var (name, _, field) in _pipeline == null ? s_pmdCounters : s_pmdCounters.Concat(s_pipelineCounters))
        {
            SetCounter(_counters[name], field(in c), pmd);
        }

        _pmdInfo.WithLabels(pmd, p.Core.ToString(CultureInfo.InvariantCulture)).Set(1);
        ulong cycles = c.BusyCycles + c.IdleCycles;
        _pmdBusyRatio.WithLabels(pmd).Set(cycles > 0 ? (double)c.BusyCycles / cycles : 0);
        _pmdCyclesPerPacket.WithLabels(pmd).Set(c.RxPackets > 0 ? (double)c.BusyCycles / c.RxPackets : 0);
        _pmdGapMax.WithLabels(pmd).Set(c.GapMaxCycles / tscHz);
        if (_pipeline != null)
        {
            foreach (var (reason, field) in s_dropReasons)
            {
                SetCounter(_pipeline.DropReasons, field(in c), pmd, reason);
            }

            SetCounter(_pipeline.UpcallSeconds, c.UpcallCycles / tscHz, pmd);
            _pipeline.Megaflows.WithLabels(pmd).Set(p.Megaflows);
        }

        // The histogram only grows: observe what each internal bucket gained since the last scrape.
        if (!_gapSeen.TryGetValue(p.Index, out var seen))
        {
            _gapSeen[p.Index] = seen = new ulong[PmdCounters.GapBuckets];
        }

        var child = _pmdGap.WithLabels(pmd);
        for (int b = 0; b < PmdCounters.GapBuckets; b++)
        {
            ulong now = GapCount(c, b);
            if (now > seen[b])
            {
                child.Observe(PmdCounters.GapBucketUpper(b) / tscHz, (long)(now - seen[b]));
                seen[b] = now;
            }
        }
    }

    private static unsafe ulong GapCount(in PmdCounters c, int bucket)
    {
        fixed (ulong* h = c.GapHistogram)
        {
            return h[bucket];
        }
    }

    /// <summary>Moves a counter to <paramref name="value"/>; a value below the last one (the thing was removed and added again) restarts the series.</summary>
    private static void SetCounter(Counter counter, double value, params string[] labels)
    {
        var child = counter.WithLabels(labels);
        if (value < child.Value)
        {
            counter.RemoveLabelled(labels);
            child = counter.WithLabels(labels);
        }

        child.IncTo(value);
    }

    /// <summary>Removes the series of <paramref name="family"/> whose label values <paramref name="gone"/> selects.</summary>
    private static void Forget<TChild>(Collector<TChild> family, Func<string[], bool> gone)
        where TChild : ChildBase
    {
        foreach (var labels in family.GetAllLabelValues().Where(gone).ToList())
        {
            family.RemoveLabelled(labels);
        }
    }
}
