// VhostUser.cs - vhost-user ports: DPDK's net_vhost PMD with the socket handling a production
// switch needs around it: restrictive socket permissions, stale socket files, client mode.
//
// Why net_vhost and not the rte_vhost API directly: net_vhost is an ethdev like every other port,
// so the PMD loop, tx buffers, counters and stats need no second code path; it already maps
// guest queues to ethdev queues, reports link state from the guest (new_device/destroy_device),
// and in client mode (client=1) rte_vhost reconnects by itself after the VM's QEMU restarts.
using System.Net.Sockets;
using System.Runtime.InteropServices;

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

public static partial class VhostUser
{
    /// <summary>Socket file mode: owner and group may connect (QEMU usually runs in the switch's group).</summary>
    public const UnixFileMode SocketMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;

    [LibraryImport("libc", EntryPoint = "umask")]
    private static partial uint Umask(uint mask);

    /// <summary>
    /// Before a server-mode port is probed: makes sure the socket path is free. A stale socket file
    /// left by a crashed run (nobody accepts on it) is removed with a notice; a live one, or a path
    /// that is not a socket, is refused.
    /// </summary>
    /// <returns>A notice for the operator, or null.</returns>
    public static string? PrepareServerSocket(string portName, string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(dir))
        {
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                                            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        }

        var info = new FileInfo(path);
        if (!info.Exists && !Directory.Exists(path))
        {
            return null;
        }

        if ((info.Attributes & FileAttributes.Directory) != 0 || !IsSocket(path))
        {
            throw new VSwitchException($"port '{portName}': vhost-user socket path '{path}' exists and is not a socket; remove it or choose another path");
        }

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.AddressNotAvailable)
        {
            File.Delete(path);
            return $"port '{portName}': removed stale vhost-user socket '{path}' (left by an earlier run; nobody was listening)";
        }

        throw new VSwitchException($"port '{portName}': vhost-user socket '{path}' is in use by another process (it accepts connections); stop it or choose another path");
    }

    [LibraryImport("libc", EntryPoint = "lstat", StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int LStat(string path, byte* statBuf);

    /// <summary>lstat(2) says S_IFSOCK (x86_64 glibc: st_mode is the 32-bit field at offset 24).</summary>
    private static unsafe bool IsSocket(string path)
    {
        byte* buf = stackalloc byte[256];
        if (LStat(path, buf) != 0)
        {
            return false;
        }

        uint mode = *(uint*)(buf + 24);
        return (mode & 0xF000) == 0xC000;
    }

    /// <summary>Runs <paramref name="create"/> (which makes the socket) with a umask that yields mode 0660, then enforces it.</summary>
    public static T WithSocketMode<T>(string path, bool client, Func<T> create)
    {
        uint old = Umask(0x4F); // 0117: no execute, nothing for others
        try
        {
            return create();
        }
        finally
        {
            Umask(old);
            if (!client && File.Exists(path))
            {
                File.SetUnixFileMode(path, SocketMode);
            }
        }
    }
}
