// PmdThread.cs - a dedicated OS thread pinned to one core, registered with the EAL as an lcore
// (so mempool per-lcore caches work), running one PmdLoop until asked to stop.
using VSwitch.Interop;

namespace VSwitch.Pmd;

public sealed class PmdThread
{
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _started = new();
    private readonly Func<PmdState, Func<long>> _runLoop;
    private string? _startError;

    /// <param name="core">CPU to pin to.</param>
    /// <param name="state">The PMD's queues, buffers and counters.</param>
    /// <param name="runLoop">Builds and runs the loop on the PMD thread; returns a reader of its allocation figure.</param>
    public PmdThread(int core, PmdState state, Func<PmdState, Func<long>> runLoop)
    {
        Core = core;
        State = state;
        _runLoop = runLoop;
        _thread = new Thread(Body) { IsBackground = true, Name = $"pmd-c{core}" };
    }

    public int Core { get; }

    public PmdState State { get; }

    public uint LcoreId { get; private set; }

    /// <summary>Managed bytes allocated on this PMD thread while forwarding (after warm-up); -1 if unknown.</summary>
    public long AllocatedBytesDuringRun { get; private set; } = -1;

    /// <summary>Starts the thread and waits until it is pinned and registered; throws on failure.</summary>
    public void Start()
    {
        _thread.Start();
        _started.Wait();
        if (_startError != null)
        {
            _thread.Join();
            throw new VSwitchException(_startError);
        }
    }

    public void RequestStop() => State.StopRequested = true;

    public void Join() => _thread.Join();

    private void Body()
    {
        int rc = Native.ThreadPin(Core);
        if (rc != 0)
        {
            _startError = $"PMD core {Core}: cannot pin the thread: {Native.ErrorText(rc)}";
            _started.Set();
            return;
        }

        rc = Native.ThreadRegister();
        if (rc != 0)
        {
            _startError = $"PMD core {Core}: cannot register the thread with DPDK: {Native.ErrorText(rc)}";
            _started.Set();
            return;
        }

        LcoreId = Native.LcoreId();
        _started.Set();
        try
        {
            var allocated = _runLoop(State);
            AllocatedBytesDuringRun = allocated();
        }
        finally
        {
            Native.ThreadUnregister();
        }
    }
}
