using SparseInference.Models;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Protocol;

/// <summary>What running one request's forward cost: its result, time spent queued and time spent computing.</summary>
public readonly record struct InferenceExecution(ForwardResult Result, TimeSpan Queue, TimeSpan Compute);

/// <summary>
/// Runs a validated forward for a request. The default runs it at once on the caller's thread; a scheduler
/// (dynamic batching) replaces it through dependency injection.
/// </summary>
public interface IInferenceExecutor
{
    ValueTask<InferenceExecution> ExecuteAsync(ModelVersion model, ForwardInput input, AttentionSpec attention, CancellationToken cancellationToken);
}

internal sealed class DirectInferenceExecutor(TimeProvider time) : IInferenceExecutor
{
    public ValueTask<InferenceExecution> ExecuteAsync(ModelVersion model, ForwardInput input, AttentionSpec attention, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var started = time.GetTimestamp();
        var result = model.Model.Forward(input, attention);
        return ValueTask.FromResult(new InferenceExecution(result, TimeSpan.Zero, time.GetElapsedTime(started)));
    }
}
