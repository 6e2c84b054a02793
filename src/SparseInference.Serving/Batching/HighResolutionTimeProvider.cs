using System.Diagnostics;
using System.Runtime.InteropServices;

namespace SparseInference.Serving.Batching;

/// <summary>
/// The system clock with timers precise to tens of microseconds. <see cref="TimeProvider.System"/> timers
/// follow the coarse tick count (4 ms steps on many Linux kernels), which would turn a 500 µs queue delay
/// into several milliseconds. One background thread serves every timer: it waits coarsely on a monitor
/// while the due time is far, sleeps precisely (<c>usleep</c>, with the thread's timer slack lowered) until
/// 60 µs before it, and spins the rest: timers fire a few microseconds late at the median.
/// Callbacks run on that thread and must be short (the batcher's only writes to a channel).
/// </summary>
public sealed partial class HighResolutionTimeProvider : TimeProvider
{
    public static HighResolutionTimeProvider Shared { get; } = new();

    private static readonly long CoarseMarginTicks = Stopwatch.Frequency * 2 / 1000;

    // A sleep ends tens of microseconds late (the wake-up, more under a hypervisor); the last stretch is spun instead.
    private static readonly long SpinMarginTicks = Stopwatch.Frequency * 60 / 1_000_000;

    private readonly object _gate = new();
    private readonly List<PreciseTimer> _timers = [];
    private Thread? _thread;

    private HighResolutionTimeProvider()
    {
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        ArgumentNullException.ThrowIfNull(callback);
        var timer = new PreciseTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    private void Schedule(PreciseTimer timer, long dueAt, long periodTicks)
    {
        lock (_gate)
        {
            timer.DueAt = dueAt;
            timer.PeriodTicks = periodTicks;
            if (dueAt != long.MaxValue && !_timers.Contains(timer))
                _timers.Add(timer);
            if (_thread is null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = "SparseInference high-resolution timers" };
                _thread.Start();
            }
            Monitor.PulseAll(_gate);
        }
    }

    private void Remove(PreciseTimer timer)
    {
        lock (_gate)
        {
            timer.DueAt = long.MaxValue;
            _timers.Remove(timer);
            Monitor.PulseAll(_gate);
        }
    }

    private void Run()
    {
        ReduceTimerSlack();
        while (true)
        {
            PreciseTimer? due = null;
            long sleepTicks = 0;
            lock (_gate)
            {
                PreciseTimer? earliest = null;
                foreach (var timer in _timers)
                {
                    if (earliest is null || timer.DueAt < earliest.DueAt)
                        earliest = timer;
                }
                if (earliest is null)
                {
                    Monitor.Wait(_gate);
                    continue;
                }
                var remaining = earliest.DueAt - Stopwatch.GetTimestamp();
                if (remaining <= 0)
                {
                    due = earliest;
                    if (earliest.PeriodTicks > 0)
                    {
                        earliest.DueAt += earliest.PeriodTicks;
                    }
                    else
                    {
                        earliest.DueAt = long.MaxValue;
                        _timers.Remove(earliest);
                    }
                }
                else if (remaining > CoarseMarginTicks)
                {
                    // Far away: a monitor wait, woken early when a timer changes.
                    Monitor.Wait(_gate, TimeSpan.FromSeconds((double)(remaining - CoarseMarginTicks) / Stopwatch.Frequency));
                    continue;
                }
                else
                {
                    sleepTicks = remaining;
                }
            }

            if (due is not null)
            {
                try
                {
                    due.Fire();
                }
                catch (Exception ex)
                {
                    // A throwing callback must not stop every other timer.
                    Trace.TraceError($"High-resolution timer callback failed: {ex}");
                }
            }
            else if (sleepTicks > SpinMarginTicks)
            {
                PreciseSleep(sleepTicks - SpinMarginTicks);
            }
            else if (sleepTicks > 0)
            {
                // Re-checked under the lock each round: a timer changed meanwhile is seen within microseconds.
                Thread.SpinWait(20);
            }
        }
    }

    private static bool s_noUsleep;

    // Linux lets a sleeping thread wake up to timer_slack_ns late (50 µs by default), which would add itself to every
    // queue delay; this thread only sleeps for deadlines, so it asks for 1 µs.
    private static void ReduceTimerSlack()
    {
        if (!OperatingSystem.IsLinux())
            return;
        try
        {
            LibC.prctl(LibC.PR_SET_TIMERSLACK, 1000, 0, 0, 0);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            // Without prctl the default slack stays: timers fire up to ~50 µs later.
        }
    }

    private static void PreciseSleep(long ticks)
    {
        var microseconds = (uint)Math.Max(1, ticks * 1_000_000 / Stopwatch.Frequency);
        if (!s_noUsleep)
        {
            try
            {
                LibC.usleep(microseconds);
                return;
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
                s_noUsleep = true;
            }
        }
        Thread.Sleep(1);
    }

    private sealed class PreciseTimer(HighResolutionTimeProvider owner, TimerCallback callback, object? state) : ITimer
    {
        public long DueAt = long.MaxValue;
        public long PeriodTicks;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            var dueAt = dueTime == Timeout.InfiniteTimeSpan
                ? long.MaxValue
                : Stopwatch.GetTimestamp() + (long)(Math.Max(dueTime.Ticks, 0) * ((double)Stopwatch.Frequency / TimeSpan.TicksPerSecond));
            var periodTicks = period == Timeout.InfiniteTimeSpan || period <= TimeSpan.Zero
                ? 0
                : (long)(period.Ticks * ((double)Stopwatch.Frequency / TimeSpan.TicksPerSecond));
            if (dueAt == long.MaxValue)
                owner.Remove(this);
            else
                owner.Schedule(this, dueAt, periodTicks);
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

    /// <summary>The C library's precise sleep (POSIX); absent on Windows, where a 1 ms sleep stands in.</summary>
    private static partial class LibC
    {
        public const int PR_SET_TIMERSLACK = 29;

        [LibraryImport("libc", EntryPoint = "usleep", SetLastError = false)]
        public static partial int usleep(uint usec);

        [LibraryImport("libc", EntryPoint = "prctl", SetLastError = false)]
        public static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
    }
}
