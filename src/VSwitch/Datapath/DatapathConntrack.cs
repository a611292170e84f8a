// DatapathConntrack.cs - the connection table's sweeper and settings on the control side: expiry once
// a second (Housekeep), flushes from the control socket, zone limits and timeouts (kept in the state
// file). Sweeps take an epoch after unlinking, so an entry goes back to the pool only after every PMD
// has passed a round boundary (Pmd/Epoch.cs).
using VSwitch.Conntrack;
using VSwitch.Interop;

namespace VSwitch.Datapath;

public sealed partial class SwitchDatapath
{
    private readonly Lock _sweepGate = new();

    /// <summary>The connection table, if a rule with ct has been loaded.</summary>
    public ConnTable? Conns => _flows?.Shared.Conns;

    /// <summary>
    /// Expires connections whose timeout passed (and, with <paramref name="flush"/>, those it selects);
    /// returns how many were removed.
    /// </summary>
    public int SweepConntrack(Func<ConnInfo, bool>? flush = null)
    {
        var conns = Conns;
        if (conns == null)
        {
            return 0;
        }

        lock (_sweepGate)
        {
            var epoch = _epoch;
            return conns.Sweep(Native.Rdtsc(), () => epoch?.Advance() ?? 0, e => epoch == null || epoch.Passed(e), flush);
        }
    }

    /// <summary>
    /// One housekeeping tick of reclaiming ct(table=N)'s recirculation ids that no cached verdict names
    /// any more (Pipeline/FrozenStates.cs), when three quarters are taken.
    /// </summary>
    private void ReclaimFrozenStates()
    {
        var shared = _flows!.Shared;
        var epoch = _epoch;
        int freed = shared.Frozen.Reclaim(shared.RequestCacheFlush, () => epoch?.Advance() ?? 0, e => epoch == null || epoch.Passed(e));
        if (freed > 0)
        {
            Vlog.Write(VlogModule.Control, VlogLevel.Info, $"vswitchd: reclaimed {freed} of {Pipeline.FrozenStates.Capacity} ct recirculation ids (frozen states) no cached verdict used; {shared.Frozen.Count} in use");
        }
    }

    /// <summary>Applies the stored conntrack settings (zone limits, timeouts) and saves the state.</summary>
    public void ConntrackSettingsChanged()
    {
        _flows?.Shared.ApplyConntrackSettings();
        RequestStateSave();
    }
}
