// MetricsEndpoint.cs - where vswitchd serves /metrics (--metrics, "metrics" in the config file).
//
// "PORT" and ":PORT" mean 127.0.0.1:PORT: the statistics describe the host's traffic, so they are
// not offered to the network unless an address is named. An explicit IPv4 address binds that
// address only; 0.0.0.0 binds them all. IPv6 and host names are refused: the HTTP listener
// (System.Net.HttpListener on Linux) cannot bind an IPv6 literal, and a name could resolve to an
// address nobody meant to expose.
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace VSwitch.Config;

public sealed record MetricsEndpoint(IPAddress Address, int Port)
{
    /// <summary>What the parsers' error messages say is expected.</summary>
    public const string Expected = "expected PORT, :PORT (127.0.0.1) or IPV4ADDRESS:PORT, with PORT from 1 to 65535";

    /// <summary>True when only this host can connect (a 127.0.0.0/8 address).</summary>
    public bool IsLoopback => IPAddress.IsLoopback(Address);

    /// <summary>True for 0.0.0.0: every IPv4 address of the host.</summary>
    public bool IsAny => Address.Equals(IPAddress.Any);

    public override string ToString() => $"{Address}:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>
    /// Parses "PORT", ":PORT" or "A.B.C.D:PORT". On failure returns false and says why in
    /// <paramref name="error"/> (one phrase; the caller prefixes the option or JSON path).
    /// </summary>
    public static bool TryParse(string text, out MetricsEndpoint? endpoint, out string error)
    {
        ArgumentNullException.ThrowIfNull(text);
        endpoint = null;
        string s = text.Trim();
        int colon = s.LastIndexOf(':');
        string host = colon < 0 ? "" : s[..colon];
        string port = colon < 0 ? s : s[(colon + 1)..];
        if (s.StartsWith('[') || host.Contains(':', StringComparison.Ordinal))
        {
            error = "IPv6 addresses are not supported; " + Expected;
            return false;
        }

        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out int p) || p < 1 || p > 65535)
        {
            error = port.Length == 0 ? "the port is missing; " + Expected : $"port '{port}' is not a number from 1 to 65535";
            return false;
        }

        IPAddress address = IPAddress.Loopback;
        if (host.Length > 0)
        {
            // IPAddress.TryParse also takes "1", "1.2" and hex forms; insist on four decimal parts.
            var parts = host.Split('.');
            if (parts.Length != 4 || parts.Any(x => x.Length is 0 or > 3 || !x.All(char.IsAsciiDigit))
                || !IPAddress.TryParse(host, out var a) || a.AddressFamily != AddressFamily.InterNetwork)
            {
                error = $"'{host}' is not an IPv4 address; {Expected}";
                return false;
            }

            address = a;
        }

        endpoint = new MetricsEndpoint(address, p);
        error = "";
        return true;
    }
}
