// PmdThread.cs - a dedicated OS thread pinned to one core, registered with the EAL as an lcore
// (so mempool per-lcore caches work), running one PmdLoop until asked to stop.
using VSwitch.Interop;

namespace VSwitch.Pmd;

/// <summary>What a PMD thread runs: one interface call per thread lifetime, none per packet.</summary>
public interface IPmdRunner
{
    void Run();

    long AllocatedBytesDuringRun { get; }
}

public sealed class PmdThread
{
    private readonly Thread _thread;
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
        _thread = new Thread(Body) { IsBackground = true, Name = $"pmd-c{core}" };
    }

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
        _thread.Start();
        _started.Wait();
        if (_startError != null)
        {
            _thread.Join();
            throw new VSwitchException(_startError);
        }
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
        if (Started)
        {
            _thread.Join();
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

        rc = Native.ThreadRegister();
        if (rc != 0)
        {
            _startError = $"PMD core {Core}: cannot register the thread with DPDK: {Native.ErrorText(rc)}";
            State.Epoch.SetOffline(State.EpochIndex);
            _started.Set();
            return;
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
            Native.ThreadUnregister();
        }
    }
}
