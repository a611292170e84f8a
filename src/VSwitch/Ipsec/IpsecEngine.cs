// IpsecEngine.cs - ESP tunnels on a DPDK crypto device: the SA table, and the two halves of the
// asynchronous hand-off that PMDs run (Submit from the ipsec action, Poll at each round start).
//
// Shape: one crypto device (the software crypto_aesni_mb PMD by default; the same API as a QAT card),
// one queue pair per PMD, so a PMD never shares a queue and order within an SA is kept (a queue pair
// completes in submission order). The ipsec action hands a group of packets to Submit, which stamps
// each mbuf with where it re-enters (its frozen recirculation id and in_port, in the mbuf's RSS hash
// field, which this switch never reads) and enqueues the group with one shim call per SA; the PMD
// never waits. At the start of every round the PMD polls its queue pair; completed packets go back
// through the caches as a recirculated pass (Forwarding/PipelineForwarder.cs). A full queue, an
// expired SA, a packet of the wrong family drop and count, per SA.
//
// The SA table is native and indexed by SA id (1 to SaSpec.MaxId): a PMD reads a handle, the SA's
// flags and its counters without a lock or a managed object; inbound ESP is found by SPI in an
// open-addressing table (then its destination checked). Only the control thread writes either. An
// SA is deleted by unpublishing it, waiting one epoch (no PMD can still submit to it) and then until
// its in-flight count is 0 (every operation naming its session has completed), before its native
// session is freed. Counters are per SA and shared by the PMDs: one atomic add per group.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VSwitch.Interop;
using VSwitch.Packets;
using VSwitch.Pmd;

namespace VSwitch.Ipsec;

/// <summary>One SA's native slot: what a PMD reads (flags, limits, destination) and the counters.</summary>
[StructLayout(LayoutKind.Sequential, Size = 256)]
public struct SaSlot
{
    /// <summary>SaFlags: outbound, inner IPv6, NAT-T; 0 while the id is unused.</summary>
    public int Flags;

    /// <summary>1 = a soft lifetime passed (reported), 2 = a hard one or the sequence number ran out (the SA stops).</summary>
    public int Expired;
    public uint Spi;
    public int Pad;

    /// <summary>Packets that went through (completed) and their inner IP bytes (outbound: counted as they are handed over).</summary>
    public long Packets;
    public long Bytes;

    /// <summary>Operations enqueued and not completed yet.</summary>
    public long InFlight;

    /// <summary>Inbound: ICV mismatch reported by the crypto device.</summary>
    public long AuthFailures;

    /// <summary>Inbound: sequence number replayed or left of the window (before or after decryption).</summary>
    public long ReplayDrops;

    /// <summary>Refused by rte_ipsec's checks besides the above (lengths, padding, next header), or no room to add headers.</summary>
    public long CheckDrops;

    /// <summary>The crypto queue pair was full.</summary>
    public long QueueFull;

    /// <summary>Dropped because the SA had expired (hard lifetime, sequence number exhausted).</summary>
    public long LifetimeDrops;

    /// <summary>Not for this SA: wrong inner family (outbound), wrong destination (inbound).</summary>
    public long Mismatch;

    /// <summary>Packets ever handed to the SA (its sequence number, outbound: each took one).</summary>
    public long Prepared;

    public ulong SoftPackets, HardPackets, SoftBytes, HardBytes;

    /// <summary>Inbound: the anti-replay window's size and its highest sequence number accepted (ReplayWindow.cs).</summary>
    public uint ReplaySize;
    public uint Esn;
    public ulong ReplayTop;

    /// <summary>Lifetimes: packets and bytes (IP bytes after the Ethernet header) handed to the SA, reserved before the hand-off.</summary>
    public long Admitted;
    public long AdmittedBytes;

    /// <summary>Whether any lifetime is set (else the hand-off skips the accounting).</summary>
    public int HasLifetime;

    /// <summary>Outbound: the outer packet's MTU, the bytes ESP adds besides padding, and the padding's alignment (PathMtu.cs).</summary>
    public int Mtu;
    public int OuterFixed;
    public int PadAlign;

    /// <summary>Outbound: packets refused for the MTU (an ICMP error went back to their sender).</summary>
    public long TooBig;

    /// <summary>Whether the outer IPv4 header has DF set (a DF-clear inner IPv4 packet may then not exceed the MTU either).</summary>
    public int OuterDf;

    /// <summary>An outbound SA restored from the state file: stopped until rekeyed (its sequence numbers, and so its GCM nonces, would repeat).</summary>
    public int Restored;

    /// <summary>The tunnel's destination (inbound: the address the ESP must be sent to), 16 bytes, IPv4 in the first 4.</summary>
    public ulong DstHi, DstLo;
}

