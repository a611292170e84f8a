// FuzzTests.cs - random rule sets and random, malformed packets through the pipeline: nothing
// throws, every mbuf is sent or freed exactly once, and the counters account for every packet
// (rx + clones = tx + tx_drops + fwd_drops; fwd_drops split by reason). In memory here (many cases,
// fast); against a running vswitchd with live table changes in FuzzDpdkTests.
using System.Globalization;
using VSwitch.FlowText;
using VSwitch.Pipeline;
using VSwitch.Pmd;
using Xunit;
using static VSwitch.Tests.PipelineTests;

namespace VSwitch.Tests;

public sealed class FuzzTests
{
    private static int EnvInt(string name, int dflt) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : dflt;

    /// <summary>The rules of <paramref name="text"/> that parse (the rest are refused one by one, as add-flow would).</summary>
    internal static List<FlowRule> Parsable(string text, out int refused)
    {
        var rules = new List<FlowRule>();
        refused = 0;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            try
            {
                rules.Add(FlowParser.ParseRule(line, "fuzz", 1));
            }
            catch (FlowSyntaxException)
            {
                refused++;
            }
        }

        return rules;
    }

    internal static void AssertAccounted(in PmdCounters c, string where)
    {
        Assert.True(c.RxPackets + c.Clones == c.TxPackets + c.TxDrops + c.FwdDrops,
            $"{where}: rx {c.RxPackets} + clones {c.Clones} != tx {c.TxPackets} + tx_drops {c.TxDrops} + fwd_drops {c.FwdDrops}");
        Assert.True(c.FwdDrops == c.Malformed + c.ActionDrops + c.TranslationErrors + c.RecircDrops + c.NoOutputDrops,
            $"{where}: fwd_drops {c.FwdDrops} != malformed {c.Malformed} + action {c.ActionDrops} + translation {c.TranslationErrors} + recirc {c.RecircDrops} + no_output {c.NoOutputDrops}");
        Assert.True(c.TranslationErrors == 0, $"{where}: {c.TranslationErrors} translation errors");
    }

    [Fact]
    public void Random_rules_and_malformed_packets_are_forwarded_or_dropped_and_every_packet_is_accounted_for()
    {
        int cases = EnvInt("VSW_FUZZ_CASES", 300);
        int seed = EnvInt("VSW_FUZZ_SEED", 20261205);
        var r = new Random(seed);
        int refusedTotal = 0, loaded = 0;
        for (int n = 0; n < cases; n++)
        {
            using var rig = new Rig(ports: 4);
            var rules = Parsable(Fuzz.Rules(r, 1 + r.Next(12), 4), out int refused);
            refusedTotal += refused;
            loaded += rules.Count;
            rig.Load(rules);
            var frames = Enumerable.Range(0, 1 + r.Next(80)).Select(_ => Fuzz.Frame(r)).ToList();
            int sent = 0;
            for (int pass = 0; pass < 2; pass++) // upcalls, then cached verdicts
            {
                for (int at = 0; at < frames.Count;)
                {
                    int k = Math.Min(frames.Count - at, 1 + r.Next(40));
                    int inPort = 1 + r.Next(4);
                    rig.Send(inPort, frames.Skip(at).Take(k));
                    at += k;
                }

                for (int p = 0; p < 4; p++)
                {
                    sent += rig.Ports.TxCount[p];
                    rig.Ports.TxCount[p] = 0;
                }

                rig.Flow.Punts.Drain();
            }

            string where = $"seed {seed} case {n}:\n{string.Join('\n', rules.Select(x => FlowFormatter.Format(x, false)))}";
            Assert.True(rig.Mbufs.Allocated == rig.Mbufs.Freed + sent, $"{where}\nallocated {rig.Mbufs.Allocated} != freed {rig.Mbufs.Freed} + sent {sent}");
            AssertAccounted(rig.Counters, where);
        }

        Assert.True(loaded > cases * 3, $"only {loaded} rules loaded ({refusedTotal} refused)");
    }
}
