// GcLoad: the GC pauses of the control plane's flow-table work, phase by phase, in process.
//
// The same steps vswitchd takes for `vswitchctl add-flows` of a big file, a state-file rewrite,
// `replace-flows` and `del-flows`: the file parsed in 16 KB chunks into one transaction (as the
// control socket receives it), the transaction committed (FlowControl.Add builds a new table
// version), the state file written (StateStore.Save), a second table parsed and put in place with
// Replace, then everything deleted. For each phase: wall time, collections by generation, total and
// longest pause (suspend to restart, from the runtime's own GC events), and the managed bytes allocated. Every pause stops every
// PMD of a running switch: this is the switch's own share of bench/pmdgap.sh's gaps. Each phase runs
// inside GcQuiet.Enter(), as vswitchd's control requests and state writer do.
//
// usage: dotnet run -c Release --project bench/GcLoad [RULES=200000]
// Last line: RESULT gcload_pause_max_ms=<longest pause of any phase> gcload_pause_total_ms=<sum> rules=N
using System.Diagnostics;
using System.Globalization;
using System.Text;
using VSwitch.Config;
using VSwitch.Datapath;
using VSwitch.FlowText;
using VSwitch.Pipeline;

int rules = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200_000;
string a = Lines(rules, 1), b = Lines(rules, 2);
var shared = new PipelineShared([new PipelinePort(1, "a") { Slot = 0 }, new PipelinePort(2, "b") { Slot = 1 }]);
var flows = new FlowControl(shared, () => true);
using var watch = new GcWatch(keep: int.MaxValue); // vswitchd's own GC listener, keeping every collection
double worstMs = 0, totalMs = 0;
GC.Collect();
Thread.Sleep(200);
Console.WriteLine($"# GcLoad {DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ} rules={rules} concurrent_gc={System.Runtime.GCSettings.LatencyMode} gen0_max_budget={GC.GetConfigurationVariables().GetValueOrDefault("GCGen0MaxBudget", "default")}");

List<FlowRule>? pending = null;
Phase("parse", () => pending = Transaction(a));
Phase("commit", () => flows.Add(pending!, 1));
pending = null;
string store = Path.Combine(Path.GetTempPath(), $"gcload-{Environment.ProcessId}.json");
Phase("state", () => StateStore.Save(store, [], flows.Current.Dump(), 1)); // vswitchd's state writer
File.Delete(store);
Phase("parse2", () => pending = Transaction(b));
Phase("replace", () => flows.Replace(pending!, 2));
pending = null;
Phase("delete", () => flows.Delete(FlowFilter.All));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT gcload_pause_max_ms={worstMs:F2} gcload_pause_total_ms={totalMs:F1} rules={rules}"));

void Phase(string name, Action act)
{
    Thread.Sleep(100); // let a background collection of the previous phase finish
    watch.Reset();
    long allocated = GC.GetTotalAllocatedBytes(precise: true);
    var sw = Stopwatch.StartNew();
    using (GcQuiet.Enter()) // as vswitchd's control requests and state writer
    {
        act();
    }

    sw.Stop();
    allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
    Thread.Sleep(300);
    var pauses = watch.RecentCollections;
    double total = pauses.Sum(p => p.PauseMs), max = pauses.Count == 0 ? 0 : pauses.Max(p => p.PauseMs);
    worstMs = Math.Max(worstMs, max);
    totalMs += total;
    var byGen = pauses.GroupBy(p => p.Generation).OrderBy(g => g.Key)
        .Select(g => string.Create(CultureInfo.InvariantCulture, $"gen{g.Key} {g.Count()} ({g.Sum(p => p.PauseMs):F1} ms, max {g.Max(p => p.PauseMs):F2})"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{name,-8} {sw.Elapsed.TotalMilliseconds,7:F0} ms  allocated_mb={allocated / 1048576.0,6:F1} collections={pauses.Count,-4} pause_total_ms={total,6:F1} pause_max_ms={max,6:F2}  {string.Join(", ", byGen)}"));
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
