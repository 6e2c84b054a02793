namespace SparseInference.Serving.Batching;

/// <summary>Names of the batching policies (<see cref="DynamicBatcherOptions.Policy"/>, serving.json <c>batching.policy</c>).</summary>
public static class BatchingPolicies
{
    /// <summary>
    /// The default. A free worker and a non-empty queue mean a batch now: nothing waits for batch-mates while a
    /// worker could run it. Requests that arrive while every worker is busy go together at the next free worker.
    /// </summary>
    public const string WorkConserving = "work_conserving";

    /// <summary>
    /// Triton's dynamic batcher: a partial batch waits up to <see cref="DynamicBatcherOptions.MaxQueueDelayMicroseconds"/>
    /// for batch-mates; a full batch or a preferred size goes at once.
    /// </summary>
    public const string Delay = "delay";

    public static IReadOnlyList<string> All { get; } = [WorkConserving, Delay];
}

/// <summary>
/// Decides, when a worker is free, which queued requests run now as one batch, or until when to wait.
/// Pure: a queue and a clock reading in, a batch or the instant to look again out; no threads, no clock of its own.
/// </summary>
/// <remarks>
/// Both policies form batches alike: priority levels in order (within a level, requests within their timeout
/// oldest first, then those kept past it), up to MaxBatchSize sequences, a request that does not fit skipped for
/// smaller ones behind it, and a request that would push padding waste over MaxPaddingWaste left for a batch of
/// similar lengths. They differ only in whether a partial batch waits.
/// </remarks>
internal abstract class BatchingPolicy
{
    private readonly int _maxBatchSize;
    private readonly int[] _preferredDescending;
    private readonly double _maxPaddingWaste;

    private protected BatchingPolicy(DynamicBatcherOptions options)
    {
        _maxBatchSize = options.MaxBatchSize;
        _preferredDescending = options.PreferredBatchSizes.Distinct().OrderDescending().ToArray();
        _maxPaddingWaste = options.MaxPaddingWaste;
    }

    /// <summary>The policy that <paramref name="options"/> name; <paramref name="ticksPerSecond"/> is the clock's frequency.</summary>
    public static BatchingPolicy Create(DynamicBatcherOptions options, long ticksPerSecond) => options.Policy switch
    {
        BatchingPolicies.WorkConserving => new WorkConservingPolicy(options),
        BatchingPolicies.Delay => new DelayPolicy(options, ticksPerSecond),
        _ => throw new ArgumentOutOfRangeException(nameof(options), options.Policy, $"Policy must be one of {string.Join(", ", BatchingPolicies.All)}, but was '{options.Policy}'."),
    };

    /// <summary>
    /// Called while at least one worker is free. Fills <paramref name="batch"/> with the requests to run now and
    /// returns true, or returns false with <paramref name="dispatchAt"/> the clock reading at which a batch will be
    /// due (<see cref="long.MaxValue"/>: only a new request or a freed worker can change the answer).
    /// </summary>
    /// <param name="idleWorkers">Workers free now (at least 1).</param>
    /// <param name="draining">The batcher is shutting down: nothing waits for batch-mates.</param>
    public bool TryFormBatch(BatchQueue queue, long now, int idleWorkers, bool draining, List<QueuedRequest> batch, out long dispatchAt)
    {
        dispatchAt = long.MaxValue;
        var (sequences, oldest) = Collect(queue, batch);
        if (batch.Count == 0)
            return false;
        if (sequences >= _maxBatchSize || draining)
            return true;
        return SendPartial(batch, sequences, oldest, now, idleWorkers, ref dispatchAt);
    }

    /// <summary>Decides for a batch below MaxBatchSize; false clears <paramref name="batch"/> and sets <paramref name="dispatchAt"/>.</summary>
    private protected abstract bool SendPartial(List<QueuedRequest> batch, int sequences, long oldest, long now, int idleWorkers, ref long dispatchAt);

