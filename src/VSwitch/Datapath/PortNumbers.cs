// PortNumbers.cs - OpenFlow port numbers: stable, never reused within the switch's life and its
// state file, requestable (ofport_request); the datapath slots behind them are the switch's own.
using VSwitch.Config;
using VSwitch.Pmd;
using VSwitch.Ports;

namespace VSwitch.Datapath;

public sealed partial class SwitchDatapath
{
    /// <summary>OpenFlow port number of a port (pipeline mode).</summary>
    public int OfPortOf(DpdkPort port) => _ofPorts[DpPortOf(port)];

    /// <summary>The port using OpenFlow number <paramref name="ofPort"/>, or null.</summary>
    private DpdkPort? PortWithOfPort(int ofPort) => Array.IndexOf(_ofPorts, ofPort) is int s and >= 0 ? _slots[s] : null;

    /// <summary>The number a new port gets: the lowest never handed out (so rules that named a removed port never reach a new one).</summary>
    private int NextFreeOfPort()
    {
        int n = _nextOfPort;
        while (n <= PortConfig.MaxOfPort && (_reservedOfPorts.Contains(n) || PortWithOfPort(n) != null))
        {
            n++;
        }

        return n <= PortConfig.MaxOfPort ? n : throw new VSwitchException($"every OpenFlow port number up to {PortConfig.MaxOfPort} has been used; request a free one (ofport)");
    }
}
