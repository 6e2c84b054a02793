using Microsoft.Extensions.Options;
using SparseInference.Serving.Batching;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Serving.Tests.Batching;

public sealed class DynamicBatcherTests : IAsyncLifetime
{
    private readonly ManualTimeProvider _clock = new();
    private readonly List<(TestExecutor Executor, DynamicBatcher<Work, string> Batcher)> _created = [];

    public Task InitializeAsync() => Task.CompletedTask;

    /// <summary>Opens every gate first so that a failed test cannot leave a batcher waiting on a held batch.</summary>
    public async Task DisposeAsync()
    {
        foreach (var (executor, batcher) in _created)
        {
            executor.Open();
            await batcher.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        }
    }

    private DynamicBatcher<Work, string> Create(TestExecutor executor, Action<DynamicBatcherOptions>? configure = null)
    {
        var options = new DynamicBatcherOptions { MaxBatchSize = 4, MaxQueueDelayMicroseconds = 1000, MaxQueueSize = 64 };
        configure?.Invoke(options);
        var batcher = new DynamicBatcher<Work, string>(executor, options, _clock);
        _created.Add((executor, batcher));
        return batcher;
    }

    /// <summary>Waits until the scheduler has taken in every request and wake-up sent so far.</summary>
    private Task SettledAsync(DynamicBatcher<Work, string> batcher) =>
        Eventually.TrueAsync(() => batcher.IsIdle, "the scheduler is idle");

    /// <summary>Sends a request that the gated executor holds, so that the only worker is busy; returns its task.</summary>
    private static async Task<Task<string>> OccupyTheWorkerAsync(TestExecutor executor, DynamicBatcher<Work, string> batcher)
    {
        var blocker = batcher.EnqueueAsync(new Work("blocker"));
        await executor.WaitForBatchesAsync(1);
        return blocker;
    }

    private static async Task FinishedAsync(DynamicBatcher<Work, string> batcher, int batches) =>
        await Eventually.TrueAsync(() => batcher.FinishedBatches >= batches, $"{batches} batches have finished");

    [Fact]
    public async Task EnqueueAsync_DefaultPolicyLoneRequest_RunsAtOnceWithTheClockStandingStill()
    {
        var executor = new TestExecutor();
        // A queue delay configured under the default policy is not waited for.
        var batcher = Create(executor, o => o.MaxQueueDelayMicroseconds = 10_000_000);

        var result = await Eventually.CompletesAsync(batcher.SubmitAsync(new Work("a")), "a lone request runs with the clock standing still");

        Assert.Equal(new BatchResult<string>("done:a", TimeSpan.Zero, TimeSpan.Zero, 1), result);
        Assert.Equal([["a"]], executor.Batches);
        Assert.Equal(0, _clock.GetTimestamp());
    }

    [Fact]
    public async Task EnqueueAsync_DefaultPolicyRequestsArrivingWhileBusy_GoTogetherAtTheNextFreeWorker()
    {
        var executor = new TestExecutor { Gated = true };
        var batcher = Create(executor, o => o.MaxBatchSize = 4);

        var first = batcher.SubmitAsync(new Work("first"));
        await executor.WaitForBatchesAsync(1);
        var waiting = new List<Task<BatchResult<string>>>();
        foreach (var name in new[] { "b", "c", "d", "e", "f" })
        {
            _clock.AdvanceMicroseconds(100);
            waiting.Add(batcher.SubmitAsync(new Work(name)));
        }
        await SettledAsync(batcher);
        Assert.Single(executor.Batches);

        await executor.ReleaseOneAsync();
        await executor.WaitForBatchesAsync(2);
        Assert.Equal(["b", "c", "d", "e"], executor.Batches[1]);
        await executor.ReleaseOneAsync();
        await executor.WaitForBatchesAsync(3);
        Assert.Equal(["f"], executor.Batches[2]);
        await executor.ReleaseOneAsync();

        var results = await Eventually.CompletesAsync(Task.WhenAll(waiting.Prepend(first)), "every request completes");
        // Queue time is the wait for the busy worker: "b" came 100 µs after "first" and left at 500 µs.
        Assert.Equal(TimeSpan.FromMicroseconds(400), results[1].QueueTime);
        Assert.Equal(4, results[1].BatchSize);
        Assert.Equal(TimeSpan.Zero, results[5].QueueTime);
        Assert.Equal(3, batcher.Statistics.ExecutionCount);
        Assert.Equal(6, batcher.Statistics.InferenceCount);
    }

