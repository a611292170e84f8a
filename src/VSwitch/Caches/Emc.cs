// Emc.cs - one PMD's exact-match microflow cache: full key -> megaflow entry.
//
// 8192 entries of (key, megaflow index, megaflow serial, hash), two candidate slots per key taken
// from different bits of the key's hash. A hit costs the hash (computed once per packet anyway) and an
// 80-byte compare of the datapath key's packet words (two 256-bit vector compares and one 128-bit);
// a pass whose keys carry a connection's words (DpKey.cs) does not use this cache. An entry is trusted only while the megaflow slot
// still carries the serial it had at insertion and that megaflow is valid for the current tables;
// anything else falls through to the megaflow cache. Insertion is probabilistic (1 in InsertInvProb
// lookups that missed, as Open vSwitch's emc-insert-inv-prob), so a flood of one-packet flows does not
// churn the entries of long-lived ones.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using VSwitch.Packets;

namespace VSwitch.Caches;

[StructLayout(LayoutKind.Sequential, Size = 96)]
public unsafe struct EmcEntry
{
    // Hash first: a lookup whose hash differs (most misses) touches only the entry's first cache line.

    /// <summary>Full hash of the key.</summary>
    public uint Hash;

    /// <summary>Megaflow entry index; -1 when empty.</summary>
    public int Megaflow;

    /// <summary>The megaflow slot's serial when this entry was made.</summary>
    public int Serial;

    /// <summary>Padding: the key starts 16 bytes in.</summary>
    public int Reserved;

    /// <summary>The exact key's packet words (DpKey.PacketWords).</summary>
    public fixed ulong Key[DpKey.PacketWords];
}

public sealed unsafe class Emc : IDisposable
{
    public const int Size = 8192;
    private const int Mask = Size - 1;
    private readonly EmcEntry* _entries;
    private uint _rng = 0x9E3779B9;

    public Emc(int insertInvProb = 100)
    {
        InsertInvProb = Math.Max(0, insertInvProb);
        _entries = (EmcEntry*)NativeMemory.AlignedAlloc(Size * (nuint)sizeof(EmcEntry), 64);
        Clear();
    }

    /// <summary>Insert one of this many misses (0: never insert, 1: always).</summary>
    public int InsertInvProb { get; set; }

    public void Clear()
    {
        for (int i = 0; i < Size; i++)
        {
            _entries[i].Megaflow = -1;
            _entries[i].Hash = 0;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    /// <summary>True when the packet words (the first <see cref="DpKey.PacketWords"/>) at <paramref name="a"/> and <paramref name="b"/> are equal.</summary>
    internal static bool KeyEquals(ulong* a, ulong* b)
    {
        if (Vector256.IsHardwareAccelerated)
        {
            var x = Vector256.Load(a) ^ Vector256.Load(b);
            x |= Vector256.Load(a + 4) ^ Vector256.Load(b + 4);
            var y = Vector128.Load(a + 8) ^ Vector128.Load(b + 8);
            return (x.GetLower() | x.GetUpper() | y) == Vector128<ulong>.Zero;
        }

        for (int i = 0; i < DpKey.PacketWords; i++)
        {
            if (a[i] != b[i])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The entry for <paramref name="key"/>, or null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public EmcEntry* Lookup(DpKey* key, uint hash)
    {
        EmcEntry* e = _entries + (hash & Mask);
        if (e->Hash == hash && e->Megaflow >= 0 && KeyEquals(e->Key, key->W))
        {
            return e;
        }

        e = _entries + ((hash >> 13) & Mask);
        if (e->Hash == hash && e->Megaflow >= 0 && KeyEquals(e->Key, key->W))
        {
            return e;
        }

        return null;
    }

    /// <summary>Maybe (see <see cref="InsertInvProb"/>) remembers key -> megaflow.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void MaybeInsert(DpKey* key, uint hash, int megaflow, int serial)
    {
        if (InsertInvProb == 0)
        {
            return;
        }

        if (InsertInvProb > 1)
        {
            _rng ^= _rng << 13;
            _rng ^= _rng >> 17;
            _rng ^= _rng << 5;
            if (_rng % (uint)InsertInvProb != 0)
            {
                return;
            }
        }

        EmcEntry* a = _entries + (hash & Mask);
        EmcEntry* b = _entries + ((hash >> 13) & Mask);
        EmcEntry* e = a->Megaflow < 0 ? a : b->Megaflow < 0 ? b : ((_rng & 1) != 0 ? a : b);
        Buffer.MemoryCopy(key->W, e->Key, DpKey.PacketWords * sizeof(ulong), DpKey.PacketWords * sizeof(ulong));
        e->Hash = hash;
        e->Megaflow = megaflow;
        e->Serial = serial;
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(_entries);
        GC.SuppressFinalize(this);
    }
}
