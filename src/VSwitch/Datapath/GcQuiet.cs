// GcQuiet.cs - garbage-collector modes that keep the PMDs' stops short while the control plane works.
//
// Every collection stops every PMD (a PMD is a managed thread). A big control-plane operation (a
// 200 000-rule add-flows or replace-flows, the state file written after it) builds hundreds of MB
// of objects that live on. In the runtime's default (interactive) mode that growth brought
// background gen2 collections in the middle of the load, and every ephemeral collection during one
// is a "foreground" one of 4-10 ms here; sometimes it chose a blocking gen2 of the whole heap (20
// ms). So:
// - while a control request or the state writer runs (Enter), the mode is LowLatency: gen2 waits
//   (the runtime still collects it if memory runs short) and ephemeral budgets stay small, so a
//   load is many collections of a fraction of a millisecond each;
// - the mode comes back Linger after the last such scope (a streamed add-flows is one request per
//   chunk and the state writer follows the commit: the mode must not flip between them), or at the
//   end of the first request after MaxStretchMs of back-to-back requests, and when the stretch
//   allocated more than CollectAfterBytes a background gen2 is started at once, while the control
//   plane is quiet (two pauses of under a millisecond);
// - between operations the mode is SustainedLowLatency (Configure), in which the runtime collects
//   gen2 in the background only.
// bench/GcLoad and bench/pmdgap.sh measure the result. Workstation GC with concurrent collections
// only (vswitchd's runtimeconfig); under server GC these modes are not available and nothing changes.
using System.Runtime;

namespace VSwitch.Datapath;

public static class GcQuiet
{
    private static readonly Lock Gate = new();
    private static int _depth;
    private static GCLatencyMode _before;
    private static bool _low;
    private static long _generation;
    private static Timer? _restore;
    private static long _restoreFor;
    private static long _allocatedAtStart;
    private static long _stretchStartMs;

    /// <summary>How long the low-latency mode outlives the last scope.</summary>
    public static readonly TimeSpan Linger = TimeSpan.FromMilliseconds(500);

    /// <summary>True while the low-latency mode is in force (a scope is open or lingering).</summary>
    public static bool Active
    {
        get
        {
            lock (Gate)
            {
                return _low;
            }
        }
    }

    /// <summary>
    /// The mode between control-plane operations: SustainedLowLatency, in which gen2 is collected in
    /// the background only (the default, Interactive, also chose blocking gen2 collections of the
    /// whole heap here: 20 ms with 200 000 rules) unless the system runs short of memory. Call once
    /// at start-up; without concurrent collections (server GC or Concurrent=false) it changes nothing.
    /// </summary>
    public static void Configure()
    {
        if (GCSettings.IsServerGC)
        {
            return;
        }

        lock (Gate)
        {
            if (_low)
            {
                _before = GCLatencyMode.SustainedLowLatency;
            }
            else
            {
                GCSettings.LatencyMode = GCLatencyMode.SustainedLowLatency;
            }
        }

        // Until the runtime has run one background collection it makes a requested one blocking (seen
        // here: the background gen2 asked for after the first 200 000-rule load took 20 ms, blocking;
        // every later one was background, two pauses of under 1 ms). Run one now, over a few MB of
        // ballast (a gen2 of almost nothing is collected blocking as well), while no PMD runs.
        var ballast = new object[1 << 18];
        for (int i = 0; i < ballast.Length; i++)
        {
            ballast[i] = new byte[96];
        }

        long before = GC.GetGCMemoryInfo(GCKind.Background).Index;
        GC.Collect(2, GCCollectionMode.Forced, blocking: false);
        for (int i = 0; i < 200 && GC.GetGCMemoryInfo(GCKind.Background).Index == before; i++)
        {
            Thread.Sleep(5);
        }

        GC.KeepAlive(ballast);
    }

    /// <summary>Scopes open now (nested and concurrent scopes share one switch of the mode).</summary>
    public static int Depth
    {
        get
        {
            lock (Gate)
            {
                return _depth;
            }
        }
    }

    /// <summary>Low-latency GC until the returned scope (and every other open one) is disposed.</summary>
    public static Scope Enter()
    {
        lock (Gate)
        {
            _depth++;
            _generation++; // a pending restore is stale now
            if (!_low)
            {
                _before = GCSettings.LatencyMode;
                GCSettings.LatencyMode = GCLatencyMode.LowLatency;
                _low = true;
                _allocatedAtStart = GC.GetTotalAllocatedBytes();
                _stretchStartMs = Environment.TickCount64;
            }
        }

        return new Scope(true);
    }

    private static void Exit()
    {
        bool now = false;
        lock (Gate)
        {
            if (--_depth == 0)
            {
                _restoreFor = _generation;
                if (Environment.TickCount64 - _stretchStartMs > MaxStretchMs)
                {
                    now = true; // requests that never pause for the linger must not hold gen2 off for good
                }
                else
                {
                    _restore ??= new Timer(_ => Restore());
                    _restore.Change(Linger, Timeout.InfiniteTimeSpan);
                }
            }
        }

        if (now)
        {
            Restore();
        }
    }

    /// <summary>
    /// The longest a low-latency stretch is kept going by requests that follow one another within the
    /// linger (a client polling every 200 ms, small add-flows at 2 Hz): at the end of the request that
    /// finds it older, the mode comes back at once (and gen2 is collected if the stretch allocated
    /// enough). A load longer than this may see one such switch midway.
    /// </summary>
    public const long MaxStretchMs = 10_000;

    /// <summary>
    /// Allocation during one low-latency stretch beyond which its end starts a background gen2
    /// collection: what such a stretch kept is in gen2 and gen2 was not collected meanwhile; left to
    /// itself the runtime collected it later, at times as a blocking gen2 (20 ms with 200 000 rules)
    /// or in the middle of the next load (every ephemeral collection during a background one is a
    /// slow "foreground" one).
    /// </summary>
    public const long CollectAfterBytes = 64L << 20;

    private static void Restore()
    {
        lock (Gate)
        {
            if (_depth != 0 || !_low || _restoreFor != _generation)
            {
                return;
            }

            GCSettings.LatencyMode = _before;
            _low = false;
            if (GC.GetTotalAllocatedBytes() - _allocatedAtStart > CollectAfterBytes && _before != GCLatencyMode.Batch)
            {
                // under the lock: an Enter now would make the requested background collection a
                // blocking one (LowLatency); this call only starts it, and returns
                GC.Collect(2, GCCollectionMode.Forced, blocking: false);
            }
        }
    }

    /// <summary>One open scope; dispose it once.</summary>
    public readonly struct Scope(bool open) : IDisposable
    {
        public void Dispose()
        {
            if (open)
            {
                Exit();
            }
        }
    }
}