    [Fact]
    public async Task EnqueueAsync_DefaultPolicyTwoWorkers_SecondRequestTakesTheIdleWorkerAtOnce()
    {
        var executor = new TestExecutor { Gated = true };
        var batcher = Create(executor, o => o.Workers = 2);

        var a = batcher.EnqueueAsync(new Work("a"));
        await executor.WaitForBatchesAsync(1);
        var b = batcher.EnqueueAsync(new Work("b"));
        await executor.WaitForBatchesAsync(2);
        var c = batcher.EnqueueAsync(new Work("c"));
        var d = batcher.EnqueueAsync(new Work("d"));
        await SettledAsync(batcher);
        Assert.Equal(2, executor.Batches.Count);

        await executor.ReleaseOneAsync();
        await executor.WaitForBatchesAsync(3);
        Assert.Equal(["c", "d"], executor.Batches[2]);
        executor.Open();
        await Eventually.CompletesAsync(Task.WhenAll(a, b, c, d), "every request completes");
        Assert.Equal(0, _clock.GetTimestamp());
    }

    [Fact]
    public async Task EnqueueAsync_DefaultPolicyTimeoutPassesBehindABusyWorker_RejectedWithoutReachingExecutor()
    {
        var executor = new TestExecutor { Gated = true };
        var batcher = Create(executor);
        var blocker = await OccupyTheWorkerAsync(executor, batcher);

        var expiring = batcher.EnqueueAsync(new Work("late"), new BatchRequestOptions(TimeoutMicroseconds: 500));
        var patient = batcher.EnqueueAsync(new Work("patient"));
        _clock.AdvanceMicroseconds(499);
        await SettledAsync(batcher);
        Assert.False(expiring.IsCompleted);

        _clock.AdvanceMicroseconds(1);
        await Assert.ThrowsAsync<DeadlineExceededException>(() => Eventually.CompletesAsync(expiring, "the request expires"));
        Assert.Equal(1, batcher.QueueDepth);

        await executor.ReleaseOneAsync();
        await executor.WaitForBatchesAsync(2);
        await executor.ReleaseOneAsync();
        await Eventually.CompletesAsync(Task.WhenAll(blocker, patient), "the other requests run");
        Assert.Equal([["blocker"], ["patient"]], executor.Batches);
        Assert.Equal(1, batcher.Statistics.RejectedDeadline);
    }

    [Fact]
    public async Task EnqueueAsync_DefaultPolicyCancelledBehindABusyWorker_NeverReachesExecutor()
    {
        var executor = new TestExecutor { Gated = true };
        var batcher = Create(executor);
        using var cts = new CancellationTokenSource();
        var blocker = await OccupyTheWorkerAsync(executor, batcher);

        var cancelled = batcher.EnqueueAsync(new Work("gone"), cancellationToken: cts.Token);
        var kept = batcher.EnqueueAsync(new Work("kept"));
        await SettledAsync(batcher);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Equal(1, batcher.QueueDepth);

        executor.Open();
        await Eventually.CompletesAsync(Task.WhenAll(blocker, kept), "the other requests run");
        Assert.Equal([["blocker"], ["kept"]], executor.Batches);
        Assert.Equal(1, batcher.Statistics.Cancelled);
    }

    [Fact]
    public async Task DisposeAsync_DefaultPolicyRequestsBehindABusyWorker_RunsThemBeforeStopping()
    {
        var executor = new TestExecutor { Gated = true };
        var batcher = Create(executor);
        var blocker = await OccupyTheWorkerAsync(executor, batcher);
        var queued = batcher.EnqueueAsync(new Work("queued"));
        await SettledAsync(batcher);

        var disposing = batcher.DisposeAsync().AsTask();
        executor.Open();
        await Eventually.CompletesAsync(disposing.ContinueWith(_ => true), "the batcher stops");

        Assert.Equal("done:queued", await queued);
        Assert.Equal("done:blocker", await blocker);
    }

