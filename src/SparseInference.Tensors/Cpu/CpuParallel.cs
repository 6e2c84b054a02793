namespace SparseInference.Tensors.Cpu;

/// <summary>Splits a range of independent work items over the backend's threads.</summary>
internal sealed class CpuParallel
{
    private readonly ParallelOptions _options;

    public CpuParallel(int threads)
    {
        Threads = threads;
        _options = new ParallelOptions { MaxDegreeOfParallelism = threads };
    }

    public int Threads { get; }

    /// <summary>Runs body(i) for i in [0, count); serially when there is one thread or one item.</summary>
    public void For(int count, Action<int> body)
    {
        if (count <= 0) return;
        if (Threads == 1 || count == 1)
        {
            for (var i = 0; i < count; i++) body(i);
            return;
        }
        Parallel.For(0, count, _options, body);
    }

    /// <summary>
    /// Runs body(start, end) over contiguous chunks of [0, count), at most one chunk per thread, and
    /// serially when the total work (count·costPerItem) is too small to pay for a thread hand-off.
    /// </summary>
    public void ForRange(long count, long costPerItem, Action<long, long> body)
    {
        if (count <= 0) return;
        const long MinWorkPerThread = 32 * 1024;
        var chunks = (int)Math.Min(Threads, Math.Max(1, count * Math.Max(1, costPerItem) / MinWorkPerThread));
        chunks = (int)Math.Min(chunks, count);
        if (chunks <= 1)
        {
            body(0, count);
            return;
        }
        Parallel.For(0, chunks, _options, c =>
        {
            var start = count * c / chunks;
            var end = count * (c + 1) / chunks;
            body(start, end);
        });
    }
}
