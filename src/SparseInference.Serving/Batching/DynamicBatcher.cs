using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SparseInference.Serving.Metrics;

namespace SparseInference.Serving.Batching;

/// <summary>
/// Dynamic micro-batcher for one model variant (Triton's dynamic batcher): queues requests, forms
/// batches by size, preferred sizes, queue delay, priority and sequence length, and runs them on
/// <see cref="DynamicBatcherOptions.Workers"/> concurrent executor calls.
/// </summary>
/// <remarks>
/// Producers only touch an atomic admission counter and an unbounded channel. One scheduler loop owns
/// every queue structure, so batch formation needs no locks. Every wake-up (new request, timer, a
/// finished batch) is a channel write plus a signal, which keeps the loop a single wait. All time comes
/// from the injected <see cref="TimeProvider"/>.
/// The scheduler and the workers are threads of their own that the signal wakes directly: as thread-pool
/// work items, each wake-up and each dispatch waited behind the request handlers queued on the pool
/// (under load, hundreds of microseconds per hop, more than the queue delay itself). With one worker (the default)
/// the scheduler thread runs each batch itself, saving the hand-off to a worker.
/// </remarks>
public sealed class DynamicBatcher<TRequest, TResponse> : IAsyncDisposable
{
    private const int Queued = 0;
    private const int Dispatched = 1;
    private const int Cancelled = 2;
    private const int Expired = 3;

    // Arming a timer takes about a microsecond; a clock that moved on further meanwhile means the thread was descheduled.
    private const long ArmSlackMicroseconds = 20;

    private readonly IBatchExecutor<TRequest, TResponse> _executor;
    private readonly TimeProvider _time;
    private readonly ServingMetrics? _metrics;
    private readonly VariantLabels _labels;
    private readonly ILogger _logger;

    private readonly int _maxBatchSize;
    private readonly int[] _preferredDescending;
    private readonly long _queueDelayTicks;
    private readonly long _armSlackTicks;
    private readonly int _priorityLevels;
    private readonly int _defaultPriority;
    private readonly int _maxQueueSize;
    private readonly long _defaultTimeoutMicroseconds;
    private readonly TimeoutAction _timeoutAction;
    private readonly int _workers;
    private readonly double _maxPaddingWaste;
    private readonly TimeSpan _minRetryAfter;

    private readonly Channel<Pending> _channel;
    private readonly Pending _wake;
    private readonly ManualResetEventSlim _signal = new(false, spinCount: 0);
    private readonly ITimer _timer;
    private readonly Task _scheduler;
    private readonly Worker[] _workerThreads;
    private readonly System.Collections.Concurrent.ConcurrentQueue<Worker> _idleWorkers = new();
    private readonly CancellationTokenSource _shutdown = new();

    // Scheduler-owned: touched only by the scheduler loop.
    private readonly List<Pending>[] _normal;
    private readonly List<Pending>[] _delayed;
    private readonly PriorityQueue<Pending, long> _deadlines = new();
    private readonly List<Pending> _group = [];
    private long _armedFor = long.MaxValue;
    private bool _firedEarly;
    private long _sequence;
    private int _listed;

    // Shared.
    private int _queued;
    private int _busy;
    private int _stopping;
    private int _timerFired;
    private long _finishedBatches;
    private long _idleAt = long.MinValue;
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
        _preferredDescending = options.PreferredBatchSizes.Distinct().OrderDescending().ToArray();
        _queueDelayTicks = MicrosecondsToTicks(options.MaxQueueDelayMicroseconds);
        _armSlackTicks = MicrosecondsToTicks(ArmSlackMicroseconds);
        _priorityLevels = options.PriorityLevels;
        _defaultPriority = options.DefaultPriorityLevel;
        _maxQueueSize = options.MaxQueueSize;
        _defaultTimeoutMicroseconds = options.DefaultTimeoutMicroseconds;
        _timeoutAction = options.TimeoutAction;
        _workers = options.Workers;
        _maxPaddingWaste = options.MaxPaddingWaste;
        _minRetryAfter = options.MinRetryAfter;

        _normal = new List<Pending>[_priorityLevels];
        _delayed = new List<Pending>[_priorityLevels];
        for (var i = 0; i < _priorityLevels; i++)
        {
            _normal[i] = [];
            _delayed[i] = [];
        }

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

    private void Wake()
    {
        _channel.Writer.TryWrite(_wake);
        _signal.Set();
    }

    private void OnTimer()
    {
        Volatile.Write(ref _timerFired, 1);
        Wake();
    }

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