    [Fact]
    public async Task EnqueueAsync_FullBatch_DispatchesWithoutWaitingForDelay()
    {
        var executor = new TestExecutor();
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxQueueDelayMicroseconds = 10_000_000;
        });

        var tasks = Enumerable.Range(0, 4).Select(i => batcher.EnqueueAsync(new Work($"r{i}"))).ToArray();
        var results = await Eventually.CompletesAsync(Task.WhenAll(tasks), "a full batch completes with the clock standing still");

        Assert.Equal(["done:r0", "done:r1", "done:r2", "done:r3"], results);
        Assert.Single(executor.Batches);
        Assert.Equal(4, executor.Batches[0].Length);
        Assert.Equal(0, _clock.GetTimestamp());
    }

    [Fact]
    public async Task EnqueueAsync_PartialBatch_DispatchesExactlyAtMaxQueueDelay()
    {
        var executor = new TestExecutor();
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxQueueDelayMicroseconds = 1000;
        });

        var a = batcher.EnqueueAsync(new Work("a"));
        _clock.AdvanceMicroseconds(200);
        var b = batcher.EnqueueAsync(new Work("b"));
        await SettledAsync(batcher);
        Assert.Empty(executor.Batches);

        _clock.AdvanceMicroseconds(799);
        await SettledAsync(batcher);
        Assert.Empty(executor.Batches);

        _clock.AdvanceMicroseconds(1);
        await Eventually.CompletesAsync(Task.WhenAll(a, b), "the partial batch is sent at the delay");
        Assert.Equal([["a", "b"]], executor.Batches);
    }

    [Fact]
    public async Task EnqueueAsync_ClockMovesWhileTheTimerIsArmed_BatchIsStillSentAtTheDelay()
    {
        var executor = new TestExecutor();
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxQueueDelayMicroseconds = 1000;
        });
        await SettledAsync(batcher);
        // The scheduler thread is descheduled for 400 µs between reading the clock and arming its timer, once.
        var descheduled = 0;
        _clock.BeforeTimerArmed = () =>
        {
            if (Interlocked.Exchange(ref descheduled, 1) == 0)
                _clock.AdvanceMicroseconds(400);
        };

        var request = batcher.EnqueueAsync(new Work("a"));
        await SettledAsync(batcher);
        Assert.Equal(1, descheduled);
        Assert.Empty(executor.Batches);

        _clock.AdvanceMicroseconds(600);
        await Eventually.CompletesAsync(request, "the request is sent at the delay, not 400 µs after it");
        Assert.Equal([["a"]], executor.Batches);
    }

    [Fact]
    public async Task EnqueueAsync_SystemClockSequentialPartialBatches_EachIsSentAfterTheDelay()
    {
        // The real clock's timers count whole milliseconds and can fire before a sub-millisecond due time;
        // every lone request must still go out.
        var executor = new TestExecutor();
        // 1000 µs is exactly one timer millisecond: the case that used to strand a request.
        var options = new DynamicBatcherOptions { Policy = BatchingPolicies.Delay, MaxBatchSize = 16, MaxQueueDelayMicroseconds = 1000 };
        await using var batcher = new DynamicBatcher<Work, string>(executor, options, TimeProvider.System);

        for (var i = 0; i < 30; i++)
        {
            var started = DateTime.UtcNow;
            Assert.Equal($"done:r{i}", await Eventually.CompletesAsync(batcher.EnqueueAsync(new Work($"r{i}")), $"lone request {i} is sent"));
            Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMicroseconds(900), $"request {i} went out before the queue delay");
        }
        Assert.Equal(30, executor.Batches.Count);
    }

    [Fact]
    public async Task EnqueueAsync_PreferredBatchSizes_SendsLargestFormableAtOnce()
    {
        var executor = new TestExecutor { Gated = true };
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxBatchSize = 8;
            o.PreferredBatchSizes = [2, 4];
            o.MaxQueueDelayMicroseconds = 1000;
        });

        // One request alone is not a preferred size: it waits for the delay, then occupies the only worker.
        var first = batcher.EnqueueAsync(new Work("x"));
        await SettledAsync(batcher);
        Assert.Empty(executor.Batches);
        _clock.AdvanceMicroseconds(1000);
        await executor.WaitForBatchesAsync(1);

        var queued = Enumerable.Range(0, 5).Select(i => batcher.EnqueueAsync(new Work($"q{i}"))).ToArray();
        await SettledAsync(batcher);
        Assert.Single(executor.Batches);

        // The worker frees up before any delay has passed for the five: 4 is the largest preferred size.
        await executor.ReleaseOneAsync();
        await executor.WaitForBatchesAsync(2);
        Assert.Equal(["q0", "q1", "q2", "q3"], executor.Batches[1]);

        await executor.ReleaseOneAsync();
        await FinishedAsync(batcher, 2);
        await SettledAsync(batcher);
        Assert.Equal(2, executor.Batches.Count);

        _clock.AdvanceMicroseconds(1000);
        await executor.WaitForBatchesAsync(3);
        Assert.Equal(["q4"], executor.Batches[2]);
        await executor.ReleaseOneAsync();
        await Eventually.CompletesAsync(Task.WhenAll(queued.Append(first)), "all requests complete");
    }

    [Fact]
    public async Task EnqueueAsync_PriorityLevels_HigherLevelsDispatchFirst()
    {
        var executor = new TestExecutor { Gated = true };
        var batcher = Create(executor, o =>
        {
            o.MaxBatchSize = 2;
            o.PriorityLevels = 3;
            o.DefaultPriorityLevel = 2;
            o.MaxQueueDelayMicroseconds = 1000;
        });

        var blocker = batcher.EnqueueAsync(new Work("blocker"), new BatchRequestOptions(Priority: 1));
        _clock.AdvanceMicroseconds(1000);
        await executor.WaitForBatchesAsync(1);

        var tasks = new[]
        {
            batcher.EnqueueAsync(new Work("low1"), new BatchRequestOptions(Priority: 3)),
            batcher.EnqueueAsync(new Work("low2"), new BatchRequestOptions(Priority: 3)),
            batcher.EnqueueAsync(new Work("high1"), new BatchRequestOptions(Priority: 1)),
            batcher.EnqueueAsync(new Work("default"), new BatchRequestOptions(Priority: 0)),
            batcher.EnqueueAsync(new Work("high2"), new BatchRequestOptions(Priority: 1)),
        };
        await SettledAsync(batcher);

        await executor.ReleaseOneAsync();
        await executor.WaitForBatchesAsync(2);
        await executor.ReleaseOneAsync();
        await executor.WaitForBatchesAsync(3);
        await executor.ReleaseOneAsync();
        await FinishedAsync(batcher, 3);
        await SettledAsync(batcher);
        _clock.AdvanceMicroseconds(1000);
        await executor.WaitForBatchesAsync(4);
        await executor.ReleaseOneAsync();
        await Eventually.CompletesAsync(Task.WhenAll(tasks.Append(blocker)), "all requests complete");

        Assert.Equal(["high1", "high2"], executor.Batches[1]);
        Assert.Equal(["default", "low1"], executor.Batches[2]);
        Assert.Equal(["low2"], executor.Batches[3]);
    }

    [Fact]
    public async Task EnqueueAsync_BurstFrom64Tasks_AdmitsExactlyMaxQueueSize()
    {
        var executor = new TestExecutor();
        // A batch can never fill (MaxBatchSize > MaxQueueSize) and the clock stands still, so nothing leaves the queue.
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxQueueSize = 10;
            o.MaxBatchSize = 32;
            o.MaxQueueDelayMicroseconds = 1000;
        });

        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var peak = 0;
        var sampling = true;
        var sampler = Task.Run(() =>
        {
            while (Volatile.Read(ref sampling))
                peak = Math.Max(peak, batcher.QueueDepth);
        });
        var attempts = Enumerable.Range(0, 64).Select(i => Task.Run(async () =>
        {
            await start.Task;
            try
            {
                return (Accepted: batcher.EnqueueAsync(new Work($"r{i}")), Rejected: (QueueFullException?)null);
            }
            catch (QueueFullException ex)
            {
                return (Accepted: (Task<string>?)null, Rejected: ex);
            }
        })).ToArray();
        start.SetResult();
        var outcomes = await Task.WhenAll(attempts);
        Volatile.Write(ref sampling, false);
        await sampler;

        var accepted = outcomes.Where(o => o.Accepted is not null).Select(o => o.Accepted!).ToArray();
        var rejected = outcomes.Where(o => o.Rejected is not null).Select(o => o.Rejected!).ToArray();
        Assert.Equal(10, accepted.Length);
        Assert.Equal(54, rejected.Length);
        Assert.Equal(10, batcher.QueueDepth);
        Assert.True(peak <= 10, $"queue depth peaked at {peak}");
        Assert.All(rejected, ex => Assert.True(ex.RetryAfter >= TimeSpan.FromSeconds(1) && ex.RetryAfterSeconds >= 1));
        Assert.Equal(54, batcher.Statistics.RejectedQueueFull);

        _clock.AdvanceMicroseconds(1000);
        await Eventually.CompletesAsync(Task.WhenAll(accepted), "the admitted requests complete");
        Assert.Equal(10, executor.Batches.Sum(b => b.Length));
    }

    [Fact]
    public async Task EnqueueAsync_BurstWhileDispatching_QueueNeverExceedsBound()
    {
        var executor = new TestExecutor { Gated = true };
        var batcher = Create(executor, o =>
        {
            o.MaxQueueSize = 6;
            o.MaxBatchSize = 2;
            o.MaxQueueDelayMicroseconds = 0;
        });

        var peak = 0;
        var sampling = true;
        var sampler = Task.Run(() =>
        {
            while (Volatile.Read(ref sampling))
                peak = Math.Max(peak, batcher.QueueDepth);
        });
        var attempts = await Task.WhenAll(Enumerable.Range(0, 64).Select(i => Task.Run(() =>
        {
            try
            {
                return new[] { batcher.EnqueueAsync(new Work($"r{i}")) };
            }
            catch (QueueFullException)
            {
                return [];
            }
        })));
        Volatile.Write(ref sampling, false);
        await sampler;

        var accepted = attempts.SelectMany(t => t).ToArray();
        // One batch of at most 2 can be executing (one worker); everything else must have fit in the queue.
        Assert.InRange(accepted.Length, 6, 8);
        Assert.True(peak <= 6, $"queue depth peaked at {peak}");

        executor.Open();
        await Eventually.CompletesAsync(Task.WhenAll(accepted), "every admitted request completes");
        Assert.Equal(accepted.Length, executor.Batches.Sum(b => b.Length));
    }

    [Fact]
    public async Task EnqueueAsync_ClientTimeoutPassesWhileQueued_NeverReachesExecutor()
    {
        var executor = new TestExecutor();
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxQueueDelayMicroseconds = 1000;
        });

        var expiring = batcher.EnqueueAsync(new Work("late"), new BatchRequestOptions(TimeoutMicroseconds: 500));
        var patient = batcher.EnqueueAsync(new Work("patient"));

        _clock.AdvanceMicroseconds(499);
        await SettledAsync(batcher);
        Assert.False(expiring.IsCompleted);

        _clock.AdvanceMicroseconds(1);
        var ex = await Assert.ThrowsAsync<DeadlineExceededException>(() => Eventually.CompletesAsync(expiring, "the request expires"));
        Assert.Equal(TimeSpan.FromMicroseconds(500), ex.Timeout);
        Assert.Equal(1, batcher.QueueDepth);

        _clock.AdvanceMicroseconds(500);
        await Eventually.CompletesAsync(patient, "the other request is sent at the delay");
        Assert.Equal([["patient"]], executor.Batches);
        Assert.Equal(1, batcher.Statistics.RejectedDeadline);
    }

    [Fact]
    public async Task EnqueueAsync_ClientTimeoutLongerThanDefault_DefaultApplies()
    {
        var executor = new TestExecutor();
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.DefaultTimeoutMicroseconds = 300;
            o.MaxQueueDelayMicroseconds = 1000;
        });

        var request = batcher.EnqueueAsync(new Work("a"), new BatchRequestOptions(TimeoutMicroseconds: 5000));
        _clock.AdvanceMicroseconds(300);

        await Assert.ThrowsAsync<DeadlineExceededException>(() => Eventually.CompletesAsync(request, "the request expires"));
        _clock.AdvanceMicroseconds(1000);
        await SettledAsync(batcher);
        Assert.Empty(executor.Batches);
    }

    [Fact]
    public async Task EnqueueAsync_TimeoutActionDelay_ExpiredRequestGoesBehindOthers()
    {
        var executor = new TestExecutor { Gated = true };
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxBatchSize = 2;
            o.MaxQueueDelayMicroseconds = 100;
            o.TimeoutAction = TimeoutAction.Delay;
        });

        var blocker = batcher.EnqueueAsync(new Work("blocker"));
        _clock.AdvanceMicroseconds(100);
        await executor.WaitForBatchesAsync(1);

        var old = batcher.EnqueueAsync(new Work("old"), new BatchRequestOptions(TimeoutMicroseconds: 50));
        _clock.AdvanceMicroseconds(50);
        var fresh1 = batcher.EnqueueAsync(new Work("fresh1"));
        var fresh2 = batcher.EnqueueAsync(new Work("fresh2"));
        await SettledAsync(batcher);
        Assert.False(old.IsCompleted);

        await executor.ReleaseOneAsync();
        await executor.WaitForBatchesAsync(2);
        Assert.Equal(["fresh1", "fresh2"], executor.Batches[1]);
        await executor.ReleaseOneAsync();
        await FinishedAsync(batcher, 2);
        await SettledAsync(batcher);
        Assert.Equal(2, executor.Batches.Count);
        _clock.AdvanceMicroseconds(50);
        await executor.WaitForBatchesAsync(3);
        await executor.ReleaseOneAsync();
        Assert.Equal("done:old", await Eventually.CompletesAsync(old, "the delayed request runs last"));
        Assert.Equal(["old"], executor.Batches[2]);
        await Task.WhenAll(blocker, fresh1, fresh2);
    }

    [Fact]
    public async Task EnqueueAsync_CancelledWhileQueued_NeverReachesExecutor()
    {
        var executor = new TestExecutor();
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxQueueDelayMicroseconds = 1000;
        });
        using var cts = new CancellationTokenSource();

        var cancelled = batcher.EnqueueAsync(new Work("gone"), cancellationToken: cts.Token);
        var kept = batcher.EnqueueAsync(new Work("kept"));
        await SettledAsync(batcher);
        cts.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Equal(1, batcher.QueueDepth);
        _clock.AdvanceMicroseconds(1000);
        await Eventually.CompletesAsync(kept, "the remaining request runs");
        Assert.Equal([["kept"]], executor.Batches);
        Assert.Equal(1, batcher.Statistics.Cancelled);
    }

    [Fact]
    public async Task EnqueueAsync_AlreadyCancelledToken_ThrowsWithoutQueueing()
    {
        var executor = new TestExecutor();
        var batcher = Create(executor);
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        Assert.Throws<OperationCanceledException>(() => { _ = batcher.EnqueueAsync(new Work("a"), cancellationToken: cts.Token); });
        Assert.Equal(0, batcher.QueueDepth);
    }

    [Fact]
    public async Task ExecuteAsync_PoisonedRequestInBatch_FailsAloneAndBatchMatesSucceed()
    {
        var executor = new TestExecutor { Poisoned = ["bad"] };
        var batcher = Create(executor, o => o.Policy = BatchingPolicies.Delay);

        var tasks = new[] { "a", "bad", "c", "d" }.Select(id => batcher.EnqueueAsync(new Work(id))).ToArray();
        await Eventually.TrueAsync(() => tasks.All(t => t.IsCompleted), "every request has an outcome");

        Assert.Equal("done:a", await tasks[0]);
        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => tasks[1]);
        Assert.Contains("bad", ex.Message);
        Assert.Equal("done:c", await tasks[2]);
        Assert.Equal("done:d", await tasks[3]);
        Assert.Equal([["a", "bad", "c", "d"], ["a"], ["bad"], ["c"], ["d"]], executor.Batches);
        Assert.Equal(3, batcher.Statistics.SuccessCount);
        Assert.Equal(1, batcher.Statistics.FailureCount);
    }

    [Fact]
    public async Task EnqueueAsync_VariableLengths_BatchesStayWithinPaddingWasteBound()
    {
        var executor = new TestExecutor();
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxBatchSize = 4;
            o.MaxPaddingWaste = 0.25;
            o.MaxQueueDelayMicroseconds = 1000;
        });

        var lengths = new Dictionary<string, int> { ["l100"] = 100, ["l10"] = 10, ["l90"] = 90, ["l12"] = 12 };
        var tasks = lengths.Select(kv => batcher.EnqueueAsync(new Work(kv.Key, kv.Value))).ToArray();
        await SettledAsync(batcher);
        Assert.Empty(executor.Batches);

        _clock.AdvanceMicroseconds(1000);
        await Eventually.CompletesAsync(Task.WhenAll(tasks), "both length buckets are sent");

        Assert.Equal([["l100", "l90"], ["l10", "l12"]], executor.Batches);
        foreach (var batch in executor.Batches)
        {
            var batchLengths = batch.Select(id => lengths[id]).ToArray();
            var waste = 1d - (double)batchLengths.Sum() / (batchLengths.Length * batchLengths.Max());
            Assert.InRange(waste, 0, 0.25);
        }
    }

    [Fact]
    public async Task DisposeAsync_WithQueuedRequests_SendsThemWithoutWaitingForDelay()
    {
        var executor = new TestExecutor();
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxQueueDelayMicroseconds = 10_000_000;
        });
        var request = batcher.EnqueueAsync(new Work("a"));

        await batcher.DisposeAsync();

        Assert.Equal("done:a", await request);
        Assert.Throws<ObjectDisposedException>(() => { _ = batcher.EnqueueAsync(new Work("b")); });
    }

    [Fact]
    public async Task Statistics_AfterBatch_ReportsQueueTimeAndCounts()
    {
        var executor = new TestExecutor();
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxQueueDelayMicroseconds = 1000;
        });

        var a = batcher.EnqueueAsync(new Work("a"));
        var b = batcher.EnqueueAsync(new Work("b"));
        await SettledAsync(batcher);
        _clock.AdvanceMicroseconds(1000);
        await Task.WhenAll(a, b);
        await FinishedAsync(batcher, 1);

        var stats = batcher.Statistics;
        Assert.Equal(2, stats.SuccessCount);
        Assert.Equal(1, stats.ExecutionCount);
        Assert.Equal(2, stats.InferenceCount);
        Assert.Equal(2 * 1_000_000, stats.QueueNanoseconds);
    }

    [Fact]
    public async Task SubmitAsync_Batch_ReportsQueueTimeComputeTimeAndBatchSize()
    {
        var executor = new TestExecutor { OnExecute = () => _clock.AdvanceMicroseconds(300) };
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxQueueDelayMicroseconds = 1000;
        });

        var first = batcher.SubmitAsync(new Work("a"));
        _clock.AdvanceMicroseconds(400);
        var second = batcher.SubmitAsync(new Work("b", Size: 2));
        await SettledAsync(batcher);
        _clock.AdvanceMicroseconds(600);
        var results = await Eventually.CompletesAsync(Task.WhenAll(first, second), "the batch completes");

        Assert.Equal(new BatchResult<string>("done:a", TimeSpan.FromMicroseconds(1000), TimeSpan.FromMicroseconds(300), 3), results[0]);
        Assert.Equal(new BatchResult<string>("done:b", TimeSpan.FromMicroseconds(600), TimeSpan.FromMicroseconds(300), 3), results[1]);
        Assert.Equal(1000_000 + 600_000, batcher.Statistics.QueueNanoseconds);
        Assert.Equal(2 * 300_000, batcher.Statistics.ComputeNanoseconds);
        Assert.Equal(3, batcher.Statistics.InferenceCount);
    }

    [Fact]
    public async Task EnqueueAsync_RequestsCarryingSeveralSequences_FillMaxBatchSizeBySequences()
    {
        var executor = new TestExecutor();
        var batcher = Create(executor, o =>
        {
            o.Policy = BatchingPolicies.Delay;
            o.MaxBatchSize = 4;
            o.MaxQueueDelayMicroseconds = 1000;
        });

        var three = batcher.EnqueueAsync(new Work("three", Size: 3));
        var two = batcher.EnqueueAsync(new Work("two", Size: 2));
        var one = batcher.EnqueueAsync(new Work("one", Size: 1));

        // 3 + 1 fills the batch at once; the request of 2 would overflow it and waits for the delay.
        await Eventually.CompletesAsync(Task.WhenAll(three, one), "the full batch completes with the clock standing still");
        Assert.Equal([["three", "one"]], executor.Batches);
        Assert.False(two.IsCompleted);

        _clock.AdvanceMicroseconds(1000);
        await Eventually.CompletesAsync(two, "the remaining request is sent at the delay");
        Assert.Equal(["two"], executor.Batches[1]);
    }

    [Fact]
    public void EnqueueAsync_RequestLargerThanMaxBatchSize_ThrowsNamingTheBound()
    {
        var batcher = Create(new TestExecutor(), o => o.MaxBatchSize = 4);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => { _ = batcher.EnqueueAsync(new Work("big", Size: 5)); });
        Assert.Contains("MaxBatchSize (4), but was 5", ex.Message);
        Assert.Equal(0, batcher.QueueDepth);
    }

    [Fact]
    public async Task EnqueueAsync_PriorityOutOfRange_ThrowsNamingTheField()
    {
        var batcher = Create(new TestExecutor(), o => o.PriorityLevels = 2);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => { _ = batcher.EnqueueAsync(new Work("a"), new BatchRequestOptions(Priority: 3)); });
        Assert.Contains("Priority", ex.Message);
        Assert.Equal(0, batcher.QueueDepth);
    }

    [Fact]
    public void Constructor_InvalidOptions_ThrowsListingEveryProblem()
    {
        var options = new DynamicBatcherOptions
        {
            Policy = "triton",
            MaxBatchSize = 0,
            PreferredBatchSizes = [5],
            PriorityLevels = 2,
            DefaultPriorityLevel = 3,
            MaxQueueSize = 0,
            Workers = 0,
            MaxPaddingWaste = 1.5,
        };

        var ex = Assert.Throws<OptionsValidationException>(() => new DynamicBatcher<Work, string>(new TestExecutor(), options, _clock));

        Assert.Contains(ex.Failures, f => f.Contains("Policy must be one of work_conserving, delay, but was 'triton'"));
        Assert.Contains(ex.Failures, f => f.Contains("MaxBatchSize must be at least 1, but was 0"));
        Assert.Contains(ex.Failures, f => f.Contains("PreferredBatchSizes") && f.Contains("5"));
        Assert.Contains(ex.Failures, f => f.Contains("DefaultPriorityLevel") && f.Contains("was 3"));
        Assert.Contains(ex.Failures, f => f.Contains("MaxQueueSize"));
        Assert.Contains(ex.Failures, f => f.Contains("Workers"));
        Assert.Contains(ex.Failures, f => f.Contains("MaxPaddingWaste") && f.Contains("1.5"));
    }

    [Fact]
    public void Validator_DefaultOptions_Succeeds()
    {
        var result = new DynamicBatcherOptionsValidator().Validate(null, new DynamicBatcherOptions());
        Assert.True(result.Succeeded);
    }
}
