using SparseInference.Models;
using SparseInference.Serving.Batching;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Tests.TestDoubles;

namespace SparseInference.Serving.Tests.Batching;

public sealed class BatchingInferenceExecutorTests : IDisposable
{
    private readonly TempRepository _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Concatenate_DifferentLengths_PadsToLongestWithLengths()
    {
        var config = ScaledEchoModel.Continuous(channels: 2);
        var a = new ForwardInput { Batch = 1, Time = 2, Values = [1, 2, 3, 4] };
        var b = new ForwardInput { Batch = 2, Time = 3, Values = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16] };
        var batched = BatchingInferenceExecutor.ForwardBatchExecutor.Concatenate([a, b], config);
        Assert.Equal(3, batched.Batch);
        Assert.Equal(3, batched.Time);
        Assert.Equal([2, 3, 3], batched.Lengths!);
        Assert.Equal([1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], batched.Values!);
    }

    [Fact]
    public void Split_PaddedOutput_ReturnsEachRequestsRowsAndDensePairs()
    {
        var config = ScaledEchoModel.Continuous(channels: 2);
        var a = new ForwardInput { Batch = 1, Time = 2, Values = [1, 2, 3, 4] };
        var b = new ForwardInput { Batch = 1, Time = 3, Values = [5, 6, 7, 8, 9, 10] };
        var batched = BatchingInferenceExecutor.ForwardBatchExecutor.Concatenate([a, b], config);
        var result = new ForwardResult { Output = [.. batched.Values!.Select(v => v * 2)], Shape = [2, 3, 2], ComputedPairs = 13, DensePairs = 13 };
        var split = BatchingInferenceExecutor.ForwardBatchExecutor.Split(result, [a, b], batched, config);
        Assert.Equal([2, 4, 6, 8], split[0].Output);
        Assert.Equal([1, 2, 2], split[0].Shape);
        Assert.Equal(4, split[0].DensePairs);
        Assert.Equal(4, split[0].ComputedPairs);
        Assert.Equal([10, 12, 14, 16, 18, 20], split[1].Output);
        Assert.Equal(9, split[1].DensePairs);
    }

    [Fact]
    public async Task ExecuteAsync_ConcurrentRequests_RunAsOneBatchEachGettingItsOwnOutput()
    {
        _temp.AddVersion("m", "1", channels: 2, maxSeqLen: 8, threshold: 0.1)
            .WithServing("m", """{"batching":{"policy":"delay","max_batch_size":8,"max_queue_delay_ms":300}}""");
        using var repository = _temp.Open();
        repository.LoadAll();
        var model = repository.Resolve("m", null);
        await using var executor = new BatchingInferenceExecutor(TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<BatchingInferenceExecutor>.Instance);
        var variant = new ExecutionVariant("dense", 1, new AttentionSpec("dense"));
        var inputs = Enumerable.Range(2, 3).Select(t => new ForwardInput { Batch = 1, Time = t, Values = [.. Enumerable.Range(0, t * 2).Select(i => (float)(i + t))] }).ToArray();

        var executions = await Task.WhenAll(inputs.Select(i => executor.ExecuteAsync(model, variant, i, default, default).AsTask()));

        for (var r = 0; r < inputs.Length; r++)
        {
            Assert.Equal(inputs[r].Values!.Select(v => v * 0.5f), executions[r].Result.Output);
            Assert.Equal([1, inputs[r].Time, 2], executions[r].Result.Shape);
            Assert.Equal(3, executions[r].BatchSize);
        }

        Assert.Equal(1, model.Statistics.ExecutionCount);
        Assert.Equal(3, Assert.Single(model.Statistics.Batches).BatchSize);
    }

    [Fact]
    public async Task ExecuteAsync_DrainedVersion_RunsAloneWithoutBatcher()
    {
        _temp.AddVersion("m", "1", channels: 2, maxSeqLen: 8, threshold: 0.1);
        using var repository = _temp.Open();
        repository.LoadAll();
        var model = repository.Resolve("m", null);
        await using var executor = new BatchingInferenceExecutor(TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<BatchingInferenceExecutor>.Instance);
        var variant = new ExecutionVariant("dense", 1, new AttentionSpec("dense"));
        await executor.ExecuteAsync(model, variant, new ForwardInput { Batch = 1, Time = 1, Values = [1, 2] }, default, default);
        Assert.Equal(1, executor.BatcherCount);

        repository.Unload("m");
        await executor.DrainAsync([model]);
        var late = await executor.ExecuteAsync(model, variant, new ForwardInput { Batch = 1, Time = 1, Values = [4, 6] }, default, default);

        Assert.Equal(0, executor.BatcherCount);
        Assert.Equal([2f, 3f], late.Result.Output);
    }

    [Fact]
    public void ModelRepository_Load_BadBatchingBlock_IsUnavailableNamingKey()
    {
        _temp.AddVersion("m", "1", channels: 2, maxSeqLen: 8, threshold: 0.1)
            .WithServing("m", """{"batching":{"max_batch_sise":8}}""");
        using var repository = _temp.Open();
        var ex = Assert.Throws<InferenceException>(() => repository.Load("m"));
        Assert.Contains("batching.max_batch_sise", ex.Message);
    }
}
