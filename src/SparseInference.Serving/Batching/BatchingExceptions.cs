namespace SparseInference.Serving.Batching;

/// <summary>A request the batcher refused or gave up on before it reached the executor.</summary>
public abstract class BatchRejectedException : Exception
{
    protected BatchRejectedException(string message) : base(message)
    {
    }

    /// <summary>Metric label for the rejection: <c>queue_full</c> or <c>deadline</c>.</summary>
    public abstract string Reason { get; }
}

/// <summary>
/// The variant's queue was at its hard bound when the request arrived. Protocol mapping:
/// HTTP 429 with <c>Retry-After</c>, gRPC RESOURCE_EXHAUSTED.
/// </summary>
public sealed class QueueFullException : BatchRejectedException
{
    public QueueFullException(int maxQueueSize, TimeSpan retryAfter)
        : base($"The request queue is full ({maxQueueSize} requests queued, the configured MaxQueueSize); retry after {Math.Ceiling(retryAfter.TotalSeconds)} s.")
    {
        MaxQueueSize = maxQueueSize;
        RetryAfter = retryAfter;
    }

    public override string Reason => "queue_full";

    public int MaxQueueSize { get; }

    /// <summary>Suggested wait before retrying: an estimate of how long the queue takes to drain.</summary>
    public TimeSpan RetryAfter { get; }

    /// <summary><see cref="RetryAfter"/> rounded up to whole seconds, as the HTTP header wants it.</summary>
    public int RetryAfterSeconds => (int)Math.Ceiling(RetryAfter.TotalSeconds);
}

/// <summary>
/// The request's queue timeout passed before it was scheduled; it was never executed. Protocol mapping:
/// HTTP 504, gRPC DEADLINE_EXCEEDED.
/// </summary>
public sealed class DeadlineExceededException : BatchRejectedException
{
    public DeadlineExceededException(TimeSpan timeout)
        : base($"The request waited longer than its queue timeout of {timeout.TotalMilliseconds:0.###} ms and was not executed.")
    {
        Timeout = timeout;
    }

    public override string Reason => "deadline";

    public TimeSpan Timeout { get; }
}
