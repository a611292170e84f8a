// GcLoad: the GC pauses of the control plane's flow-table work, phase by phase, in process.
//
// The same steps vswitchd takes for `vswitchctl add-flows` of a big file, a state-file rewrite,
// `replace-flows` and `del-flows`: the file parsed in 16 KB chunks into one transaction (as the
// control socket receives it), the transaction committed (FlowControl.Add builds a new table
// version), every rule formatted (the state file), a second table parsed and put in place with
// Replace, then everything deleted. For each phase: wall time, collections by generation, total and
// longest pause (suspend to restart, from the runtime's own GC events). Every pause stops every
// PMD of a running switch: this is the switch's own share of bench/pmdgap.sh's gaps.
//
// usage: dotnet run -c Release --project bench/GcLoad [RULES=200000]
// Last line: RESULT gcload_pause_max_ms=<longest pause of any phase> gcload_pause_total_ms=<sum> rules=N
using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Globalization;
using System.Text;
using VSwitch.FlowText;
using VSwitch.Pipeline;

int rules = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200_000;
string a = Lines(rules, 1), b = Lines(rules, 2);
var shared = new PipelineShared([new PipelinePort(1, "a") { Slot = 0 }, new PipelinePort(2, "b") { Slot = 1 }]);
var flows = new FlowControl(shared, () => true);
using var watch = new PauseWatch();
GC.Collect();
Thread.Sleep(200);
Console.WriteLine($"# GcLoad {DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ} rules={rules} concurrent_gc={System.Runtime.GCSettings.LatencyMode} gen0_max_budget={GC.GetConfigurationVariables().GetValueOrDefault("GCGen0MaxBudget", "default")}");

List<FlowRule>? pending = null;
Phase("parse", () => pending = Transaction(a));
Phase("commit", () => flows.Add(pending!, 1));
pending = null;
Phase("state", () =>
{
    var sb = new StringBuilder();
    foreach (var r in flows.Current.Dump())
    {
        sb.Append(FlowFormatter.Format(r, withCounters: false)).Append('\n');
    }

    GC.KeepAlive(sb.ToString());
});
Phase("parse2", () => pending = Transaction(b));
Phase("replace", () => flows.Replace(pending!, 2));
pending = null;
Phase("delete", () => flows.Delete(FlowFilter.All));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT gcload_pause_max_ms={watch.WorstMs:F2} gcload_pause_total_ms={watch.TotalMs:F1} rules={rules}"));

void Phase(string name, Action act)
{
    Thread.Sleep(100); // let a background collection of the previous phase finish
    watch.Start();
    var sw = Stopwatch.StartNew();
    act();
    sw.Stop();
    Thread.Sleep(300);
    Console.WriteLine(watch.Stop(name, sw.Elapsed.TotalMilliseconds));
}

static string Lines(int n, int port)
{
    var sb = new StringBuilder();
    for (int i = 0; i < n; i++)
    {
        sb.Append(CultureInfo.InvariantCulture, $"table=0,priority=100,ip,nw_dst=10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255},actions=output:{port}\n");
    }

    return sb.ToString();
}

// The file in 16 KB chunks cut at line ends, parsed into one list (ControlSession's transaction).
static List<FlowRule> Transaction(string text)
{
    var all = new List<FlowRule>();
    int line = 1;
    for (int at = 0; at < text.Length;)
    {
        int end = Math.Min(text.Length, at + 16384);
        if (end < text.Length)
        {
            end = text.LastIndexOf('\n', end - 1) + 1;
        }

        string chunk = text[at..end];
        all.AddRange(FlowParser.ParseRules(chunk, "rules.txt", line));
        line += chunk.Count(c => c == '\n');
        at = end;
    }

    return all;
}

/// <summary>Collects every GC pause (suspend begin to restart end) with its generation.</summary>
internal sealed class PauseWatch : EventListener
{
    private readonly Lock _gate = new();
    private readonly List<(int Gen, double Ms)> _pauses = [];
    private long _suspendTicks;
    private int _gen = -1;

    public double WorstMs { get; private set; }

    public double TotalMs { get; private set; }

    public void Start()
    {
        lock (_gate)
        {
            _pauses.Clear();
        }
    }

    public string Stop(string phase, double wallMs)
    {
        lock (_gate)
        {
            double total = _pauses.Sum(p => p.Ms), max = _pauses.Count == 0 ? 0 : _pauses.Max(p => p.Ms);
            WorstMs = Math.Max(WorstMs, max);
            TotalMs += total;
            var byGen = _pauses.GroupBy(p => p.Gen).OrderBy(g => g.Key)
                .Select(g => string.Create(CultureInfo.InvariantCulture, $"gen{g.Key} {g.Count()} ({g.Sum(p => p.Ms):F1} ms, max {g.Max(p => p.Ms):F2})"));
            return string.Create(CultureInfo.InvariantCulture,
                $"{phase,-8} {wallMs,7:F0} ms  collections={_pauses.Count,-4} pause_total_ms={total,6:F1} pause_max_ms={max,6:F2}  {string.Join(", ", byGen)}");
        }
    }

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(eventSource, EventLevel.Informational, (EventKeywords)0x1); // GC
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        switch (eventData.EventName)
        {
            case "GCStart_V2":
                _gen = Convert.ToInt32(eventData.Payload![1], CultureInfo.InvariantCulture);
                break;
            case "GCSuspendEEBegin_V1":
                _suspendTicks = eventData.TimeStamp.Ticks;
                break;
            case "GCRestartEEEnd_V1" when _suspendTicks != 0:
                lock (_gate)
                {
                    _pauses.Add((_gen, (eventData.TimeStamp.Ticks - _suspendTicks) / (double)TimeSpan.TicksPerMillisecond));
                }

                _suspendTicks = 0;
                break;
        }
    }
}
