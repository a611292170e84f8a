// PmdPlan.cs - a new assignment of rx queues and tx targets for one PMD, published by the control
// plane with one reference store and applied by the PMD at a round boundary.
//
// The control plane builds the plan (including its native rx queue array), stores it in
// PmdState.PendingPlan, advances the epoch and waits until every PMD passed it (Epoch.cs). The PMD,
// at the start of a round, flushes its tx buffers, swaps in the rx array and copies the tx targets;
// it allocates nothing and takes no lock. Once the epoch is passed no PMD uses what the plan
// replaced, so the control plane may free the old rx array or stop a port.
using System.Runtime.InteropServices;

namespace VSwitch.Pmd;

public sealed unsafe class PmdPlan
{
    public PmdPlan(long version, IReadOnlyList<RxQueueRef> rxQueues, IReadOnlyList<(int DpPort, ushort PortId, ushort QueueId, bool Enabled)> tx)
        : this(version, rxQueues, tx.Select(t => (t.DpPort, t.PortId, t.QueueId, t.Enabled, false)).ToList())
    {
    }

    /// <param name="tx">Per datapath port: the DPDK port and queue to send on, whether it is usable, and whether its driver may block.</param>
    public PmdPlan(long version, IReadOnlyList<RxQueueRef> rxQueues, IReadOnlyList<(int DpPort, ushort PortId, ushort QueueId, bool Enabled, bool MayBlock)> tx)
    {
        Version = version;
        RxQueueCount = rxQueues.Count;
        RxQueues = (RxQueueRef*)NativeMemory.AllocZeroed((nuint)Math.Max(1, rxQueues.Count), (nuint)sizeof(RxQueueRef));
        for (int i = 0; i < rxQueues.Count; i++)
        {
            RxQueues[i] = rxQueues[i];
        }

        TxCount = tx.Count;
        TxPorts = (int*)NativeMemory.Alloc((nuint)Math.Max(1, tx.Count), sizeof(int));
        TxTargets = (TxBuffer*)NativeMemory.AllocZeroed((nuint)Math.Max(1, tx.Count), (nuint)sizeof(TxBuffer));
        for (int i = 0; i < tx.Count; i++)
        {
            TxPorts[i] = tx[i].DpPort;
            TxTargets[i].PortId = tx[i].PortId;
            TxTargets[i].QueueId = tx[i].QueueId;
            TxTargets[i].Enabled = tx[i].Enabled;
            TxTargets[i].MayBlock = tx[i].MayBlock;
        }
    }

    /// <summary>Monotonic version (diagnostics and ordering of plans).</summary>
    public long Version { get; }

    /// <summary>Set by the PMD when it swapped the plan in (read by the control plane after the epoch).</summary>
    public bool Applied { get; internal set; }

    /// <summary>Release ran.</summary>
    public bool Released { get; private set; }

    /// <summary>The new rx queue array (ownership passes to the PMD state).</summary>
    public RxQueueRef* RxQueues { get; }

    public int RxQueueCount { get; }

    /// <summary>Datapath ports whose tx target changes.</summary>
    public int* TxPorts { get; }

    /// <summary>New PortId/QueueId/Enabled for each entry of <see cref="TxPorts"/>.</summary>
    public TxBuffer* TxTargets { get; }

    public int TxCount { get; }

    /// <summary>Set by the PMD: the rx array this plan replaced (the control plane frees it).</summary>
    public RxQueueRef* Retired { get; internal set; }

    /// <summary>Frees a plan the PMD never took (a newer plan replaced it): its own rx and tx arrays.</summary>
    public void ReleaseUnapplied() => Free(RxQueues);

    /// <summary>Frees the plan's own tx arrays and the retired rx array (after the epoch).</summary>
    public void Release() => Free(Retired);

    /// <summary>Frees the tx arrays and <paramref name="rx"/>, the rx array no PMD uses any more; once.</summary>
    private void Free(RxQueueRef* rx)
    {
        if (Released)
        {
            return;
        }

        Released = true;
        NativeMemory.Free(TxPorts);
        NativeMemory.Free(TxTargets);
        NativeMemory.Free(rx); // null (nothing retired) is fine
        Retired = null;
    }
}