public static class SaFlags
{
    public const int Present = 1;
    public const int Outbound = 2;
    public const int InnerIpv6 = 4;
    public const int Natt = 8;
    public const int OuterIpv6 = 16;
}

/// <summary>Per-PMD scratch for the hand-off (native, one burst).</summary>
public sealed unsafe class IpsecScratch : IDisposable
{
    public const int Burst = Native.IpsecBurst;
    public readonly nint* Pkts = (nint*)NativeMemory.AlignedAlloc(Burst * (nuint)sizeof(nint), 64);
    public readonly byte* L2 = (byte*)NativeMemory.AlignedAlloc(Burst, 64);
    public readonly ushort* L3 = (ushort*)NativeMemory.AlignedAlloc(Burst * sizeof(ushort), 64);
    public readonly ushort* Counts = (ushort*)NativeMemory.AlignedAlloc(2 * sizeof(ushort), 64);
    public readonly uint* Lens = (uint*)NativeMemory.AlignedAlloc(Burst * sizeof(uint), 64);
    public readonly uint* SaIds = (uint*)NativeMemory.AlignedAlloc(Burst * sizeof(uint), 64);
    public readonly byte* Status = (byte*)NativeMemory.AlignedAlloc(Burst, 64);

    /// <summary>Inbound packets that are not ESP but IKE (the non-ESP marker), for the executor to send on to table T.</summary>
    public readonly nint* Pass = (nint*)NativeMemory.AlignedAlloc(Burst * (nuint)sizeof(nint), 64);
    public int PassCount;

    /// <summary>ICMP errors Submit built (MTU), for the executor to send out of the input port.</summary>
    public readonly nint* Icmp = (nint*)NativeMemory.AlignedAlloc(Burst * (nuint)sizeof(nint), 64);
    public int IcmpCount;

    /// <summary>Completed packets to run (Poll's output; where each re-enters is stamped in it).</summary>
    public readonly nint* Done = (nint*)NativeMemory.AlignedAlloc(Burst * (nuint)sizeof(nint), 64);

    public void Dispose()
    {
        NativeMemory.AlignedFree(Pkts);
        NativeMemory.AlignedFree(L2);
        NativeMemory.AlignedFree(L3);
        NativeMemory.AlignedFree(Counts);
        NativeMemory.AlignedFree(Lens);
        NativeMemory.AlignedFree(SaIds);
        NativeMemory.AlignedFree(Status);
        NativeMemory.AlignedFree(Done);
        NativeMemory.AlignedFree(Icmp);
        NativeMemory.AlignedFree(Pass);
    }
}

public sealed unsafe class IpsecEngine : IDisposable
{
    /// <summary>Slots of the SPI table (a power of two, at least twice the SAs).</summary>
    private const int SpiSlots = 16384;

    private readonly nint _dev;
    private readonly nint* _handles;
    private readonly SaSlot* _slots;
    private readonly uint* _spiKeys;
    private readonly ulong* _replayBits;
    private readonly ushort* _spiIds;
    private readonly Dictionary<int, SaSpec> _specs = [];
    private readonly Lock _gate = new();

    /// <summary>Queue pairs (one per PMD).</summary>
    public int QueuePairs { get; }

    public string Driver { get; }

    public string DeviceName { get; }

    private IpsecEngine(nint dev, int qps, string name)
    {
        _dev = dev;
        QueuePairs = qps;
        DeviceName = name;
        _handles = (nint*)NativeMemory.AllocZeroed((nuint)(SaSpec.MaxId + 1), (nuint)sizeof(nint));
        _slots = (SaSlot*)NativeMemory.AlignedAlloc((nuint)((SaSpec.MaxId + 1) * sizeof(SaSlot)), 64);
        NativeMemory.Clear(_slots, (nuint)((SaSpec.MaxId + 1) * sizeof(SaSlot)));
        _spiKeys = (uint*)NativeMemory.AllocZeroed(SpiSlots, sizeof(uint));
        _replayBits = (ulong*)NativeMemory.AllocZeroed((nuint)(SaSpec.MaxId + 1) * ReplayWindow.Words, sizeof(ulong));
        _spiIds = (ushort*)NativeMemory.AllocZeroed(SpiSlots, sizeof(ushort));
        byte* buf = stackalloc byte[64];
        uint inUse;
        Native.CryptoInfo(dev, buf, 64, &inUse);
        Driver = Marshal.PtrToStringUTF8((nint)buf) ?? "?";
    }

