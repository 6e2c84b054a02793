namespace SparseInference.Serving.Tests.Infrastructure;

/// <summary>
/// A clock that moves only when a test advances it; timers fire inside <see cref="Advance"/>, in due order.
/// (Microsoft.Extensions.TimeProvider.Testing is not available from the package feed.)
/// </summary>
public sealed class ManualTimeProvider : TimeProvider
{
    private static readonly DateTimeOffset Epoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly object _gate = new();
    private readonly List<ManualTimer> _timers = [];
    private long _now;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Interlocked.Read(ref _now);

    public override DateTimeOffset GetUtcNow() => Epoch.AddTicks(GetTimestamp());

    /// <summary>Runs on the arming thread before a timer takes a finite due time: lets a test move the clock mid-arm.</summary>
    public Action? BeforeTimerArmed { get; set; }

    public int ActiveTimers
    {
        get
        {
            lock (_gate)
                return _timers.Count(t => t.DueAt != long.MaxValue);
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        lock (_gate)
            _timers.Add(timer);
        timer.Change(dueTime, period);
        return timer;
    }

    public void AdvanceMicroseconds(long microseconds) => Advance(TimeSpan.FromMicroseconds(microseconds));

    /// <summary>Moves the clock forward, firing every timer that falls due on the way at its due time.</summary>
    public void Advance(TimeSpan by)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(by, TimeSpan.Zero);
        var target = GetTimestamp() + by.Ticks;
        while (true)
        {
            ManualTimer? next = null;
            lock (_gate)
            {
                foreach (var timer in _timers)
                {
                    if (timer.DueAt <= target && (next is null || timer.DueAt < next.DueAt))
                        next = timer;
                }
                if (next is null)
                {
                    // Never backwards: a timer callback (or code it woke) may have advanced the clock further meanwhile.
                    Interlocked.Exchange(ref _now, Math.Max(GetTimestamp(), target));
                    return;
                }
                Interlocked.Exchange(ref _now, Math.Max(GetTimestamp(), next.DueAt));
                next.DueAt = next.PeriodTicks > 0 ? next.DueAt + next.PeriodTicks : long.MaxValue;
            }
            next.Fire();
        }
    }

    private void Remove(ManualTimer timer)
    {
        lock (_gate)
            _timers.Remove(timer);
    }

    private sealed class ManualTimer(ManualTimeProvider owner, TimerCallback callback, object? state) : ITimer
    {
        public long DueAt { get; set; } = long.MaxValue;

        public long PeriodTicks { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            if (dueTime != Timeout.InfiniteTimeSpan)
                owner.BeforeTimerArmed?.Invoke();
            lock (owner._gate)
            {
                DueAt = dueTime == Timeout.InfiniteTimeSpan ? long.MaxValue : owner.GetTimestamp() + dueTime.Ticks;
                PeriodTicks = period == Timeout.InfiniteTimeSpan ? 0 : period.Ticks;
            }
            return true;
        }

        public void Fire() => callback(state);

        public void Dispose() => owner.Remove(this);

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
