// FlowTableRuleMap.cs - a subtable's map from a masked key to the rules with that match.
//
// A Dictionary<FlowKey, Bucket> stored a copy of the 216-byte key in every entry: 240 bytes per rule,
// a 48 MB entry array for a 200 000-rule table, allocated (and zeroed) again by every table version
// a change builds, and counted against the large-object budget whose overrun starts collections
// while the PMDs run. The key is already in the rule (its match value, stored masked), so an entry
// here is the hash, a chain link and the bucket: 24 bytes (and a 4-byte chain head per slot). Built once at its final size, read-only
// afterwards (PMDs look up concurrently; nothing is ever added after the build).
using System.Numerics;
using System.Runtime.InteropServices;
using VSwitch.Packets;

namespace VSwitch.Pipeline;

public sealed partial class FlowTable
{
    private sealed class RuleMap
    {
        private readonly int[] _heads; // per slot: 1 + index of the chain's first entry, 0 = none
        private readonly Entry[] _entries;
        private readonly int _slotShift;
        private int _count;

        private struct Entry
        {
            public int Hash;
            public int Next; // 1 + index of the next entry in the chain, 0 = end
            public Bucket Bucket;
        }

        /// <param name="capacity">The most entries it will hold (the subtable's rule count).</param>
        public RuleMap(int capacity)
        {
            int slots = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(capacity, 2));
            _heads = new int[slots];
            _entries = new Entry[Math.Max(capacity, 1)];
            _slotShift = 32 - BitOperations.Log2((uint)slots);
        }

        /// <summary>
        /// The slot of a hash: its top bits after a multiply by 2^32 / golden ratio. The key hash mixes
        /// by multiply-and-xor, so its low bits never see a word's high bits (nw_dst is word 4's
        /// upper half): masking the low bits put 1 000 /24 routes into 4 chains.
        /// </summary>
        private int Slot(int h) => (int)(((uint)h * 0x9E3779B9u) >> _slotShift);

        /// <summary>The longest chain (tests: the slots spread the keys).</summary>
        public int LongestChain()
        {
            int most = 0;
            foreach (int head in _heads)
            {
                int n = 0;
                for (int i = head; i != 0; i = _entries[i - 1].Next)
                {
                    n++;
                }

                most = Math.Max(most, n);
            }

            return most;
        }

        public int Count => _count;

        /// <summary>The bucket of <paramref name="value"/>, made empty (exists false) when new. Build only.</summary>
        public ref Bucket GetOrAdd(in FlowKey value, out bool exists)
        {
            int h = value.GetHashCode();
            int found = Find(value, h);
            if (found >= 0)
            {
                exists = true;
                return ref _entries[found].Bucket;
            }

            ref var e = ref _entries[_count];
            e.Hash = h;
            int slot = Slot(h);
            e.Next = _heads[slot];
            _heads[slot] = ++_count;
            exists = false;
            return ref e.Bucket;
        }

        public bool TryGetValue(in FlowKey value, out Bucket bucket)
        {
            int i = Find(value, value.GetHashCode());
            if (i < 0)
            {
                bucket = default;
                return false;
            }

            bucket = _entries[i].Bucket;
            return true;
        }

        /// <summary>Every bucket, in no particular order.</summary>
        public IEnumerable<Bucket> Values
        {
            get
            {
                for (int i = 0; i < _count; i++)
                {
                    yield return _entries[i].Bucket;
                }
            }
        }

        private int Find(in FlowKey value, int h)
        {
            for (int i = _heads[Slot(h)]; i != 0;)
            {
                ref readonly var e = ref _entries[i - 1];
                if (e.Hash == h && SameKey(e.Bucket.Best.Match.Value, value))
                {
                    return i - 1;
                }

                i = e.Next;
            }

            return -1;
        }

        private static bool SameKey(in FlowKey a, in FlowKey b) =>
            MemoryMarshal.AsBytes(new ReadOnlySpan<FlowKey>(in a)).SequenceEqual(MemoryMarshal.AsBytes(new ReadOnlySpan<FlowKey>(in b)));
    }
}
