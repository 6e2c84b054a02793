using System.Text.Json;
using SparseInference.Serving.Batching;

namespace SparseInference.Serving.Tests.Batching;

public sealed class DynamicBatcherOptionsJsonTests
{
    private static DynamicBatcherOptions Read(string json) =>
        DynamicBatcherOptionsJson.Read(JsonDocument.Parse(json).RootElement);

    [Fact]
    public void Read_TritonStyleBlock_SetsEveryKnob()
    {
        var options = Read("""
            {
              "policy": "delay",
              "max_batch_size": 16,
              "max_queue_delay_microseconds": 750,
              "preferred_batch_size": [4, 8],
              "priority_levels": 3,
              "default_priority_level": 2,
              "workers": 2,
              "max_padding_waste": 0.3,
              "default_queue_policy": { "max_queue_size": 128, "default_timeout_microseconds": 50000, "timeout_action": "DELAY", "allow_timeout_override": true }
            }
            """);

        Assert.Equal(BatchingPolicies.Delay, options.Policy);
        Assert.Equal(16, options.MaxBatchSize);
        Assert.Equal(750, options.MaxQueueDelayMicroseconds);
        Assert.Equal([4, 8], options.PreferredBatchSizes);
        Assert.Equal(3, options.PriorityLevels);
        Assert.Equal(2, options.DefaultPriorityLevel);
        Assert.Equal(2, options.Workers);
        Assert.Equal(0.3, options.MaxPaddingWaste);
        Assert.Equal(128, options.MaxQueueSize);
        Assert.Equal(50000, options.DefaultTimeoutMicroseconds);
        Assert.Equal(TimeoutAction.Delay, options.TimeoutAction);
        Assert.Empty(options.Validate());
    }

    [Fact]
    public void Read_DelayInMilliseconds_ConvertsToMicroseconds()
    {
        var options = Read("""{ "max_batch_size": 8, "max_queue_delay_ms": 2 }""");
        Assert.Equal(8, options.MaxBatchSize);
        Assert.Equal(2000, options.MaxQueueDelayMicroseconds);
    }

    [Fact]
    public void Read_NoBlock_GivesDefaults()
    {
        var options = DynamicBatcherOptionsJson.Read(null);
        Assert.Equal(new DynamicBatcherOptions().MaxBatchSize, options.MaxBatchSize);
        Assert.Equal(new DynamicBatcherOptions().MaxQueueSize, options.MaxQueueSize);
        Assert.Equal(BatchingPolicies.WorkConserving, options.Policy);
    }

    [Theory]
    [InlineData("\"work_conserving\"", BatchingPolicies.WorkConserving)]
    [InlineData("\"DELAY\"", BatchingPolicies.Delay)]
    public void Read_Policy_SelectsIt(string value, string expected)
    {
        var options = Read($$"""{ "policy": {{value}}, "max_queue_delay_microseconds": 300 }""");
        Assert.Equal(expected, options.Policy);
        Assert.Equal(300, options.MaxQueueDelayMicroseconds);
    }

    [Theory]
    [InlineData("""{ "max_batch_size": "8" }""", "batching.max_batch_size must be an integer, but was \"8\".")]
    [InlineData("""{ "max_batch_sise": 8 }""", "batching.max_batch_sise is not a known batching setting")]
    [InlineData("""{ "default_queue_policy": { "timeout_action": "DROP" } }""", "batching.default_queue_policy.timeout_action must be \"REJECT\" or \"DELAY\", but was \"DROP\".")]
    [InlineData("""{ "preferred_batch_size": [2, 2.5] }""", "batching.preferred_batch_size[1] must be an integer, but was 2.5.")]
    [InlineData("""{ "policy": "eager" }""", "batching.policy must be one of \"work_conserving\", \"delay\", but was \"eager\".")]
    [InlineData("""{ "policy": 1 }""", "batching.policy must be one of \"work_conserving\", \"delay\", but was 1.")]
    public void Read_BadEntry_ThrowsNamingTheKey(string json, string message)
    {
        var ex = Assert.Throws<FormatException>(() => Read(json));
        Assert.StartsWith(message, ex.Message);
    }
}
