// Unit tests of configuration parsing/validation and of the EAL argument builder (no DPDK needed).
using VSwitch.Config;
using VSwitch.Interop;

namespace VSwitch.Tests;

public sealed class ConfigTests
{
    [Fact]
    public void Json_config_is_parsed_with_defaults_filled_in()
    {
        var c = SwitchConfig.FromJson("""
            { "ports": [ { "name": "a", "devargs": "net_null0", "rxq": 2 }, { "name": "b", "devargs": "net_null1" } ],
              "pmd_cores": [1], "tx_drain_us": 50, "rxq_assign": [ { "port": "a", "queue": 1, "core": 1 } ] }
            """, "t.json");
        c.Validate(cpuCount: 2);
        Assert.Equal(2, c.Ports[0].RxQueues);
        Assert.Equal(50, c.TxDrainMicros);
        Assert.Equal([("a", "b")], c.L2fwdPairs);
        var map = c.AssignRxQueues();
        Assert.Equal(1, map[("a", 1)]);
        Assert.Equal(3, map.Count);
    }

    [Theory]
    [InlineData("""{ "ports": 3 }""", "t.json: $.ports: expected array, found number")]
    [InlineData("""{ "ports": [ { "devargs": "net_null0" } ] }""", "t.json: $.ports[0]: missing \"name\"")]
    [InlineData("""{ "portz": [] }""", "t.json: $.portz: unknown setting")]
    [InlineData("""{ "mode": "warp" }""", "t.json: $.mode: unknown forwarding mode 'warp'")]
    [InlineData("""{ "ports": [ """, "t.json: invalid JSON at line 1")]
    public void Json_errors_name_the_file_and_the_path(string json, string expected)
    {
        var e = Assert.Throws<VSwitchException>(() => SwitchConfig.FromJson(json, "t.json"));
        Assert.StartsWith(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validation_refuses_unknown_cores_odd_pairs_and_unknown_ports()
    {
        var c = SwitchConfig.EmbeddedDefault();
        c.PmdCores.Add(5);
        Assert.Contains("PMD core 5 does not exist", Assert.Throws<VSwitchException>(() => c.Validate(2)).Message, StringComparison.Ordinal);

        c = SwitchConfig.EmbeddedDefault();
        c.Ports.Add(new PortConfig { Name = "odd", DevArgs = "net_null2" });
        Assert.Contains("pairs ports two by two", Assert.Throws<VSwitchException>(() => c.Validate(2)).Message, StringComparison.Ordinal);

        c = SwitchConfig.EmbeddedDefault();
        c.L2fwdPairs.Add(("null0", "ghost"));
        Assert.Contains("unknown port 'ghost'", Assert.Throws<VSwitchException>(() => c.Validate(2)).Message, StringComparison.Ordinal);

        c = SwitchConfig.EmbeddedDefault();
        c.Ports.Add(new PortConfig { Name = "null0", DevArgs = "net_null9" });
        Assert.Contains("defined twice", Assert.Throws<VSwitchException>(() => c.Validate(2)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenFlow_numbers_and_devices_are_checked_and_the_store_keeps_the_numbers()
    {
        var c = SwitchConfig.FromJson("""
            { "mode": "pipeline", "ports": [ { "name": "a", "devargs": "net_null0", "ofport": 7 }, { "name": "b", "devargs": "net_null1", "ofport": 7 } ] }
            """, "t.json");
        Assert.Equal(7, c.Ports[0].OfPort);
        Assert.Contains("both have OpenFlow port 7", Assert.Throws<VSwitchException>(() => c.Validate(2)).Message, StringComparison.Ordinal);
        Assert.StartsWith("t.json: $.ports[0].ofport: expected an integer from 1 to 65280", Assert.Throws<VSwitchException>(() =>
            SwitchConfig.FromJson("""{ "ports": [ { "name": "a", "devargs": "net_null0", "ofport": 0 } ] }""", "t.json")).Message, StringComparison.Ordinal);

        c = SwitchConfig.EmbeddedDefault();
        c.Ports.Add(new PortConfig { Name = "pci1", DevArgs = "00:04.0" });
        c.Ports.Add(new PortConfig { Name = "pci2", DevArgs = "0000:00:04.0,x=1" });
        Assert.Contains("ports 'pci1' and 'pci2' both use device '0000:00:04.0'", Assert.Throws<VSwitchException>(() => c.Validate(2)).Message, StringComparison.Ordinal);

        string dir = Directory.CreateTempSubdirectory("vsw-store-").FullName;
        try
        {
            string path = Path.Combine(dir, "s.json");
            StateStore.Save(path, [new PortConfig { Name = "b", DevArgs = "net_null1", OfPort = 2 }, new PortConfig { Name = "d", DevArgs = "net_null3", OfPort = 4 }], [], 5);
            var stored = StateStore.Load(path)!;
            Assert.Equal([2, 4], stored.Ports.Select(p => p.OfPort ?? 0));
            Assert.Equal(5, stored.NextOfPort);
            File.WriteAllText(path, File.ReadAllText(path).Replace("\"ofport\": 4", "\"ofport\": 2", StringComparison.Ordinal));
            Assert.Contains("is corrupt at ports[1]", Assert.Throws<VSwitchException>(() => StateStore.Load(path)).Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_default_pmd_core_is_the_last_core()
    {
        var c = SwitchConfig.EmbeddedDefault();
        c.Validate(cpuCount: 4);
        Assert.Equal([3], c.PmdCores);
    }

    [Fact]
    public void Eal_arguments_get_defaults_the_operator_did_not_set()
    {
        var (args, noHuge, notice) = Eal.BuildArguments([], anyPciPort: false, allowNoHugeFallback: true, ["/dev/hugepages"], 512, 0, [1]);
        Assert.Equal(["vswitchd", "--lcores", "0@0,1@1", "--file-prefix=vswitchd", "--log-level=error", "--no-pci"], args);
        Assert.False(noHuge);
        Assert.Null(notice);
        Assert.Equal("vswitchd", Eal.PrefixOf(args));
        (args, _, _) = Eal.BuildArguments(["--in-memory"], anyPciPort: false, true, ["/dev/hugepages"], 512, 0, [1], "other");
        Assert.Null(Eal.PrefixOf(args));
        Assert.DoesNotContain(args, a => a.StartsWith("--file-prefix", StringComparison.Ordinal));

        (args, _, _) = Eal.BuildArguments(["-l", "1", "--file-prefix", "x"], anyPciPort: true, true, ["/dev/hugepages"], 512, 0);
        Assert.DoesNotContain("--in-memory", args);
        Assert.DoesNotContain("--no-pci", args);
        Assert.Equal(1, args.Count(a => a == "-l"));
        Assert.DoesNotContain("--lcores", args);
        Assert.Equal("x", Eal.PrefixOf(args));
    }

    [Fact]
    public void Each_control_socket_gets_its_own_runtime_prefix_and_the_default_socket_the_plain_one()
    {
        Assert.Equal("vswitchd", Eal.DefaultPrefix(VSwitch.Config.SwitchConfig.DefaultControlSocket));
        string a = Eal.DefaultPrefix("/tmp/a/vswitchd.sock"), b = Eal.DefaultPrefix("/tmp/b/vswitchd.sock");
        Assert.NotEqual(a, b);
        Assert.Equal(a, Eal.DefaultPrefix("/tmp/a/../a/vswitchd.sock"));
        Assert.Matches("^vswitchd-[0-9a-f]{8}$", a);
        Assert.Equal($"vswitchd-{Environment.ProcessId}", Eal.DefaultPrefix(null));
    }

    [Fact]
    public void Without_hugepages_virtual_devices_fall_back_to_no_huge_with_a_notice()
    {
        var (args, noHuge, notice) = Eal.BuildArguments([], false, true, [], 0, 0);
        Assert.True(noHuge);
        Assert.Contains("--no-huge", args);
        Assert.Contains("no hugetlbfs is mounted", notice, StringComparison.Ordinal);

        (_, noHuge, notice) = Eal.BuildArguments([], false, true, ["/dev/hugepages"], 0, 0);
        Assert.True(noHuge);
        Assert.Contains("no free 2 MiB hugepages", notice, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_hugepages_pci_ports_or_a_disabled_fallback_are_refused()
    {
        Assert.Contains("run hugepages/setup.sh", Assert.Throws<VSwitchException>(() =>
            Eal.BuildArguments([], anyPciPort: true, true, [], 0, 0)).Message, StringComparison.Ordinal);
        Assert.Throws<VSwitchException>(() => Eal.BuildArguments([], false, allowNoHugeFallback: false, [], 0, 0));
    }

    [Fact]
    public void The_mbuf_layout_check_names_every_field_that_differs()
    {
        Assert.Null(MbufLayout.Check(MbufLayout.Expected));
        var bad = MbufLayout.Expected;
        bad.DataOff = 18;
        bad.StructSize = 192;
        var msg = MbufLayout.Check(bad);
        Assert.NotNull(msg);
        Assert.Contains("data_off is 18, expected 16", msg, StringComparison.Ordinal);
        Assert.Contains("sizeof(rte_mbuf) is 192, expected 128", msg, StringComparison.Ordinal);
    }

    [Fact]
    public void Pci_devargs_are_recognised()
    {
        Assert.True(Ports.DpdkPort.IsPciDevArgs("0000:00:04.0"));
        Assert.True(Ports.DpdkPort.IsPciDevArgs("00:04.0,rxq_pkt_len=128"));
        Assert.False(Ports.DpdkPort.IsPciDevArgs("net_null0,size=64"));
    }
}
