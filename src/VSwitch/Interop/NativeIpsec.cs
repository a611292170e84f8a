// NativeIpsec.cs - P/Invoke surface of native/vsw_ipsec.c (the cryptodev and rte_ipsec shim).
// The two burst calls carry [SuppressGCTransition] as rx/tx do: one call per burst of one SA, they
// never block (the crypto device's queue pair is polled, not waited on).
using System.Runtime.InteropServices;

namespace VSwitch.Interop;

/// <summary>Mirror of <c>struct vsw_sa_conf</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeSaConf
{
    public uint Id, Spi, ReplayWindow, Salt, FlowLabel;
    public ushort NattSport, NattDport;
    public byte Outbound, OuterIpv6, InnerIpv6, Alg, Esn, Natt, CopyDscp, Ecn, Ttl, Dscp, Df, KeyLen, AuthKeyLen;
    public fixed byte Pad[3];
    public fixed byte Key[32];
    public fixed byte AuthKey[64];
    public fixed byte Src[16];
    public fixed byte Dst[16];
}

internal static unsafe partial class Native
{
    /// <summary>Most packets one vsw_ipsec_enqueue / vsw_ipsec_dequeue call takes (VSW_IPSEC_BURST).</summary>
    public const int IpsecBurst = 64;

    [LibraryImport(Lib, EntryPoint = "vsw_crypto_setup", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint CryptoSetup(string name, string vdevArgs, ushort nbQp, uint nbDesc, uint maxSessions, uint nbOps, int socketId, int* err);

    [LibraryImport(Lib, EntryPoint = "vsw_crypto_close")]
    internal static partial void CryptoClose(nint dev);

    [LibraryImport(Lib, EntryPoint = "vsw_crypto_info")]
    internal static partial int CryptoInfo(nint dev, byte* driver, uint len, uint* opsInUse);

    [LibraryImport(Lib, EntryPoint = "vsw_ipsec_sa_create")]
    internal static partial nint IpsecSaCreate(nint dev, NativeSaConf* conf, int* err);

    [LibraryImport(Lib, EntryPoint = "vsw_ipsec_sa_destroy")]
    internal static partial void IpsecSaDestroy(nint sa);

    [LibraryImport(Lib, EntryPoint = "vsw_ipsec_enqueue")]
    [SuppressGCTransition]
    internal static partial int IpsecEnqueue(nint sa, ushort qp, nint* mbufs, byte* l2Lens, ushort* l3Lens, ushort n, ushort* counts);

    [LibraryImport(Lib, EntryPoint = "vsw_ipsec_dequeue")]
    [SuppressGCTransition]
    internal static partial int IpsecDequeue(nint dev, ushort qp, nint* mbufs, uint* saIds, byte* status, ushort n);
}