    private void RunScheduler()
    {
        Thread.CurrentThread.Name = "Dynamic batcher scheduler";
        var reader = _channel.Reader;
        while (true)
        {
            Volatile.Write(ref _idleAt, long.MinValue);
            // Reset before draining: a write after this point sets the signal again, so the wait below cannot miss it.
            _signal.Reset();
            while (reader.TryRead(out var item))
            {
                if (!ReferenceEquals(item, _wake))
                    Admit(item);
            }

            var now = _time.GetTimestamp();
            if (Interlocked.Exchange(ref _timerFired, 0) == 1)
            {
                // A one-shot timer that has fired is no longer armed. System timers count whole milliseconds
                // and may fire before the due instant; the loop then re-arms for what is left.
                _firedEarly = _armedFor != long.MaxValue && now < _armedFor;
                _armedFor = long.MinValue;
            }
            try
            {
                ExpireDue(now);
                var nextDispatchAt = long.MaxValue;
                var ranInline = false;
                while (!ranInline && Volatile.Read(ref _busy) < _workers && TryFormBatch(now, out nextDispatchAt))
                    ranInline = Dispatch(now);
                if (ranInline)
                {
                    // Time has moved on by a forward: read the clock and expire again before forming the next batch.
                    continue;
                }
                if (_listed > 2 * _maxQueueSize + 64)
                    Compact();

                if (Volatile.Read(ref _stopping) != 0 && Volatile.Read(ref _queued) == 0 && Volatile.Read(ref _busy) == 0)
                    break;
                if (ArmTimer(nextDispatchAt))
                {
                    // The clock reached the moment while the loop ran: go again rather than wait for the timer.
                    continue;
                }
            }
            catch (Exception ex)
            {
                // The loop must survive anything; a bug here would otherwise strand every queued request.
                BatchingLog.SchedulerFault(_logger, _labels.Variant ?? string.Empty, ex);
            }

            Volatile.Write(ref _idleAt, now);
            _signal.Wait();
        }

        // Shutting down with nothing queued: items admitted and then cancelled may still sit in lists; drop them.
        foreach (var list in _normal)
            list.Clear();
        foreach (var list in _delayed)
            list.Clear();
        Volatile.Write(ref _idleAt, _time.GetTimestamp());
    }

    private void Admit(Pending pending)
    {
        if (Volatile.Read(ref pending.State) != Queued)
            return;
        pending.Sequence = _sequence++;
        _normal[pending.Level].Add(pending);
        _listed++;
        if (pending.TimeoutAt != long.MaxValue)
            _deadlines.Enqueue(pending, pending.TimeoutAt);
    }

    private void ExpireDue(long now)
    {
        while (_deadlines.TryPeek(out var pending, out var at) && at <= now)
        {
            _deadlines.Dequeue();
            if (Volatile.Read(ref pending.State) != Queued)
                continue;
            if (_timeoutAction == TimeoutAction.Delay)
            {
                if (!pending.Delayed)
                {
                    pending.Delayed = true;
                    _delayed[pending.Level].Add(pending);
                    _listed++;
                }
                continue;
            }
            if (Interlocked.CompareExchange(ref pending.State, Expired, Queued) != Queued)
                continue;
            LeaveQueue();
            _metrics?.QueueDepthChanged(_labels, -1);
            _metrics?.RecordRejection(_labels, RejectionReasons.Deadline);
            Interlocked.Increment(ref _rejectedDeadline);
            pending.Registration.Unregister();
            pending.TrySetException(new DeadlineExceededException(pending.Timeout));
        }

        // Entries of cancelled or dispatched requests wait in the heap until their time; rebuild if they pile up.
        if (_deadlines.Count > 4 * _maxQueueSize + 64)
        {
            var live = new List<(Pending, long)>();
            while (_deadlines.TryDequeue(out var p, out var at))
            {
                if (Volatile.Read(ref p.State) == Queued)
                    live.Add((p, at));
            }
            _deadlines.EnqueueRange(live);
        }
    }

