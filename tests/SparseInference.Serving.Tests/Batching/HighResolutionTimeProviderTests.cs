using System.Diagnostics;
using SparseInference.Serving.Batching;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Serving.Tests.Batching;

public sealed class HighResolutionTimeProviderTests
{
    [Theory]
    [InlineData(300)]
    [InlineData(1000)]
    [InlineData(5000)]
    public async Task CreateTimer_DueTime_FiresOnceNotBeforeDue(int microseconds)
    {
        var fired = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var count = 0;
        var started = Stopwatch.GetTimestamp();
        using var timer = HighResolutionTimeProvider.Shared.CreateTimer(_ =>
        {
            Interlocked.Increment(ref count);
            fired.TrySetResult(Stopwatch.GetTimestamp());
        }, null, TimeSpan.FromMicroseconds(microseconds), Timeout.InfiniteTimeSpan);

        var at = await Eventually.CompletesAsync(fired.Task, "the timer fires");

        Assert.True(Stopwatch.GetElapsedTime(started, at) >= TimeSpan.FromMicroseconds(microseconds),
            $"fired after {Stopwatch.GetElapsedTime(started, at).TotalMicroseconds} µs, before its due time of {microseconds} µs");
        Assert.Equal(1, count);
    }

    [Fact]
    public async Task Change_ToInfinite_CancelsTheTimer()
    {
        var cancelledFired = false;
        var later = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // Due far enough ahead that the cancel below always comes first, even with this thread descheduled on a busy
        // machine (other tests' timers share the provider's thread).
        using var cancelled = HighResolutionTimeProvider.Shared.CreateTimer(_ => cancelledFired = true, null, TimeSpan.FromMilliseconds(300), Timeout.InfiniteTimeSpan);
        using var control = HighResolutionTimeProvider.Shared.CreateTimer(_ => later.TrySetResult(), null, TimeSpan.FromMilliseconds(400), Timeout.InfiniteTimeSpan);

        cancelled.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        await Eventually.CompletesAsync(later.Task.ContinueWith(_ => 0), "the later timer fires");

        // Timers fire in due order: had the cancel failed, the earlier timer would have fired first.
        Assert.False(cancelledFired);
    }

    [Fact]
    public void GetTimestamp_IsTheSystemClock()
    {
        Assert.Equal(TimeProvider.System.TimestampFrequency, HighResolutionTimeProvider.Shared.TimestampFrequency);
        var system = TimeProvider.System.GetTimestamp();
        var precise = HighResolutionTimeProvider.Shared.GetTimestamp();
        Assert.InRange(precise - system, 0, Stopwatch.Frequency);
    }
}
