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
    /// Sequences the request carries (its batch dimension); they count toward MaxBatchSize and preferred
    /// sizes. A request larger than MaxBatchSize is refused. Default 1.
    /// </summary>
    int GetBatchSize(TRequest request) => 1;

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

/// <summary>A response with what producing it cost, for per-request statistics.</summary>
/// <param name="Response">The executor's response for this request.</param>
/// <param name="QueueTime">From admission to dispatch.</param>
/// <param name="ComputeTime">The executor call that produced the response (the single retry, if the batch failed).</param>
/// <param name="BatchSize">Sequences in that executor call.</param>
public readonly record struct BatchResult<TResponse>(TResponse Response, TimeSpan QueueTime, TimeSpan ComputeTime, int BatchSize);

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
