// FlowValues.cs - the value syntax both parsers read: integers, MAC, IPv4 and IPv6 addresses.
//
// Integers are decimal or 0x hex; addresses are read straight from the span (IPv6 through
// IPAddress) into host-order integers, the form FlowKey fields hold. Each reader returns false
// on bad text and leaves the message to the caller, who knows what was expected.
using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace VSwitch.FlowText;

/// <summary>Readers of the values in flow text.</summary>
internal static class FlowValues
{
    /// <summary>A 64-bit integer, decimal or 0x hex.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool TryParseU64(ReadOnlySpan<char> s, out ulong v)
    {
        if (s.Length > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        {
            return ulong.TryParse(s[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out v);
        }

        return ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v);
    }

    /// <summary>A 128-bit integer, decimal or 0x hex.</summary>
    public static bool TryParseU128(ReadOnlySpan<char> s, out UInt128 v)
    {
        if (s.Length > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        {
            return UInt128.TryParse(s[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out v);
        }

        return UInt128.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v);
    }

    /// <summary>A dotted quad (exactly four decimal parts of at most three digits, each up to 255).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool TryParseIpv4(ReadOnlySpan<char> s, out uint a)
    {
        a = 0;
        int i = 0;
        for (int k = 0; k < 4; k++)
        {
            if (k > 0)
            {
                if (i >= s.Length || s[i] != '.')
                {
                    return false;
                }

                i++;
            }

            int start = i;
            uint x = 0;
            while (i < s.Length && char.IsAsciiDigit(s[i]) && i - start < 3)
            {
                x = (x * 10) + (uint)(s[i] - '0');
                i++;
            }

            if (i == start || x > 255)
            {
                return false;
            }

            a = (a << 8) | x;
        }

        return i == s.Length;
    }

    /// <summary>An IPv6 address without a scope id.</summary>
    public static bool TryParseIpv6(ReadOnlySpan<char> s, out UInt128 a)
    {
        a = default;
        if (s.IsEmpty || s.IndexOf('%') >= 0 || !IPAddress.TryParse(s, out var ip) || ip.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return false;
        }

        Span<byte> b = stackalloc byte[16];
        if (!ip.TryWriteBytes(b, out int n) || n != 16)
        {
            return false;
        }

        a = BinaryPrimitives.ReadUInt128BigEndian(b);
        return true;
    }

    /// <summary>Six ':'-separated groups of one or two hex digits.</summary>
    public static bool TryParseMac(ReadOnlySpan<char> s, out ulong mac)
    {
        mac = 0;
        int i = 0;
        for (int k = 0; k < 6; k++)
        {
            if (k > 0)
            {
                if (i >= s.Length || s[i] != ':')
                {
                    return false;
                }

                i++;
            }

            int start = i;
            ulong x = 0;
            while (i < s.Length && char.IsAsciiHexDigit(s[i]) && i - start < 2)
            {
                x = (x << 4) | HexVal(s[i]);
                i++;
            }

            if (i == start)
            {
                return false;
            }

            mac = (mac << 8) | x;
        }

        return i == s.Length;
    }

    private static ulong HexVal(char c) => (ulong)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
}
