// VhostUser.cs - vhost-user ports: DPDK's net_vhost PMD with the socket handling a production
// switch needs around it: restrictive socket permissions, stale socket files, client mode.
//
// Why net_vhost and not the rte_vhost API directly: net_vhost is an ethdev like every other port,
// so the PMD loop, tx buffers, counters and stats need no second code path; it already maps
// guest queues to ethdev queues, reports link state from the guest (new_device/destroy_device),
// and in client mode (client=1) rte_vhost reconnects by itself after the VM's QEMU restarts.
// The packets themselves bypass net_vhost's rx/tx functions (the shim's direct vhost-user path,
// docs/ARCHITECTURE.md): DpdkPort.DirectQueues says which queues use it.
using VSwitch.Interop;

namespace VSwitch.Ports;

/// <summary>The vhost-user settings found in a net_vhost devargs string.</summary>
public sealed record VhostUserArgs(string SocketPath, bool Client, int Queues)
{
    /// <summary>Null unless <paramref name="devArgs"/> names a net_vhost (or eth_vhost) device.</summary>
    public static VhostUserArgs? Parse(string devArgs)
    {
        var parts = devArgs.Split(',');
        if (!parts[0].StartsWith("net_vhost", StringComparison.Ordinal) && !parts[0].StartsWith("eth_vhost", StringComparison.Ordinal))
        {
            return null;
        }

        string? iface = null;
        bool client = false;
        int queues = 1;
        foreach (var kv in parts.Skip(1))
        {
            var (k, v) = kv.IndexOf('=', StringComparison.Ordinal) is int i and > 0 ? (kv[..i], kv[(i + 1)..]) : (kv, "");
            switch (k)
            {
                case "iface":
                    iface = v;
                    break;
                case "client":
                    client = v == "1";
                    break;
                case "queues":
                    _ = int.TryParse(v, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out queues);
                    break;
            }
        }

        return iface == null
            ? throw new VSwitchException($"vhost-user device '{parts[0]}' needs iface=<socket path>")
            : new VhostUserArgs(iface, client, Math.Max(1, queues));
    }
}

public static class VhostUser
{
    /// <summary>Before a server-mode port is probed: see <see cref="UnixSocketFile.PrepareToServe"/>.</summary>
    /// <returns>A notice for the operator, or null.</returns>
    public static string? PrepareServerSocket(string portName, string path) =>
        UnixSocketFile.PrepareToServe($"port '{portName}'", "vhost-user socket", path);
}
