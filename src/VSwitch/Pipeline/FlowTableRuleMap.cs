// FlowTableRuleMap.cs - a subtable's map from a masked key to the rules with that match.
//
// A Dictionary<FlowKey, Bucket> stored a copy of the 216-byte key in every entry: 240 bytes per rule,
// a 48 MB entry array for a 200 000-rule table, allocated (and zeroed) again by every table version
// a change builds, and counted against the large-object budget whose overrun starts collections
// while the PMDs run. The key is already in the rule (its match value, stored masked), so an entry
// here is the hash, a chain link and the bucket: 24 bytes. Built once at its final size, read-only
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
        private readonly int _slotMask;
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
            int slots = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(capacity, 1));
            _heads = new int[slots];
            _entries = new Entry[Math.Max(capacity, 1)];
            _slotMask = slots - 1;
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
            e.Next = _heads[h & _slotMask];
            _heads[h & _slotMask] = ++_count;
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
            for (int i = _heads[h & _slotMask]; i != 0;)
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
