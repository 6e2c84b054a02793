using SparseInference.Serving.Batching;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Serving.Tests.Batching;

/// <summary>
/// The batching policies on their own: a queue, a fake clock and the number of free workers in, a batch or the
/// instant to look again out. No threads; the scheduler only calls the policy while a worker is free.
/// </summary>
public sealed class BatchingPolicyTests
{
    private readonly ManualTimeProvider _clock = new();
    private readonly List<QueuedRequest> _batch = [];
    private readonly Dictionary<QueuedRequest, string> _names = [];

    private static DynamicBatcherOptions Options(string policy, Action<DynamicBatcherOptions>? configure = null)
    {
        var options = new DynamicBatcherOptions { Policy = policy, MaxBatchSize = 4, MaxQueueDelayMicroseconds = 1000, MaxQueueSize = 64 };
        configure?.Invoke(options);
        options.ThrowIfInvalid();
        return options;
    }

    private BatchingPolicy Policy(DynamicBatcherOptions options) => BatchingPolicy.Create(options, _clock.TimestampFrequency);

    private static BatchQueue Queue(DynamicBatcherOptions options) => new(options.PriorityLevels, options.TimeoutAction, options.MaxQueueSize);

    private long Ticks(long microseconds) => microseconds * _clock.TimestampFrequency / 1_000_000;

    /// <summary>Admits a request now, as the scheduler does; <paramref name="timeoutMicroseconds"/> 0 means none.</summary>
    private QueuedRequest Add(BatchQueue queue, string name, int size = 1, int length = 64, int level = 0, long timeoutMicroseconds = 0)
    {
        var now = _clock.GetTimestamp();
        var request = new QueuedRequest
        {
            Size = size,
            Length = length,
            Level = level,
            EnqueuedAt = now,
            TimeoutAt = timeoutMicroseconds == 0 ? long.MaxValue : now + Ticks(timeoutMicroseconds),
        };
        _names[request] = name;
        queue.Add(request);
        return request;
    }

    /// <summary>Asks the policy as the scheduler does and, when it sends a batch, dispatches its members.</summary>
    private (string[] Batch, long DispatchAt) Decide(BatchingPolicy policy, BatchQueue queue, int idleWorkers = 1, bool draining = false)
    {
        var send = policy.TryFormBatch(queue, _clock.GetTimestamp(), idleWorkers, draining, _batch, out var dispatchAt);
        if (!send)
        {
            Assert.Empty(_batch);
            return ([], dispatchAt);
        }
        Assert.Equal(long.MaxValue, dispatchAt);
        foreach (var request in _batch)
            Assert.True(request.TryDispatch());
        queue.Compact();
        return (_batch.Select(r => _names[r]).ToArray(), dispatchAt);
    }

    [Fact]
    public void WorkConserving_LoneRequestAndFreeWorker_DispatchesAtOnce()
    {
        var options = Options(BatchingPolicies.WorkConserving, o => o.MaxQueueDelayMicroseconds = 10_000_000);
        var queue = Queue(options);
        _clock.AdvanceMicroseconds(123);
        Add(queue, "a");

        Assert.Equal(["a"], Decide(Policy(options), queue).Batch);
    }

    [Fact]
    public void WorkConserving_EmptyQueue_NothingToSendAndNothingToWaitFor()
    {
        var options = Options(BatchingPolicies.WorkConserving);
        Assert.Equal(([], long.MaxValue), Decide(Policy(options), Queue(options)));
    }

    [Fact]
    public void WorkConserving_RequestsArrivingWhileBusy_GoTogetherAtTheNextFreeWorker()
    {
        var options = Options(BatchingPolicies.WorkConserving, o => o.MaxBatchSize = 8);
        var policy = Policy(options);
        var queue = Queue(options);
        Add(queue, "first");
        Assert.Equal(["first"], Decide(policy, queue).Batch);

        // The only worker is busy with "first": the scheduler does not ask the policy while three more arrive.
        foreach (var name in new[] { "b", "c", "d" })
        {
            _clock.AdvanceMicroseconds(150);
            Add(queue, name);
        }

        Assert.Equal(["b", "c", "d"], Decide(policy, queue).Batch);
        Assert.Equal(([], long.MaxValue), Decide(policy, queue));
    }

    [Fact]
    public void WorkConserving_MoreWaitingThanMaxBatchSize_SendsTheOldestUpToMaxAndTheRestNext()
    {
        var options = Options(BatchingPolicies.WorkConserving, o => o.MaxBatchSize = 4);
        var policy = Policy(options);
        var queue = Queue(options);
        foreach (var name in new[] { "r0", "r1", "r2", "r3", "r4", "r5" })
            Add(queue, name);

        Assert.Equal(["r0", "r1", "r2", "r3"], Decide(policy, queue).Batch);
        Assert.Equal(["r4", "r5"], Decide(policy, queue).Batch);
    }

