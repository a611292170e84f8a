// vswitchd - the VSwitch daemon: starts the datapath from the config, prints statistics, and
// shuts down cleanly on SIGINT/SIGTERM (or after --duration), reporting leaked mbufs and the PMD
// threads' allocation figures. Operator errors print one line "vswitchd: error: ..." and exit 1;
// command-line mistakes exit 2.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using VSwitch;
using VSwitch.Daemon;
using VSwitch.Datapath;
using VSwitch.Pmd;

var inv = CultureInfo.InvariantCulture;
VSwitch.Config.SwitchConfig? config;
try
{
    config = Options.Parse(args);
    if (config == null)
    {
        return 0;
    }
}
catch (UsageException e)
{
    Console.Error.WriteLine($"vswitchd: error: {e.Message} (try 'vswitchd --help')");
    return 2;
}
catch (VSwitchException e)
{
    Console.Error.WriteLine($"vswitchd: error: {e.Message}");
    return 1;
}

// The control socket is checked before EAL and the ports start: a second vswitchd on the same
// socket fails at once, not after it has probed devices (a stale file nobody listens on is removed).
if (config.ControlSocket != null)
{
    try
    {
        if (VSwitch.Interop.UnixSocketFile.PrepareToServe(null, "control socket", config.ControlSocket) is string removed)
        {
            Console.WriteLine($"vswitchd: notice: {removed}");
        }
    }
    catch (VSwitchException e)
    {
        Console.Error.WriteLine($"vswitchd: error: {e.Message}");
        return 1;
    }
    catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
    {
        Console.Error.WriteLine($"vswitchd: error: control socket '{config.ControlSocket}': {e.Message}");
        return 1;
    }
}

// Likewise the metrics port: bound now, served once the datapath runs.
VSwitch.Control.MetricsServer? metrics = null;
if (config.Metrics != null)
{
    try
    {
        metrics = new VSwitch.Control.MetricsServer(config.Metrics);
    }
    catch (VSwitchException e)
    {
        Console.Error.WriteLine($"vswitchd: error: {e.Message}");
        return 1;
    }
}

using var stop = new ManualResetEventSlim();
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Set(); });
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Set(); });

GcQuiet.Configure(); // collections short enough for the PMDs (Datapath/GcQuiet.cs)
var dp = new SwitchDatapath(config);
try
{
    dp.Start();
}
catch (VSwitchException e)
{
    Console.Error.WriteLine($"vswitchd: error: {e.Message}");
    metrics?.Dispose();
    dp.Stop();
    dp.Dispose();
    return 1;
}

if (dp.Eal!.Notice != null)
{
    Console.WriteLine($"vswitchd: notice: {dp.Eal.Notice}");
}

foreach (var n in dp.Notices)
{
    Console.WriteLine($"vswitchd: notice: {n}");
}

Console.WriteLine($"vswitchd: EAL {string.Join(' ', dp.Eal.Arguments)}");
if (dp.Eal.Capture)
{
    Console.WriteLine($"vswitchd: capture: dpdk-dumpcap --file-prefix={dp.Eal.FilePrefix} -i DEVICE (or vswitchctl capture PORT)");
}
foreach (var p in dp.Ports)
{
    Console.WriteLine($"vswitchd: port {p.Name} dpdk_port={p.PortId} driver={p.Driver} mac={p.MacString} rxq={p.RxQueues} txq={p.TxQueues} direct_queues={p.DirectQueues} devargs={p.DevArgs}");
}

var rxqs = dp.RxQueueAssignment();
foreach (var pmd in dp.Pmds)
{
    Console.WriteLine($"vswitchd: pmd {pmd.State.Index} core={pmd.Core} lcore={pmd.LcoreId} rxqs={string.Join(',', rxqs[pmd.Core])}");
}

