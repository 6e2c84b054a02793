using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.LoadGen.Tests;

public sealed class LoadGenOptionsTests
{
    [Fact]
    public void Parse_SweepAndReplayArguments_SetsEveryField()
    {
        var options = LoadGenOptions.Parse(
            ["--protocol", "grpc", "--concurrency", "1,8,32,128", "--duration", "5", "--csv-dir", "../shared/data/skab", "--parameter", "variant=bigbird-0.75", "--json", "--encoding", "binary"]);

        Assert.Equal(Protocol.Grpc, options.Protocol);
        Assert.Equal([1, 8, 32, 128], options.Concurrency);
        Assert.Equal(TimeSpan.FromSeconds(5), options.Duration);
        Assert.Equal("../shared/data/skab", options.CsvDirectory);
        Assert.Equal("bigbird-0.75", options.Parameters["variant"]);
        Assert.True(options.Json);
        Assert.True(options.Binary);
    }

    [Theory]
    [InlineData("--concurrency", "1,0", "--concurrency expects a positive integer, but got '0'.")]
    [InlineData("--rate", "fast", "--rate expects a positive number, but got 'fast'.")]
    [InlineData("--protocol", "http3", "--protocol expects one of rest|grpc, but got 'http3'.")]
    [InlineData("--parameter", "novalue", "--parameter expects KEY=VALUE, but got 'novalue'.")]
    public void Parse_BadValue_NamesOptionExpectedAndActual(string name, string value, string message)
    {
        var ex = Assert.Throws<ArgumentException>(() => LoadGenOptions.Parse([name, value]));
        Assert.Equal(message, ex.Message);
    }

    [Fact]
    public void Parse_MissingValue_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => LoadGenOptions.Parse(["--duration"]));
        Assert.Contains("--duration expects a value", ex.Message);
    }

    [Fact]
    public void ServerCounters_TritonStatisticsBody_SumsVersionsAndComputesAverages()
    {
        const string body = """
            {"model_stats":[
              {"name":"m","version":"1","inference_count":30,"execution_count":10,
               "inference_stats":{"success":{"count":30,"ns":9000000},"queue":{"count":30,"ns":3000000},"compute_infer":{"count":30,"ns":6000000}}},
              {"name":"m","version":"2","inference_count":10,"execution_count":10,
               "inference_stats":{"success":{"count":10,"ns":1},"queue":{"count":10,"ns":1000000},"compute_infer":{"count":10,"ns":2000000}}}]}
            """;

        var counters = ServerCounters.Parse(body);
        var delta = counters.Minus(new ServerCounters(0, 20, 2_000_000, 20, 4_000_000, 10, 20));

        Assert.Equal(new ServerCounters(40, 40, 4_000_000, 40, 8_000_000, 20, 40), counters);
        Assert.Equal(100, counters.AverageQueueUs);
        Assert.Equal(200, counters.AverageComputeUs);
        Assert.Equal(2, counters.AverageBatch);
        Assert.Equal(100, delta.AverageQueueUs);
        Assert.Equal(2, delta.AverageBatch);
    }
}