    /// <summary>
    /// Opens the crypto device <paramref name="name"/> (a vdev such as crypto_aesni_mb0, probed if the EAL
    /// has not) with <paramref name="queuePairs"/> queue pairs of <paramref name="descriptors"/> each.
    /// </summary>
    public static IpsecEngine Open(string name, int queuePairs, uint descriptors = 2048, int socket = 0)
    {
        int err;
        uint ops = (uint)(queuePairs * descriptors * 2 + 4096);
        nint dev = Native.CryptoSetup(name, $"max_nb_queue_pairs={queuePairs},socket_id={socket}", (ushort)queuePairs, descriptors, 2 * (SaSpec.MaxId + 1), ops, socket, &err);
        if (dev == 0)
        {
            throw new VSwitchException($"crypto device '{name}': cannot set up {queuePairs} queue pairs: {Native.ErrorText(-err)}");
        }

        // The burst calls' P/Invoke stubs are built on first use: here, not on a PMD (where it allocates).
        nint none = 0;
        uint noId;
        byte noStatus;
        ushort* counts = stackalloc ushort[2];
        _ = Native.IpsecEnqueue(0, 0, &none, null, null, 0, counts); // n == 0: returns at once
        _ = Native.IpsecDequeue(dev, 0, &none, &noId, &noStatus, 0);
        return new IpsecEngine(dev, queuePairs, name);
    }

    /// <summary>Crypto operations out of the pool now (in the device's queues, or being submitted).</summary>
    public uint OpsInUse
    {
        get
        {
            byte* buf = stackalloc byte[64];
            uint n;
            Native.CryptoInfo(_dev, buf, 64, &n);
            return n;
        }
    }

    public SaSlot* Slot(int id) => _slots + id;

    /// <summary>The SAs, by id (a copy).</summary>
    public List<SaSpec> Specs()
    {
        lock (_gate)
        {
            return [.. _specs.Values.OrderBy(s => s.Id)];
        }
    }

    /// <summary>Creates and publishes an SA; refused (nothing changes) if its id or inbound SPI is taken or DPDK refuses it.</summary>
    public void Add(SaSpec s, bool restored = false)
    {
        lock (_gate)
        {
            if (_retiredIds.Contains(s.Id) || Volatile.Read(ref _slots[s.Id].InFlight) != 0)
            {
                throw new VSwitchException($"add-sa: SA id {s.Id} was deleted with operations still queued; use another id");
            }

            if (_specs.ContainsKey(s.Id))
            {
                throw new VSwitchException($"add-sa: SA {s.Id} exists (to rekey: add the new SA under another id, point the rules at it, then del-sa {s.Id})");
            }

            if (!s.Outbound && _specs.Values.Any(o => !o.Outbound && o.Spi == s.Spi))
            {
                throw new VSwitchException($"add-sa: an inbound SA with SPI 0x{s.Spi:x8} exists (inbound SPIs are unique on this switch)");
            }

            NativeSaConf c = default;
            c.Id = (uint)s.Id;
            c.Spi = s.Spi;
            c.ReplayWindow = s.ReplayWindow;
            c.NattSport = s.NattSport;
            c.NattDport = s.NattDport;
            c.Outbound = (byte)(s.Outbound ? 1 : 0);
            c.OuterIpv6 = (byte)(s.OuterIpv6 ? 1 : 0);
            c.InnerIpv6 = (byte)(s.InnerIpv6 ? 1 : 0);
            c.Alg = (byte)(s.IsGcm ? 1 : 2);
            c.Esn = (byte)(s.Esn ? 1 : 0);
            c.Natt = (byte)(s.Natt ? 1 : 0);
            c.CopyDscp = (byte)(s.Dscp < 0 ? 1 : 0);
            c.Ttl = s.Ttl;
            c.Dscp = (byte)Math.Max(0, s.Dscp);
            c.Df = (byte)(s.Df ? 1 : 0);
            int keyLen = s.IsGcm ? s.Key.Length - 4 : s.Key.Length;
            c.KeyLen = (byte)keyLen;
            s.Key.AsSpan(0, keyLen).CopyTo(new Span<byte>(c.Key, 32));
            if (s.IsGcm)
            {
                c.Salt = MemoryMarshal.Read<uint>(s.Key.AsSpan(keyLen, 4)); // the salt's bytes as they are on the wire
            }
            else
            {
                c.AuthKeyLen = (byte)s.AuthKey.Length;
                s.AuthKey.CopyTo(new Span<byte>(c.AuthKey, 64));
            }

            s.Src.TryWriteBytes(new Span<byte>(c.Src, 16), out _);
            s.Dst.TryWriteBytes(new Span<byte>(c.Dst, 16), out _);
            int err;
            nint h = Native.IpsecSaCreate(_dev, &c, &err);
            new Span<byte>(&c, sizeof(NativeSaConf)).Clear(); // no key left on the stack
            if (h == 0)
            {
                throw new VSwitchException($"add-sa: DPDK refused SA {s.Id}: {Native.ErrorText(-err)}");
            }

            SaSlot* slot = _slots + s.Id;
            *slot = default;
            slot->Spi = s.Spi;
            slot->SoftPackets = s.SoftPackets;
            slot->HardPackets = s.HardPackets == 0 ? ulong.MaxValue : s.HardPackets;
            slot->SoftBytes = s.SoftBytes;
            slot->HardBytes = s.HardBytes == 0 ? ulong.MaxValue : s.HardBytes;
            Span<byte> dst = stackalloc byte[16];
            dst.Clear();
            s.Dst.TryWriteBytes(dst, out _);
            slot->Mtu = s.Mtu;
            slot->OuterFixed = (s.OuterIpv6 ? 40 : 20) + (s.Natt ? 8 : 0) + 8 + (s.IsGcm ? 8 : 16) + 16;
            slot->PadAlign = s.IsGcm ? 4 : 16;
            slot->OuterDf = s.Df && !s.OuterIpv6 ? 1 : 0;
            slot->HasLifetime = s.SoftPackets != 0 || s.HardPackets != 0 || s.SoftBytes != 0 || s.HardBytes != 0 ? 1 : 0;
            slot->ReplaySize = s.Outbound ? 0 : s.Esn ? Math.Max(64u, s.ReplayWindow) : s.ReplayWindow;
            slot->Esn = s.Esn ? 1u : 0u;
            new Span<ulong>(_replayBits + ((long)s.Id * ReplayWindow.Words), ReplayWindow.Words).Clear();
            slot->DstHi = MemoryMarshal.Read<ulong>(dst);
            slot->DstLo = MemoryMarshal.Read<ulong>(dst[8..]);
            if (restored && s.Outbound)
            {
                // rte_ipsec starts every outbound SA at sequence number 1, and the IV is the sequence
                // number: sending again with a restored key would repeat (key, nonce) pairs already on
                // the wire. The SA is kept (dump-sa shows it) but stopped until a new one replaces it.
                slot->Restored = 1;
                slot->Expired = 2;
            }

            Volatile.Write(ref _handles[s.Id], h);
            Volatile.Write(ref slot->Flags, SaFlags.Present | (s.Outbound ? SaFlags.Outbound : 0) | (s.InnerIpv6 ? SaFlags.InnerIpv6 : 0)
                | (s.Natt ? SaFlags.Natt : 0) | (s.OuterIpv6 ? SaFlags.OuterIpv6 : 0));
            if (!s.Outbound)
            {
                SpiInsert(s.Spi, (ushort)s.Id);
            }

            _specs[s.Id] = s;
        }
    }

