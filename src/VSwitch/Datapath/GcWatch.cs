// GcWatch.cs - the managed runtime's pauses, as the PMDs see them.
//
// A PMD is a managed thread: a blocking garbage collection stops it, and its rx queues fill while
// it is stopped. This listener follows the runtime's own GC events (suspend begin -> restart end is
// the pause every managed thread saw) and keeps the count, total and longest pause, and the last few
// collections with their generation and reason, for pmd-stats-show and vswitchd's final line. It
// runs on the runtime's event thread, never on a PMD.
using System.Diagnostics.Tracing;

namespace VSwitch.Datapath;

/// <summary>One collection as the runtime reported it; <see cref="SuspendMs"/> is the part spent bringing every managed thread to a safe point.</summary>
public readonly record struct GcPause(int Generation, string Reason, double PauseMs, DateTime At, double SuspendMs = 0);

public sealed class GcWatch : EventListener
{
    private readonly int _keep;
    private const EventKeywords GcKeyword = (EventKeywords)0x1;
    private readonly object _lock = new();
    private readonly Queue<GcPause> _recent = new();
    private long _suspendTicks;
    private long _suspendedTicks;
    private int _generation = -1;
    private string _reason = "";

    /// <param name="keep">How many of the latest collections <see cref="RecentCollections"/> keeps.</param>
    public GcWatch(int keep = 8) => _keep = keep;

    /// <summary>Pauses seen since the last <see cref="Reset"/>.</summary>
    public long Pauses { get; private set; }

    public double PauseTotalMs { get; private set; }

    public double PauseMaxMs { get; private set; }

    /// <summary>The longest time a collection took to bring every managed thread (the PMDs included) to a safe point.</summary>
    public double SuspendMaxMs { get; private set; }

    /// <summary>The last collections (oldest first).</summary>
    public IReadOnlyList<GcPause> RecentCollections
    {
        get
        {
            lock (_lock)
            {
                return [.. _recent];
            }
        }
    }

    public void Reset()
    {
        lock (_lock)
        {
            Pauses = 0;
            PauseTotalMs = 0;
            PauseMaxMs = 0;
            SuspendMaxMs = 0;
            _recent.Clear();
        }
    }

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(source, EventLevel.Informational, GcKeyword);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        switch (e.EventName)
        {
            case "GCStart_V2" or "GCStart_V1" or "GCStart":
                _generation = Convert.ToInt32(e.Payload?[1] ?? -1, System.Globalization.CultureInfo.InvariantCulture);
                _reason = ReasonText(Convert.ToInt32(e.Payload?[2] ?? -1, System.Globalization.CultureInfo.InvariantCulture));
                break;
            case "GCSuspendEEBegin_V1" or "GCSuspendEEBegin":
                _suspendTicks = e.TimeStamp.Ticks;
                _suspendedTicks = 0;
                break;
            case "GCSuspendEEEnd_V1" or "GCSuspendEEEnd":
                _suspendedTicks = e.TimeStamp.Ticks;
                break;
            case "GCRestartEEEnd_V1" or "GCRestartEEEnd":
                if (_suspendTicks != 0)
                {
                    double ms = (e.TimeStamp.Ticks - _suspendTicks) / (double)TimeSpan.TicksPerMillisecond;
                    double suspendMs = _suspendedTicks >= _suspendTicks ? (_suspendedTicks - _suspendTicks) / (double)TimeSpan.TicksPerMillisecond : 0;
                    _suspendTicks = 0;
                    lock (_lock)
                    {
                        Pauses++;
                        PauseTotalMs += ms;
                        PauseMaxMs = Math.Max(PauseMaxMs, ms);
                        SuspendMaxMs = Math.Max(SuspendMaxMs, suspendMs);
                        _recent.Enqueue(new GcPause(_generation, _reason, ms, e.TimeStamp, suspendMs));
                        if (_recent.Count > _keep)
                        {
                            _recent.Dequeue();
                        }
                    }

                    _generation = -1;
                    _reason = "";
                }

                break;
        }
    }

    private static string ReasonText(int r) => r switch
    {
        0 => "small_alloc",
        1 => "induced",
        2 => "low_memory",
        3 => "empty",
        4 => "large_alloc",
        5 => "oos_soh",
        6 => "oos_loh",
        7 => "induced_not_forced",
        8 => "internal_tuning",
        9 => "induced_low_memory",
        10 => "induced_compacting",
        11 => "low_memory_host",
        12 => "pm_full_gc",
        13 => "low_memory_host_blocking",
        _ => r < 0 ? "" : $"reason_{r}",
    };
}
