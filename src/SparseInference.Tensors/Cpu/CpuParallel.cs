namespace SparseInference.Tensors.Cpu;

/// <summary>How the CPU backend spreads an op over its threads.</summary>
public enum CpuThreading
{
    /// <summary>Parallel.For on the shared .NET thread pool.</summary>
    ParallelFor,
    /// <summary>
    /// A persistent pool of Threads − 1 workers, shared by the backends of the same thread count: lower hand-off
    /// latency than Parallel.For for the small ops of a forward pass (measured by the benchmark's threading mode).
    /// </summary>
    WorkerPool,
}

/// <summary>Splits a range of independent work items over the backend's threads.</summary>
internal sealed class CpuParallel : IDisposable
{
    private readonly ParallelOptions _options;
    private readonly CpuWorkerPool? _pool;

    public CpuParallel(int threads, CpuThreading threading)
    {
        Threads = threads;
        Threading = threading;
        _options = new ParallelOptions { MaxDegreeOfParallelism = threads };
        if (threading == CpuThreading.WorkerPool && threads > 1) _pool = CpuWorkerPool.Shared(threads);
    }

    public int Threads { get; }

    public CpuThreading Threading { get; }

    public void Dispose()
    {
        // The pool is shared by every backend with this thread count and lives as long as the process.
    }

    /// <summary>Runs body(i) for i in [0, count); serially when there is one thread or one item.</summary>
    public void For(int count, Action<int> body)
    {
        if (count <= 0) return;
        if (Threads == 1 || count == 1)
        {
            for (var i = 0; i < count; i++) body(i);
            return;
        }
        if (_pool is not null) _pool.Run(count, body);
        else Parallel.For(0, count, _options, body);
    }

    /// <summary>Runs body(i) for i in [0, count) on at most <paramref name="maxThreads"/> threads (1: on the caller).</summary>
    public void For(int count, int maxThreads, Action<int> body)
    {
        if (maxThreads <= 1)
        {
            for (var i = 0; i < count; i++) body(i);
            return;
        }
        For(count, body);
    }

    /// <summary>
    /// Runs body(start, end) over contiguous chunks of [0, count), at most four chunks per thread, and
    /// serially when the total work (count·costPerItem) is too small to pay for a thread hand-off.
    /// </summary>
    public void ForRange(long count, long costPerItem, Action<long, long> body)
    {
        if (count <= 0) return;
        const long MinWorkPerThread = 32 * 1024;
        // Up to four chunks per thread, claimed dynamically, so one descheduled thread does not stall the op.
        var chunks = (int)Math.Min(4L * Threads, Math.Max(1, count * Math.Max(1, costPerItem) / MinWorkPerThread));
        chunks = (int)Math.Min(chunks, count);
        if (chunks <= 1)
        {
            body(0, count);
            return;
        }
        For(chunks, c =>
        {
            var start = count * c / chunks;
            var end = count * (c + 1) / chunks;
            body(start, end);
        });
    }
}
