// Capture.cs - vswitchctl capture / monitor: packets on a port (through DPDK's own capture
// framework: dpdk-dumpcap attached to vswitchd as a secondary process), the packets the switch
// drops with the reason in each packet's comment (its drop tap, over the control socket), and the
// packets the controller action punts. Output: one decoded line per packet, or pcapng (-w FILE).
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;

namespace VSwitch.Ctl;

/// <summary>What capture / monitor capture (CommandLine.cs fills it from the command line).</summary>
internal sealed class CaptureOptions
{
    public string? Port { get; set; }

    public bool Drops { get; set; }

    public string? Filter { get; set; }

    public long Count { get; set; } = long.MaxValue;

    public string? Output { get; set; }

    public double Seconds { get; set; } = double.PositiveInfinity;
}

internal static class Capture
{
    private static volatile bool s_stop;

    /// <summary>Runs a capture or a monitor; returns the exit code.</summary>
    public static int Run(string cmd, CaptureOptions o, Func<string, JsonObject, JsonObject> call)
    {
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            s_stop = true;
        };
        using var filter = o.Filter == null ? null : new PcapFilter(o.Filter);
        using var sink = o.Output == null ? null : new PcapngWriter(o.Output == "-" ? Console.OpenStandardOutput() : File.Create(o.Output));
        var watch = Stopwatch.StartNew();
        long got = cmd == "capture" && o.Port != null
            ? FromDumpcap(o, call, sink) // dpdk-dumpcap compiles the filter to eBPF, run in the switch
            : FromSwitch(cmd == "monitor" ? "punt-read" : "drops-read", o, call, filter, sink, watch);
        if (o.Output != "-")
        {
            Console.Error.WriteLine($"vswitchctl: {got} packet{(got == 1 ? "" : "s")} {(cmd == "monitor" ? "punted" : "captured")}");
        }