    [Fact]
    public void WorkConserving_RequestThatDoesNotFit_WaitsWhileSmallerOnesBehindItFillTheBatch()
    {
        var options = Options(BatchingPolicies.WorkConserving, o => o.MaxBatchSize = 4);
        var policy = Policy(options);
        var queue = Queue(options);
        Add(queue, "three", size: 3);
        Add(queue, "two", size: 2);
        Add(queue, "one", size: 1);

        Assert.Equal(["three", "one"], Decide(policy, queue).Batch);
        Assert.Equal(["two"], Decide(policy, queue).Batch);
    }

    [Fact]
    public void WorkConserving_PreferredSizesWithOneFreeWorker_SendsEverythingWaitingRatherThanHoldSomeBack()
    {
        var options = Options(BatchingPolicies.WorkConserving, o =>
        {
            o.MaxBatchSize = 8;
            o.PreferredBatchSizes = [2, 4];
        });
        var queue = Queue(options);
        foreach (var name in new[] { "q0", "q1", "q2", "q3", "q4" })
            Add(queue, name);

        Assert.Equal(["q0", "q1", "q2", "q3", "q4"], Decide(Policy(options), queue, idleWorkers: 1).Batch);
    }

    [Fact]
    public void WorkConserving_PreferredSizesWithTwoFreeWorkers_TrimsToTheLargestAndTheRestGoesAtOnce()
    {
        var options = Options(BatchingPolicies.WorkConserving, o =>
        {
            o.MaxBatchSize = 8;
            o.PreferredBatchSizes = [2, 4];
            o.Workers = 2;
        });
        var policy = Policy(options);
        var queue = Queue(options);
        foreach (var name in new[] { "q0", "q1", "q2", "q3", "q4" })
            Add(queue, name);

        Assert.Equal(["q0", "q1", "q2", "q3"], Decide(policy, queue, idleWorkers: 2).Batch);
        Assert.Equal(["q4"], Decide(policy, queue, idleWorkers: 1).Batch);
    }

    [Fact]
    public void WorkConserving_PriorityLevels_HigherLevelsFirstThenOldestFirst()
    {
        var options = Options(BatchingPolicies.WorkConserving, o =>
        {
            o.MaxBatchSize = 2;
            o.PriorityLevels = 3;
        });
        var policy = Policy(options);
        var queue = Queue(options);
        Add(queue, "low1", level: 2);
        Add(queue, "low2", level: 2);
        Add(queue, "high1", level: 0);
        Add(queue, "middle", level: 1);
        Add(queue, "high2", level: 0);

        Assert.Equal(["high1", "high2"], Decide(policy, queue).Batch);
        Assert.Equal(["middle", "low1"], Decide(policy, queue).Batch);
        Assert.Equal(["low2"], Decide(policy, queue).Batch);
    }

    [Fact]
    public void WorkConserving_TimeoutPassesWhileWaitingForAWorker_RejectedAndNeverInABatch()
    {
        var options = Options(BatchingPolicies.WorkConserving);
        var policy = Policy(options);
        var queue = Queue(options);
        var expiring = Add(queue, "expiring", timeoutMicroseconds: 500);
        Add(queue, "patient", timeoutMicroseconds: 5000);
        // The earliest timeout is the instant the scheduler must wake for, even with every worker busy.
        Assert.Equal(Ticks(500), queue.NextTimeout());

        var rejected = new List<QueuedRequest>();
        _clock.AdvanceMicroseconds(499);
        queue.Expire(_clock.GetTimestamp(), rejected);
        Assert.Empty(rejected);

        _clock.AdvanceMicroseconds(1);
        queue.Expire(_clock.GetTimestamp(), rejected);
        Assert.Equal([expiring], rejected);
        Assert.False(expiring.IsQueued);
        Assert.Equal(Ticks(5000), queue.NextTimeout());

        Assert.Equal(["patient"], Decide(policy, queue).Batch);
        Assert.Equal(long.MaxValue, queue.NextTimeout());
    }

    [Fact]
    public void WorkConserving_TimeoutActionDelay_RequestPastItsTimeoutGoesBehindItsLevel()
    {
        var options = Options(BatchingPolicies.WorkConserving, o =>
        {
            o.MaxBatchSize = 2;
            o.TimeoutAction = TimeoutAction.Delay;
        });
        var policy = Policy(options);
        var queue = Queue(options);
        var old = Add(queue, "old", timeoutMicroseconds: 50);
        _clock.AdvanceMicroseconds(50);
        Add(queue, "fresh1");
        Add(queue, "fresh2");

        var rejected = new List<QueuedRequest>();
        queue.Expire(_clock.GetTimestamp(), rejected);
        Assert.Empty(rejected);
        Assert.True(old.IsQueued);

        Assert.Equal(["fresh1", "fresh2"], Decide(policy, queue).Batch);
        Assert.Equal(["old"], Decide(policy, queue).Batch);
    }