    /// <summary>
    /// Deletes SA <paramref name="id"/>: unpublished at once, its session freed once no PMD can submit
    /// to it (<paramref name="synchronize"/>: one epoch) and its operations in flight completed.
    /// </summary>
    public bool Delete(int id, Func<bool> synchronize)
    {
        nint h;
        lock (_gate)
        {
            if (!_specs.Remove(id, out var s))
            {
                return false;
            }

            if (!s.Outbound)
            {
                SpiRemove(s.Spi);
            }

            // the direction stays: completions still in flight read it (Poll)
            Volatile.Write(ref _slots[id].Flags, _slots[id].Flags & ~SaFlags.Present);
            h = _handles[id];
            Volatile.Write(ref _handles[id], 0);
        }

        bool quiet = synchronize();
        var until = DateTime.UtcNow.AddSeconds(5);
        while (quiet && Volatile.Read(ref _slots[id].InFlight) > 0 && DateTime.UtcNow < until)
        {
            Thread.Sleep(1);
        }

        if (!quiet || Volatile.Read(ref _slots[id].InFlight) > 0)
        {
            // A PMD stopped with operations queued: they complete in the final drain, which needs the session.
            Vlog.Write(VlogModule.Control, VlogLevel.Warn, $"vswitchd: ipsec: SA {id} deleted while a PMD may still use it or operations are queued; its session is kept until shutdown and its id is not reused");
            lock (_gate)
            {
                _leftover.Add(h);
                _retiredIds.Add(id);
            }

            return true;
        }

        Native.IpsecSaDestroy(h);
        return true;
    }

    private readonly List<nint> _leftover = [];
    private readonly HashSet<int> _retiredIds = [];
    private long _noSa;

    /// <summary>Packets an ipsec action dropped for want of an SA (an unknown id or SPI, not ESP).</summary>
    public long NoSaDrops => Volatile.Read(ref _noSa);

