// Eal.cs - DPDK Environment Abstraction Layer start-up: argument vector, hugepage checks, the
// mbuf layout check, and the automatic --no-huge fallback for virtual devices.
using System.Runtime.InteropServices;
using System.Text;

namespace VSwitch.Interop;

/// <summary>What <see cref="Eal.Init"/> decided, for the start-up banner.</summary>
/// <param name="FilePrefix">The runtime directory's prefix (what <c>dpdk-dumpcap --file-prefix=</c> takes); null with --in-memory.</param>
/// <param name="Capture">rte_pdump is running: dpdk-dumpcap can capture any port of this process.</param>
public sealed record EalInfo(IReadOnlyList<string> Arguments, bool NoHuge, string? Notice, ulong TscHz,
    string? FilePrefix = null, bool Capture = false);

public static class Eal
{
    private static int s_initialized;
    private static string? s_runtimeDir;
    private static bool s_removeRuntimeDir;

    /// <summary>Hugetlbfs mount points from /proc/mounts.</summary>
    public static IReadOnlyList<string> HugetlbfsMounts(string mountsFile = "/proc/mounts")
    {
        if (!File.Exists(mountsFile))
        {
            return [];
        }

        return File.ReadAllLines(mountsFile)
            .Select(l => l.Split(' '))
            .Where(f => f.Length > 2 && f[2] == "hugetlbfs")
            .Select(f => f[1])
            .ToList();
    }

    /// <summary>Free 2 MiB hugepages reserved by the kernel (0 when unknown).</summary>
    public static long FreeHugepages()
    {
        const string path = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";
        return File.Exists(path) && long.TryParse(File.ReadAllText(path).Trim(), out var n) ? n : 0;
    }

    /// <summary>
    /// Builds the EAL argument vector: the operator's arguments plus defaults they did not set
    /// (main lcore on core 0, a shared runtime directory named <paramref name="defaultPrefix"/> so
    /// that dpdk-dumpcap can attach, quiet logging, --no-pci when no PCI port is used),
    /// and falls back to --no-huge when no hugepages are usable and every device allows it.
    /// Throws <see cref="VSwitchException"/> with a clear message when no fallback applies.
    /// </summary>
    public static (List<string> Args, bool NoHuge, string? Notice) BuildArguments(
        IReadOnlyList<string> userArgs, bool anyPciPort, bool allowNoHugeFallback,
        IReadOnlyList<string> hugeMounts, long freeHugepages, int mainCore, IReadOnlyList<int>? pmdCores = null,
        string defaultPrefix = "vswitchd")
    {
        var args = new List<string> { "vswitchd" };
        args.AddRange(userArgs);
        bool Has(string flag) => userArgs.Any(a => a == flag || a.StartsWith(flag + "=", StringComparison.Ordinal));

        if (!Has("-l") && !Has("-c") && !Has("--lcores"))
        {
            // Main lcore on mainCore, and one (idle) EAL lcore on each PMD core: DPDK pins its
            // control threads (interrupts, vhost-user messages, telemetry) to the CPUs no lcore
            // uses, and without this that would be the PMD cores. The PMD threads themselves
            // register as extra lcores.
            var map = new List<string> { $"0@{mainCore}" };
            int id = 1;
            foreach (int c in (pmdCores ?? []).Where(c => c != mainCore).Distinct())
            {
                map.Add($"{id++}@{c}");
            }

            args.Add("--lcores");
            args.Add(string.Join(',', map));
        }

        if (!Has("--file-prefix") && !Has("--in-memory"))
        {
            // Not --in-memory: rte_pdump's secondary (dpdk-dumpcap) needs the runtime directory
            // and the hugepage files. One prefix per instance keeps instances apart.
            args.Add($"--file-prefix={defaultPrefix}");
        }

        if (!Has("--log-level"))
        {
            args.Add("--log-level=error");
        }

        if (!anyPciPort && !Has("--no-pci") && !Has("-a") && !Has("-b") && !Has("--allow") && !Has("--block"))
        {
            args.Add("--no-pci");
        }

        string? notice = null;
        bool noHuge = Has("--no-huge");
        if (!noHuge)
        {
            string? hugeDir = null;
            int i = userArgs.ToList().FindIndex(a => a == "--huge-dir" || a.StartsWith("--huge-dir=", StringComparison.Ordinal));
            if (i >= 0)
            {
                hugeDir = userArgs[i].Contains('=', StringComparison.Ordinal) ? userArgs[i].Split('=', 2)[1]
                    : i + 1 < userArgs.Count ? userArgs[i + 1] : null;
                if (hugeDir == null || !hugeMounts.Contains(hugeDir.TrimEnd('/')))
                {
                    throw new VSwitchException(
                        $"hugepage directory '{hugeDir}' (--huge-dir) is not a hugetlbfs mount; run hugepages/setup.sh or pass a mounted directory");
                }
            }

            string? problem = hugeMounts.Count == 0 ? "no hugetlbfs is mounted"
                : freeHugepages <= 0 ? "no free 2 MiB hugepages are reserved" : null;
            if (problem != null)
            {
                if (!allowNoHugeFallback || anyPciPort || hugeDir != null)
                {
                    throw new VSwitchException(
                        $"{problem} and the configured ports need hugepages; run hugepages/setup.sh (or sudo hugepages/setup.sh) first");
                }

                noHuge = true;
                args.Add("--no-huge");
                if (!Has("-m") && !Has("--socket-mem"))
                {
                    args.Add("-m");
                    args.Add("512");
                }

                notice = $"{problem}: running with --no-huge (fine for virtual devices such as net_null, net_ring, net_pcap and net_tap; vhost-user ports need hugepages: run hugepages/setup.sh)";
            }
        }

        return (args, noHuge, notice);
    }

