using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using SparseInference.Serving.Batching;
using SparseInference.Serving.Metrics;
using SparseInference.Serving.Tests.Batching;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Serving.Tests.Metrics;

/// <summary>What the dynamic batcher records on the serving instruments, read from the instruments themselves.</summary>
public sealed class BatcherMetricsTests : IDisposable
{
    private static readonly VariantLabels Sparse = new("pump-encoder", "1", "bigbird-0.9");

    private readonly ServingMetrics _metrics = new();
    private readonly MetricCollector<long> _queueDepth;
    private readonly MetricCollector<int> _batchSize;
    private readonly MetricCollector<double> _paddingWaste;
    private readonly MetricCollector<double> _queueDuration;
    private readonly MetricCollector<long> _rejections;

    public BatcherMetricsTests()
    {
        _queueDepth = new(_metrics.Meter, "sparseinference.queue.depth");
        _batchSize = new(_metrics.Meter, "sparseinference.batch.size");
        _paddingWaste = new(_metrics.Meter, "sparseinference.batch.padding_waste");
        _queueDuration = new(_metrics.Meter, "sparseinference.queue.duration");
        _rejections = new(_metrics.Meter, "sparseinference.rejections");
    }

    public void Dispose()
    {
        _queueDepth.Dispose();
        _batchSize.Dispose();
        _paddingWaste.Dispose();
        _queueDuration.Dispose();
        _rejections.Dispose();
        _metrics.Dispose();
    }

    [Fact]
    public async Task DynamicBatcher_DelayPolicyWithMetrics_RecordsQueueBatchAndRejectionSeries()
    {
        var clock = new ManualTimeProvider();
        var executor = new TestExecutor();
        var options = new DynamicBatcherOptions { Policy = BatchingPolicies.Delay, MaxBatchSize = 4, MaxQueueSize = 3, MaxQueueDelayMicroseconds = 1000 };
        var batcher = new DynamicBatcher<Work, string>(executor, options, clock, _metrics, Sparse);
        try
        {
            var tasks = new[] { batcher.EnqueueAsync(new Work("a", 10)), batcher.EnqueueAsync(new Work("b", 6)), batcher.EnqueueAsync(new Work("c", 8)) };
            Assert.Throws<QueueFullException>(() => { _ = batcher.EnqueueAsync(new Work("d")); });
            Assert.Equal(3, Sum(_queueDepth));

            clock.AdvanceMicroseconds(250);
            await Eventually.TrueAsync(() => batcher.IsIdle, "the scheduler is idle");
            clock.AdvanceMicroseconds(750);
            await Eventually.CompletesAsync(Task.WhenAll(tasks), "the batch completes");

            AssertBatcherSeries(batches: 1, sequences: 3, queueSeconds: 3 * 0.001);
        }
        finally
        {
            await batcher.DisposeAsync();
        }
    }

    [Fact]
    public async Task DynamicBatcher_WorkConservingWithMetrics_RecordsQueueBatchAndRejectionSeries()
    {
        var clock = new ManualTimeProvider();
        var executor = new TestExecutor { Gated = true };
        var options = new DynamicBatcherOptions { MaxBatchSize = 4, MaxQueueSize = 3 };
        var batcher = new DynamicBatcher<Work, string>(executor, options, clock, _metrics, Sparse);
        try
        {
            // The first request runs at once and holds the only worker; the next three wait for it.
            var blocker = batcher.EnqueueAsync(new Work("blocker", 10));
            await executor.WaitForBatchesAsync(1);
            var tasks = new[] { batcher.EnqueueAsync(new Work("a", 10)), batcher.EnqueueAsync(new Work("b", 6)), batcher.EnqueueAsync(new Work("c", 8)) };
            Assert.Throws<QueueFullException>(() => { _ = batcher.EnqueueAsync(new Work("d")); });
            Assert.Equal(3, Sum(_queueDepth));

            clock.AdvanceMicroseconds(250);
            await Eventually.TrueAsync(() => batcher.IsIdle, "the scheduler is idle");
            executor.Open();
            await Eventually.CompletesAsync(Task.WhenAll(tasks.Append(blocker)), "both batches complete");

            // The blocker did not wait; the three waited 250 µs for the worker.
            AssertBatcherSeries(batches: 2, sequences: 4, queueSeconds: 3 * 0.00025);
        }
        finally
        {
            executor.Open();
            await batcher.DisposeAsync();
        }
    }

    /// <summary>After the batches of a, b, c (lengths 10, 6, 8, one batch) and one request refused for a full queue.</summary>
    private void AssertBatcherSeries(int batches, int sequences, double queueSeconds)
    {
        Assert.Equal(0, Sum(_queueDepth));
        var sizes = Of(_batchSize);
        Assert.Equal(batches, sizes.Count);
        Assert.Equal(sequences, sizes.Sum(m => m.Value));
        Assert.Equal(1 - 24d / 30, Of(_paddingWaste).Sum(m => m.Value), 12);
        Assert.Equal(queueSeconds, Of(_queueDuration).Sum(m => m.Value), 12);
        var rejection = Assert.Single(Of(_rejections));
        Assert.Equal(1, rejection.Value);
        Assert.Equal(RejectionReasons.QueueFull, rejection.Tags["reason"]);
    }

    /// <summary>The measurements of <see cref="Sparse"/>'s series.</summary>
    private static List<CollectedMeasurement<T>> Of<T>(MetricCollector<T> collector)
        where T : struct =>
        [.. collector.GetMeasurementSnapshot().Where(m => m.Tags[VariantLabels.VariantKey] as string == Sparse.Variant)];

    private static long Sum(MetricCollector<long> collector) => Of(collector).Sum(m => m.Value);
}
