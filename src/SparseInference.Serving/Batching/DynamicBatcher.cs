using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SparseInference.Serving.Metrics;

namespace SparseInference.Serving.Batching;

/// <summary>
/// Dynamic micro-batcher for one model variant: queues requests and runs them as batches on
/// <see cref="DynamicBatcherOptions.Workers"/> concurrent executor calls. Which requests form a batch, and when,
/// is the <see cref="BatchingPolicy"/>'s call (work-conserving by default, Triton's queue delay on request);
/// size, preferred sizes, priority, timeouts and sequence length shape every batch alike.
/// </summary>
/// <remarks>
/// This file: admission and the public surface. <c>DynamicBatcher.Scheduling.cs</c>: the scheduler loop, which owns the
/// <see cref="BatchQueue"/>, asks the policy and arms the timer. <c>DynamicBatcher.Execution.cs</c>: running batches
/// on workers and completing requests.
/// Producers only touch an atomic admission counter and an unbounded channel. One scheduler loop owns
/// every queue structure, so batch formation needs no locks. Every wake-up (new request, timer, a
/// finished batch) is a channel write plus a signal, which keeps the loop a single wait. All time comes
/// from the injected <see cref="TimeProvider"/>.
/// The scheduler and the workers are threads of their own that the signal wakes directly: as thread-pool
/// work items, each wake-up and each dispatch waited behind the request handlers queued on the pool
/// (under load, hundreds of microseconds per hop, more than the queue delay itself). With one worker (the default)
/// the scheduler thread runs each batch itself, saving the hand-off to a worker.
/// </remarks>
public sealed partial class DynamicBatcher<TRequest, TResponse> : IAsyncDisposable
{
    private readonly IBatchExecutor<TRequest, TResponse> _executor;
    private readonly TimeProvider _time;
    private readonly ServingMetrics? _metrics;
    private readonly VariantLabels _labels;
    private readonly ILogger _logger;

    private readonly int _maxBatchSize;
    private readonly int _priorityLevels;
    private readonly int _defaultPriority;
    private readonly int _maxQueueSize;
    private readonly long _defaultTimeoutMicroseconds;
    private readonly int _workers;
    private readonly TimeSpan _minRetryAfter;

    private readonly Channel<Pending> _channel;
    private readonly CancellationTokenSource _shutdown = new();

    // Shared.
    private int _queued;
    private int _busy;
    private int _stopping;
    private long _averageBatchTicks;

    private long _success;
    private long _failure;
    private long _queueNs;
    private long _computeNs;
    private long _executions;
    private long _inferences;
    private long _rejectedFull;
    private long _rejectedDeadline;
    private long _cancelled;

