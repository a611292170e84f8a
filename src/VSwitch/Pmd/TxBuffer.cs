// TxBuffer.cs - per-PMD, per-output-port transmit buffer.
//
// Handlers append mbufs here; the PMD loop sends a buffer with one tx_burst once it holds a full
// burst, or when its oldest packet has waited the drain interval (so a lone packet is never held
// longer than that). Capacity is two bursts: one rx burst (<= 32 packets) can be appended to a
// buffer holding up to 31 before the loop flushes it. The slots live in native memory: no GC
// object, no pinning, no bounds checks on the PMD path.
using System.Runtime.InteropServices;

namespace VSwitch.Pmd;

[StructLayout(LayoutKind.Sequential)]
public unsafe struct TxBuffer
{
    /// <summary>Mbuf slots, <see cref="PmdState.TxCapacity"/> of them.</summary>
    public nint* Slots;

    /// <summary>Mbufs waiting in <see cref="Slots"/>.</summary>
    public int Count;

    /// <summary>DPDK port id to send on.</summary>
    public ushort PortId;

    /// <summary>This PMD's tx queue on that port.</summary>
    public ushort QueueId;

    /// <summary>Cycle counter when the first waiting mbuf was appended.</summary>
    public ulong FirstTsc;

    /// <summary>False for a port that is gone or down: packets for it are dropped and counted.</summary>
    public bool Enabled;

    /// <summary>The driver may block inside tx_burst: sent with the GC-safe call.</summary>
    public bool MayBlock;
}
