using System.Runtime.ExceptionServices;

namespace SparseInference.Tensors.Cpu;

/// <summary>
/// A small persistent pool: Threads − 1 background workers plus the calling thread share the items of one
/// <see cref="Run"/> at a time through an atomic counter. Each call publishes a job object, so a worker that wakes
/// late finds its items taken and never touches a later call's state; the caller waits only for items that were
/// claimed. Idle workers spin briefly for the next call (ops in a forward pass follow each other within
/// microseconds), then sleep on a semaphore. A call made while the pool is busy (another thread, or a nested call)
/// runs inline on its caller.
/// </summary>
internal sealed class CpuWorkerPool : IDisposable
{
    /// <summary>How long an idle worker spins for the next call before it sleeps.</summary>
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 20_000; // 50 µs

    private readonly Thread[] _workers;
    private readonly SemaphoreSlim _signal = new(0);
    private Job? _job;
    private int _busy;
    private int _sleepers;
    private volatile bool _stopping;

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, Lazy<CpuWorkerPool>> s_shared = new();

    /// <summary>The process-wide pool for a thread count; its workers sleep when idle and never need disposing.</summary>
    public static CpuWorkerPool Shared(int threads) =>
        s_shared.GetOrAdd(threads, t => new Lazy<CpuWorkerPool>(() => new CpuWorkerPool(t))).Value;

    public CpuWorkerPool(int threads)
    {
        _workers = new Thread[threads - 1];
        for (var i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"cpu-backend-worker-{i + 1}" };
            _workers[i].Start();
        }
    }

    /// <summary>Runs body(i) for i in [0, count) on the pool and the caller; returns when all are done.</summary>
    public void Run(int count, Action<int> body)
    {
        if (count <= 0) return;
        // Not a Monitor: a nested call on the owning thread must run inline, not re-enter.
        if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            for (var i = 0; i < count; i++) body(i);
            return;
        }
        try
        {
            var job = new Job(body, count);
            // A full fence between publishing the job and reading the sleeper count (a worker increments the count,
            // then re-reads the job): with a plain store the read could pass it and a worker going to sleep would miss
            // this call, which then runs on the caller alone.
            Interlocked.Exchange(ref _job, job);
            var sleepers = Volatile.Read(ref _sleepers);
            if (sleepers > 0) _signal.Release(Math.Min(sleepers, _workers.Length));
            job.Work();
            // Items are short: yield while waiting, but never sleep a whole millisecond.
            var spin = new SpinWait();
            while (Volatile.Read(ref job.Done) < count) spin.SpinOnce(sleep1Threshold: -1);
            job.Error?.Throw();
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    private void WorkerLoop()
    {
        Job? seen = null;
        while (!_stopping)
        {
            var job = Volatile.Read(ref _job);
            var spinUntil = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
            while (ReferenceEquals(job, seen) && !_stopping)
            {
                if (System.Diagnostics.Stopwatch.GetTimestamp() < spinUntil)
                {
                    Thread.SpinWait(8);
                }
                else
                {
                    Interlocked.Increment(ref _sleepers);
                    // Re-check after registering as a sleeper, so a job published meanwhile is not missed.
                    if (ReferenceEquals(Volatile.Read(ref _job), seen) && !_stopping) _signal.Wait();
                    Interlocked.Decrement(ref _sleepers);
                    spinUntil = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
                }
                job = Volatile.Read(ref _job);
            }
            if (_stopping) return;
            seen = job;
            job!.Work();
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _signal.Release(_workers.Length);
        foreach (var w in _workers) w.Join();
        _signal.Dispose();
    }

    private sealed class Job(Action<int> body, int count)
    {
        private int _next;
        public int Done;
        public ExceptionDispatchInfo? Error;

        public void Work()
        {
            int i;
            while ((i = Interlocked.Increment(ref _next) - 1) < count)
            {
                try
                {
                    body(i);
                }
                catch (Exception ex)
                {
                    Interlocked.CompareExchange(ref Error, ExceptionDispatchInfo.Capture(ex), null);
                }
                Interlocked.Increment(ref Done);
            }
        }
    }
}
