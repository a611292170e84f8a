// SystemdNotify.cs - the sd_notify protocol without libsystemd: under a Type=notify unit, systemd
// passes NOTIFY_SOCKET (a unix datagram socket, '@' for the abstract namespace) and waits for
// READY=1 before it calls the service started. vswitchd sends it once forwarding has begun (ports
// up, PMDs polling, control socket listening), STATUS= lines as it runs, and STOPPING=1 at exit.
using System.Net.Sockets;
using System.Text;

namespace VSwitch.Daemon;

internal sealed class SystemdNotify : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _target;

    public SystemdNotify()
    {
        var path = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(path) || (path[0] != '/' && path[0] != '@'))
        {
            return;
        }

        // Children (dpdk-dumpcap started by an operator's shell is not one, but be safe) must not inherit it.
        Environment.SetEnvironmentVariable("NOTIFY_SOCKET", null);
        _target = new UnixDomainSocketEndPoint(path[0] == '@' ? "\0" + path[1..] : path);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    }

    /// <summary>True when systemd (or whoever set NOTIFY_SOCKET) listens.</summary>
    public bool Active => _socket != null;

    /// <summary>Sends one notification ("READY=1\nSTATUS=..."); a failure is reported once, never fatal.</summary>
    public void Send(string state)
    {
        if (_socket == null)
        {
            return;
        }

        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(state), _target!);
        }
        catch (SocketException e)
        {
            Console.Error.WriteLine($"vswitchd: notice: cannot notify systemd ({e.Message})");
        }
    }

    public void Dispose() => _socket?.Dispose();
}