        return 0;
    }

    private static long FromSwitch(string readCmd, CaptureOptions o, Func<string, JsonObject, JsonObject> call, PcapFilter? filter, PcapngWriter? sink, Stopwatch watch)
    {
        long got = 0;
        ulong missed = 0;
        var ifaces = new Dictionary<string, int>();
        while (!s_stop && got < o.Count && watch.Elapsed.TotalSeconds < o.Seconds)
        {
            var r = call(readCmd, new JsonObject { ["max"] = 4096 });
            if (r["ok"]?.GetValue<bool>() != true)
            {
                throw new CaptureException($"{readCmd}: {r["error"]}");
            }

            var res = r["result"]!;
            missed = res["missed"]?.GetValue<ulong>() ?? 0;
            var packets = res["packets"]!.AsArray();
            foreach (var p in packets)
            {
                var data = Convert.FromBase64String((string)p!["data"]!);
                int length = (int)p["length"]!;
                if (filter != null && !filter.Matches(data, length))
                {
                    continue;
                }

                string port = (string)p["port"]!;
                long ns = (long)p["time_ns"]!;
                string note = readCmd == "drops-read" ? $"drop reason={p["reason"]} pmd={p["pmd"]}" : $"controller table={p["table"]} in_port={p["in_port"]} pmd={p["pmd"]}";
                if (sink != null)
                {
                    if (!ifaces.TryGetValue(port, out int id))
                    {
                        id = ifaces[port] = sink.AddInterface(port, 65535);
                    }

                    sink.Packet(id, ns, data, length, note);
                }
                else
                {
                    Console.WriteLine($"{Decode.Time(ns)} {port} {note}: {Decode.Line(data, length)}");
                }

                if (++got >= o.Count)
                {
                    break;
                }
            }

            if (packets.Count == 0)
            {
                Thread.Sleep(50);
            }
        }

        if (readCmd == "drops-read")
        {
            call("drops-stop", []);
            if (missed > 0)
            {
                Console.Error.WriteLine($"vswitchctl: {missed} drops were not captured (the tap's ring was full)");
            }
        }

        return got;
    }

    /// <summary>Starts dpdk-dumpcap against the switch's runtime directory and relays its pcapng stream.</summary>
    private static long FromDumpcap(CaptureOptions o, Func<string, JsonObject, JsonObject> call, PcapngWriter? sink)
    {
        var show = call("show", []);
        if (show["ok"]?.GetValue<bool>() != true)
        {
            throw new CaptureException($"show: {show["error"]}");
        }

        var res = show["result"]!;
        if (res["capture"]?.GetValue<bool>() != true)
        {
            throw new CaptureException("this vswitchd runs without packet capture (it was started with --in-memory, or without hugepages: see its start-up notice)");
        }

        var port = res["ports"]!.AsArray().FirstOrDefault(p => (string?)p!["name"] == o.Port)
            ?? throw new CaptureException($"no port '{o.Port}' (ports: {string.Join(", ", res["ports"]!.AsArray().Select(p => (string?)p!["name"]))})");
        string device = (string)port["device"]!;
        string prefix = (string)res["file_prefix"]!;

        // pcapng through a FIFO, not stdout: dpdk-dumpcap also prints text to stdout.
        string fifoDir = Directory.CreateTempSubdirectory("vswitchctl-capture-").FullName;
        try
        {
            string fifo = Path.Combine(fifoDir, "pcapng");
            if (MkFifo(fifo, 0x180) != 0)
            {
                throw new CaptureException($"cannot make a FIFO in {fifoDir}: errno {Marshal.GetLastPInvokeError()}");
            }

            return RunDumpcap(o, sink, prefix, device, fifo);
        }
        finally
        {
            Directory.Delete(fifoDir, recursive: true);
        }
    }

    private static long RunDumpcap(CaptureOptions o, PcapngWriter? sink, string prefix, string device, string fifo)
    {
        var psi = new ProcessStartInfo("dpdk-dumpcap") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-q", $"--file-prefix={prefix}", "-i", device, "-w", fifo })
        {
            psi.ArgumentList.Add(a);
        }

        if (o.Filter != null)
        {
            psi.ArgumentList.Add("-f");
            psi.ArgumentList.Add(o.Filter);
        }

        Process dumpcap;
        try
        {
            dumpcap = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new CaptureException($"cannot run dpdk-dumpcap (Debian package dpdk): {e.Message}");
        }

        using var owned = dumpcap;
        var errors = new StringBuilder();
        dumpcap.ErrorDataReceived += (_, e) =>
        {
            // The secondary process scans the PCI bus the switch does not use: not an error of the capture.
            if (e.Data is { Length: > 0 } line && !line.Contains("is not driven by the primary process", StringComparison.Ordinal)
                && !line.Contains("cannot be used", StringComparison.Ordinal))
            {
                lock (errors)
                {
                    errors.AppendLine(line);
                }
            }
        };
        dumpcap.BeginErrorReadLine();
        dumpcap.OutputDataReceived += (_, _) => { };
        dumpcap.BeginOutputReadLine();

        // Opening a FIFO's read end waits for its writer; if dpdk-dumpcap fails before it opens
        // the file, open the write end here to let the read end go.
        var opening = Task.Run(() => new FileStream(fifo, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16));
        while (!opening.Wait(100))
        {
            if (dumpcap.HasExited)
            {
                using var unblock = new FileStream(fifo, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
                break;
            }
        }

        using var input = opening.Result;
        long got = 0;
        var reader = new PcapngReader(input);
        var names = new List<string>();
        var resolution = new List<long>();
        var ifaceMap = new Dictionary<int, int>();
        using var timer = new Timer(_ => StopDumpcap(dumpcap), null, o.Seconds == double.PositiveInfinity ? Timeout.Infinite : (int)(o.Seconds * 1000), Timeout.Infinite);
        using var cancel = new Timer(_ => { if (s_stop) { StopDumpcap(dumpcap); } }, null, 100, 100);
        while (got < o.Count && reader.Next() is { } block)
        {
            switch (block.Type)
            {
                case PcapngReader.InterfaceBlock:
                    names.Add(block.InterfaceName ?? device);
                    resolution.Add(block.TicksPerSecond);
                    break;
                case PcapngReader.PacketBlock:
                {
                    int iface = block.Interface;
                    long ns = resolution.Count > iface ? block.Timestamp * (1_000_000_000 / Math.Max(1, resolution[iface])) : block.Timestamp * 1000;
                    string name = names.Count > iface ? names[iface] : device;
                    if (sink != null)
                    {
                        if (!ifaceMap.TryGetValue(iface, out int id))
                        {
                            id = ifaceMap[iface] = sink.AddInterface(o.Port!, 65535);
                        }

                        sink.Packet(id, ns, block.Data!, block.OriginalLength, block.Comment);
                    }
                    else
                    {
                        Console.WriteLine($"{Decode.Time(ns)} {o.Port}: {Decode.Line(block.Data!, block.OriginalLength)}");
                    }

                    got++;
                    break;
                }
            }
        }

        // Stop it with SIGINT and keep reading until it closes the FIFO: dpdk-dumpcap must not be
        // left blocked on a full pipe, it has to tell the switch to remove its capture before it
        // exits (SIGKILL is a last resort after 15 s).
        StopDumpcap(dumpcap);
        using (var killer = new Timer(_ => { try { dumpcap.Kill(); } catch (InvalidOperationException) { } }, null, 15_000, Timeout.Infinite))
        {
            while (reader.Next() != null)
            {
            }
        }

        dumpcap.WaitForExit();
        string err;
        lock (errors)
        {
            err = errors.ToString().Trim();
        }

        if (got == 0 && dumpcap.ExitCode != 0 && err.Length > 0)
        {
            throw new CaptureException($"dpdk-dumpcap: {err.Replace('\n', ' ')}");
        }

        return got;
    }

    /// <summary>SIGINT: dpdk-dumpcap then tells the switch to remove its capture callbacks (SIGKILL would leave them).</summary>
    private static void StopDumpcap(Process p)
    {
        try
        {
            if (!p.HasExited)
            {
                _ = Kill(p.Id, 2);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    [DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int MkFifo([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint mode);

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int sig);
}

internal sealed class CaptureException(string message) : Exception(message);

/// <summary>One connection to vswitchd's control socket: JSON-line requests, one answer each.</summary>
internal sealed class ControlConnection : IDisposable
{
    private static readonly System.Text.Json.JsonSerializerOptions s_relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;
    private int _id;

    public ControlConnection(string path)
    {
        _socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            _socket.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch
        {
            _socket.Dispose();
            throw;
        }

        _stream = new NetworkStream(_socket, ownsSocket: true);
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    public JsonObject Call(string cmd, JsonObject args)
    {
        var request = new JsonObject { ["v"] = 1, ["id"] = ++_id, ["cmd"] = cmd, ["args"] = args };
        _stream.Write(Encoding.UTF8.GetBytes(request.ToJsonString(s_relaxed) + "\n"));
        var line = _reader.ReadLine() ?? throw new IOException("the switch closed the connection without answering");
        return JsonNode.Parse(line)!.AsObject();
    }

    public void Dispose()
    {
        _reader.Dispose();
        _stream.Dispose();
    }
}

/// <summary>A libpcap filter expression, compiled by libpcap and run on each packet (pcap_offline_filter).</summary>
internal sealed class PcapFilter : IDisposable
{
    private readonly nint _pcap;
    private readonly nint _program;

    public PcapFilter(string expression)
    {
        try
        {
            _pcap = OpenDead(1, 65535); // DLT_EN10MB
        }
        catch (DllNotFoundException)
        {
            throw new CaptureException("filters need libpcap (Debian package libpcap0.8)");
        }

        _program = Marshal.AllocHGlobal(16);
        if (Compile(_pcap, _program, expression, 1, 0xFFFFFFFF) != 0)
        {
            string why = Marshal.PtrToStringUTF8(GetErr(_pcap)) ?? "syntax error";
            Marshal.FreeHGlobal(_program);
            _program = 0;
            throw new CaptureException($"filter '{expression}': {why}");
        }
    }

    public unsafe bool Matches(byte[] data, int length)
    {
        long* hdr = stackalloc long[3];
        hdr[0] = 0;
        hdr[1] = 0;
        ((uint*)(hdr + 2))[0] = (uint)data.Length;
        ((uint*)(hdr + 2))[1] = (uint)length;
        fixed (byte* p = data)
        {
            return OfflineFilter(_program, (nint)hdr, (nint)p) != 0;
        }
    }

    public void Dispose()
    {
        if (_program != 0)
        {
            FreeCode(_program);
            Marshal.FreeHGlobal(_program);
        }

        if (_pcap != 0)
        {
            Close(_pcap);
        }
    }

    [DllImport("libpcap.so.0.8", EntryPoint = "pcap_open_dead")]
    private static extern nint OpenDead(int linktype, int snaplen);

    [DllImport("libpcap.so.0.8", EntryPoint = "pcap_compile")]
    private static extern int Compile(nint p, nint program, [MarshalAs(UnmanagedType.LPUTF8Str)] string expression, int optimize, uint netmask);

    [DllImport("libpcap.so.0.8", EntryPoint = "pcap_geterr")]
    private static extern nint GetErr(nint p);

    [DllImport("libpcap.so.0.8", EntryPoint = "pcap_offline_filter")]
    private static extern int OfflineFilter(nint program, nint header, nint data);

    [DllImport("libpcap.so.0.8", EntryPoint = "pcap_freecode")]
    private static extern void FreeCode(nint program);

    [DllImport("libpcap.so.0.8", EntryPoint = "pcap_close")]
    private static extern void Close(nint p);
}

/// <summary>Writes pcapng: a section header, interfaces (one per port) and enhanced packet blocks with an optional comment.</summary>
internal sealed class PcapngWriter : IDisposable
{
    private readonly Stream _out;
    private int _interfaces;

    public PcapngWriter(Stream output)
    {
        _out = output;
        var shb = new List<byte>();
        Put32(shb, 0x1A2B3C4D);
        Put16(shb, 1);
        Put16(shb, 0);
        shb.AddRange(BitConverter.GetBytes(-1L));
        Option(shb, 4, "vswitchctl (VSwitch)"); // shb_userappl
        End(shb);
        Block(0x0A0D0D0A, shb);
    }

    /// <summary>Adds an interface (linktype Ethernet, nanosecond timestamps); returns its id.</summary>
    public int AddInterface(string name, int snaplen)
    {
        var b = new List<byte>();
        Put16(b, 1);
        Put16(b, 0);
        Put32(b, (uint)snaplen);
        Option(b, 2, name); // if_name
        Option(b, 9, [9]); // if_tsresol: 10^-9
        End(b);
        Block(1, b);
        return _interfaces++;
    }

    public void Packet(int iface, long ns, byte[] data, int originalLength, string? comment)
    {
        var b = new List<byte>(data.Length + 64);
        Put32(b, (uint)iface);
        Put32(b, (uint)((ulong)ns >> 32));
        Put32(b, (uint)ns);
        Put32(b, (uint)data.Length);
        Put32(b, (uint)Math.Max(originalLength, data.Length));
        b.AddRange(data);
        Pad(b);
        if (comment != null)
        {
            Option(b, 1, comment); // opt_comment
            End(b);
        }

        Block(6, b);
    }

    public void Dispose()
    {
        _out.Flush();
        _out.Dispose();
    }

    private void Block(uint type, List<byte> body)
    {
        uint total = (uint)(body.Count + 12);
        var head = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(head, type);
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(4), total);
        _out.Write(head);
        _out.Write(body.ToArray());
        _out.Write(head.AsSpan(4, 4));
        _out.Flush();
    }

    private static void Option(List<byte> b, ushort code, string value) => Option(b, code, Encoding.UTF8.GetBytes(value));

    private static void Option(List<byte> b, ushort code, byte[] value)
    {
        Put16(b, code);
        Put16(b, (ushort)value.Length);
        b.AddRange(value);
        Pad(b);
    }

    private static void End(List<byte> b) => Put32(b, 0);

    private static void Pad(List<byte> b)
    {
        while (b.Count % 4 != 0)
        {
            b.Add(0);
        }
    }

    private static void Put16(List<byte> b, ushort v) => b.AddRange(BitConverter.GetBytes(v));

    private static void Put32(List<byte> b, uint v) => b.AddRange(BitConverter.GetBytes(v));
}

/// <summary>Reads the pcapng stream dpdk-dumpcap writes (little-endian, as it writes on x86).</summary>
internal sealed class PcapngReader(Stream input)
{
    public const uint InterfaceBlock = 1;
    public const uint PacketBlock = 6;

    public sealed record BlockInfo(uint Type, int Interface, long Timestamp, byte[]? Data, int OriginalLength, string? Comment, string? InterfaceName, long TicksPerSecond);

    public BlockInfo? Next()
    {
        var head = new byte[8];
        if (!ReadExactly(head))
        {
            return null;
        }

        uint type = BinaryPrimitives.ReadUInt32LittleEndian(head);
        int total = (int)BinaryPrimitives.ReadUInt32LittleEndian(head.AsSpan(4));
        if (total < 12 || total > 1 << 24)
        {
            throw new CaptureException($"dpdk-dumpcap wrote a pcapng block of {total} bytes; cannot read on");
        }

        var body = new byte[total - 8];
        if (!ReadExactly(body))
        {
            return null;
        }

        var span = body.AsSpan(0, total - 12);
        switch (type)
        {
            case InterfaceBlock:
            {
                string? name = null;
                long tps = 1_000_000;
                foreach (var (code, value) in Options(span[8..]))
                {
                    if (code == 2)
                    {
                        name = Encoding.UTF8.GetString(value).TrimEnd('\0');
                    }
                    else if (code == 9 && value.Length >= 1)
                    {
                        tps = (value[0] & 0x80) == 0 ? (long)Math.Pow(10, value[0]) : 1L << (value[0] & 0x7F);
                    }
                }

                return new BlockInfo(type, 0, 0, null, 0, null, name, tps);
            }

            case PacketBlock:
            {
                int iface = (int)BinaryPrimitives.ReadUInt32LittleEndian(span);
                long ts = ((long)BinaryPrimitives.ReadUInt32LittleEndian(span[4..]) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(span[8..]);
                int cap = (int)BinaryPrimitives.ReadUInt32LittleEndian(span[12..]);
                int orig = (int)BinaryPrimitives.ReadUInt32LittleEndian(span[16..]);
                var data = span.Slice(20, cap).ToArray();
                string? comment = null;
                foreach (var (code, value) in Options(span[(20 + ((cap + 3) & ~3))..]))
                {
                    if (code == 1)
                    {
                        comment = Encoding.UTF8.GetString(value);
                    }
                }

                return new BlockInfo(type, iface, ts, data, orig, comment, null, 0);
            }

            default:
                return new BlockInfo(type, 0, 0, null, 0, null, null, 0);
        }
    }

    private static List<(int Code, byte[] Value)> Options(ReadOnlySpan<byte> s)
    {
        var list = new List<(int, byte[])>();
        while (s.Length >= 4)
        {
            int code = BinaryPrimitives.ReadUInt16LittleEndian(s);
            int len = BinaryPrimitives.ReadUInt16LittleEndian(s[2..]);
            if (code == 0 || 4 + len > s.Length)
            {
                break;
            }

            list.Add((code, s.Slice(4, len).ToArray()));
            s = s[(4 + ((len + 3) & ~3))..];
        }

        return list;
    }

    private bool ReadExactly(byte[] buf)
    {
        int got = 0;
        while (got < buf.Length)
        {
            int n = input.Read(buf, got, buf.Length - got);
            if (n == 0)
            {
                return false;
            }

            got += n;
        }

        return true;
    }
}

/// <summary>One line per packet, tcpdump-like: MACs, VLAN, addresses, protocol and ports, length.</summary>
internal static class Decode
{
    public static string Time(long ns) =>
        DateTime.UnixEpoch.AddTicks(ns / 100).ToLocalTime().ToString("HH:mm:ss.ffffff", CultureInfo.InvariantCulture);

    public static string Line(byte[] d, int length)
    {
        if (d.Length < 14)
        {
            return $"truncated frame, length {length}";
        }

        var sb = new StringBuilder();
        sb.Append(Mac(d, 6)).Append(" > ").Append(Mac(d, 0));
        int off = 12;
        int type = BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(off));
        while ((type == 0x8100 || type == 0x88a8) && d.Length >= off + 6)
        {
            int tci = BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(off + 2));
            sb.Append(CultureInfo.InvariantCulture, $", {(type == 0x88a8 ? "802.1ad" : "vlan")} {tci & 0xFFF}");
            off += 4;
            type = BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(off));
        }

        off += 2;
        switch (type)
        {
            case 0x0800 when d.Length >= off + 20:
            {
                int ihl = (d[off] & 0xF) * 4;
                int proto = d[off + 9];
                var src = new IPAddress(d.AsSpan(off + 12, 4));
                var dst = new IPAddress(d.AsSpan(off + 16, 4));
                sb.Append(CultureInfo.InvariantCulture, $", IPv4 {L4(d, off + ihl, proto, src.ToString(), dst.ToString())} ttl {d[off + 8]}");
                break;
            }

            case 0x86dd when d.Length >= off + 40:
            {
                var src = new IPAddress(d.AsSpan(off + 8, 16));
                var dst = new IPAddress(d.AsSpan(off + 24, 16));
                sb.Append(CultureInfo.InvariantCulture, $", IPv6 {L4(d, off + 40, d[off + 6], src.ToString(), dst.ToString())} hlim {d[off + 7]}");
                break;
            }

            case 0x0806 when d.Length >= off + 28:
                sb.Append(CultureInfo.InvariantCulture, $", ARP {(BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(off + 6)) == 1 ? "request" : "reply")} {new IPAddress(d.AsSpan(off + 14, 4))} > {new IPAddress(d.AsSpan(off + 24, 4))}");
                break;
            default:
                sb.Append(CultureInfo.InvariantCulture, $", ethertype 0x{type:x4}");
                break;
        }

        sb.Append(CultureInfo.InvariantCulture, $", length {length}");
        return sb.ToString();
    }

    private static string L4(byte[] d, int off, int proto, string src, string dst)
    {
        bool ports = d.Length >= off + 4;
        int sp = ports ? BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(off)) : 0;
        int dp = ports ? BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(off + 2)) : 0;
        return proto switch
        {
            6 when ports => $"{src}.{sp} > {dst}.{dp} TCP",
            17 when ports => $"{src}.{sp} > {dst}.{dp} UDP",
            1 when d.Length > off => $"{src} > {dst} ICMP type {d[off]}",
            58 when d.Length > off => $"{src} > {dst} ICMPv6 type {d[off]}",
            _ => $"{src} > {dst} proto {proto}",
        };
    }

    private static string Mac(byte[] d, int off) =>
        string.Join(':', d.Skip(off).Take(6).Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
}
