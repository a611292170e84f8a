// UnixSocketFile.cs - the socket files this switch serves on (vhost-user server ports, the control
// socket): created 0660, a stale file from a crashed run removed with a notice, a live one refused.
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace VSwitch.Interop;

public static partial class UnixSocketFile
{
    /// <summary>Socket file mode: owner and group may connect (QEMU usually runs in the switch's group).</summary>
    public const UnixFileMode Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;

    [LibraryImport("libc", EntryPoint = "umask")]
    private static partial uint Umask(uint mask);

    [LibraryImport("libc", EntryPoint = "lstat", StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int LStat(string path, byte* statBuf);

    /// <summary>
    /// Before serving on <paramref name="path"/>: creates its directory (0750) if needed; removes a
    /// stale socket file nobody accepts on (returns a notice); refuses a live socket or a path that is
    /// not a socket. <paramref name="owner"/> ("port 'vhu0'", or null) and <paramref name="kind"/>
    /// ("vhost-user socket") name it in the messages.
    /// </summary>
    public static string? PrepareToServe(string? owner, string kind, string path)
    {
        string prefix = owner == null ? "" : owner + ": ";
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(dir))
        {
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                                            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        }

        if (!File.Exists(path) && !Directory.Exists(path))
        {
            return null;
        }

        if (Directory.Exists(path) || !IsSocket(path))
        {
            throw new VSwitchException($"{prefix}{kind} path '{path}' exists and is not a socket; remove it or choose another path");
        }

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.AddressNotAvailable)
        {
            File.Delete(path);
            return $"{prefix}removed stale {kind} '{path}' (left by an earlier run; nobody was listening)";
        }

        throw new VSwitchException($"{prefix}{kind} '{path}' is in use by another process (it accepts connections); stop it or choose another path");
    }

    /// <summary>Runs <paramref name="create"/> (which makes the socket file) under a umask that yields 0660, then enforces the mode.</summary>
    public static T CreateWithMode<T>(string path, bool enforce, Func<T> create)
    {
        uint old = Umask(0x4F); // 0117: no execute, nothing for others
        try
        {
            return create();
        }
        finally
        {
            Umask(old);
            if (enforce && File.Exists(path))
            {
                File.SetUnixFileMode(path, Mode);
            }
        }
    }

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
}