    /// <summary>
    /// Fills <see cref="_group"/> with the batch to send now and returns true, or returns false and the
    /// time at which the queue delay will force a partial batch out.
    /// </summary>
    private bool TryFormBatch(long now, out long nextDispatchAt)
    {
        nextDispatchAt = long.MaxValue;
        _group.Clear();
        long maxLength = 0;
        long sumLength = 0;
        var sequences = 0;
        var oldest = long.MaxValue;

        for (var level = 0; level < _priorityLevels && sequences < _maxBatchSize; level++)
        {
            Collect(_normal[level], skipDelayed: true, ref maxLength, ref sumLength, ref sequences, ref oldest);
            Collect(_delayed[level], skipDelayed: false, ref maxLength, ref sumLength, ref sequences, ref oldest);
        }

        if (_group.Count == 0)
            return false;
        if (sequences >= _maxBatchSize)
            return true;

        // The largest preferred size that some prefix of the group adds up to exactly.
        foreach (var preferred in _preferredDescending)
        {
            if (preferred > sequences)
                continue;
            var prefix = 0;
            for (var i = 0; i < _group.Count && prefix < preferred; i++)
            {
                prefix += _group[i].Size;
                if (prefix == preferred)
                {
                    _group.RemoveRange(i + 1, _group.Count - i - 1);
                    return true;
                }
            }
        }

        if (Volatile.Read(ref _stopping) != 0 || now - oldest >= _queueDelayTicks)
            return true;
        nextDispatchAt = SaturatingAdd(oldest, _queueDelayTicks);
        _group.Clear();
        return false;
    }

    private void Collect(List<Pending> list, bool skipDelayed, ref long maxLength, ref long sumLength, ref int sequences, ref long oldest)
    {
        foreach (var pending in list)
        {
            if (sequences >= _maxBatchSize)
                return;
            if (Volatile.Read(ref pending.State) != Queued || (skipDelayed && pending.Delayed))
                continue;
            // A request that does not fit in what is left waits for the next batch; smaller ones behind it may fill the gap.
            if (sequences + pending.Size > _maxBatchSize)
                continue;

            // Greedy length bucketing: every prefix of the group keeps padding waste within the bound,
            // so trimming the group to a preferred size keeps it too.
            var newMax = Math.Max(maxLength, pending.Length);
            var newSum = sumLength + ((long)pending.Length * pending.Size);
            var newSequences = sequences + pending.Size;
            if (_group.Count > 0 && newMax > 0)
            {
                var waste = 1d - (double)newSum / (newSequences * (double)newMax);
                if (waste > _maxPaddingWaste + 1e-12)
                    continue;
            }
            maxLength = newMax;
            sumLength = newSum;
            sequences = newSequences;
            oldest = Math.Min(oldest, pending.EnqueuedAt);
            _group.Add(pending);
        }
    }

