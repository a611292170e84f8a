// PmdCode.cs - compiles the pipeline PMD's code before the PMD runs.
//
// The JIT allocates on the thread that triggers a compilation, and a PMD must allocate nothing, ever.
// Some PMD code runs for the first time long after the first packet (megaflow aging every 256
// rounds, re-ranking every 16384, NORMAL, revalidation, VLAN and checksum edits, the punt ring), so
// every method of the types the PMD uses is compiled up front, for the PMD's I/O type.
using System.Reflection;
using System.Runtime.CompilerServices;
using VSwitch.Pipeline;
using VSwitch.Pmd;
using VSwitch.Ports;

namespace VSwitch.Forwarding;

public static class PmdCode
{
    /// <summary>Compiles every method of the l2fwd PMD's types (as <see cref="CompilePipeline{TIo}"/> does for the pipeline).</summary>
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "vswitchd is not trimmed; the types are referenced statically")]
    public static void CompileL2fwd<TIo>()
        where TIo : struct, IPacketIo => Compile([typeof(L2Forwarder), typeof(PmdLoop<TIo, L2Forwarder>), typeof(PmdState), typeof(TIo)]);

    private const BindingFlags AllDeclared = BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public
        | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;

    /// <summary>Compiles every method of the pipeline PMD's types, with <typeparamref name="TIo"/> as its I/O.</summary>
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "vswitchd is not trimmed; the types are referenced statically")]
    public static void CompilePipeline<TIo>()
        where TIo : struct, IPacketIo
    {
        Type[] types =
        [
            typeof(Translator), typeof(MacTable), typeof(FlowTable), typeof(FlowTables), typeof(PipelinePort),
            typeof(Actions.PacketEdit), typeof(Actions.PuntRing), typeof(Caches.MegaflowCache), typeof(Caches.Emc),
            typeof(Packets.KeyExtractor), typeof(Packets.FlowKey), typeof(PipelineForwarder<TIo>), typeof(FlowPmd),
            typeof(PmdLoop<TIo, PipelineForwarder<TIo>>), typeof(Translation), typeof(TIo),
            typeof(Actions.ActionExecutor<TIo>), typeof(LearnRing), typeof(PmdState),
            typeof(Ipsec.IpsecEngine), typeof(Ipsec.ReplayWindow), typeof(Ipsec.PathMtu),
        ];
        Compile(types);
    }

    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "vswitchd is not trimmed; the types are referenced statically")]
    private static void Compile(Type[] types)
    {
        foreach (var type in types)
        {
            foreach (var m in type.GetMethods(AllDeclared))
            {
                if (!m.IsAbstract && !m.ContainsGenericParameters)
                {
                    RuntimeHelpers.PrepareMethod(m.MethodHandle,
                        type.IsGenericType ? type.GetGenericArguments().Select(a => a.TypeHandle).ToArray() : null);
                }
            }
        }
    }
}