    /// <summary>Initialises the EAL once per process. Throws <see cref="VSwitchException"/> on failure.</summary>
    public static unsafe EalInfo Init(IReadOnlyList<string> userArgs, bool anyPciPort, bool allowNoHugeFallback = true, int mainCore = 0,
        IReadOnlyList<int>? pmdCores = null, string? defaultPrefix = null)
    {
        if (Interlocked.Exchange(ref s_initialized, 1) == 1)
        {
            throw new InvalidOperationException("the DPDK EAL can be initialised only once per process");
        }

        CheckLayout();
        var (args, noHuge, notice) = BuildArguments(userArgs, anyPciPort, allowNoHugeFallback,
            HugetlbfsMounts(), FreeHugepages(), mainCore, pmdCores, defaultPrefix ?? DefaultPrefix(null));

        // argv as NUL-terminated UTF-8, kept alive for the process lifetime (DPDK keeps pointers).
        var argv = (byte**)NativeMemory.AllocZeroed((nuint)(args.Count + 1), (nuint)sizeof(byte*));
        for (int i = 0; i < args.Count; i++)
        {
            var bytes = Encoding.UTF8.GetBytes(args[i] + "\0");
            argv[i] = (byte*)NativeMemory.Alloc((nuint)bytes.Length);
            bytes.CopyTo(new Span<byte>(argv[i], bytes.Length));
        }

        // DPDK's own log goes to a buffer during start-up; errors quote its last line (VSW_DPDK_LOG=1 shows all).
        Native.LogCapture(Environment.GetEnvironmentVariable("VSW_DPDK_LOG") == "1" ? 1 : 0);
        int rc = Native.EalInit(args.Count, argv);
        if (rc < 0)
        {
            throw new VSwitchException(
                $"DPDK EAL initialisation failed: {Native.ErrorText(rc)} (arguments: {string.Join(' ', args.Skip(1))})");
        }

        string? prefix = PrefixOf(args);
        bool capture = false;
        if (prefix != null)
        {
            s_runtimeDir = Marshal.PtrToStringUTF8((nint)Native.RuntimeDir());
            s_removeRuntimeDir = !userArgs.Any(a => a == "--file-prefix" || a.StartsWith("--file-prefix=", StringComparison.Ordinal));
            // Without hugepages a secondary process cannot map this process's memory: no capture.
            if (!noHuge)
            {
                int prc = Native.PdumpInit();
                capture = prc == 0;
                if (prc != 0)
                {
                    notice = (notice == null ? "" : notice + "; ") + $"packet capture (rte_pdump) is off: {Native.ErrorText(prc)}";
                }
            }
        }

        return new EalInfo(args.Skip(1).ToList(), noHuge, notice, Native.TscHz(), prefix, capture);
    }