    [Fact]
    public void WorkConserving_CancelledRequest_IsSkipped()
    {
        var options = Options(BatchingPolicies.WorkConserving);
        var queue = Queue(options);
        var gone = Add(queue, "gone", timeoutMicroseconds: 100);
        Add(queue, "kept");
        Assert.True(gone.TryCancel());

        Assert.Equal(["kept"], Decide(Policy(options), queue).Batch);
        Assert.Equal(long.MaxValue, queue.NextTimeout());
    }

    [Fact]
    public void WorkConserving_VariableLengths_BatchStaysWithinPaddingWasteAndTheOtherLengthsGoNext()
    {
        var options = Options(BatchingPolicies.WorkConserving, o => o.MaxPaddingWaste = 0.25);
        var policy = Policy(options);
        var queue = Queue(options);
        Add(queue, "l100", length: 100);
        Add(queue, "l10", length: 10);
        Add(queue, "l90", length: 90);
        Add(queue, "l12", length: 12);

        Assert.Equal(["l100", "l90"], Decide(policy, queue).Batch);
        Assert.Equal(["l10", "l12"], Decide(policy, queue).Batch);
    }

    [Fact]
    public void Delay_PartialBatch_WaitsUntilItsOldestRequestHasWaitedTheDelayCap()
    {
        var options = Options(BatchingPolicies.Delay, o => o.MaxQueueDelayMicroseconds = 1000);
        var policy = Policy(options);
        var queue = Queue(options);
        _clock.AdvanceMicroseconds(100);
        Add(queue, "a");
        _clock.AdvanceMicroseconds(200);
        Add(queue, "b");

        Assert.Equal(([], Ticks(1100)), Decide(policy, queue));
        _clock.AdvanceMicroseconds(799);
        Assert.Equal(([], Ticks(1100)), Decide(policy, queue));
        _clock.AdvanceMicroseconds(1);
        Assert.Equal(["a", "b"], Decide(policy, queue).Batch);
    }

    [Fact]
    public void Delay_FullBatch_GoesAtOnce()
    {
        var options = Options(BatchingPolicies.Delay, o => o.MaxQueueDelayMicroseconds = 10_000_000);
        var queue = Queue(options);
        foreach (var name in new[] { "r0", "r1", "r2", "r3" })
            Add(queue, name);

        Assert.Equal(["r0", "r1", "r2", "r3"], Decide(Policy(options), queue).Batch);
    }

    [Fact]
    public void Delay_PreferredSizes_LargestFormableGoesAtOnceAndTheRestWaitsForTheDelay()
    {
        var options = Options(BatchingPolicies.Delay, o =>
        {
            o.MaxBatchSize = 8;
            o.PreferredBatchSizes = [2, 4];
        });
        var policy = Policy(options);
        var queue = Queue(options);
        foreach (var name in new[] { "q0", "q1", "q2", "q3", "q4" })
            Add(queue, name);

        Assert.Equal(["q0", "q1", "q2", "q3"], Decide(policy, queue).Batch);
        Assert.Equal(([], Ticks(1000)), Decide(policy, queue));
        _clock.AdvanceMicroseconds(1000);
        Assert.Equal(["q4"], Decide(policy, queue).Batch);
    }

    [Fact]
    public void Delay_Draining_SendsAPartialBatchWithoutWaiting()
    {
        var options = Options(BatchingPolicies.Delay, o => o.MaxQueueDelayMicroseconds = 10_000_000);
        var queue = Queue(options);
        Add(queue, "a");

        Assert.Equal(["a"], Decide(Policy(options), queue, draining: true).Batch);
    }

    [Fact]
    public void Delay_PriorityLevels_HigherLevelsFirst()
    {
        var options = Options(BatchingPolicies.Delay, o =>
        {
            o.MaxBatchSize = 2;
            o.PriorityLevels = 2;
        });
        var policy = Policy(options);
        var queue = Queue(options);
        Add(queue, "low", level: 1);
        Add(queue, "high", level: 0);

        Assert.Equal(["high", "low"], Decide(policy, queue).Batch);
    }

    [Fact]
    public void Create_UnknownPolicy_ThrowsNamingTheChoices()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => BatchingPolicy.Create(new DynamicBatcherOptions { Policy = "eager" }, _clock.TimestampFrequency));
        Assert.Contains("Policy must be one of work_conserving, delay, but was 'eager'", ex.Message);
    }
}
