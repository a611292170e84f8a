// ConnTableConcurrencyTests.cs - the connection table under the concurrency it is built for: two
// "PMD" threads committing and tracking the same connections (each direction on both, so the same
// tuple is created by two threads at once), a sweeper flushing and expiring meanwhile under the epoch.
// Afterwards the table must be consistent: no two live entries for one tuple, the counts equal to
// the live entries, every entry reachable by both its tuples, and, flushed, the free queue holding
// every entry exactly once (none lost, none freed twice). Commits refused while entries waited for
// the sweeper's epoch are expected under this churn (a pool of 1 024 against a sweep per pass).
using System.Buffers.Binary;
using VSwitch.Conntrack;
using VSwitch.Packets;
using VSwitch.Pmd;
using Xunit;

namespace VSwitch.Tests;

public sealed unsafe class ConnTableConcurrencyTests
{
    private static byte[] Udp(uint src, uint dst, ushort sport, ushort dport) => FrameBuilder.Build(new FrameSpec
    {
        Proto = 17, NwSrc = src, NwDst = dst, SrcPort = sport, DstPort = dport, Payload = new byte[18],
    });

    [Fact]
    public void Two_pmds_and_a_sweeper_leave_the_table_consistent()
    {
        const int Flows = 256, Rounds = 400;
        using var table = new ConnTable(1024, 1_000_000_000);
        using var mbufs = new FakeMbufs();
        uint a = FrameBuilder.Ip("198.51.100.0"), b = FrameBuilder.Ip("203.0.113.2");
        var orig = Enumerable.Range(0, Flows).Select(i => mbufs.Create(Udp(a + (uint)(i % 200), b, (ushort)(1000 + i), 53))).ToArray();
        var reply = Enumerable.Range(0, Flows).Select(i => mbufs.Create(Udp(b, a + (uint)(i % 200), 53, (ushort)(1000 + i)))).ToArray();
        int commitSpec = CtSpecs.Intern(new CtSpec(true, false, 3, -1, CtNatKind.None, false, 0, 0, 0, 0, "", false, 0, 0, false, 0, 0));
        using var epoch = new Epoch(2);
        int s0 = epoch.Register(), s1 = epoch.Register();
        epoch.SetOnline(s0);
        epoch.SetOnline(s1);
        var counters = new PmdCounters[2];
        var errors = new List<Exception>();
        bool stop = false;

        void Pmd(int slot, int self)
        {
            try
            {
                var off = new HeaderOffsets { L3 = 14, L4 = 34 };
                fixed (PmdCounters* c = &counters[self])
                {
                    for (int r = 0; r < Rounds; r++)
                    {
                        // Each PMD sends both directions, in opposite orders: the same new connection is
                        // committed by both at once, and replies race with commits.
                        for (int k = 0; k < Flows; k++)
                        {
                            int i = self == 0 ? k : Flows - 1 - k;
                            ulong w = table.Process(orig[i], ref off, CtSpecs.At(commitSpec), 1000, c);
                            Assert.True((w & CtState.Trk) != 0);
                            table.Process(reply[i], ref off, CtSpecs.At(commitSpec), 1000, c);
                        }

                        Volatile.Write(ref *epoch.Slot(slot), epoch.Current); // the round boundary
                    }
                }
            }
            catch (Exception e)
            {
                lock (errors)
                {
                    errors.Add(e);
                }
            }
            finally
            {
                epoch.SetOffline(slot);
            }
        }

        var sweeper = new Thread(() =>
        {
            var rnd = new Random(7);
            while (!Volatile.Read(ref stop))
            {
                table.Sweep(1000, epoch.Advance, epoch.Passed, _ => rnd.Next(4) == 0); // a quarter flushed each time
            }
        });
        var t0 = new Thread(() => Pmd(s0, 0));
        var t1 = new Thread(() => Pmd(s1, 1));
        sweeper.Start();
        t0.Start();
        t1.Start();
        t0.Join();
        t1.Join();
        Volatile.Write(ref stop, true);
        sweeper.Join();
        Assert.Empty(errors);

        table.Sweep(1000, epoch.Advance, _ => true); // unlink what PMDs marked dead; everyone is offline
        table.ReleaseRetired(_ => true);
        var live = new List<int>();
        for (int i = 0; i < table.Capacity; i++)
        {
            if (Volatile.Read(ref table.Entry(i)->State) == ConnTable.Live)
            {
                live.Add(i);
            }
        }

        Assert.Equal(table.Count, live.Count);
        Assert.Equal(live.Count, table.ZoneCount(3));
        // One entry per tuple, whichever direction holds it (A->B's reply is B->A's original).
        Assert.Equal(2 * live.Count, live.SelectMany(i => new[] { table.Entry(i)->Orig, table.Entry(i)->Reply }).Distinct().Count());
        foreach (int i in live)
        {
            // Reachable from both of its tuples, as that entry.
            Assert.Equal(i << 1, table.Find(table.Entry(i)->Orig, table.Entry(i)->Orig.Hash()));
            Assert.Equal((i << 1) | 1, table.Find(table.Entry(i)->Reply, table.Entry(i)->Reply.Hash()));
        }

        ulong commits = counters[0].CtCommits + counters[1].CtCommits;
        Assert.True(commits >= (ulong)Flows, $"commits {commits}");
        Assert.True(live.Count <= Flows);

        // Every entry comes back exactly once: flush all, and the free queue holds the whole pool.
        table.Sweep(1000, epoch.Advance, _ => true, _ => true);
        table.ReleaseRetired(_ => true);
        Assert.Equal(0L, table.Count);
        Assert.Equal(0, table.ZoneCount(3));
        var free = table.FreeEntries();
        Assert.Equal(table.Capacity, free.Count);
        Assert.Equal(table.Capacity, free.Distinct().Count());
    }
}
