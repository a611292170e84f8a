// Testpmd.cs - dpdk-testpmd processes standing in for VMs (virtio-user ports) in end-to-end tests.
using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace VSwitch.Tests;

internal sealed class Testpmd : IDisposable
{
    private static int s_seq;
    private readonly Process _p;
    private readonly StringBuilder _out = new();
    private readonly string _prefix = $"vswtest{Environment.ProcessId}x{Interlocked.Increment(ref s_seq)}";

    /// <summary>Port counters from testpmd's exit report ("Forward statistics for port N").</summary>
    public sealed record PortCounts(long Rx, long Tx, long RxDropped, long TxDropped);

    /// <param name="vdevs">--vdev values, e.g. net_virtio_user0,path=/x.sock</param>
    /// <param name="mode">forwarding mode (flowgen sends and counts what it receives)</param>
    public Testpmd(IEnumerable<string> vdevs, string mode = "flowgen", int queues = 1)
    {
        var psi = new ProcessStartInfo("timeout", ["-s", "INT", "-k", "5", "120", "dpdk-testpmd"])
        {
            RedirectStandardInput = true, // kept open: testpmd exits when its stdin ends
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // The "VM" shares core 0 with the control plane; --in-memory: shareable memfd memory, and
        // nothing left in /dev/hugepages when a test kills it.
        foreach (var a in new[] { "--lcores", "0@0,1@0", "--no-pci", "--in-memory", "--single-file-segments", "-m", "160", "--log-level=error",
                     "--file-prefix", _prefix })
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var v in vdevs)
        {
            psi.ArgumentList.Add("--vdev");
            psi.ArgumentList.Add(v);
        }

        foreach (var a in new[] { "--", $"--forward-mode={mode}", "--txpkts=64", "--total-num-mbufs=8192", "--auto-start", "--stats-period", "1",
                     $"--rxq={queues}", $"--txq={queues}", "--flowgen-flows=64" })
        {
            psi.ArgumentList.Add(a);
        }

        _p = Process.Start(psi)!;
        _p.OutputDataReceived += (_, e) => { if (e.Data != null) { lock (_out) { _out.AppendLine(e.Data); } } };
        _p.ErrorDataReceived += (_, e) => { if (e.Data != null) { lock (_out) { _out.AppendLine(e.Data); } } };
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
    }

    public string Output { get { lock (_out) { return _out.ToString(); } } }

    /// <summary>Waits until testpmd prints its first periodic statistics (it is forwarding).</summary>
    public void WaitForwarding(int seconds = 30)
    {
        var end = DateTime.UtcNow.AddSeconds(seconds);
        while (!Output.Contains("Port statistics", StringComparison.Ordinal))
        {
            if (_p.HasExited || DateTime.UtcNow > end)
            {
                throw new Xunit.Sdk.XunitException("testpmd did not start forwarding:\n" + Output);
            }

            Thread.Sleep(100);
        }
    }

    /// <summary>SIGINT (graceful: testpmd prints its totals) and wait.</summary>
    public Dictionary<int, PortCounts> Stop()
    {
        using (var k = Process.Start("kill", ["-INT", _p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
        {
            k.WaitForExit();
        }

        // `timeout` forwards SIGINT to testpmd; it exits after printing forward statistics.
        if (!_p.WaitForExit(30_000))
        {
            _p.Kill(entireProcessTree: true);
        }

        _p.WaitForExit();
        return Parse(Output);
    }

    /// <summary>SIGKILL: a VM that crashes.</summary>
    public void Kill()
    {
        _p.Kill(entireProcessTree: true);
        _p.WaitForExit();
    }

    private static Dictionary<int, PortCounts> Parse(string output)
    {
        var result = new Dictionary<int, PortCounts>();
        foreach (Match m in Regex.Matches(output,
                     @"Forward statistics for port (\d+)\s+-+\s+RX-packets: (\d+)\s+RX-dropped: (\d+)\s+RX-total: \d+\s+TX-packets: (\d+)\s+TX-dropped: (\d+)"))
        {
            result[int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)] = new PortCounts(
                long.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture),
                long.Parse(m.Groups[4].Value, System.Globalization.CultureInfo.InvariantCulture),
                long.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture),
                long.Parse(m.Groups[5].Value, System.Globalization.CultureInfo.InvariantCulture));
        }

        return result.Count > 0 ? result : throw new Xunit.Sdk.XunitException("no forward statistics in testpmd output:\n" + output);
    }

    public void Dispose()
    {
        if (!_p.HasExited)
        {
            _p.Kill(entireProcessTree: true);
            _p.WaitForExit();
        }

        _p.Dispose();
        try
        {
            Directory.Delete($"/var/run/dpdk/{_prefix}", recursive: true); // DPDK leaves its runtime directory behind
        }
        catch (IOException)
        {
        }
    }
}
