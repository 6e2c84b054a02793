using SparseInference.Serving.Batching;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Serving.Tests.Batching;

/// <summary>A request's queue slot goes back on every path out of admission.</summary>
public sealed class DynamicBatcherAdmissionTests
{
    [Theory]
    [InlineData(1_000_000_000_000_000_000L)]
    [InlineData(long.MaxValue)]
    public async Task SubmitAsync_TimeoutBeyondWhatATimeSpanHolds_ServedAndTheQueueEmpties(long timeoutMicroseconds)
    {
        var executor = new TestExecutor();
        var options = new DynamicBatcherOptions { MaxBatchSize = 1, MaxQueueDelayMicroseconds = 0, MaxQueueSize = 2 };
        var batcher = new DynamicBatcher<Work, string>(executor, options, new ManualTimeProvider());
        try
        {
            // More requests than the queue holds, one after the other: none may leave its slot behind.
            for (var i = 0; i < 5; i++)
            {
                var result = await Eventually.CompletesAsync(
                    batcher.EnqueueAsync(new Work($"r{i}"), new BatchRequestOptions(TimeoutMicroseconds: timeoutMicroseconds)), $"request {i} completes");
                Assert.Equal($"done:r{i}", result);
            }

            Assert.Equal(0, batcher.QueueDepth);
        }
        finally
        {
            // Disposing waits for the queue to empty: a slot left taken would make it wait for ever.
            await batcher.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        }
    }
}
