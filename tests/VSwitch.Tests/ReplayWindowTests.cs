// ReplayWindowTests.cs - the inbound anti-replay window (Ipsec/ReplayWindow.cs) against the rules of
// RFC 4303 3.4.3 and appendix A, written out here case by case.
using System.Runtime.InteropServices;
using VSwitch.Ipsec;
using Xunit;

namespace VSwitch.Tests;

public sealed unsafe class ReplayWindowTests : IDisposable
{
    private readonly SaSlot* _slot = (SaSlot*)NativeMemory.AllocZeroed((nuint)sizeof(SaSlot));
    private readonly ulong* _bits = (ulong*)NativeMemory.AllocZeroed(ReplayWindow.Words, sizeof(ulong));

    public void Dispose()
    {
        NativeMemory.Free(_slot);
        NativeMemory.Free(_bits);
    }

    [Fact]
    public void Every_number_is_accepted_once_whatever_its_low_bits()
    {
        _slot->ReplaySize = 1024;
        for (uint s = 1; s <= 200; s++)
        {
            Assert.True(ReplayWindow.Accept(_slot, _bits, s), $"first {s}");
        }

        for (uint s = 1; s <= 200; s++)
        {
            Assert.False(ReplayWindow.Accept(_slot, _bits, s), $"replay of {s}"); // 32..63, 96..127, ... included
        }
    }

    [Fact]
    public void Out_of_order_inside_the_window_is_accepted_left_of_it_refused()
    {
        _slot->ReplaySize = 64;
        Assert.True(ReplayWindow.Accept(_slot, _bits, 100));
        Assert.True(ReplayWindow.Accept(_slot, _bits, 60)); // 100 - 64 < 60: inside
        Assert.False(ReplayWindow.Accept(_slot, _bits, 36)); // 36 + 64 <= 100: left of the window
        Assert.False(ReplayWindow.Accept(_slot, _bits, 0)); // never valid
        Assert.True(ReplayWindow.Accept(_slot, _bits, 5000)); // a jump beyond the whole bitmap
        Assert.True(ReplayWindow.Accept(_slot, _bits, 4990));
        Assert.False(ReplayWindow.Accept(_slot, _bits, 4990));
        Assert.False(ReplayWindow.Accept(_slot, _bits, 100)); // far left now
    }

    [Theory]
    [InlineData(0x0000_0000_FFFF_FFF0UL, 0x0000_0005u, 0x0000_0001_0000_0005UL)] // window at the top of a subspace: a small number is the next one
    [InlineData(0x0000_0000_FFFF_FFF0UL, 0xFFFF_FFE0u, 0x0000_0000_FFFF_FFE0UL)] // inside the window: this subspace
    [InlineData(0x0000_0001_0000_0010UL, 0xFFFF_FFF8u, 0x0000_0000_FFFF_FFF8UL)] // window spans two: a high number is the previous one
    [InlineData(0x0000_0001_0000_0010UL, 0x0000_0020u, 0x0000_0001_0000_0020UL)] // ahead of the window: this subspace
    [InlineData(0x0000_0000_0000_0010UL, 0xFFFF_FFF8u, 0x0000_0000_FFFF_FFF8UL)] // no previous subspace at the start
    public void The_high_half_is_inferred_as_rfc_4303_appendix_a(ulong top, uint low, ulong expected) =>
        Assert.Equal(expected, ReplayWindow.Infer(top, low, 64));

    [Fact]
    public void An_esn_stream_crosses_2_to_the_32_and_its_replays_are_refused()
    {
        _slot->ReplaySize = 128;
        _slot->Esn = 1;
        ulong first = (1UL << 32) - 40;
        for (ulong s = first; s < first + 80; s++)
        {
            Assert.True(ReplayWindow.Accept(_slot, _bits, (uint)s), $"first {s}");
        }

        Assert.Equal(first + 79, _slot->ReplayTop);
        for (ulong s = first + 10; s < first + 80; s++)
        {
            Assert.False(ReplayWindow.Accept(_slot, _bits, (uint)s), $"replay of {s}");
        }
    }
}