    /// <summary>
    /// The runtime-directory prefix an instance uses when the operator gives none: "vswitchd" for
    /// the default control socket, otherwise one derived from the socket's path (two instances
    /// need two sockets, so they get two prefixes), and one per process without a socket.
    /// </summary>
    public static string DefaultPrefix(string? controlSocket)
    {
        if (controlSocket == null)
        {
            return $"vswitchd-{Environment.ProcessId}";
        }

        string full = Path.GetFullPath(controlSocket);
        if (full == Config.SwitchConfig.DefaultControlSocket)
        {
            return "vswitchd";
        }

        uint h = 2166136261;
        foreach (byte b in Encoding.UTF8.GetBytes(full))
        {
            h = (h ^ b) * 16777619;
        }

        return $"vswitchd-{h:x8}";
    }

    /// <summary>The --file-prefix in an EAL argument vector, or null with --in-memory.</summary>
    public static string? PrefixOf(IReadOnlyList<string> args)
    {
        if (args.Contains("--in-memory"))
        {
            return null;
        }

        for (int i = 0; i < args.Count; i++)
        {
            if (args[i].StartsWith("--file-prefix=", StringComparison.Ordinal))
            {
                return args[i]["--file-prefix=".Length..];
            }

            if (args[i] == "--file-prefix" && i + 1 < args.Count)
            {
                return args[i + 1];
            }
        }

        return "rte";
    }

    /// <summary>Fails fast when the shim's mbuf layout differs from <see cref="Mbuf"/>'s constants.</summary>
    public static void CheckLayout()
    {
        NativeMbufLayout actual;
        try
        {
            actual = MbufLayout.ReadNative();
        }
        catch (DllNotFoundException e)
        {
            throw new VSwitchException(
                $"cannot load the native shim libvswshim.so ({e.Message.Split('\n')[0]}); build it with scripts/setup", e);
        }

        // Fault injection for the start-up test of this very check (documented in docs/ARCHITECTURE.md).
        if (Environment.GetEnvironmentVariable("VSW_TEST_LAYOUT_SKEW") == "1")
        {
            actual.PktLen += 4;
        }

        var problem = MbufLayout.Check(actual);
        if (problem != null)
        {
            throw new VSwitchException(problem);
        }
    }

    /// <summary>
    /// Releases the EAL. A runtime directory under a prefix this process chose itself is removed
    /// too (DPDK leaves it behind); one the operator named is left for them.
    /// </summary>
    public static void Cleanup()
    {
        Native.EalCleanup();
        if (s_removeRuntimeDir && s_runtimeDir is { Length: > 0 } dir && Directory.Exists(dir))
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
                // a secondary process (dpdk-dumpcap) may still hold files there; leave it
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>
    /// Moves every thread of this process except <paramref name="keep"/> (the PMDs) off the PMD
    /// cores: the .NET runtime's threads exist before the EAL starts and may run anywhere. Threads
    /// created later inherit their creator's affinity. Returns how many threads were moved.
    /// </summary>
    public static int ConfineThreads(IReadOnlyCollection<int> keep, IReadOnlyCollection<int> pmdCores)
    {
        ulong mask = 0;
        for (int c = 0; c < Math.Min(64, Environment.ProcessorCount); c++)
        {
            if (!pmdCores.Contains(c))
            {
                mask |= 1UL << c;
            }
        }

        if (mask == 0)
        {
            return 0; // every core is a PMD core: nowhere else to go
        }

        int moved = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc/self/task"))
        {
            if (int.TryParse(Path.GetFileName(dir), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int tid)
                && !keep.Contains(tid) && Native.TidSetAffinity(tid, mask) == 0)
            {
                moved++;
            }
        }

        return moved;
    }

    /// <summary>After start-up: let DPDK's log reach stderr again.</summary>
    public static void ShowLog() => Native.LogCapture(1);

    /// <summary>Forget captured DPDK log text (before a call whose failure should quote only its own messages).</summary>
    public static void ClearLog() => Native.LogClear();
}
