// Mempool.cs - one rte_pktmbuf pool shared by all ports (single NUMA socket machine).
using System.Text;
using VSwitch.Interop;

namespace VSwitch.Ports;

public sealed unsafe class Mempool : IDisposable
{
    public nint Handle { get; private set; }

    public string Name { get; }

    public uint Size { get; }

    private Mempool(nint handle, string name, uint size)
    {
        Handle = handle;
        Name = name;
        Size = size;
    }

    /// <summary>Creates a pktmbuf pool of <paramref name="mbufs"/> buffers of <paramref name="dataRoom"/> bytes.</summary>
    public static Mempool Create(string name, uint mbufs, uint cacheSize, ushort dataRoom)
    {
        var bytes = Encoding.UTF8.GetBytes(name + "\0");
        nint mp;
        fixed (byte* p = bytes)
        {
            mp = Native.MempoolCreate(p, mbufs, cacheSize, dataRoom, -1);
        }

        if (mp == 0)
        {
            throw new VSwitchException(
                $"cannot create mbuf pool '{name}' of {mbufs} mbufs x {dataRoom} B: {Native.ErrorText(Native.Errno())} (too little hugepage memory? see hugepages/setup.sh)");
        }

        return new Mempool(mp, name, mbufs);
    }

    /// <summary>Mbufs currently allocated (held by ports, PMDs or in flight).</summary>
    public uint InUse => Native.MempoolInUse(Handle);

    public uint Available => Native.MempoolAvail(Handle);

    public void Dispose()
    {
        if (Handle != 0)
        {
            Native.MempoolFree(Handle);
            Handle = 0;
        }
    }
}
