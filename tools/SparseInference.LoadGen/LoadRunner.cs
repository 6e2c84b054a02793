using System.Collections.Concurrent;

namespace SparseInference.LoadGen;

/// <summary>Results of one load level (one concurrency or one rate).</summary>
public sealed record LevelResult(
    string Mode,
    double Level,
    TimeSpan Duration,
    long Completed,
    long Succeeded,
    IReadOnlyDictionary<string, long> Failures,
    double ThroughputPerSecond,
    LatencySummary Latency,
    ServerCounters? Server);

/// <summary>Drives a client at a fixed concurrency (closed loop) or a fixed request rate (open loop).</summary>
public sealed class LoadRunner(IInferClient client, WindowSource windows, Func<CancellationToken, Task<ServerCounters?>> readServer, TimeProvider time, TimeSpan requestTimeout)
{
    private long _requestIds;

    /// <summary>Closed loop: <paramref name="concurrency"/> workers each send their next request when the previous one returns.</summary>
    public async Task<LevelResult> RunClosedLoopAsync(int concurrency, TimeSpan warmup, TimeSpan duration, CancellationToken cancellationToken)
    {
        var recorder = new Recorder();
        var start = time.GetTimestamp();
        var measureFrom = start + ToTicks(warmup);
        var measureTo = measureFrom + ToTicks(duration);
        var window = MeasurementWindowAsync(warmup, duration, cancellationToken);

        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (!cancellationToken.IsCancellationRequested && time.GetTimestamp() < measureTo)
            {
                var sent = time.GetTimestamp();
                var outcome = await SendAsync(cancellationToken).ConfigureAwait(false);
                recorder.Record(sent, time.GetTimestamp(), measureFrom, measureTo, outcome, time);
            }
        }, cancellationToken)).ToArray();

        var (before, after) = await window.ConfigureAwait(false);
        await Task.WhenAll(workers).ConfigureAwait(false);
        return recorder.Result("concurrency", concurrency, duration, before, after);
    }

    /// <summary>
    /// Open loop: requests start on a fixed schedule whatever the server does; latency counts from the
    /// scheduled start, so a stalled server cannot hide queueing (no coordinated omission).
    /// </summary>
    public async Task<LevelResult> RunOpenLoopAsync(double ratePerSecond, TimeSpan warmup, TimeSpan duration, int maxInFlight, CancellationToken cancellationToken)
    {
        var recorder = new Recorder();
        var start = time.GetTimestamp();
        var measureFrom = start + ToTicks(warmup);
        var measureTo = measureFrom + ToTicks(duration);
        var window = MeasurementWindowAsync(warmup, duration, cancellationToken);
        var interval = time.TimestampFrequency / ratePerSecond;
        var inFlight = new ConcurrentDictionary<Task, byte>();
        var current = 0;

        for (long k = 0; !cancellationToken.IsCancellationRequested; k++)
        {
            var scheduled = start + (long)(k * interval);
            if (scheduled >= measureTo)
                break;
            var wait = time.GetElapsedTime(time.GetTimestamp(), scheduled);
            if (wait > TimeSpan.Zero)
                await Task.Delay(wait, time, cancellationToken).ConfigureAwait(false);

            if (Volatile.Read(ref current) >= maxInFlight)
            {
                recorder.Record(scheduled, scheduled, measureFrom, measureTo, new CallOutcome(false, "client_overloaded"), time);
                continue;
            }
            Interlocked.Increment(ref current);
            var task = Task.Run(async () =>
            {
                try
                {
                    var outcome = await SendAsync(cancellationToken).ConfigureAwait(false);
                    recorder.Record(scheduled, time.GetTimestamp(), measureFrom, measureTo, outcome, time);
                }
                finally
                {
                    Interlocked.Decrement(ref current);
                }
            }, cancellationToken);
            inFlight[task] = 0;
            _ = task.ContinueWith(t => inFlight.TryRemove(t, out _), TaskScheduler.Default);
        }

        var (before, after) = await window.ConfigureAwait(false);
        await Task.WhenAll(inFlight.Keys).ConfigureAwait(false);
        return recorder.Result("rate", ratePerSecond, duration, before, after);
    }

    private async Task<(ServerCounters? Before, ServerCounters? After)> MeasurementWindowAsync(TimeSpan warmup, TimeSpan duration, CancellationToken cancellationToken)
    {
        await Task.Delay(warmup, time, cancellationToken).ConfigureAwait(false);
        var before = await readServer(cancellationToken).ConfigureAwait(false);
        await Task.Delay(duration, time, cancellationToken).ConfigureAwait(false);
        var after = await readServer(cancellationToken).ConfigureAwait(false);
        return (before, after);
    }

    private async Task<CallOutcome> SendAsync(CancellationToken cancellationToken)
    {
        var (lineId, values) = windows.Next();
        var id = "lg-" + Interlocked.Increment(ref _requestIds).ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(requestTimeout);
        try
        {
            return await client.InferAsync(id, lineId, values, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new CallOutcome(false, "client_timeout");
        }
        catch (HttpRequestException ex)
        {
            return new CallOutcome(false, "connection_" + (ex.HttpRequestError.ToString().ToLowerInvariant()));
        }
    }

    private long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * time.TimestampFrequency);

    private sealed class Recorder
    {
        private readonly ConcurrentBag<double> _latenciesMs = [];
        private readonly ConcurrentDictionary<string, long> _failures = new(StringComparer.Ordinal);
        private long _completed;
        private long _succeeded;

        /// <summary>Counts a call that finished inside the measured window.</summary>
        public void Record(long sent, long finished, long measureFrom, long measureTo, CallOutcome outcome, TimeProvider time)
        {
            if (sent < measureFrom || finished > measureTo)
                return;
            Interlocked.Increment(ref _completed);
            if (outcome.Success)
            {
                Interlocked.Increment(ref _succeeded);
                _latenciesMs.Add(time.GetElapsedTime(sent, finished).TotalMilliseconds);
            }
            else
            {
                _failures.AddOrUpdate(outcome.Status, 1, static (_, n) => n + 1);
            }
        }

        public LevelResult Result(string mode, double level, TimeSpan duration, ServerCounters? before, ServerCounters? after) => new(
            mode,
            level,
            duration,
            Interlocked.Read(ref _completed),
            Interlocked.Read(ref _succeeded),
            _failures.ToDictionary(StringComparer.Ordinal),
            Interlocked.Read(ref _succeeded) / duration.TotalSeconds,
            Percentiles.Summarize(_latenciesMs),
            before is { } b && after is { } a ? a.Minus(b) : null);
    }
}