    /// <summary>Sends <see cref="_group"/> to a worker; true when the scheduler ran the batch itself (one worker).</summary>
    private bool Dispatch(long now)
    {
        var members = new List<Pending>(_group.Count);
        foreach (var pending in _group)
        {
            // A cancellation may race the scheduler; whoever moves the state first owns the request.
            if (Interlocked.CompareExchange(ref pending.State, Dispatched, Queued) == Queued)
                members.Add(pending);
        }
        _group.Clear();
        Compact();
        if (members.Count == 0)
            return false;

        Interlocked.Add(ref _queued, -members.Count);
        _metrics?.QueueDepthChanged(_labels, -members.Count);
        Interlocked.Increment(ref _busy);

        long maxLength = 0;
        long sumLength = 0;
        var sequences = 0;
        foreach (var pending in members)
        {
            pending.QueueTime = _time.GetElapsedTime(pending.EnqueuedAt, now);
            Interlocked.Add(ref _queueNs, TicksToNanoseconds(now - pending.EnqueuedAt));
            _metrics?.RecordQueueDuration(_labels, pending.QueueTime.TotalSeconds);
            maxLength = Math.Max(maxLength, pending.Length);
            sumLength += (long)pending.Length * pending.Size;
            sequences += pending.Size;
        }
        var paddingWaste = maxLength == 0 ? 0d : 1d - (double)sumLength / (sequences * (double)maxLength);
        _metrics?.RecordBatch(_labels, sequences, paddingWaste);

        if (_workers == 1)
        {
            // With one worker nothing else can be dispatched while this batch runs, so the scheduler runs it itself up to
            // its first incomplete await (the CPU forward completes synchronously): no thread wake-up between queue and
            // engine. An executor that awaits something hands the rest to the pool and the scheduler carries on.
            var run = RunBatchAsync(members);
            if (run.IsCompleted)
            {
                Interlocked.Decrement(ref _busy);
                return true;
            }
            run.ContinueWith(static (_, state) => ((DynamicBatcher<TRequest, TResponse>)state!).InlineBatchFinished(), this,
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            return false;
        }

        // _busy was below _workers, so a worker is idle: it marks itself idle before it leaves the busy count.
        if (!_idleWorkers.TryDequeue(out var worker))
            throw new InvalidOperationException("No idle batch worker although fewer batches than workers are running.");
        worker.Run(members);
        return false;
    }

    private void InlineBatchFinished()
    {
        Interlocked.Decrement(ref _busy);
        Wake();
    }

    private void Compact()
    {
        _listed = 0;
        foreach (var list in _normal)
        {
            list.RemoveAll(static p => Volatile.Read(ref p.State) != Queued || p.Delayed);
            _listed += list.Count;
        }
        foreach (var list in _delayed)
        {
            list.RemoveAll(static p => Volatile.Read(ref p.State) != Queued);
            _listed += list.Count;
        }
    }

    /// <summary>Arms the timer for the next dispatch or deadline; true when the clock has already reached it.</summary>
    private bool ArmTimer(long nextDispatchAt)
    {
        var next = nextDispatchAt;
        if (_deadlines.TryPeek(out _, out var deadline) && deadline < next)
            next = deadline;
        if (next == long.MaxValue)
        {
            if (_armedFor != long.MaxValue)
            {
                _armedFor = long.MaxValue;
                _firedEarly = false;
                _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            }
            return false;
        }
        if (next != _armedFor)
            Arm(next);
        // Checked after arming: a clock that moves on later fires the armed timer, one that moved before is seen here.
        return _time.GetTimestamp() >= next;
    }

    /// <summary>
    /// Arms the one-shot timer for the instant <paramref name="next"/>. The timer takes a relative due time, so it
    /// is computed from a fresh clock reading, and recomputed if the clock moved on while arming (the thread was
    /// descheduled): a timer aimed from a stale reading would fire late by that much.
    /// </summary>
    private void Arm(long next)
    {
        _armedFor = next;
        var minimumTicks = 0L;
        if (_firedEarly)
        {
            // After an early firing ask for at least a millisecond, so a millisecond-granular timer cannot spin on
            // a due time it rounds down to zero.
            minimumTicks = TimeSpan.TicksPerMillisecond;
            _firedEarly = false;
        }

        var from = _time.GetTimestamp();
        while (true)
        {
            // Round up so the timer never aims before the moment it is for.
            var dueTicks = (long)Math.Ceiling((next - from) * ((double)TimeSpan.TicksPerSecond / _time.TimestampFrequency));
            _timer.Change(TimeSpan.FromTicks(Math.Max(dueTicks, minimumTicks)), Timeout.InfiniteTimeSpan);
            var after = _time.GetTimestamp();
            if (after - from <= _armSlackTicks || after >= next)
                return;
            from = after;
        }
    }

    private async Task RunBatchAsync(List<Pending> members)
    {
        var started = _time.GetTimestamp();
        try
        {
            var requests = new TRequest[members.Count];
            for (var i = 0; i < requests.Length; i++)
                requests[i] = members[i].Request;

            IReadOnlyList<TResponse> responses;
            try
            {
                responses = await _executor.ExecuteAsync(requests, _shutdown.Token).ConfigureAwait(false);
                if (responses is null || responses.Count != requests.Length)
                {
                    throw new InvalidOperationException(
                        $"The batch executor returned {responses?.Count ?? 0} responses for a batch of {requests.Length} requests; it must return one per request, in order.");
                }
            }
            catch (Exception ex) when (members.Count > 1)
            {
                BatchingLog.BatchFailedRetryingSingly(_logger, _labels.Variant ?? string.Empty, members.Count, ex);
                RecordExecution(members, started);
                await RunSinglyAsync(members).ConfigureAwait(false);
                return;
            }

            RecordExecution(members, started);
            var compute = _time.GetElapsedTime(started);
            var sequences = members.Sum(static p => p.Size);
            for (var i = 0; i < members.Count; i++)
                Complete(members[i], responses[i], compute, sequences);
        }
        catch (Exception ex)
        {
            RecordExecution(members, started);
            foreach (var pending in members)
                Fail(pending, ex);
        }
        finally
        {
            Interlocked.Increment(ref _finishedBatches);
        }
    }

    /// <summary>Called by a worker after its batch: idle first, then out of the busy count, then the scheduler is told.</summary>
    private void WorkerFinished(Worker worker)
    {
        _idleWorkers.Enqueue(worker);
        Interlocked.Decrement(ref _busy);
        Wake();
    }

    /// <summary>
    /// One executor call at a time on a thread of its own. The executor runs on this thread until its first
    /// incomplete await (the CPU forward completes synchronously); the thread then waits for it to finish.
    /// </summary>
    private sealed class Worker
    {
        private readonly DynamicBatcher<TRequest, TResponse> _owner;
        private readonly SemaphoreSlim _go = new(0);
        private readonly int _index;
        private Thread? _thread;
        private List<Pending>? _batch;
        private volatile bool _stopped;

        public Worker(DynamicBatcher<TRequest, TResponse> owner, int index)
        {
            _owner = owner;
            _index = index;
        }

        public void Run(List<Pending> batch)
        {
            _batch = batch;
            // Started on first use: a batcher that never dispatches holds no thread.
            if (_thread is null)
            {
                _thread = new Thread(Loop) { IsBackground = true, Name = $"Dynamic batcher worker {_index}" };
                _thread.Start();
            }
            _go.Release();
        }

        public void Stop()
        {
            _stopped = true;
            _go.Release();
        }

        private void Loop()
        {
            while (true)
            {
                _go.Wait();
                var batch = Interlocked.Exchange(ref _batch, null);
                if (batch is null)
                {
                    if (_stopped)
                        return;
                    continue;
                }
                try
                {
                    _owner.RunBatchAsync(batch).GetAwaiter().GetResult();
                }
                catch (Exception ex)
                {
                    // RunBatchAsync completes every member itself; this only keeps the worker alive.
                    BatchingLog.SchedulerFault(_owner._logger, _owner._labels.Variant ?? string.Empty, ex);
                }
                finally
                {
                    _owner.WorkerFinished(this);
                }
                if (_stopped)
                    return;
            }
        }
    }

    private async Task RunSinglyAsync(List<Pending> members)
    {
        foreach (var pending in members)
        {
            if (pending.Task.IsCompleted)
                continue;
            var started = _time.GetTimestamp();
            try
            {
                var responses = await _executor.ExecuteAsync([pending.Request], _shutdown.Token).ConfigureAwait(false);
                RecordExecution([pending], started);
                if (responses is null || responses.Count != 1)
                {
                    throw new InvalidOperationException(
                        $"The batch executor returned {responses?.Count ?? 0} responses for a batch of 1 request; it must return one per request.");
                }
                Complete(pending, responses[0], _time.GetElapsedTime(started), pending.Size);
            }
            catch (Exception ex)
            {
                BatchingLog.RequestFailed(_logger, _labels.Variant ?? string.Empty, ex);
                Fail(pending, ex);
            }
        }
    }

    private void RecordExecution(List<Pending> members, long started)
    {
        var elapsed = _time.GetTimestamp() - started;
        Interlocked.Increment(ref _executions);
        Interlocked.Add(ref _inferences, members.Sum(static p => p.Size));
        _metrics?.RecordComputeDuration(_labels, (double)elapsed / _time.TimestampFrequency);

        // Exponential moving average of batch time, for the retry-after estimate; races only blur it.
        var previous = Interlocked.Read(ref _averageBatchTicks);
        Interlocked.Exchange(ref _averageBatchTicks, previous == 0 ? elapsed : (previous * 7 + elapsed) / 8);
    }

    private void Complete(Pending pending, TResponse response, TimeSpan compute, int batchSize)
    {
        pending.Registration.Unregister();
        if (pending.TrySetResult(new BatchResult<TResponse>(response, pending.QueueTime, compute, batchSize)))
        {
            Interlocked.Increment(ref _success);
            Interlocked.Add(ref _computeNs, compute.Ticks * 100);
        }
    }

    private void Fail(Pending pending, Exception ex)
    {
        pending.Registration.Unregister();
        if (pending.TrySetException(ex))
            Interlocked.Increment(ref _failure);
    }

    private void OnCancelledWhileQueued()
    {
        LeaveQueue();
        Interlocked.Increment(ref _cancelled);
        _metrics?.QueueDepthChanged(_labels, -1);
    }

    private sealed class Pending : TaskCompletionSource<BatchResult<TResponse>>
    {
        private readonly DynamicBatcher<TRequest, TResponse> _owner;

        public Pending(DynamicBatcher<TRequest, TResponse> owner)
            : base(TaskCreationOptions.RunContinuationsAsynchronously)
        {
            _owner = owner;
        }

        public int State;
        public TRequest Request = default!;
        public int Length;
        public int Size;
        public int Level;
        public TimeSpan QueueTime;
        public long EnqueuedAt;
        public long TimeoutAt;
        public TimeSpan Timeout;
        public long Sequence;
        public bool Delayed;
        public CancellationTokenRegistration Registration;

        public void OnCancelled(CancellationToken token)
        {
            if (Interlocked.CompareExchange(ref State, Cancelled, Queued) == Queued)
                _owner.OnCancelledWhileQueued();
            // Once dispatched the batch runs on, but the caller stops waiting for its share of it.
            TrySetCanceled(token);
        }
    }
}
