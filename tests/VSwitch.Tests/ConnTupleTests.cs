// ConnTupleTests.cs - the connection tuple's layout (it lives in native memory), reversal (echo
// request <-> reply), equality over every field, and the hash (SSE4.2 and fallback) without allocation.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VSwitch.Conntrack;
using static VSwitch.Tests.CtPackets;

namespace VSwitch.Tests;

public unsafe class ConnTupleTests
{
    [Fact]
    public void The_tuple_is_40_bytes_five_words_without_padding()
    {
        Assert.Equal(40, sizeof(ConnTuple));
        Assert.Equal(ConnTuple.Size, Unsafe.SizeOf<ConnTuple>());
        Assert.Equal(40, Marshal.SizeOf<ConnTuple>());
        Assert.Equal(32, (int)Marshal.OffsetOf<ConnTuple>(nameof(ConnTuple.SrcPort)));
        Assert.Equal(39, (int)Marshal.OffsetOf<ConnTuple>(nameof(ConnTuple.IcmpCode)));
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<ConnTuple>());
    }

    [Fact]
    public void Reverse_swaps_addresses_and_ports_and_twice_is_the_identity()
    {
        var t = ConnTuple.Ipv6(A6, B6, 6, 40000, 443);
        var r = t.Reverse();
        Assert.Equal(B6, r.Src);
        Assert.Equal(A6, r.Dst);
        Assert.Equal(443, r.SrcPort);
        Assert.Equal(40000, r.DstPort);
        Assert.Equal(6, r.Protocol);
        Assert.Equal(ConnTuple.V6, r.Family);
        Assert.Equal(t, r.Reverse());
        Assert.NotEqual(t, r);

        var v4 = ConnTuple.Ipv4(A, B, 17, 1, 2);
        Assert.Equal(ConnTuple.Ipv4(B, A, 17, 2, 1), v4.Reverse());
    }

    [Theory]
    [InlineData(4, 8, 0)]
    [InlineData(4, 0, 8)]
    [InlineData(6, 128, 129)]
    [InlineData(6, 129, 128)]
    [InlineData(4, 13, 13)] // timestamp: not echo, unchanged
    [InlineData(6, 135, 135)]
    public void Reversing_an_echo_turns_request_into_reply_and_back(int family, int type, int reversedType)
    {
        var addrs = family == 4 ? ConnTuple.Ipv4(A, B, 0) : ConnTuple.Ipv6(A6, B6, 0);
        var t = ConnTuple.Echo(addrs, (byte)type, 0x4321);
        var r = t.Reverse();
        Assert.Equal(reversedType, r.IcmpType);
        Assert.Equal(0x4321, r.SrcPort);
        Assert.Equal(0x4321, r.DstPort);
        Assert.Equal(family == 4 ? 1 : 58, r.Protocol);
        Assert.Equal(t, r.Reverse());

        // Type 8 in a non-ICMP tuple is nothing special.
        Assert.Equal(8, ConnTuple.ReverseIcmpType(17, 8));
    }

    /// <summary>A tuple and ten variants, each differing from it in one field.</summary>
    private static ConnTuple[] Variants()
    {
        var t = ConnTuple.Ipv6(A6, B6, 6, 1000, 2000);
        t.IcmpType = 3;
        t.IcmpCode = 4;
        var v = new ConnTuple[11];
        for (int i = 0; i < v.Length; i++)
        {
            v[i] = t;
        }

        v[1].SrcHi ^= 1;
        v[2].SrcLo ^= 1UL << 63;
        v[3].DstHi ^= 1UL << 20;
        v[4].DstLo ^= 2;
        v[5].SrcPort++;
        v[6].DstPort++;
        v[7].Protocol = 17;
        v[8].Family = ConnTuple.V4;
        v[9].IcmpType++;
        v[10].IcmpCode++;
        return v;
    }

    [Fact]
    public void Equality_sees_every_field_and_the_hashes_differ()
    {
        var v = Variants();
        for (int i = 0; i < v.Length; i++)
        {
            for (int j = 0; j < v.Length; j++)
            {
                Assert.Equal(i == j, v[i].Equals(v[j]));
                Assert.Equal(i == j, v[i] == v[j]);
                Assert.Equal(i != j, v[i] != v[j]);
            }
        }

        Assert.Equal(v.Length, v.Select(x => ConnTuple.Hash(x)).Distinct().Count());
        Assert.Equal(v.Length, v.Select(x => ConnTuple.SoftwareHash(x)).Distinct().Count());
        Assert.Equal(v.Length, v.Select(x => ConnTuple.Hash(x, 0x9E3779B9)).Distinct().Count());
        Assert.NotEqual(ConnTuple.Hash(v[0]), ConnTuple.Hash(v[0], 1)); // the seed counts
        Assert.NotEqual(ConnTuple.Hash(v[0]), ConnTuple.Hash(v[0].Reverse())); // directional
        Assert.Equal((int)ConnTuple.Hash(v[0]), v[0].GetHashCode());
    }

    [Fact]
    public void A_tuple_in_native_memory_hashes_and_compares_like_a_copy_and_nothing_allocates()
    {
        var v = Variants();
        var p = (ConnTuple*)NativeMemory.AlignedAlloc((nuint)(sizeof(ConnTuple) * v.Length), 64);
        try
        {
            for (int i = 0; i < v.Length; i++)
            {
                p[i] = v[i];
            }

            uint sum = 0;
            for (int round = 0; round < 2; round++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < 10_000; i++)
                {
                    ref ConnTuple a = ref p[i % v.Length], b = ref p[(i + 1) % v.Length];
                    sum += ConnTuple.Hash(a) + ConnTuple.SoftwareHash(b) + (a.Equals(b) ? 1u : 0u) + (a == a.Reverse().Reverse() ? 1u : 0u);
                }

                Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
            }

            Assert.NotEqual(0u, sum);
            for (int i = 0; i < v.Length; i++)
            {
                Assert.Equal(ConnTuple.Hash(v[i]), ConnTuple.Hash(p[i]));
                Assert.True(p[i].Equals(v[i]));
            }
        }
        finally
        {
            NativeMemory.AlignedFree(p);
        }
    }
}
