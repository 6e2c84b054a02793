namespace SparseInference.Serving.Batching;

/// <summary>Runs a list of requests of one variant as one batch (e.g. one padded <c>ForwardInput</c>).</summary>
public interface IBatchExecutor<TRequest, TResponse>
{
    /// <summary>
    /// Sequence length (time steps) of a request, used to bucket requests of similar lengths and to
    /// report padding waste. Return the same value for every request when lengths are fixed.
    /// </summary>
    int GetSequenceLength(TRequest request);

    /// <summary>
    /// Executes the batch and returns one response per request, in order. Throwing fails nobody yet:
    /// the batcher retries each member alone, so only the culprit sees the exception.
    /// </summary>
    ValueTask<IReadOnlyList<TResponse>> ExecuteAsync(IReadOnlyList<TRequest> batch, CancellationToken cancellationToken);
}

/// <summary>Per-request scheduling choices from the client.</summary>
/// <param name="Priority">1 is the highest level; 0 uses the batcher's default level.</param>
/// <param name="TimeoutMicroseconds">Client queue timeout; 0 means none. It can only shorten the configured default.</param>
public readonly record struct BatchRequestOptions(int Priority = 0, long TimeoutMicroseconds = 0);

/// <summary>Cumulative counters of one batcher, in the shape Triton's statistics extension reports.</summary>
public readonly record struct BatcherStatistics(
    long SuccessCount,
    long FailureCount,
    long QueueNanoseconds,
    long ComputeNanoseconds,
    long ExecutionCount,
    long InferenceCount,
    long RejectedQueueFull,
    long RejectedDeadline,
    long Cancelled);
