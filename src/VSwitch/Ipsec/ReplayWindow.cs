// ReplayWindow.cs - the inbound anti-replay window (RFC 4303 3.4.3, with the ESN inference of its
// appendix A), applied to packets whose ICV the crypto device verified.
//
// rte_ipsec keeps a window too and checks it twice (before the crypto operation and after), but in
// DPDK 22.11 its update keeps the bit of a sequence number in a 32-bit variable (esn_inb_update_sqn:
// "uint32_t bit = (uint64_t)1 << (sqn & 63)"), so the numbers whose low six bits are 32 to 63 are never
// marked seen and their replays are let through. This window is the one that decides: single writer
// (the PMD that polls the queue pair an SA's ESP arrives on, as rte_ipsec's own inbound window needs),
// 4096 bits per SA in native memory, updated only by authenticated packets.
using System.Runtime.CompilerServices;

namespace VSwitch.Ipsec;

public static unsafe class ReplayWindow
{
    /// <summary>Bits kept per SA (the largest window, SaSpec.MaxReplayWindow).</summary>
    public const int Bits = 4096;

    public const int Words = Bits / 64;

    /// <summary>
    /// Accepts (and marks seen) the authenticated packet with low sequence number <paramref name="seqLo"/>,
    /// or refuses a replay or a number left of the window.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Accept(SaSlot* slot, ulong* bits, uint seqLo)
    {
        ulong top = slot->ReplayTop;
        ulong w = slot->ReplaySize;
        ulong seq = slot->Esn != 0 ? Infer(top, seqLo, w) : seqLo;
        if (seq == 0 || seq + w <= top)
        {
            return false; // not a valid number, or too old
        }

        if (seq > top)
        {
            // the window slides: the numbers it passes over are unseen
            ulong gap = seq - top;
            if (gap >= Bits)
            {
                new Span<ulong>(bits, Words).Clear();
            }
            else
            {
                for (ulong s = top + 1; s < seq; s++)
                {
                    bits[(s >> 6) & (Words - 1)] &= ~(1UL << (int)(s & 63));
                }
            }

            bits[(seq >> 6) & (Words - 1)] |= 1UL << (int)(seq & 63);
            slot->ReplayTop = seq;
            return true;
        }

        ref ulong word = ref bits[(seq >> 6) & (Words - 1)];
        ulong bit = 1UL << (int)(seq & 63);
        if ((word & bit) != 0)
        {
            return false; // seen
        }

        word |= bit;
        return true;
    }

    /// <summary>The 64-bit sequence number of a packet with low half <paramref name="seqLo"/> (RFC 4303 appendix A).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Infer(ulong top, uint seqLo, ulong w)
    {
        uint tl = (uint)top;
        ulong th = top >> 32;
        uint bottom = unchecked(tl - (uint)(w - 1)); // modulo 2^32, as the RFC's Bl
        if (tl >= w - 1)
        {
            // the window lies within one subspace: a number below its bottom belongs to the next one
            if (seqLo < bottom)
            {
                th++;
            }
        }
        else if (seqLo >= bottom && th != 0)
        {
            // the window spans two subspaces: a number at or above its (wrapped) bottom belongs to the previous one
            th--;
        }

        return (th << 32) | seqLo;
    }
}