    /// <summary>Trims <paramref name="batch"/> to the largest preferred size that a prefix of it adds up to exactly; false when none does.</summary>
    private protected bool TrimToPreferredSize(List<QueuedRequest> batch, int sequences)
    {
        foreach (var preferred in _preferredDescending)
        {
            if (preferred > sequences)
                continue;
            var prefix = 0;
            for (var i = 0; i < batch.Count && prefix < preferred; i++)
            {
                prefix += batch[i].Size;
                if (prefix == preferred)
                {
                    batch.RemoveRange(i + 1, batch.Count - i - 1);
                    return true;
                }
            }
        }
        return false;
    }

    private (int Sequences, long Oldest) Collect(BatchQueue queue, List<QueuedRequest> batch)
    {
        batch.Clear();
        var candidate = new Candidate { Oldest = long.MaxValue };
        for (var level = 0; level < queue.PriorityLevels && candidate.Sequences < _maxBatchSize; level++)
        {
            foreach (var request in queue.WithinTimeout(level))
            {
                if (candidate.Sequences >= _maxBatchSize)
                    break;
                if (!request.PastTimeout)
                    Consider(request, batch, ref candidate);
            }
            foreach (var request in queue.PastTimeout(level))
            {
                if (candidate.Sequences >= _maxBatchSize)
                    break;
                Consider(request, batch, ref candidate);
            }
        }
        return (candidate.Sequences, candidate.Oldest);
    }

    private void Consider(QueuedRequest request, List<QueuedRequest> batch, ref Candidate candidate)
    {
        // A request that does not fit in what is left waits for the next batch; smaller ones behind it may fill the gap.
        if (!request.IsQueued || candidate.Sequences + request.Size > _maxBatchSize)
            return;

        // Greedy length bucketing: every prefix of the batch keeps padding waste within the bound,
        // so trimming the batch to a preferred size keeps it too.
        var maxLength = Math.Max(candidate.MaxLength, request.Length);
        var sumLength = candidate.SumLength + ((long)request.Length * request.Size);
        var sequences = candidate.Sequences + request.Size;
        if (batch.Count > 0 && maxLength > 0 && 1d - ((double)sumLength / (sequences * (double)maxLength)) > _maxPaddingWaste + 1e-12)
            return;
        candidate = new Candidate { MaxLength = maxLength, SumLength = sumLength, Sequences = sequences, Oldest = Math.Min(candidate.Oldest, request.EnqueuedAt) };
        batch.Add(request);
    }

    private struct Candidate
    {
        public long MaxLength;
        public long SumLength;
        public int Sequences;
        public long Oldest;
    }

    /// <summary>A partial batch goes at once. Preferred sizes are honoured only where that costs no waiting: the rest goes to another free worker.</summary>
    private sealed class WorkConservingPolicy(DynamicBatcherOptions options) : BatchingPolicy(options)
    {
        private protected override bool SendPartial(List<QueuedRequest> batch, int sequences, long oldest, long now, int idleWorkers, ref long dispatchAt)
        {
            if (idleWorkers > 1)
                TrimToPreferredSize(batch, sequences);
            return true;
        }
    }

    /// <summary>A preferred size goes at once; any other partial batch once its oldest request has waited MaxQueueDelay.</summary>
    private sealed class DelayPolicy(DynamicBatcherOptions options, long ticksPerSecond) : BatchingPolicy(options)
    {
        private readonly long _delayTicks = (long)Math.Min((double)options.MaxQueueDelayMicroseconds * ticksPerSecond / 1_000_000d, long.MaxValue / 4);

        private protected override bool SendPartial(List<QueuedRequest> batch, int sequences, long oldest, long now, int idleWorkers, ref long dispatchAt)
        {
            if (TrimToPreferredSize(batch, sequences) || now - oldest >= _delayTicks)
                return true;
            dispatchAt = oldest + _delayTicks;
            batch.Clear();
            return false;
        }
    }
}
