using SparseInference.Serving.Metrics;

namespace SparseInference.Serving.Batching;

/// <summary>The scheduler loop: takes in admitted requests, expires timeouts, asks the policy for batches, arms the timer.</summary>
public sealed partial class DynamicBatcher<TRequest, TResponse>
{
    // Arming a timer takes about a microsecond; a clock that moved on further meanwhile means the thread was descheduled.
    private const long ArmSlackMicroseconds = 20;

    private readonly BatchingPolicy _policy;
    private readonly long _armSlackTicks;
    private readonly Pending _wake;
    private readonly ManualResetEventSlim _signal = new(false, spinCount: 0);
    private readonly ITimer _timer;
    private readonly Task _scheduler;

    // Scheduler-owned: touched only by the scheduler loop.
    private readonly BatchQueue _queue;
    private readonly List<QueuedRequest> _group = [];
    private readonly List<QueuedRequest> _expired = [];
    private long _armedFor = long.MaxValue;
    private bool _firedEarly;

    // Shared.
    private int _timerFired;
    private long _idleAt = long.MinValue;

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
                    _queue.Add(item);
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
                var draining = Volatile.Read(ref _stopping) != 0;
                int busy;
                while (!ranInline && (busy = Volatile.Read(ref _busy)) < _workers
                    && _policy.TryFormBatch(_queue, now, _workers - busy, draining, _group, out nextDispatchAt))
                {
                    ranInline = Dispatch(now);
                }
                if (ranInline)
                {
                    // Time has moved on by a forward: read the clock and expire again before forming the next batch.
                    continue;
                }
                _queue.Compact(onlyIfLarge: true);

                if (Volatile.Read(ref _stopping) != 0 && Volatile.Read(ref _queued) == 0 && Volatile.Read(ref _busy) == 0)
                    break;
                if (ArmTimer(Math.Min(nextDispatchAt, _queue.NextTimeout())))
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
        _queue.Clear();
        Volatile.Write(ref _idleAt, _time.GetTimestamp());
    }

    private void ExpireDue(long now)
    {
        _expired.Clear();
        _queue.Expire(now, _expired);
        foreach (Pending pending in _expired)
        {
            LeaveQueue();
            _metrics?.QueueDepthChanged(_labels, -1);
            _metrics?.RecordRejection(_labels, RejectionReasons.Deadline);
            Interlocked.Increment(ref _rejectedDeadline);
            pending.Registration.Unregister();
            pending.TrySetException(new DeadlineExceededException(pending.Timeout));
        }
        _expired.Clear();
    }

    /// <summary>Sends <see cref="_group"/> to a worker; true when the scheduler ran the batch itself (one worker).</summary>
    private bool Dispatch(long now)
    {
        var members = new List<Pending>(_group.Count);
        foreach (Pending pending in _group)
        {
            // A cancellation may race the scheduler; whoever moves the state first owns the request.
            if (pending.TryDispatch())
                members.Add(pending);
        }
        _group.Clear();
        _queue.Compact();
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

    /// <summary>Arms the timer for <paramref name="next"/> (the next dispatch or timeout); true when the clock has already reached it.</summary>
    private bool ArmTimer(long next)
    {
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
}
