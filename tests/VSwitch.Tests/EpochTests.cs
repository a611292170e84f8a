// EpochTests.cs - the quiescence mechanism (Pmd/Epoch.cs): who a synchronization waits for, when
// deferred teardowns run, what a PMD round reports, and a running PMD thread that must classify
// with every table version the control plane synchronized.
using VSwitch.FlowText;
using VSwitch.Pipeline;
using VSwitch.Pmd;
using Xunit;

namespace VSwitch.Tests;

public sealed unsafe class EpochTests
{
    [Fact]
    public void A_synchronization_waits_for_every_online_pmd_and_not_for_offline_ones()
    {
        using var ep = new Epoch(3);
        int a = ep.Register(), b = ep.Register(), c = ep.Register();
        ep.SetOnline(a);
        ep.SetOnline(b); // c never starts
        long e = ep.Advance();
        Assert.False(ep.Passed(e));
        Assert.Equal([a, b], ep.Lagging(e));
        Volatile.Write(ref *ep.Slot(a), e);
        Assert.False(ep.Synchronize(e, TimeSpan.FromMilliseconds(20))); // b has not passed a round boundary
        Assert.Equal([b], ep.Lagging(e));
        Volatile.Write(ref *ep.Slot(b), e);
        Assert.True(ep.Synchronize(e, TimeSpan.FromMilliseconds(20)));
        Assert.Equal(Epoch.Offline, *ep.Slot(c));

        ep.SetOffline(a); // a stopped: it holds nothing
        Assert.False(ep.Passed(ep.Advance())); // b still online and behind
        Volatile.Write(ref *ep.Slot(b), ep.Current);
        Assert.True(ep.Passed(ep.Current));
    }

    [Fact]
    public void A_deferred_teardown_runs_once_and_only_after_every_pmd_passed_its_epoch()
    {
        using var ep = new Epoch(2);
        int a = ep.Register(), b = ep.Register();
        ep.SetOnline(a);
        ep.SetOnline(b);
        long e = ep.Advance();
        int ran = 0;
        ep.Defer(e, () => ran++);
        Assert.Equal(0, ep.RunDeferred());
        Volatile.Write(ref *ep.Slot(a), e);
        Assert.Equal(0, ep.RunDeferred());
        Assert.Equal(0, ran);
        Volatile.Write(ref *ep.Slot(b), e + 5);
        Assert.Equal(1, ep.RunDeferred());
        Assert.Equal(0, ep.RunDeferred());
        Assert.Equal(1, ran);

        ep.Defer(e, () => ran++); // already passed: runs at once
        Assert.Equal(2, ran);
        Assert.Equal(0, ep.DeferredCount);
    }

    [Fact]
    public void A_pmd_round_reports_the_epoch_it_read_and_a_stopped_loop_goes_offline()
    {
        using var rig = new PipelineTests.Rig();
        Assert.Equal(Epoch.Offline, rig.State.QuiescentEpoch); // never polled
        rig.Loop.Poll();
        Assert.Equal(rig.State.Epoch.Current, rig.State.QuiescentEpoch);
        long e = rig.State.Epoch.Advance();
        Assert.True(rig.State.QuiescentEpoch < e);
        rig.Loop.Poll();
        Assert.Equal(e, rig.State.QuiescentEpoch);

        rig.State.StopRequested = true;
        rig.Loop.Run();
        Assert.Equal(Epoch.Offline, rig.State.QuiescentEpoch);
    }

    [Fact]
    public void After_each_synchronized_table_change_a_running_pmd_classifies_with_that_version()
    {
        using var rig = new PipelineTests.Rig();
        rig.State.Epoch.SetOnline(rig.State.EpochIndex); // as PmdThread.Start does
        var flows = new FlowControl(rig.Shared, () => rig.State.Epoch.Synchronize(TimeSpan.FromSeconds(10)));
        var pmd = new Thread(rig.Loop.Run) { IsBackground = true };
        pmd.Start();
        try
        {
            for (int i = 0; i < 300; i++)
            {
                flows.Add(FlowParser.ParseRules($"priority={1 + i},ip,nw_dst=198.51.100.{i % 250},actions=output:2", "epoch-test"), 0);
                var published = rig.Shared.Current;

                // The PMD wrote Flow.Current before its slot store, and Passed() read that slot.
                Assert.Same(published, rig.Flow.Current);
            }
        }
        finally
        {
            rig.State.StopRequested = true;
            Assert.True(pmd.Join(TimeSpan.FromSeconds(10)));
        }

        Assert.Equal(Epoch.Offline, rig.State.QuiescentEpoch);
        Assert.Equal(300, rig.Shared.Current.RuleCount);
    }
}
