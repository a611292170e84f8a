// CacheFlushTests.cs - flush-megaflows and the MAC table listing, in process: a flush is done by each
// PMD to its own caches at a round boundary, and the control plane's call returns once every PMD
// has done it; fdb-show's listing and fdb-flush over the MAC table.
using VSwitch.FlowText;
using VSwitch.Pipeline;
using Xunit;
using static VSwitch.Tests.PipelineTests;

namespace VSwitch.Tests;

public sealed class CacheFlushTests
{
    private static byte[] Frame(int i, ulong src = 0x020000000001) =>
        FrameBuilder.Build(new FrameSpec { Src = src, Proto = 17, NwDst = 0xC6336400u + (uint)i, Payload = new byte[18] });

    [Fact]
    public void A_flush_request_empties_the_pmds_caches_at_its_next_round_and_the_next_packets_take_upcalls()
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("priority=10,udp,nw_dst=198.51.100.0/24,actions=output:2\npriority=20,udp,nw_dst=198.51.100.3,actions=output:3", "test"));
        var frames = Enumerable.Range(0, 5).Select(i => Frame(i)).ToList();
        rig.Send(1, frames);
        rig.Send(1, frames); // cached now: no new upcall
        int megaflows = rig.Flow.Megaflows.Count;
        ulong upcalls = rig.Counters.Upcalls;
        Assert.True(megaflows >= 2, $"{megaflows} megaflows");
        Assert.Equal(8, rig.Out(2).Count);
        Assert.Equal(2, rig.Out(3).Count);

        rig.Shared.RequestCacheFlush();
        Assert.Equal(megaflows, rig.Flow.Megaflows.Count); // nobody but the PMD touches its caches
        rig.Loop.Poll(); // a round boundary
        Assert.Equal(0, rig.Flow.Megaflows.Count);
        Assert.Equal(0, rig.Flow.Megaflows.SubtableCount);

        rig.Send(1, frames); // same verdicts, through fresh upcalls
        Assert.Equal(upcalls + (ulong)megaflows, rig.Counters.Upcalls);
        Assert.Equal(megaflows, rig.Flow.Megaflows.Count);
        Assert.Equal(4, rig.Out(2).Count);
        Assert.Single(rig.Out(3));
        Assert.Equal(0UL, rig.Counters.FwdDrops);
    }

    [Fact]
    public void Flush_caches_returns_once_a_running_pmd_has_emptied_its_caches()
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("priority=10,udp,actions=output:2", "test"));
        rig.Send(1, [Frame(1), Frame(2)]);
        Assert.NotEqual(0, rig.Flow.Megaflows.Count);
        rig.State.Epoch.SetOnline(rig.State.EpochIndex); // as PmdThread.Start does
        var flows = new FlowControl(rig.Shared, () => rig.State.Epoch.Synchronize(TimeSpan.FromSeconds(10)));
        var pmd = new Thread(rig.Loop.Run) { IsBackground = true };
        pmd.Start();
        try
        {
            flows.FlushCaches();
            Assert.Equal(0, rig.Flow.Megaflows.Count);
            Assert.Equal(rig.Shared.CacheFlushes, rig.Flow.CacheFlushes);
        }
        finally
        {
            rig.State.StopRequested = true;
            Assert.True(pmd.Join(TimeSpan.FromSeconds(10)));
        }
    }

    [Fact]
    public void The_mac_table_lists_its_bindings_and_a_flush_forgets_them_all_and_moves_the_generation()
    {
        using var rig = new Rig();
        rig.Load(FlowParser.ParseRules("priority=0,actions=normal", "test"));
        rig.Ports.Clock = 1000;
        rig.Send(1, [Frame(1, 0x02000000000A)]);
        rig.Ports.Clock = 2000;
        rig.Send(2, [Frame(1, 0x02000000000B)]);
        var entries = rig.Shared.Macs.Entries().OrderBy(e => e.Port).ToList();
        Assert.Equal(2, entries.Count);
        Assert.Equal((0x02000000000AUL, 0, 1), (entries[0].Mac, entries[0].Vlan, entries[0].Port));
        Assert.Equal((0x02000000000BUL, 0, 2), (entries[1].Mac, entries[1].Vlan, entries[1].Port));
        Assert.True(entries[0].SeenTsc < entries[1].SeenTsc);
        Assert.Equal("02:00:00:00:00:0a", FlowFormatter.FormatMac(entries[0].Mac));

        long gen = rig.Shared.Macs.Generation;
        Assert.Equal(2, rig.Shared.Learner.Flush(-1));
        Assert.Empty(rig.Shared.Macs.Entries());
        Assert.True(rig.Shared.Macs.Generation > gen); // NORMAL verdicts cached from the bindings are revalidated
        Assert.Equal(-1, rig.Shared.Macs.Lookup(0x02000000000A, 0));
    }
}
