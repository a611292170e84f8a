// PmdThread.cs - one PMD: runs one PmdLoop on the EAL worker lcore pinned to its core (launched
// with rte_eal_remote_launch, so mempool per-lcore caches work and multi-process support, which
// rte_pdump needs, stays on), until asked to stop. Without such an lcore (an operator's own -l or
// --lcores) it runs on a managed thread registered with rte_thread_register, and capture is off.
using System.Runtime.InteropServices;
using VSwitch.Interop;

namespace VSwitch.Pmd;

/// <summary>What a PMD thread runs: one interface call per thread lifetime, none per packet.</summary>
public interface IPmdRunner
{
    void Run();

    long AllocatedBytesDuringRun { get; }
}

public sealed unsafe class PmdThread
{
    private readonly Thread? _thread;
    private readonly int _ealLcore = -1;
    private GCHandle _self;
    private readonly ManualResetEventSlim _started = new();
    private readonly IPmdRunner _runner;
    private string? _startError;

    /// <param name="core">CPU to pin to.</param>
    /// <param name="state">The PMD's queues, buffers and counters.</param>
    /// <param name="runner">The loop, built on the control thread: the PMD thread itself allocates nothing, ever.</param>
    public PmdThread(int core, PmdState state, IPmdRunner runner)
    {
        Core = core;
        State = state;
        _runner = runner;
        _ealLcore = Native.LcoreOnCpu(core);
        if (_ealLcore < 0)
        {
            _thread = new Thread(Body) { IsBackground = true, Name = $"pmd-c{core}" };
        }
    }

    /// <summary>True when the PMD runs on an EAL worker lcore (not a registered extra thread).</summary>
    public bool OnEalLcore => _ealLcore >= 0;

    public int Core { get; }

    public PmdState State { get; }

    public uint LcoreId { get; private set; }

    /// <summary>Kernel thread id (for affinity management).</summary>
    public int Tid { get; private set; }

    /// <summary>Managed bytes allocated on this PMD thread while forwarding (after warm-up); -1 if unknown.</summary>
    public long AllocatedBytesDuringRun { get; private set; } = -1;

    /// <summary>Starts the thread and waits until it is pinned and registered; throws on failure.</summary>
    public void Start()
    {
        Started = true;
        State.Epoch.SetOnline(State.EpochIndex); // a plan posted before its first round is waited for
        if (_thread != null)
        {
            _thread.Start();
        }
        else
        {
            _self = GCHandle.Alloc(this);
            int rc = Native.LcoreLaunch((uint)_ealLcore, &LcoreEntry, (void*)GCHandle.ToIntPtr(_self));
            if (rc != 0)
            {
                _self.Free();
                Started = false;
                State.Epoch.SetOffline(State.EpochIndex);
                throw new VSwitchException($"PMD core {Core}: cannot launch on EAL lcore {_ealLcore}: {Native.ErrorText(rc)}");
            }
        }

        _started.Wait();
        if (_startError != null)
        {
            Join();
            throw new VSwitchException(_startError);
        }
    }

    [UnmanagedCallersOnly]
    private static int LcoreEntry(void* arg)
    {
        try
        {
            var pmd = (PmdThread)GCHandle.FromIntPtr((nint)arg).Target!;
            pmd.Body();
        }
        catch (Exception)
        {
            // Body records its own faults; nothing may unwind into DPDK's thread.
        }

        return 0;
    }

    /// <summary>Exceptions that escaped the PMD loop (each restarted it), and the last one's text.</summary>
    public long Faults { get; private set; }

    public string? LastFault { get; private set; }

    /// <summary>What the control thread has logged so far (its own bookkeeping).</summary>
    public long FaultsLogged { get; set; }

    public ulong TranslationErrorsLogged { get; set; }

    /// <summary>True once <see cref="Start"/> ran (the thread may have ended since).</summary>
    public bool Started { get; private set; }

    public void RequestStop() => State.StopRequested = true;

    /// <summary>Waits for the thread to end; a PMD that never started has nothing to wait for.</summary>
    public void Join()
    {
        if (!Started)
        {
            return;
        }

        if (_thread != null)
        {
            _thread.Join();
        }
        else if (_self.IsAllocated)
        {
            Native.LcoreWait((uint)_ealLcore);
            _self.Free();
        }
    }

    private void Body()
    {
        int rc = Native.ThreadPin(Core);
        if (rc != 0)
        {
            _startError = $"PMD core {Core}: cannot pin the thread: {Native.ErrorText(rc)}";
            State.Epoch.SetOffline(State.EpochIndex);
            _started.Set();
            return;
        }

        rc = _thread != null ? Native.ThreadRegister() : 0;
        if (rc != 0)
        {
            _startError = $"PMD core {Core}: cannot register the thread with DPDK: {Native.ErrorText(rc)}";
            State.Epoch.SetOffline(State.EpochIndex);
            _started.Set();
            return;
        }

        if (_thread == null)
        {
            _ = Native.ThreadSetName($"pmd-c{Core}"); // the EAL named it after its lcore
        }

        LcoreId = Native.LcoreId();
        Tid = Native.GetTid();
        _started.Set();
        try
        {
            // No exception may end a PMD: one that escapes the loop (a bug) is recorded for the
            // control thread to log, and polling resumes (the burst in flight may be lost).
            while (true)
            {
                try
                {
                    _runner.Run();
                    break;
                }
                catch (Exception ex)
                {
                    LastFault = $"{ex.GetType().Name}: {ex.Message} at {ex.StackTrace?.Split('\n').FirstOrDefault()?.Trim()}";
                    Faults++;
                }
            }

            AllocatedBytesDuringRun = _runner.AllocatedBytesDuringRun;
        }
        finally
        {
            State.Epoch.SetOffline(State.EpochIndex);
            if (_thread != null)
            {
                Native.ThreadUnregister();
            }
        }
    }
}
