// Unit tests of the metrics endpoint setting (--metrics, "metrics"): what it binds, what it refuses
// and how (no DPDK needed).
using System.Net;
using VSwitch.Config;
using VSwitch.Daemon;

namespace VSwitch.Tests;

public sealed class MetricsConfigTests
{
    [Theory]
    [InlineData("9100", "127.0.0.1", 9100)]
    [InlineData(":9100", "127.0.0.1", 9100)]
    [InlineData(" :1 ", "127.0.0.1", 1)]
    [InlineData("65535", "127.0.0.1", 65535)]
    [InlineData("127.0.0.2:9100", "127.0.0.2", 9100)]
    [InlineData("192.0.2.7:80", "192.0.2.7", 80)]
    [InlineData("0.0.0.0:9100", "0.0.0.0", 9100)]
    public void A_port_alone_binds_loopback_and_an_address_binds_that_address(string text, string address, int port)
    {
        Assert.True(MetricsEndpoint.TryParse(text, out var e, out string error), error);
        Assert.Equal(IPAddress.Parse(address), e!.Address);
        Assert.Equal(port, e.Port);
        Assert.Equal($"{address}:{port}", e.ToString());
        Assert.Equal(address.StartsWith("127.", StringComparison.Ordinal), e.IsLoopback);
        Assert.Equal(address == "0.0.0.0", e.IsAny);
    }

    [Theory]
    [InlineData("", "the port is missing")]
    [InlineData(":", "the port is missing")]
    [InlineData("10.0.0.1:", "the port is missing")]
    [InlineData("0", "port '0' is not a number from 1 to 65535")]
    [InlineData("65536", "port '65536' is not a number from 1 to 65535")]
    [InlineData("-1", "port '-1' is not a number from 1 to 65535")]
    [InlineData("+80", "port '+80' is not a number from 1 to 65535")]
    [InlineData("http", "port 'http' is not a number from 1 to 65535")]
    [InlineData("9100:", "the port is missing")]
    [InlineData("localhost:9100", "'localhost' is not an IPv4 address")]
    [InlineData("1.2.3:9100", "'1.2.3' is not an IPv4 address")]
    [InlineData("1.2.3.256:9100", "'1.2.3.256' is not an IPv4 address")]
    [InlineData("0x7f.0.0.1:9100", "'0x7f.0.0.1' is not an IPv4 address")]
    [InlineData("[::1]:9100", "IPv6 addresses are not supported")]
    [InlineData("::1:9100", "IPv6 addresses are not supported")]
    public void Anything_else_is_refused_with_the_reason(string text, string reason)
    {
        Assert.False(MetricsEndpoint.TryParse(text, out var e, out string error));
        Assert.Null(e);
        Assert.StartsWith(reason, error, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error);
    }

    [Fact]
    public void Metrics_are_off_unless_asked_for()
    {
        Assert.Null(new SwitchConfig().Metrics);
        Assert.Null(SwitchConfig.FromJson("{}", "t.json").Metrics);
        Assert.Null(Options.Parse([])!.Metrics);
        Assert.Null(SwitchConfig.FromJson("""{ "metrics": null }""", "t.json").Metrics);
    }

    [Fact]
    public void The_json_key_takes_a_string_or_a_port_number()
    {
        Assert.Equal("127.0.0.1:9100", SwitchConfig.FromJson("""{ "metrics": 9100 }""", "t.json").Metrics!.ToString());
        Assert.Equal("127.0.0.1:9100", SwitchConfig.FromJson("""{ "metrics": ":9100" }""", "t.json").Metrics!.ToString());
        Assert.Equal("10.1.2.3:9100", SwitchConfig.FromJson("""{ "metrics": "10.1.2.3:9100" }""", "t.json").Metrics!.ToString());
    }

    [Theory]
    [InlineData("""{ "metrics": "localhost:9100" }""", "t.json: $.metrics: 'localhost' is not an IPv4 address")]
    [InlineData("""{ "metrics": 0 }""", "t.json: $.metrics: port '0' is not a number from 1 to 65535")]
    [InlineData("""{ "metrics": 9100.5 }""", "t.json: $.metrics: port '9100.5' is not a number")]
    [InlineData("""{ "metrics": true }""", "t.json: $.metrics: expected a string such as \"127.0.0.1:9100\", a port number or null")]
    [InlineData("""{ "metrics": "" }""", "t.json: $.metrics: the port is missing")]
    public void Json_errors_name_the_file_and_the_key(string json, string expected)
    {
        var e = Assert.Throws<VSwitchException>(() => SwitchConfig.FromJson(json, "t.json"));
        Assert.StartsWith(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_option_overrides_the_config_file_and_none_turns_it_off()
    {
        var dir = Directory.CreateTempSubdirectory("vsw-metrics-").FullName;
        try
        {
            var cfg = Path.Combine(dir, "c.json");
            File.WriteAllText(cfg, """{ "metrics": "0.0.0.0:9100" }""");
            Assert.Equal("0.0.0.0:9100", Options.Parse(["--config", cfg])!.Metrics!.ToString());
            Assert.Equal("127.0.0.1:9200", Options.Parse(["--config", cfg, "--metrics", "9200"])!.Metrics!.ToString());
            Assert.Null(Options.Parse(["--config", cfg, "--metrics", "none"])!.Metrics);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("localhost:9100", "--metrics 'localhost:9100': 'localhost' is not an IPv4 address")]
    [InlineData("99999", "--metrics '99999': port '99999' is not a number from 1 to 65535")]
    [InlineData("[::1]:9100", "--metrics '[::1]:9100': IPv6 addresses are not supported")]
    public void A_bad_option_is_a_usage_error_of_one_line(string value, string expected)
    {
        var e = Assert.Throws<UsageException>(() => Options.Parse(["--metrics", value]));
        Assert.StartsWith(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains("needs a value", Assert.Throws<UsageException>(() => Options.Parse(["--metrics"])).Message, StringComparison.Ordinal);
    }
}
