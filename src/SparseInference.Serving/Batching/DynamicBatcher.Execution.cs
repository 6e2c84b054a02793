namespace SparseInference.Serving.Batching;

/// <summary>Running batches: on the scheduler thread (one worker) or on worker threads, and completing each request.</summary>
public sealed partial class DynamicBatcher<TRequest, TResponse>
{
    private readonly Worker[] _workerThreads;
    private readonly System.Collections.Concurrent.ConcurrentQueue<Worker> _idleWorkers = new();
    private long _finishedBatches;

    private void InlineBatchFinished()
    {
        Interlocked.Decrement(ref _busy);
        Wake();
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
}
