// DevArgFiles.cs - checks the files and interfaces a device's arguments name, before the probe.
//
// Why: DPDK's net_pcap reports a missing rx_pcap file as a failed probe whose errno reads
// "Operation not permitted", which sends the operator looking at permissions. The paths are plain
// text in the devargs, so they are checked here first and a missing one is named (with the port and
// the argument). Only arguments whose meaning is certain are checked: net_pcap's rx_pcap (must
// exist: a file or a FIFO), tx_pcap (its directory must exist; the file is created) and the
// interface arguments of net_pcap and net_af_packet (the interface must exist).
namespace VSwitch.Ports;

public static class DevArgFiles
{
    /// <summary>Throws <see cref="VSwitchException"/> naming <paramref name="port"/> when an argument names a missing file or interface.</summary>
    public static void Check(string port, string devArgs)
    {
        var parts = devArgs.Split(',');
        string driver = parts[0];
        bool pcap = driver.StartsWith("net_pcap", StringComparison.Ordinal) || driver.StartsWith("eth_pcap", StringComparison.Ordinal);
        bool afPacket = driver.StartsWith("net_af_packet", StringComparison.Ordinal) || driver.StartsWith("eth_af_packet", StringComparison.Ordinal);
        if (!pcap && !afPacket)
        {
            return;
        }

        foreach (var kv in parts.Skip(1))
        {
            int eq = kv.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                continue;
            }

            string key = kv[..eq], value = kv[(eq + 1)..];
            switch (key)
            {
                case "rx_pcap" when pcap:
                    if (!File.Exists(value))
                    {
                        throw new VSwitchException(Directory.Exists(value)
                            ? $"port '{port}': rx_pcap '{value}' is a directory, not a pcap file"
                            : $"port '{port}': rx_pcap file '{value}' does not exist");
                    }

                    break;
                case "tx_pcap" when pcap:
                    {
                        string dir = Path.GetDirectoryName(Path.GetFullPath(value))!;
                        if (!Directory.Exists(dir))
                        {
                            throw new VSwitchException($"port '{port}': tx_pcap file '{value}': directory '{dir}' does not exist");
                        }

                        break;
                    }

                case "rx_iface" or "rx_iface_in" or "tx_iface" or "iface" when pcap || (afPacket && key == "iface"):
                    if (!Directory.Exists(Path.Combine("/sys/class/net", value)))
                    {
                        throw new VSwitchException($"port '{port}': {key} interface '{value}' does not exist (see ip link)");
                    }

                    break;
            }
        }
    }
}
