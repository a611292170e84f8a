// DatapathState.cs - the state store writer: ports, groups and flow tables written to --state FILE by one
// background thread, coalesced, off the commands' path (and once more at shutdown).
using VSwitch.Config;
using VSwitch.Pmd;
using VSwitch.Ports;

namespace VSwitch.Datapath;

public sealed partial class SwitchDatapath
{
    /// <summary>Asks the state writer to store the current ports and flows (coalesced, off the command's path).</summary>
    private void RequestStateSave() => _stateDirty.Set();

    /// <summary>The last state-store write error, if the latest write failed (shown by show).</summary>
    public string? StateError => _stateError;

    private void StateWriterBody()
    {
        while (!_stateStop)
        {
            _stateDirty.WaitOne();
            SaveStateNow();
        }
    }

    /// <summary>Writes the store now (also at shutdown, so a clean stop leaves the final state).</summary>
    private void SaveStateNow()
    {
        if (_config.StateFile is not string path || _flows == null)
        {
            return;
        }

        using var quiet = GcQuiet.Enter(); // formatting every rule allocates: short collections while it runs

        List<PortConfig> ports;
        int nextOfPort;
        lock (_control)
        {
            ports = _ports.Configs;
            nextOfPort = _ports.NextOfPort;
        }

        try
        {
            var v = _flows.Current; // one version: its rules name only its groups
            StateStore.Save(path, ports, v.Dump(), nextOfPort, v.Groups.Values, _flows.Shared.CtSettings, _flows.Shared.Ipsec?.Specs());
            _stateError = null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _stateError = $"state file {path}: {e.Message} (the previous store is kept)";
            Console.Error.WriteLine($"vswitchd: {_stateError}");
        }
    }
}
