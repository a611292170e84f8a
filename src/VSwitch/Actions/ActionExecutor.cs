// ActionExecutor.cs - runs a megaflow's compiled actions (DpAction list) on a group of packets.
//
// One switch per action, then a loop over the group's packets: no per-packet virtual calls. Every
// step owns the group's mbufs explicitly: an action that drops a packet (TTL expiry, no headroom
// for a tag) frees it and closes the gap, a non-final output sends copies (a truncating output cuts
// its copies, so the packet goes on whole), the final output (or a
// recirc, which hands the packets to the PMD's next pass) takes the originals, and whatever no step
// took is freed at the end. Later stages (a crypto queue, a conntrack ring) plug in here the same way.
using System.Runtime.CompilerServices;
using VSwitch.Caches;
using VSwitch.Forwarding;
using VSwitch.Interop;
using VSwitch.Packets;
using VSwitch.Pmd;
using VSwitch.Ports;

namespace VSwitch.Actions;

/// <summary>The executor of one PMD (TIo for copies and frees).</summary>
public readonly unsafe struct ActionExecutor<TIo>
    where TIo : struct, IPacketIo
{
    private readonly FlowPmd _f;
    private readonly TIo _io;

    public ActionExecutor(FlowPmd f, TIo io)
    {
        _f = f;
        _io = io;
    }

    /// <summary>
    /// Runs a megaflow's actions on a group of packets (order kept). Every step owns the group's
    /// mbufs: an action that drops a packet (TTL expiry, no headroom for a tag) frees it and closes
    /// the gap (<see cref="Keep"/>), so the group never holds a hole a later copy or edit could touch;
    /// a non-final output sends copies, the final output sends the originals, and whatever no output
    /// took is freed at the end. With <paramref name="tracked"/> the packets' connection-tracking
    /// words are in FlowPmd.GroupCt (a recirculated pass); otherwise they are all 0 (untracked) until
    /// a ct op writes them there, so a first pass without ct copies none. With <paramref name="tupled"/>
    /// their connection words (DpKey.cs) are in FlowPmd.GroupExt too; while the tables match those
    /// words (FlowPmd.CtTuple) ct ops write them there and recirculation carries them.
    /// </summary>
    public void Execute(PmdState state, MegaflowEntry* me, nint* pkts, HeaderOffsets* offs, int k, ushort inPort, bool tracked, bool tupled = false)
    {
        DpAction* ops = me->Program;
        int count = me->OpCount;
        ulong* cts = tracked ? _f.GroupCt : null; // null: every packet's word is 0
        ulong* exts = tupled ? _f.GroupExt : null; // null: every packet's connection words are 0
        bool sent = false, punted = false;
        for (int a = 0; a < count && k > 0; a++)
        {
            DpAction op = ops[a];
            switch (op.Op)
            {
                case DpOp.Output:
                    if ((op.Flags & DpAction.CloneFlag) != 0)
                    {
                        nint* copies = _f.Copies;
                        _io.Copy(pkts, copies, (uint)k);
                        if (op.B != 0)
                        {
                            Truncate(copies, k, op.B); // only this output's copies are cut
                        }

                        for (int j = 0; j < k; j++)
                        {
                            if (copies[j] == 0)
                            {
                                state.Counters->CopyFailures++; // no mbuf for the copy
                                continue;
                            }

                            state.Counters->Clones++;
                            Enqueue(state, op.A, copies[j]);
                        }
                    }
                    else
                    {
                        if (op.B != 0)
                        {
                            Truncate(pkts, k, op.B); // the last output: nothing after it sees the packets
                        }

                        for (int j = 0; j < k; j++)
                        {
                            Enqueue(state, op.A, pkts[j]);
                        }

                        sent = true;
                        k = 0;
                    }

                    break;
                case DpOp.Controller:
                {
                    long stamp = PuntRing.Stamp();
                    for (int j = 0; j < k; j++)
                    {
                        if (_f.Punts.TryPut(pkts[j], inPort, op.A, stamp))
                        {
                            state.Counters->Punted++;
                        }
                        else
                        {
                            state.Counters->PuntDrops++;
                        }
                    }

                    punted = true;
                    break;
                }

                case DpOp.SetEthDst:
                    for (int j = 0; j < k; j++)
                    {
                        PacketEdit.WriteMac(Mbuf.Data(pkts[j]), op.C);
                    }

                    break;
                case DpOp.SetEthSrc:
                    for (int j = 0; j < k; j++)
                    {
                        PacketEdit.WriteMac(Mbuf.Data(pkts[j]) + 6, op.C);
                    }

                    break;
                case DpOp.PushVlan:
                {
                    int w = 0;
                    for (int j = 0; j < k; j++)
                    {
                        w = PacketEdit.PushVlan(pkts[j], ref offs[j], op.A, (ushort)op.B) ? Keep(pkts, offs, cts, exts, j, w) : DropOne(state, pkts[j], w);
                    }

                    k = w;
                    break;
                }

                case DpOp.PopVlan:
                    for (int j = 0; j < k; j++)
                    {
                        PacketEdit.PopVlan(pkts[j], ref offs[j]);
                    }

                    break;
                case DpOp.SetVlanTci:
                    for (int j = 0; j < k; j++)
                    {
                        PacketEdit.SetVlanTci(pkts[j], op.A, (ushort)op.B);
                    }

                    break;
                case DpOp.SetIpv4Src:
                case DpOp.SetIpv4Dst:
                    for (int j = 0; j < k; j++)
                    {
                        PacketEdit.SetIpv4(pkts[j], offs[j], op.Op == DpOp.SetIpv4Dst, op.B, op.Flags);
                    }

                    break;
                case DpOp.SetIpv6Src:
                case DpOp.SetIpv6Dst:
                    for (int j = 0; j < k; j++)
                    {
                        PacketEdit.SetIpv6(pkts[j], offs[j], op.Op == DpOp.SetIpv6Dst, op.C, ops[a + 1].C, op.Flags);
                    }

                    a++; // the Ext slot
                    break;
                case DpOp.SetTpSrc:
                case DpOp.SetTpDst:
                    for (int j = 0; j < k; j++)
                    {
                        PacketEdit.SetPort(pkts[j], offs[j], op.Op == DpOp.SetTpDst, op.A, op.Flags);
                    }

                    break;
                case DpOp.SetTos:
                    for (int j = 0; j < k; j++)
                    {
                        PacketEdit.SetTos(pkts[j], offs[j], op.Flags == 2, (byte)op.A, (byte)op.B);
                    }

                    break;
                case DpOp.SetTtl:
                    for (int j = 0; j < k; j++)
                    {
                        PacketEdit.SetTtl(pkts[j], offs[j], op.Flags == 2, (byte)op.A);
                    }

                    break;
                case DpOp.Recirc:
                    for (int j = 0; j < k; j++)
                    {
                        QueueRecirc(state, pkts[j], (byte)op.A, cts == null ? 0 : cts[j], exts == null ? null : exts + (j * DpKey.CtExtWords));
                    }

                    sent = true; // the packets now belong to the next pass
                    k = 0;
                    break;
                case DpOp.Ct:
                {
                    Conntrack.ConnTable? conns = _f.Shared.Conns;
                    if (conns != null)
                    {
                        Conntrack.DpCtSpec* spec = Conntrack.CtSpecs.At(op.A);
                        ulong now = _f.RoundTsc;
                        ulong* words = _f.GroupCt;
                        Conntrack.CtParsed* parsed = null;
                        if (k > 1 && conns.Count > conns.PrefetchAbove)
                        {
                            parsed = _f.CtParsed;
                            conns.Prefetch(pkts, offs, k, spec->Zone, parsed);
                        }

                        ulong* x = null;
                        if (_f.CtTuple)
                        {
                            // the tables match the connection's words: the ct writes them for the next pass
                            x = _f.GroupExt;
                            if (exts == null)
                            {
                                new Span<ulong>(x, k * DpKey.CtExtWords).Clear();
                            }
                        }

                        for (int j = 0; j < k; j++)
                        {
                            words[j] = conns.Process(pkts[j], ref offs[j], spec, now, state.Counters, cts == null ? 0 : cts[j], _f.Frags,
                                x == null ? null : x + (j * DpKey.CtExtWords), parsed == null ? null : parsed + j);
                        }

                        if (x != null)
                        {
                            exts = x;
                        }

                        cts = words;
                    }

                    if ((op.Flags & DpAction.CtRecirc) != 0)
                    {
                        for (int j = 0; j < k; j++)
                        {
                            QueueRecirc(state, pkts[j], (byte)op.B, cts == null ? 0 : cts[j], exts == null ? null : exts + (j * DpKey.CtExtWords));
                        }

                        sent = true;
                        k = 0;
                    }

                    break;
                }

                case DpOp.CtClear:
                    cts = null;
                    exts = null;
                    break;
                case DpOp.Ipsec:
                {
                    // The packets go to the crypto device; they come back on a later round (Round).
                    Ipsec.IpsecEngine? engine = _f.Shared.Ipsec;
                    if (engine == null)
                    {
                        break; // no SA was ever added: the packets are dropped below as the rule's
                    }

                    Ipsec.IpsecScratch sc = _f.IpsecScratch;
                    engine.Submit(state, sc, pkts, offs, k, op.A, (byte)op.B, inPort, (int)op.C - 1);
                    for (int j = 0; j < sc.IcmpCount; j++)
                    {
                        Enqueue(state, (int)op.C - 1, sc.Icmp[j]); // "fragmentation needed" / "packet too big" back to the sender
                    }

                    for (int j = 0; j < sc.PassCount; j++)
                    {
                        QueueRecirc(state, sc.Pass[j], (byte)op.B, 0, null); // IKE on port 4500: on to table T in cleartext
                    }

                    sent = true;
                    k = 0;
                    break;
                }
                case DpOp.DecTtl:
                {
                    int w = 0;
                    for (int j = 0; j < k; j++)
                    {
                        w = PacketEdit.DecTtl(pkts[j], offs[j], op.Flags == 2) ? Keep(pkts, offs, cts, exts, j, w) : DropOne(state, pkts[j], w);
                    }

                    k = w;
                    break;
                }
            }
        }

        if (!sent)
        {
            state.Counters->NoOutputDrops += (ulong)k;
            var why = punted ? DropReason.Punted : count > 0 && ops[count - 1].Op == DpOp.MissNote ? DropReason.TableMiss : DropReason.RuleDrop;
            for (int j = 0; j < k; j++)
            {
                state.Drop(pkts[j], why);
            }
        }
    }

    /// <summary>
    /// Cuts each of the <paramref name="k"/> packets (0 entries skipped) to <paramref name="maxLen"/>
    /// bytes; the segments cut off chained mbufs are freed together in one call.
    /// </summary>
    private void Truncate(nint* pkts, int k, uint maxLen)
    {
        nint* tails = stackalloc nint[FlowPmd.Burst];
        uint n = 0;
        for (int j = 0; j < k; j++)
        {
            if (pkts[j] != 0)
            {
                nint rest = PacketEdit.Truncate(pkts[j], maxLen);
                if (rest != 0)
                {
                    tails[n++] = rest;
                }
            }
        }

        if (n != 0)
        {
            _io.Free(tails, n);
        }
    }

    /// <summary>Moves packet <paramref name="j"/> to position <paramref name="w"/> of the group; returns the next free position.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Keep(nint* pkts, HeaderOffsets* offs, ulong* cts, ulong* exts, int j, int w)
    {
        pkts[w] = pkts[j];
        offs[w] = offs[j];
        if (cts != null)
        {
            cts[w] = cts[j];
        }

        if (exts != null && w != j)
        {
            Buffer.MemoryCopy(exts + (j * DpKey.CtExtWords), exts + (w * DpKey.CtExtWords), DpKey.CtExtWords * sizeof(ulong), DpKey.CtExtWords * sizeof(ulong));
        }

        return w + 1;
    }

    /// <summary>Hands a packet to the PMD's next pass with its recirc_id, connection-tracking word and (while the tables match them) connection words (a full queue drops and counts).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void QueueRecirc(PmdState state, nint m, byte id, ulong ct, ulong* ext)
    {
        FlowPmd f = _f;
        if (f.RecircCount < FlowPmd.Burst)
        {
            if (f.CtTuple)
            {
                ulong* to = f.RecircExt + (f.RecircCount * DpKey.CtExtWords);
                if (ext != null)
                {
                    Buffer.MemoryCopy(ext, to, DpKey.CtExtWords * sizeof(ulong), DpKey.CtExtWords * sizeof(ulong));
                }
                else
                {
                    new Span<ulong>(to, DpKey.CtExtWords).Clear();
                }
            }

            f.RecircPkts[f.RecircCount] = m;
            f.RecircCt[f.RecircCount] = ct;
            f.RecircIds[f.RecircCount++] = id;
        }
        else
        {
            DropOne(state, m, 0);
        }
    }

    /// <summary>Frees a packet an action dropped and counts it; the group's next free position stays <paramref name="w"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int DropOne(PmdState state, nint m, int w)
    {
        state.Counters->ActionDrops++;
        state.Drop(m, DropReason.ActionFailed);
        return w;
    }

    /// <summary>Appends to a tx buffer; a full one (many copies to one port) is sent first.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Enqueue(PmdState state, int slot, nint m)
    {
        ref TxBuffer tb = ref state.Tx[slot];
        if (tb.Count >= PmdState.TxCapacity)
        {
            // Many copies to one port in one burst: send what is buffered now rather than drop. The
            // port stays on the pending list (it was there while its buffer held packets).
            TxPath.Transmit(state, _io, slot, ref tb, tb.Slots, tb.Count);
            tb.Count = 0;
            tb.Slots[tb.Count++] = m;
            return;
        }

        state.Enqueue(slot, m);
    }
}
