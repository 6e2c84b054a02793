namespace SparseInference.Serving.Repository;

/// <summary>A count and the total nanoseconds spent, as Triton's statistics extension reports them.</summary>
public readonly record struct DurationStatistic(long Count, long Nanoseconds);

/// <summary>Per batch size: how many executions and the time spent in each phase.</summary>
public sealed record BatchStatistic(int BatchSize, DurationStatistic ComputeInput, DurationStatistic ComputeInfer, DurationStatistic ComputeOutput);

/// <summary>Counters of one model version, updated lock-free by every request that version serves.</summary>
public sealed class ModelVersionStatistics
{
    private readonly Counter _success = new();
    private readonly Counter _fail = new();
    private readonly Counter _queue = new();
    private readonly Counter _computeInput = new();
    private readonly Counter _computeInfer = new();
    private readonly Counter _computeOutput = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, BatchCounters> _batches = new();
    private long _inferenceCount;
    private long _executionCount;
    private long _lastInferenceUnixMs;

    public DurationStatistic Success => _success.Read();
    public DurationStatistic Fail => _fail.Read();
    public DurationStatistic Queue => _queue.Read();
    public DurationStatistic ComputeInput => _computeInput.Read();
    public DurationStatistic ComputeInfer => _computeInfer.Read();
    public DurationStatistic ComputeOutput => _computeOutput.Read();

    /// <summary>Sequences inferred (a request carrying a batch of 4 counts 4).</summary>
    public long InferenceCount => Interlocked.Read(ref _inferenceCount);

    /// <summary>Forward passes run.</summary>
    public long ExecutionCount => Interlocked.Read(ref _executionCount);

    public long LastInferenceUnixMs => Interlocked.Read(ref _lastInferenceUnixMs);

    public IReadOnlyList<BatchStatistic> Batches =>
        [.. _batches.OrderBy(b => b.Key).Select(b => new BatchStatistic(b.Key, b.Value.Input.Read(), b.Value.Infer.Read(), b.Value.Output.Read()))];

    /// <summary>One request answered: <paramref name="sequences"/> is its batch dimension; times are this request's own.</summary>
    public void RecordSuccess(int sequences, long totalNs, long queueNs, long inputNs, long inferNs, long outputNs, DateTimeOffset finishedAt)
    {
        _success.Add(totalNs);
        _queue.Add(queueNs);
        _computeInput.Add(inputNs);
        _computeInfer.Add(inferNs);
        _computeOutput.Add(outputNs);
        Interlocked.Add(ref _inferenceCount, sequences);
        Interlocked.Exchange(ref _lastInferenceUnixMs, finishedAt.ToUnixTimeMilliseconds());
    }

    /// <summary>
    /// One forward pass run, whatever number of requests it served: <paramref name="batchSize"/> is the real number
    /// of sequences in it (Triton's batch_stats and execution_count count executions, not requests).
    /// </summary>
    public void RecordExecution(int batchSize, long inputNs, long inferNs, long outputNs)
    {
        Interlocked.Increment(ref _executionCount);
        var batch = _batches.GetOrAdd(batchSize, static _ => new BatchCounters());
        batch.Input.Add(inputNs);
        batch.Infer.Add(inferNs);
        batch.Output.Add(outputNs);
    }

    public void RecordFailure(long totalNs) => _fail.Add(totalNs);

    private sealed class Counter
    {
        private long _count;
        private long _ns;

        public void Add(long ns)
        {
            Interlocked.Increment(ref _count);
            Interlocked.Add(ref _ns, ns);
        }

        public DurationStatistic Read() => new(Interlocked.Read(ref _count), Interlocked.Read(ref _ns));
    }

    private sealed class BatchCounters
    {
        public Counter Input { get; } = new();
        public Counter Infer { get; } = new();
        public Counter Output { get; } = new();
    }
}
