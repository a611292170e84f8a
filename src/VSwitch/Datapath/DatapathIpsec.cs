// DatapathIpsec.cs - the IPsec stage on the control side: the crypto device opened on the first
// add-sa (one queue pair per PMD), SAs added and deleted from the control socket (a key daemon uses
// the same commands), and kept in the state file.
using VSwitch.Ipsec;

namespace VSwitch.Datapath;

public sealed partial class SwitchDatapath
{
    private readonly Lock _ipsecGate = new();

    /// <summary>The IPsec stage, if an SA has been added.</summary>
    public IpsecEngine? Ipsec => _flows?.Shared.Ipsec;

    /// <summary>The IPsec stage, opened on first use (control plane; needs the EAL and the pipeline).</summary>
    public IpsecEngine EnsureIpsec()
    {
        if (_flows == null || Eal == null)
        {
            throw new VSwitchException("IPsec needs vswitchd in pipeline mode (a crypto device is set up through DPDK)");
        }

        lock (_ipsecGate)
        {
            var e = _flows.Shared.Ipsec;
            if (e == null)
            {
                e = IpsecEngine.Open(_config.CryptoDevice, Math.Max(1, _config.PmdCores.Count), (uint)_config.CryptoQueueSize);
                _flows.Shared.Ipsec = e;
                Vlog.Write(VlogModule.Control, VlogLevel.Info, $"vswitchd: ipsec: crypto device {e.DeviceName} ({e.Driver}), {e.QueuePairs} queue pair(s)");
            }

            return e;
        }
    }

    /// <summary>Adds an SA (add-sa); refused with nothing changed if it cannot be created.</summary>
    public void AddSa(SaSpec s)
    {
        EnsureIpsec().Add(s);
        RequestStateSave();
    }

    /// <summary>Deletes an SA (del-sa): no PMD submits to it any more and its queued operations completed when this returns.</summary>
    public bool DelSa(int id)
    {
        var e = Ipsec;
        if (e == null || !e.Delete(id, () => !_pmdsRunning || _epoch!.Synchronize(s_planTimeout)))
        {
            return false;
        }

        RequestStateSave();
        return true;
    }
}