    public DynamicBatcher(
        IBatchExecutor<TRequest, TResponse> executor,
        DynamicBatcherOptions options,
        TimeProvider? timeProvider = null,
        ServingMetrics? metrics = null,
        VariantLabels labels = default,
        ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(executor);
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(labels.Variant ?? string.Empty);

        _executor = executor;
        _time = timeProvider ?? TimeProvider.System;
        _metrics = metrics;
        _labels = labels;
        _logger = logger ?? NullLogger.Instance;

        _maxBatchSize = options.MaxBatchSize;
        _priorityLevels = options.PriorityLevels;
        _defaultPriority = options.DefaultPriorityLevel;
        _maxQueueSize = options.MaxQueueSize;
        _defaultTimeoutMicroseconds = options.DefaultTimeoutMicroseconds;
        _workers = options.Workers;
        _minRetryAfter = options.MinRetryAfter;

        _policy = BatchingPolicy.Create(options, _time.TimestampFrequency);
        _queue = new BatchQueue(options.PriorityLevels, options.TimeoutAction, options.MaxQueueSize);
        _armSlackTicks = MicrosecondsToTicks(ArmSlackMicroseconds);

        // Not SingleReader: that variant cannot count its items, which the idle check needs.
        _channel = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });
        _wake = new Pending(this);
        // The system clock's own timers are too coarse for sub-millisecond queue delays; same clock, finer timers.
        var timers = ReferenceEquals(_time, TimeProvider.System) ? HighResolutionTimeProvider.Shared : _time;
        _timer = timers.CreateTimer(static s => ((DynamicBatcher<TRequest, TResponse>)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _workerThreads = new Worker[_workers];
        for (var i = 0; i < _workers; i++)
        {
            _workerThreads[i] = new Worker(this, i);
            _idleWorkers.Enqueue(_workerThreads[i]);
        }
        _scheduler = Task.Factory.StartNew(RunScheduler, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>Requests admitted and not yet dispatched, cancelled or expired. Never above MaxQueueSize.</summary>
    public int QueueDepth => Volatile.Read(ref _queued);

    /// <summary>Batches executing now.</summary>
    public int BusyWorkers => Volatile.Read(ref _busy);

    /// <summary>Cumulative counters for the statistics endpoint.</summary>
    public BatcherStatistics Statistics => new(
        Interlocked.Read(ref _success),
        Interlocked.Read(ref _failure),
        Interlocked.Read(ref _queueNs),
        Interlocked.Read(ref _computeNs),
        Interlocked.Read(ref _executions),
        Interlocked.Read(ref _inferences),
        Interlocked.Read(ref _rejectedFull),
        Interlocked.Read(ref _rejectedDeadline),
        Interlocked.Read(ref _cancelled));

    /// <summary>
    /// Queues a request and completes with its response once its batch has run.
    /// </summary>
    /// <exception cref="QueueFullException">Thrown at once when the queue is at MaxQueueSize.</exception>
    /// <exception cref="DeadlineExceededException">The task faults with it when the queue timeout passes first (Reject).</exception>
    /// <exception cref="OperationCanceledException">The task is cancelled when <paramref name="cancellationToken"/> fires.</exception>
    /// <exception cref="ArgumentOutOfRangeException">Priority or timeout outside the allowed range.</exception>
    /// <exception cref="ObjectDisposedException">The batcher is shutting down.</exception>
    public Task<TResponse> EnqueueAsync(TRequest request, BatchRequestOptions options = default, CancellationToken cancellationToken = default)
    {
        var submitted = SubmitAsync(request, options, cancellationToken);
        return Unwrap(submitted);

        static async Task<TResponse> Unwrap(Task<BatchResult<TResponse>> task) => (await task.ConfigureAwait(false)).Response;
    }

    /// <summary>
    /// As <see cref="EnqueueAsync"/>, and also reports the request's queue time, compute time and batch size
    /// (what Triton's statistics extension needs per request).
    /// </summary>
    public Task<BatchResult<TResponse>> SubmitAsync(TRequest request, BatchRequestOptions options = default, CancellationToken cancellationToken = default)
    {
        if (options.Priority < 0 || options.Priority > _priorityLevels)
            throw new ArgumentOutOfRangeException(nameof(options), options.Priority, $"Priority must be between 0 (default) and {_priorityLevels}, but was {options.Priority}.");
        if (options.TimeoutMicroseconds < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.TimeoutMicroseconds, $"TimeoutMicroseconds must be 0 (none) or more, but was {options.TimeoutMicroseconds}.");
        cancellationToken.ThrowIfCancellationRequested();

        var length = _executor.GetSequenceLength(request);
        if (length < 0)
            throw new ArgumentOutOfRangeException(nameof(request), length, $"Sequence length must be 0 or more, but was {length}.");
        var size = _executor.GetBatchSize(request);
        if (size < 1 || size > _maxBatchSize)
            throw new ArgumentOutOfRangeException(nameof(request), size, $"The request's batch size must be between 1 and MaxBatchSize ({_maxBatchSize}), but was {size}.");

        if (!TryAdmit())
        {
            Interlocked.Increment(ref _rejectedFull);
            _metrics?.RecordRejection(_labels, RejectionReasons.QueueFull);
            throw new QueueFullException(_maxQueueSize, EstimateRetryAfter());
        }

        Pending pending;
        var counted = false;
        try
        {
            if (Volatile.Read(ref _stopping) != 0)
                throw new ObjectDisposedException(GetType().Name, "The batcher is shutting down and accepts no requests.");

            var timeoutMicroseconds = EffectiveTimeout(options.TimeoutMicroseconds);
            var now = _time.GetTimestamp();
            pending = new Pending(this)
            {
                Request = request,
                Length = length,
                Size = size,
                Level = (options.Priority == 0 ? _defaultPriority : options.Priority) - 1,
                EnqueuedAt = now,
                Timeout = timeoutMicroseconds == 0 ? TimeSpan.Zero : SaturatingTimeSpan(timeoutMicroseconds),
                TimeoutAt = timeoutMicroseconds == 0 ? long.MaxValue : SaturatingAdd(now, MicrosecondsToTicks(timeoutMicroseconds)),
            };
            _metrics?.QueueDepthChanged(_labels, 1);
            counted = true;
            if (cancellationToken.CanBeCanceled)
                pending.Registration = cancellationToken.UnsafeRegister(static (s, token) => ((Pending)s!).OnCancelled(token), pending);
        }
        catch
        {
            // The slot taken above goes back on every path that does not hand the request to the scheduler:
            // a slot lost here would stay taken for good, and MaxQueueSize such losses refuse every later request.
            if (counted)
                _metrics?.QueueDepthChanged(_labels, -1);
            LeaveQueue();
            Wake();
            throw;
        }

        _channel.Writer.TryWrite(pending);
        _signal.Set();
        return pending.Task;
    }

    /// <summary>Stops admitting, sends what is queued without waiting for the queue delay, and waits for running batches.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopping, 1) != 0)
        {
            await _scheduler.ConfigureAwait(false);
            return;
        }
        Wake();
        await _scheduler.ConfigureAwait(false);
        foreach (var worker in _workerThreads)
            worker.Stop();
        _timer.Dispose();
        _shutdown.Dispose();
    }

    /// <summary>Executor calls that have finished and told the scheduler so.</summary>
    internal long FinishedBatches => Interlocked.Read(ref _finishedBatches);

    /// <summary>
    /// True when the scheduler has taken in everything sent to it (requests, timer and completion wake-ups)
    /// and is waiting. The channel count is read first: it drops to zero only after the loop has marked
    /// itself busy, so a stale idle mark cannot be mistaken for a fresh one.
    /// </summary>
    internal bool IsIdle => _channel.Reader.Count == 0 && Volatile.Read(ref _idleAt) != long.MinValue;

    private long EffectiveTimeout(long clientMicroseconds)
    {
        if (_defaultTimeoutMicroseconds == 0)
            return clientMicroseconds;
        if (clientMicroseconds == 0)
            return _defaultTimeoutMicroseconds;
        return Math.Min(clientMicroseconds, _defaultTimeoutMicroseconds);
    }

    private bool TryAdmit()
    {
        // A compare-and-swap loop rather than increment-then-undo: the count itself never exceeds the bound.
        var current = Volatile.Read(ref _queued);
        while (true)
        {
            if (current >= _maxQueueSize)
                return false;
            var seen = Interlocked.CompareExchange(ref _queued, current + 1, current);
            if (seen == current)
                return true;
            current = seen;
        }
    }

    private void LeaveQueue() => Interlocked.Decrement(ref _queued);

    private TimeSpan EstimateRetryAfter()
    {
        var averageTicks = Interlocked.Read(ref _averageBatchTicks);
        var batchesAhead = Math.Ceiling((double)Volatile.Read(ref _queued) / _maxBatchSize / _workers);
        var estimate = averageTicks == 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(batchesAhead * averageTicks / _time.TimestampFrequency);
        return estimate > _minRetryAfter ? estimate : _minRetryAfter;
    }

    private long MicrosecondsToTicks(long microseconds) =>
        (long)Math.Min((double)microseconds * _time.TimestampFrequency / 1_000_000d, long.MaxValue / 4);

    private static long SaturatingAdd(long a, long b) => b > long.MaxValue - a ? long.MaxValue : a + b;

    private static TimeSpan SaturatingTimeSpan(long microseconds) =>
        microseconds >= TimeSpan.MaxValue.Ticks / TimeSpan.TicksPerMicrosecond ? TimeSpan.MaxValue : TimeSpan.FromTicks(microseconds * TimeSpan.TicksPerMicrosecond);

    private long TicksToNanoseconds(long ticks) => (long)(ticks * (1_000_000_000d / _time.TimestampFrequency));

    private void OnCancelledWhileQueued()
    {
        LeaveQueue();
        Interlocked.Increment(ref _cancelled);
        _metrics?.QueueDepthChanged(_labels, -1);
    }

    /// <summary>A queued request and the task its caller awaits.</summary>
    private sealed class Pending : QueuedRequest
    {
        private readonly DynamicBatcher<TRequest, TResponse> _owner;
        private readonly TaskCompletionSource<BatchResult<TResponse>> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Pending(DynamicBatcher<TRequest, TResponse> owner)
        {
            _owner = owner;
        }

        public TRequest Request = default!;
        public TimeSpan QueueTime;
        public TimeSpan Timeout;
        public CancellationTokenRegistration Registration;

        public Task<BatchResult<TResponse>> Task => _completion.Task;

        public bool TrySetResult(BatchResult<TResponse> result) => _completion.TrySetResult(result);

        public bool TrySetException(Exception exception) => _completion.TrySetException(exception);

        public void OnCancelled(CancellationToken token)
        {
            if (TryCancel())
                _owner.OnCancelledWhileQueued();
            // Once dispatched the batch runs on, but the caller stops waiting for its share of it.
            _completion.TrySetCanceled(token);
        }
    }
}
