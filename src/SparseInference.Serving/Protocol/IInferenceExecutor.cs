using SparseInference.Models;
using SparseInference.Serving.Batching;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Variants;

namespace SparseInference.Serving.Protocol;

/// <summary>What running one request's forward cost: its result, time queued, time computing and the sequences in its forward.</summary>
public readonly record struct InferenceExecution(ForwardResult Result, TimeSpan Queue, TimeSpan Compute, int BatchSize);

/// <summary>
/// The variant a request was routed to. <see cref="OwnWeights"/> is set when the variant runs on weights of its own;
/// otherwise it runs <see cref="Spec"/> on the resolved model version. <see cref="Generation"/> tells two builds of one
/// name apart, so a batch never mixes specs across a hot swap.
/// </summary>
public sealed record ExecutionVariant(string Name, long Generation, AttentionSpec Spec, IVariantModel? OwnWeights = null)
{
    public ForwardResult Forward(ModelVersion model, ForwardInput input) =>
        OwnWeights is not null ? OwnWeights.Forward(input, Spec) : model.Model.Forward(input, Spec);
}

/// <summary>
/// Runs a validated forward for a request. The default runs it at once on the caller's thread; a scheduler
/// (dynamic batching) replaces it through dependency injection.
/// </summary>
public interface IInferenceExecutor
{
    /// <exception cref="InferenceException">Overloaded (queue full) or DeadlineExceeded (never executed).</exception>
    ValueTask<InferenceExecution> ExecuteAsync(
        ModelVersion model, ExecutionVariant variant, ForwardInput input, BatchRequestOptions scheduling, CancellationToken cancellationToken);
}

/// <summary>Runs every request alone, at once: one execution per request.</summary>
public sealed class DirectInferenceExecutor(TimeProvider time) : IInferenceExecutor
{
    public ValueTask<InferenceExecution> ExecuteAsync(
        ModelVersion model, ExecutionVariant variant, ForwardInput input, BatchRequestOptions scheduling, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var started = time.GetTimestamp();
        var result = variant.Forward(model, input);
        var compute = time.GetElapsedTime(started);
        model.Statistics.RecordExecution(input.Batch, 0, compute.Ticks * 100, 0);
        return ValueTask.FromResult(new InferenceExecution(result, TimeSpan.Zero, compute, input.Batch));
    }
}