    private void SpiInsert(uint spi, ushort id)
    {
        // the SPI's own slot if it had one (a tombstone), else the first free or tombstone slot; a
        // tombstone reused for another SPI is written id-first, so a reader sees its old key with id 0
        // (a miss) or the new key with its id
        long reuse = -1;
        uint i = Hash(spi);
        for (int n = 0; n < MaxProbes; n++, i = (i + 1) & (SpiSlots - 1))
        {
            uint k = _spiKeys[i];
            if (k == spi)
            {
                Volatile.Write(ref _spiIds[i], id);
                return;
            }

            if (reuse < 0 && (k == 0 || _spiIds[i] == 0))
            {
                reuse = i;
            }

            if (k == 0)
            {
                break;
            }
        }

        if (reuse < 0)
        {
            throw new VSwitchException($"add-sa: no room for SPI 0x{spi:x8} in the inbound SPI table (too many SPIs collide); use another SPI");
        }

        Volatile.Write(ref _spiIds[reuse], 0);
        Volatile.Write(ref _spiKeys[reuse], spi);
        Volatile.Write(ref _spiIds[reuse], id);
    }

    private void SpiRemove(uint spi)
    {
        uint i = Hash(spi);
        for (int n = 0; n < SpiSlots && _spiKeys[i] != 0; n++, i = (i + 1) & (SpiSlots - 1))
        {
            if (_spiKeys[i] == spi)
            {
                Volatile.Write(ref _spiIds[i], 0); // the key stays as a tombstone, reused by that SPI
                return;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Hash(uint spi) => (spi * 0x9E3779B1u) >> 18; // 14 bits: SpiSlots

    /// <summary>The inbound SA of an SPI, or 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int LookupSpi(uint spi)
    {
        // at most MaxProbes slots: the table holds at most 4095 live SPIs in 16384 slots
        uint i = Hash(spi);
        for (int n = 0; n < MaxProbes; n++, i = (i + 1) & (SpiSlots - 1))
        {
            uint k = Volatile.Read(ref _spiKeys[i]);
            if (k == spi)
            {
                return Volatile.Read(ref _spiIds[i]);
            }

            if (k == 0)
            {
                return 0;
            }
        }

        return 0;
    }

    /// <summary>Probes a lookup makes at most (an insert places an SPI within them, or refuses it).</summary>
    private const int MaxProbes = 256;

    /// <summary>
    /// Hands a group to the crypto device (the ipsec action): outbound SA <paramref name="saId"/>, or
    /// with 0 inbound, each packet's SA found by SPI. Every packet is enqueued or dropped and counted;
    /// the caller no longer owns any of them.
    /// </summary>
    public void Submit(PmdState state, IpsecScratch sc, nint* pkts, HeaderOffsets* offs, int k, int saId, byte recircId, ushort inPort, int inSlot = -1)
    {
        sc.IcmpCount = 0;
        sc.PassCount = 0;
        uint stamp = recircId | ((uint)inPort << 8);
        int qp = state.Index;
        if (saId != 0)
        {
            // outbound: one SA; packets of the other family than its inner one are not for it
            SaSlot* slot = _slots + saId;
            int flags = Volatile.Read(ref slot->Flags);
            bool v6 = (flags & SaFlags.InnerIpv6) != 0;
            int n = 0;
            for (int j = 0; j < k; j++)
            {
                nint m = pkts[j];
                byte* d = Mbuf.Data(m);
                ushort l3 = offs[j].L3;
                int type = (d[l3 - 2] << 8) | d[l3 - 1];
                if ((flags & SaFlags.Present) == 0 || (flags & SaFlags.Outbound) == 0 || type != (v6 ? KeyExtractor.EthIpv6 : KeyExtractor.EthIp)
                    || Mbuf.NbSegs(m) != 1)
                {
                    // no such SA, an inbound one, the other family, or a chained mbuf (not handed to the crypto device)
                    Drop(state, slot, m, (flags & SaFlags.Present) == 0);
                    continue;
                }

                int innerLen = (int)Mbuf.PktLen(m) - l3;
                if (PathMtu.OuterLength(slot, innerLen) > slot->Mtu
                    && (v6 || (d[l3 + 6] & 0x40) != 0 || slot->OuterDf != 0))
                {
                    // too big for the tunnel: the sender hears of it (PathMtu.cs), the packet ends here
                    Interlocked.Increment(ref slot->TooBig);
                    nint icmp = inSlot >= 0 ? PathMtu.TooBig(m, l3, v6, slot) : 0;
                    if (icmp != 0)
                    {
                        sc.Icmp[sc.IcmpCount++] = icmp;
                    }

                    state.Drop(m, DropReason.Ipsec);
                    continue;
                }

                *(uint*)(m + Mbuf.RssHashOffset) = stamp;
                sc.Pkts[n] = m;
                sc.L2[n] = (byte)l3;
                sc.L3[n++] = 0;
            }

            Enqueue(state, sc, saId, slot, qp, n);
            return;
        }

        // inbound: runs of packets of one SA (found by SPI and checked against its destination)
        int runSa = 0, count = 0;
        for (int j = 0; j < k; j++)
        {
            nint m = pkts[j];
            int id = InboundSa(m, offs[j], out ushort espAt);
            if (id == NonEsp)
            {
                sc.Pass[sc.PassCount++] = m; // the executor sends it on to table T with ipsec_sa=0
                continue;
            }

            if (id <= 0)
            {
                Interlocked.Increment(ref _noSa);
                state.Drop(m, DropReason.Ipsec);
                continue;
            }

            if (id != runSa && count != 0)
            {
                Enqueue(state, sc, runSa, _slots + runSa, qp, count);
                count = 0;
            }

            runSa = id;
            *(uint*)(m + Mbuf.RssHashOffset) = stamp;
            *(uint*)(m + Mbuf.IpsecSaOffset) = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(Mbuf.Data(m) + espAt + 4, 4)); // the ESP sequence number, for the replay window
            sc.Pkts[count] = m;
            sc.L2[count] = (byte)offs[j].L3;
            sc.L3[count++] = (ushort)(espAt - offs[j].L3); // with NAT-T the UDP header too: rte_ipsec sees ESP right after
        }

        if (count != 0)
        {
            Enqueue(state, sc, runSa, _slots + runSa, qp, count);
        }
    }

    /// <summary>InboundSa's answer for a UDP packet with the non-ESP marker (IKE): it goes on in cleartext.</summary>
    private const int NonEsp = -2;

    /// <summary>The inbound SA of an ESP (or RFC 3948 UDP-encapsulated ESP) packet, -1 when it is neither or none matches.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int InboundSa(nint m, in HeaderOffsets o, out ushort espAt)
    {
        byte* d = Mbuf.Data(m);
        int len = Mbuf.DataLen(m);
        espAt = 0;
        int type = (d[o.L3 - 2] << 8) | d[o.L3 - 1];
        bool v6 = type == KeyExtractor.EthIpv6;
        byte proto;
        int at;
        if (!v6)
        {
            proto = d[o.L3 + 9];
            at = o.L3 + ((d[o.L3] & 0xF) * 4);
            if ((d[o.L3 + 6] & 0x3F) != 0 || d[o.L3 + 7] != 0)
            {
                return -1; // a fragment: ESP is not reassembled here
            }
        }
        else
        {
            // the fixed header, then hop-by-hop / routing / destination options up to the ESP (or UDP) header
            proto = d[o.L3 + 6];
            at = o.L3 + 40;
            while (proto is 0 or 43 or 60 && at + 8 <= len)
            {
                proto = d[at];
                at += (d[at + 1] + 1) * 8;
            }
        }

        if (proto == 17)
        {
            at += 8;
        }
        else if (proto != 50)
        {
            return -1;
        }

        espAt = (ushort)at;
        if (espAt + 8 > len)
        {
            return -1;
        }

        uint spi = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(d + espAt, 4));
        if (spi == 0)
        {
            return proto == 17 ? NonEsp : -1; // RFC 3948's non-ESP marker: IKE on port 4500, not for the crypto device
        }

        if (espAt - o.L3 > 511)
        {
            return -1; // headers longer than rte_ipsec's l3_len can say
        }

        int id = LookupSpi(spi);
        if (id == 0)
        {
            return -1;
        }

        SaSlot* slot = _slots + id;
        int flags = Volatile.Read(ref slot->Flags);
        bool natt = (flags & SaFlags.Natt) != 0;
        bool ok = natt == (proto == 17) && ((flags & SaFlags.OuterIpv6) != 0) == v6 && (v6
            ? *(ulong*)(d + o.L3 + 24) == slot->DstHi && *(ulong*)(d + o.L3 + 32) == slot->DstLo
            : *(uint*)(d + o.L3 + 16) == (uint)slot->DstHi);
        if (!ok)
        {
            Interlocked.Increment(ref slot->Mismatch);
            return -1;
        }

        return id;
    }

    private void Enqueue(PmdState state, IpsecScratch sc, int saId, SaSlot* slot, int qp, int n)
    {
        if (n == 0)
        {
            return;
        }

        nint h = Volatile.Read(ref _handles[saId]);
        if (h == 0 || Volatile.Read(ref slot->Expired) >= 2)
        {
            for (int j = 0; j < n; j++)
            {
                Drop(state, slot, sc.Pkts[j], h == 0);
            }

            return;
        }

        bool outbound = (slot->Flags & SaFlags.Outbound) != 0;
        if (outbound || slot->HasLifetime != 0)
        {
            for (int j = 0; j < n; j++)
            {
                sc.Lens[j] = Mbuf.PktLen(sc.Pkts[j]) - sc.L2[j]; // IP bytes, before encapsulation
            }
        }

        if (slot->HasLifetime != 0)
        {
            int allowed = Admit(slot, sc, n);
            for (int j = allowed; j < n; j++)
            {
                Interlocked.Increment(ref slot->LifetimeDrops);
                state.Drop(sc.Pkts[j], DropReason.Ipsec);
            }

            n = allowed;
            if (n == 0)
            {
                return;
            }
        }

        int r = Native.IpsecEnqueue(h, (ushort)qp, sc.Pkts, sc.L2, sc.L3, (ushort)n, sc.Counts);
        if (r < 0)
        {
            r = 0; // no crypto op to be had: as a full queue
            sc.Counts[0] = (ushort)n;
        }

        int prepared = sc.Counts[0];
        if (r > 0)
        {
            Interlocked.Add(ref slot->InFlight, r);
            if (outbound)
            {
                long bytes = 0;
                for (int j = 0; j < r; j++)
                {
                    bytes += sc.Lens[j]; // enqueued ones come first, in order (exact unless a prepare failed and rte_ipsec moved it last)
                }

                Interlocked.Add(ref slot->Bytes, bytes);
            }
        }

        Interlocked.Add(ref slot->Prepared, prepared);
        for (int j = r; j < prepared; j++)
        {
            Interlocked.Increment(ref slot->QueueFull);
            state.Drop(sc.Pkts[j], DropReason.Ipsec);
        }

        if (prepared < n)
        {
            if (outbound && sc.Counts[1] == 75)
            {
                Volatile.Write(ref slot->Expired, 2); // EOVERFLOW: the sequence number ran out, the SA ends (RFC 4303 3.3.3)
            }

            for (int j = prepared; j < n; j++)
            {
                if (outbound)
                {
                    Interlocked.Increment(ref slot->CheckDrops);
                }
                else if (sc.Counts[1] == 74)
                {
                    Interlocked.Increment(ref slot->CheckDrops); // EBADMSG: ESP lengths (rte_errno says the last failure's cause)
                }
                else
                {
                    Interlocked.Increment(ref slot->ReplayDrops); // rte_ipsec's pre-check: sequence number seen or left of the window
                }

                state.Drop(sc.Pkts[j], DropReason.Ipsec);
            }
        }

    }

    private void Drop(PmdState state, SaSlot* slot, nint m, bool noSa)
    {
        if (noSa)
        {
            Interlocked.Increment(ref _noSa);
        }
        else if (Volatile.Read(ref slot->Expired) >= 2)
        {
            Interlocked.Increment(ref slot->LifetimeDrops);
        }
        else
        {
            Interlocked.Increment(ref slot->Mismatch);
        }

        state.Drop(m, DropReason.Ipsec);
    }

    /// <summary>
    /// Collects up to one burst of completed operations from this PMD's queue pair: the good ones in
    /// <see cref="IpsecScratch.Done"/> (their re-entry stamped in the mbuf), the failed ones dropped and
    /// counted. Returns how many are to run.
    /// </summary>
    public int Poll(PmdState state, IpsecScratch sc, out int got)
    {
        // At most one PMD burst: each completed packet is dropped at most once in this round, and the
        // PMD's drop list holds one burst (it is emptied after the round's work).
        got = Native.IpsecDequeue(_dev, (ushort)state.Index, sc.Pkts, sc.SaIds, sc.Status, PmdState.Burst);
        int n = 0;

        // Counters are shared by the PMDs (atomic adds): summed over each run of one SA's packets (a
        // burst is mostly one SA), one atomic add per counter per run rather than per packet.
        uint runId = uint.MaxValue;
        long runOps = 0, runPackets = 0, runBytes = 0;
        for (int i = 0; i < got; i++)
        {
            nint m = sc.Pkts[i];
            uint id = sc.SaIds[i];
            if (id != runId)
            {
                FlushRun(runId, runOps, runPackets, runBytes);
                runId = id;
                runOps = runPackets = runBytes = 0;
            }

            if (id > SaSpec.MaxId)
            {
                state.Drop(m, DropReason.Ipsec);
                continue;
            }

            SaSlot* slot = _slots + id;
            runOps++;
            switch (sc.Status[i])
            {
                case 0:
                {
                    if ((slot->Flags & SaFlags.Outbound) == 0 && slot->ReplaySize != 0
                        && !ReplayWindow.Accept(slot, _replayBits + ((long)id * ReplayWindow.Words), *(uint*)(m + Mbuf.IpsecSaOffset)))
                    {
                        Interlocked.Increment(ref slot->ReplayDrops);
                        state.Drop(m, DropReason.Ipsec);
                        break;
                    }

                    runPackets++;
                    if ((slot->Flags & SaFlags.Outbound) == 0)
                    {
                        runBytes += Mbuf.PktLen(m) - 14; // the inner IP packet behind its new Ethernet header
                    }

                    *(uint*)(m + Mbuf.IpsecSaOffset) = (slot->Flags & SaFlags.Outbound) != 0 ? 0 : id; // ipsec_sa of the next pass
                    sc.Done[n++] = m;
                    break;
                }

                case 1:
                    if ((slot->Flags & SaFlags.Outbound) == 0)
                    {
                        Interlocked.Increment(ref slot->AuthFailures); // the ICV did not verify
                    }
                    else
                    {
                        Interlocked.Increment(ref slot->CheckDrops); // the device failed an encryption
                    }

                    state.Drop(m, DropReason.Ipsec);
                    break;
                case 2:
                    if ((slot->Flags & SaFlags.Outbound) == 0)
                    {
                        Interlocked.Increment(ref slot->ReplayDrops);
                    }
                    else
                    {
                        Interlocked.Increment(ref slot->CheckDrops);
                    }

                    state.Drop(m, DropReason.Ipsec);
                    break;
                default:
                    Interlocked.Increment(ref slot->CheckDrops);
                    state.Drop(m, DropReason.Ipsec);
                    break;
            }
        }

        FlushRun(runId, runOps, runPackets, runBytes);
        return n;
    }

    /// <summary>
    /// Lifetimes (RFC 4301 4.4.2.1): reserves the group's packets and bytes and returns how many of its
    /// first packets fit under the hard limits; reaching a soft limit is reported (dump-sa), reaching
    /// a hard one ends the SA. Counted as packets are handed over, so none beyond a hard limit is
    /// encrypted or delivered, whichever PMDs share the SA.
    /// </summary>
    private static int Admit(SaSlot* slot, IpsecScratch sc, int n)
    {
        long bytes = 0;
        for (int j = 0; j < n; j++)
        {
            bytes += sc.Lens[j];
        }

        ulong p1 = (ulong)Interlocked.Add(ref slot->Admitted, n), p0 = p1 - (ulong)n;
        ulong b1 = (ulong)Interlocked.Add(ref slot->AdmittedBytes, bytes), b0 = b1 - (ulong)bytes;
        int allowed = n;
        if (p1 > slot->HardPackets)
        {
            allowed = p0 >= slot->HardPackets ? 0 : (int)(slot->HardPackets - p0);
        }

        if (b1 > slot->HardBytes)
        {
            ulong b = b0;
            int k = 0;
            while (k < allowed && b + sc.Lens[k] <= slot->HardBytes)
            {
                b += sc.Lens[k++];
            }

            allowed = k;
        }

        if (p0 + (ulong)allowed >= slot->HardPackets || allowed < n)
        {
            Volatile.Write(ref slot->Expired, 2);
        }
        else if (((slot->SoftPackets != 0 && p1 >= slot->SoftPackets) || (slot->SoftBytes != 0 && b1 >= slot->SoftBytes)) && slot->Expired == 0)
        {
            Volatile.Write(ref slot->Expired, 1);
        }

        return allowed;
    }

    /// <summary>Adds a run's completions to its SA's counters.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FlushRun(uint id, long ops, long packets, long bytes)
    {
        if (id > SaSpec.MaxId || ops == 0)
        {
            return;
        }

        SaSlot* slot = _slots + id;
        Interlocked.Add(ref slot->InFlight, -ops);
        if (packets == 0)
        {
            return;
        }

        Interlocked.Add(ref slot->Packets, packets);
        Interlocked.Add(ref slot->Bytes, bytes);
    }

    /// <summary>After the PMDs stopped: completes whatever is still queued on every queue pair and frees it.</summary>
    public int Drain()
    {
        int freed = 0;
        nint* pkts = stackalloc nint[Native.IpsecBurst];
        uint* ids = stackalloc uint[Native.IpsecBurst];
        byte* st = stackalloc byte[Native.IpsecBurst];
        var until = DateTime.UtcNow.AddSeconds(2);
        for (int q = 0; q < QueuePairs; q++)
        {
            while (DateTime.UtcNow < until)
            {
                int got = Native.IpsecDequeue(_dev, (ushort)q, pkts, ids, st, Native.IpsecBurst);
                if (got == 0)
                {
                    break;
                }

                for (int i = 0; i < got; i++)
                {
                    if (ids[i] <= SaSpec.MaxId)
                    {
                        Interlocked.Decrement(ref _slots[ids[i]].InFlight);
                    }
                }

                Native.MbufFreeBulk(pkts, (uint)got);
                freed += got;
            }
        }

        return freed;
    }

    public void Dispose()
    {
        Drain();
        lock (_gate)
        {
            foreach (var id in _specs.Keys)
            {
                Native.IpsecSaDestroy(_handles[id]);
                _handles[id] = 0;
            }

            _specs.Clear();
            foreach (var h in _leftover)
            {
                Native.IpsecSaDestroy(h);
            }

            _leftover.Clear();
        }

        Native.CryptoClose(_dev);
        NativeMemory.Free(_handles);
        NativeMemory.AlignedFree(_slots);
        NativeMemory.Free(_spiKeys);
        NativeMemory.Free(_replayBits);
        NativeMemory.Free(_spiIds);
    }
}
