using System.Text.Json;
using SparseInference.Serving.Batching;

namespace SparseInference.Serving.Tests.Batching;

/// <summary>Every number a manifest or a load's override gives the batcher is range-checked where it is read.</summary>
public sealed class DynamicBatcherOptionsBoundsTests
{
    private static DynamicBatcherOptions Read(string json) =>
        DynamicBatcherOptionsJson.Read(JsonDocument.Parse(json).RootElement);

    [Theory]
    [InlineData("""{ "max_batch_size": 1025 }""", "batching.max_batch_size must be between 1 and 1024, but was 1025.")]
    [InlineData("""{ "max_batch_size": 0 }""", "batching.max_batch_size must be between 1 and 1024, but was 0.")]
    [InlineData("""{ "max_queue_delay_microseconds": 10000000 }""", "batching.max_queue_delay_microseconds must be between 0 and 5000000, but was 10000000.")]
    [InlineData("""{ "max_queue_delay_ms": 10000 }""", "batching.max_queue_delay_ms must be between 0 and 5000, but was 10000.")]
    [InlineData("""{ "max_queue_delay_ms": 1e300 }""", "batching.max_queue_delay_ms must be between 0 and 5000, but was 1e300.")]
    [InlineData("""{ "priority_levels": 1000000000 }""", "batching.priority_levels must be between 1 and 64, but was 1000000000.")]
    [InlineData("""{ "workers": 100000 }""", "batching.workers must be between 1 and 64, but was 100000.")]
    [InlineData("""{ "preferred_batch_size": [2, 5000] }""", "batching.preferred_batch_size[1] must be between 1 and 1024, but was 5000.")]
    [InlineData("""{ "default_queue_policy": { "max_queue_size": 1e12 } }""", "batching.default_queue_policy.max_queue_size must be between 1 and 65536, but was 1e12.")]
    [InlineData("""{ "default_queue_policy": { "default_timeout_microseconds": 1000000000000000000 } }""", "batching.default_queue_policy.default_timeout_microseconds must be between 0 and 3600000000, but was 1000000000000000000.")]
    public void Read_NumberOutsideItsRange_ThrowsNamingKeyBoundsAndValue(string json, string message)
    {
        Assert.Equal(message, Assert.Throws<FormatException>(() => Read(json)).Message);
    }

    [Fact]
    public void Read_IntegersWrittenWithAnExponent_AreIntegers()
    {
        Assert.Equal(1000, Read("""{ "default_queue_policy": { "max_queue_size": 1e3 } }""").MaxQueueSize);
    }

    [Fact]
    public void Read_ValuesAtTheBounds_Accepted()
    {
        var options = Read("""{ "max_batch_size": 1024, "max_queue_delay_ms": 5000, "priority_levels": 64, "workers": 64, "default_queue_policy": { "max_queue_size": 65536, "default_timeout_microseconds": 3600000000 } }""");
        Assert.Equal(1024, options.MaxBatchSize);
        Assert.Equal(5_000_000, options.MaxQueueDelayMicroseconds);
        Assert.Equal(64, options.PriorityLevels);
        Assert.Equal(64, options.Workers);
        Assert.Equal(65536, options.MaxQueueSize);
        Assert.Equal(3_600_000_000, options.DefaultTimeoutMicroseconds);
    }
}
