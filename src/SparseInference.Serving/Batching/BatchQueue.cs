namespace SparseInference.Serving.Batching;

/// <summary>
/// A request admitted to a batcher, as the queue and the batching policy see it. Its state moves once, from
/// queued to dispatched, cancelled or expired, by compare-and-swap: cancellation races the scheduler.
/// </summary>
internal class QueuedRequest
{
    private const int Queued = 0;
    private const int Dispatched = 1;
    private const int Cancelled = 2;
    private const int Expired = 3;

    private int _state;

    /// <summary>Sequences the request carries; they count toward MaxBatchSize and preferred sizes.</summary>
    public int Size;

    /// <summary>Time steps, for padding-waste bucketing.</summary>
    public int Length;

    /// <summary>Priority level, 0-based: 0 is the highest.</summary>
    public int Level;

    /// <summary>Clock reading at admission.</summary>
    public long EnqueuedAt;

    /// <summary>Clock reading at which its queue timeout passes; <see cref="long.MaxValue"/> for none.</summary>
    public long TimeoutAt = long.MaxValue;

    /// <summary>Past its timeout and kept (TimeoutAction.Delay): it goes behind the rest of its level.</summary>
    public bool PastTimeout;

    public bool IsQueued => Volatile.Read(ref _state) == Queued;

    public bool TryDispatch() => Interlocked.CompareExchange(ref _state, Dispatched, Queued) == Queued;

    public bool TryCancel() => Interlocked.CompareExchange(ref _state, Cancelled, Queued) == Queued;

    public bool TryExpire() => Interlocked.CompareExchange(ref _state, Expired, Queued) == Queued;
}

/// <summary>
/// The queued requests of one batcher by priority level, and their timeouts. Owned by one thread (the scheduler);
/// no clock of its own: every call that depends on time is given the reading.
/// </summary>
internal sealed class BatchQueue
{
    private readonly List<QueuedRequest>[] _withinTimeout;
    private readonly List<QueuedRequest>[] _pastTimeout;
    private readonly PriorityQueue<QueuedRequest, long> _timeouts = new();
    private readonly TimeoutAction _timeoutAction;
    private readonly int _compactAbove;
    private int _listed;

    public BatchQueue(int priorityLevels, TimeoutAction timeoutAction, int maxQueueSize)
    {
        _withinTimeout = new List<QueuedRequest>[priorityLevels];
        _pastTimeout = new List<QueuedRequest>[priorityLevels];
        for (var i = 0; i < priorityLevels; i++)
        {
            _withinTimeout[i] = [];
            _pastTimeout[i] = [];
        }
        _timeoutAction = timeoutAction;
        // Cancelled requests stay listed until the next compaction; bounded so that a cancel storm cannot grow the lists.
        _compactAbove = 2 * maxQueueSize + 64;
    }

    public int PriorityLevels => _withinTimeout.Length;

    /// <summary>
    /// Requests of <paramref name="level"/> within their timeout, oldest first. May hold requests that are no longer
    /// queued (check <see cref="QueuedRequest.IsQueued"/>) or that moved behind (<see cref="QueuedRequest.PastTimeout"/>).
    /// </summary>
    public IReadOnlyList<QueuedRequest> WithinTimeout(int level) => _withinTimeout[level];

    /// <summary>Requests of <paramref name="level"/> past their timeout and kept (TimeoutAction.Delay), in the order their timeouts passed.</summary>
    public IReadOnlyList<QueuedRequest> PastTimeout(int level) => _pastTimeout[level];

    public void Add(QueuedRequest request)
    {
        if (!request.IsQueued)
            return;
        _withinTimeout[request.Level].Add(request);
        _listed++;
        if (request.TimeoutAt != long.MaxValue)
            _timeouts.Enqueue(request, request.TimeoutAt);
    }

    /// <summary>
    /// Applies the timeout action to every queued request whose timeout is at or before <paramref name="now"/>:
    /// Reject moves it to the expired state and adds it to <paramref name="rejected"/> (the caller fails it);
    /// Delay keeps it, behind the requests of its level that are within their timeout.
    /// </summary>
    public void Expire(long now, List<QueuedRequest> rejected)
    {
        while (_timeouts.TryPeek(out var request, out var at) && at <= now)
        {
            _timeouts.Dequeue();
            if (!request.IsQueued)
                continue;
            if (_timeoutAction == TimeoutAction.Delay)
            {
                request.PastTimeout = true;
                _pastTimeout[request.Level].Add(request);
                _listed++;
            }
            else if (request.TryExpire())
            {
                rejected.Add(request);
            }
        }

        // Entries of cancelled or dispatched requests wait in the heap until their time; rebuild if they pile up.
        if (_timeouts.Count > 2 * _compactAbove)
        {
            var live = new List<(QueuedRequest, long)>();
            while (_timeouts.TryDequeue(out var request, out var at))
            {
                if (request.IsQueued)
                    live.Add((request, at));
            }
            _timeouts.EnqueueRange(live);
        }
    }

    /// <summary>The earliest timeout of a queued request; <see cref="long.MaxValue"/> when none has one.</summary>
    public long NextTimeout()
    {
        // Requests that left the queue meanwhile need no wake-up: drop them from the top.
        while (_timeouts.TryPeek(out var request, out var at))
        {
            if (request.IsQueued)
                return at;
            _timeouts.Dequeue();
        }
        return long.MaxValue;
    }

    /// <summary>Drops requests that are no longer queued from the lists (after a dispatch, or when cancellations pile up).</summary>
    public void Compact(bool onlyIfLarge = false)
    {
        if (onlyIfLarge && _listed <= _compactAbove)
            return;
        _listed = 0;
        foreach (var list in _withinTimeout)
        {
            list.RemoveAll(static r => !r.IsQueued || r.PastTimeout);
            _listed += list.Count;
        }
        foreach (var list in _pastTimeout)
        {
            list.RemoveAll(static r => !r.IsQueued);
            _listed += list.Count;
        }
    }

    public void Clear()
    {
        foreach (var list in _withinTimeout)
            list.Clear();
        foreach (var list in _pastTimeout)
            list.Clear();
        _timeouts.Clear();
        _listed = 0;
    }
}