VSwitch.Control.ControlServer? control = null;
if (config.ControlSocket != null)
{
    try
    {
        var commands = new VSwitch.Control.Commands(dp);
        control = new VSwitch.Control.ControlServer(config.ControlSocket, commands.Execute);
        if (control.Notice != null)
        {
            Console.WriteLine($"vswitchd: notice: {control.Notice}");
        }

        if (control.WarmUp() is string warmUp)
        {
            Console.WriteLine($"vswitchd: notice: control socket warm-up: {warmUp}");
        }

        Console.WriteLine($"vswitchd: control socket {config.ControlSocket}");
    }
    catch (Exception e) when (e is VSwitchException or IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
    {
        // PrepareToServe's messages name the path already; the others do not.
        Console.Error.WriteLine(e is VSwitchException
            ? $"vswitchd: error: {e.Message}"
            : $"vswitchd: error: control socket '{config.ControlSocket}': {e.Message}");
        metrics?.Dispose();
        dp.Stop();
        dp.Dispose();
        return 1;
    }
}

// Served only now that the datapath runs (its threads inherit the control-plane affinity).
if (metrics != null)
{
    metrics.Serve(new VSwitch.Control.SwitchMetrics(dp).Registry);
    Console.WriteLine($"vswitchd: metrics {metrics.Url}");
}

string modeNote = config.Mode == VSwitch.Config.ForwardingMode.Pipeline
    ? $" with {dp.Flows!.Current.RuleCount} rules"
    : config.MacRewrite ? " with MAC rewrite" : "";
Console.WriteLine($"vswitchd: forwarding in {config.Mode.ToString().ToLowerInvariant()} mode{modeNote}; Ctrl-C stops");
Console.Out.Flush();
using var systemd = new SystemdNotify();
systemd.Send($"READY=1\nSTATUS=forwarding in {config.Mode.ToString().ToLowerInvariant()} mode, {dp.Ports.Count} ports, {dp.Pmds.Count} PMDs\nMAINPID={Environment.ProcessId}");

var clock = Stopwatch.StartNew();
var last = dp.TakeSnapshot();
double lastT = 0;
double lastHousekeep = 0;
double interval = config.StatsIntervalSeconds;
double? duration = config.DurationSeconds;
while (true)
{
    double now = clock.Elapsed.TotalSeconds;
    // Wake at least every 100 ms to follow link state (vhost-user ports go up and down with VMs).
    double wait = Math.Min(0.1, interval > 0 ? Math.Max(0, lastT + interval - now) : 0.1);
    if (duration is double d)
    {
        wait = Math.Min(wait, Math.Max(0, d - now));
    }

    if (stop.Wait(TimeSpan.FromSeconds(wait)))
    {
        break;
    }

    foreach (var ev in dp.PollLinks().Concat(dp.PollPmdFaults()))
    {
        Vlog.Write(VlogModule.Events, VlogLevel.Info, string.Create(inv, $"vswitchd: t={clock.Elapsed.TotalSeconds:F2} {ev}"));
    }

    if (clock.Elapsed.TotalSeconds - lastHousekeep >= 1)
    {
        lastHousekeep = clock.Elapsed.TotalSeconds;
        try
        {
            dp.Housekeep();
        }
        catch (VSwitchException e)
        {
            Console.Error.WriteLine($"vswitchd: housekeeping: {e.Message}");
        }
    }

    now = clock.Elapsed.TotalSeconds;
    if (interval > 0 && now - lastT >= interval - 1e-3)
    {
        var s = dp.TakeSnapshot();
        double dt = now - lastT;
        ulong busy = 0, idle = 0, pkts = 0;
        foreach (var (a, b) in s.Pmds.Zip(last.Pmds))
        {
            busy += a.BusyCycles - b.BusyCycles;
            idle += a.IdleCycles - b.IdleCycles;
            pkts += a.RxPackets - b.RxPackets;
        }

        double cpp = pkts > 0 ? (double)busy / pkts : 0;
        Vlog.Write(VlogModule.Stats, VlogLevel.Info, string.Create(inv,
            $"stats t={now:F2} rx_mpps={SwitchDatapath.Mpps((s.RxPackets - last.RxPackets) / dt)} tx_mpps={SwitchDatapath.Mpps((s.TxPackets - last.TxPackets) / dt)} drops={s.Drops - last.Drops} busy={(busy + idle > 0 ? 100.0 * busy / (busy + idle) : 0):F1}% cycles_per_pkt={cpp:F1}"));
        last = s;
        lastT = now;
    }

    if (duration is double dd && clock.Elapsed.TotalSeconds >= dd)
    {
        break;
    }
}

double elapsed = clock.Elapsed.TotalSeconds;
systemd.Send("STOPPING=1\nSTATUS=stopping: draining ports");
metrics?.Dispose(); // before the datapath stops: a scrape reads it
if (control != null)
{
    await control.DisposeAsync();
}

dp.Stop();
var fin = dp.TakeSnapshot();
Console.WriteLine(string.Create(inv,
    $"final: seconds={elapsed:F2} rx_packets={fin.RxPackets} tx_packets={fin.TxPackets} drops={fin.Drops} avg_rx_mpps={SwitchDatapath.Mpps(fin.RxPackets / elapsed)}"));
foreach (var p in fin.Ports)
{
    Console.WriteLine($"final: port {p.Name} rx={p.RxPackets} tx={p.TxPackets} tx_drops={p.TxDrops} hw_ipackets={p.Hw.IPackets} hw_opackets={p.Hw.OPackets} hw_imissed={p.Hw.IMissed} hw_oerrors={p.Hw.OErrors}");
}

double tscMhz = (dp.Eal?.TscHz ?? 1_000_000) / 1e6;
foreach (var (p, t) in fin.Pmds.Zip(dp.Pmds))
{
    double cpp = p.RxPackets > 0 ? (double)p.BusyCycles / p.RxPackets : 0;
    double busyPct = p.BusyCycles + p.IdleCycles > 0 ? 100.0 * p.BusyCycles / (p.BusyCycles + p.IdleCycles) : 0;
    string pipe = dp.Flows == null ? "" : string.Create(inv,
        $" emc_hits={p.Raw.EmcHits} megaflow_hits={p.Raw.MegaflowHits} upcalls={p.Raw.Upcalls} malformed={p.Raw.Malformed} revalidations={p.Raw.Revalidations} megaflows={p.Megaflows} action_drops={p.Raw.ActionDrops} translation_errors={p.Raw.TranslationErrors} recirculations={p.Raw.Recirculations} recirc_drops={p.Raw.RecircDrops} clones={p.Raw.Clones} no_output_drops={p.Raw.NoOutputDrops} copy_failures={p.Raw.CopyFailures} learn_drops={p.Raw.LearnDrops} punted={p.Raw.Punted}");
    Console.WriteLine(string.Create(inv,
        $"final: pmd {p.Index} core={p.Core} rx={p.RxPackets} tx={p.TxPackets} tx_drops={p.TxDrops} fwd_drops={p.FwdDrops} busy={busyPct:F1}% cycles_per_pkt={cpp:F1} slept_ms={p.SleptMicros / 1000} alloc_bytes={t.AllocatedBytesDuringRun}"
        + $" gap_max_us={p.Raw.GapMaxCycles / tscMhz:F1} gap_p999_us={PmdCounters.GapQuantile(p.Raw, default, 0.999) / tscMhz:F1}") + pipe);
}

Console.WriteLine(string.Create(inv,
    $"final: gc collections={dp.Gc.Pauses} gen0={GC.CollectionCount(0)} gen1={GC.CollectionCount(1)} gen2={GC.CollectionCount(2)} pause_total_ms={dp.Gc.PauseTotalMs:F3} pause_max_ms={dp.Gc.PauseMaxMs:F3}"));

// Closing the ports returns what drivers hold for themselves (net_pcap's infinite_rx ring), so the
// pool's in-use count is compared with the baseline after they are gone.
long leaked = dp.ReleasePorts();

Console.WriteLine($"final: mbufs in_use_before={dp.InUseBaseline} in_use_after={dp.Pool!.InUse} leaked={leaked}");
dp.Dispose();
return leaked == 0 ? 0 : 3;
