using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Variants.Comparison;
using SparseInference.Serving.Variants.Rollout;

namespace SparseInference.Serving.Variants.Guardrails;

/// <summary>A bound a candidate crossed, and what was done about it.</summary>
public sealed record GuardrailTrip(string Model, string Variant, string Bound, double Limit, double Actual, VariantChangeStatus Outcome);

/// <summary>
/// Keeps a time window of each variant's request outcomes, latencies and shadow agreement, and rolls the
/// split back when a candidate (a variant whose share just grew, or the shadow) crosses a bound: the model's
/// own bounds from its rollout state, else the configured ones. The rollback is written to the shared rollout
/// state, so a trip on one replica rolls every replica back, and the trip is recorded there with its reason.
/// </summary>
public sealed partial class GuardrailMonitor(
    IOptionsMonitor<VariantOptions> options,
    VariantCatalog catalog,
    VariantMetrics metrics,
    TimeProvider timeProvider,
    ILogger<GuardrailMonitor> logger)
{
    /// <summary>Per-variant sample cap, so a burst cannot grow the window without bound.</summary>
    public const int MaxSamplesPerVariant = 20_000;

    private readonly ConcurrentDictionary<(string Model, string Variant), Window> _windows = new();

    public void RecordRequest(string model, string variant, TimeSpan latency, bool failed)
    {
        if (!IsEnabled(model))
        {
            return;
        }

        var window = _windows.GetOrAdd((model, variant), static _ => new Window());
        lock (window)
        {
            window.Requests.Enqueue((timeProvider.GetUtcNow(), latency.TotalMilliseconds, failed));
            if (window.Requests.Count > MaxSamplesPerVariant)
            {
                window.Requests.Dequeue();
            }
        }
    }

    public void RecordComparison(string model, string candidate, ComparisonSample sample)
    {
        if (!IsEnabled(model))
        {
            return;
        }

        var window = _windows.GetOrAdd((model, candidate), static _ => new Window());
        lock (window)
        {
            window.Comparisons.Enqueue((timeProvider.GetUtcNow(), sample));
            if (window.Comparisons.Count > MaxSamplesPerVariant)
            {
                window.Comparisons.Dequeue();
            }
        }
    }

    /// <summary>The bounds that hold for <paramref name="model"/> now: its rollout state's, else the configured ones.</summary>
    public GuardrailSettings BoundsFor(string model) =>
        catalog.TryGet(model, out var registry) && registry.Current.Rollout.Guardrails is { } own ? own : options.CurrentValue.Guardrails.ToSettings();

    /// <summary>Checks every candidate of every model against its bounds; rolls back those that cross one.</summary>
    public async Task<IReadOnlyList<GuardrailTrip>> EvaluateAsync(CancellationToken cancellationToken = default)
    {
        var trips = new List<GuardrailTrip>();
        foreach (var model in catalog.Models)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!catalog.TryGet(model, out var registry))
            {
                continue;
            }

            var table = registry.Current;
            var bounds = table.Rollout.Guardrails ?? options.CurrentValue.Guardrails.ToSettings();
            if (!bounds.Enabled)
            {
                continue;
            }

            var cutoff = timeProvider.GetUtcNow() - bounds.Window;
            foreach (var candidate in table.Candidates())
            {
                if (!_windows.TryGetValue((model, candidate), out var window) || Check(window, cutoff, bounds) is not { } crossed)
                {
                    continue;
                }

                var shadowOnly = table.Split.Shadow?.Variant == candidate && table.Split.WeightOf(candidate) <= (table.History.IsEmpty ? 0 : table.History[0].WeightOf(candidate));
                var reason = $"{candidate} crossed {crossed.Bound}: limit {crossed.Limit}, actual {crossed.Actual:0.#####}";
                var record = new GuardrailTripRecord(timeProvider.GetUtcNow(), RolloutReplica.Name, candidate, crossed.Bound, crossed.Limit, crossed.Actual, table.Version, reason);
                var result = await registry.GuardrailRollbackAsync(record, shadowOnly, cancellationToken).ConfigureAwait(false);
                if (result.Succeeded)
                {
                    lock (window)
                    {
                        window.Requests.Clear();
                        window.Comparisons.Clear();
                    }

                    metrics.RecordGuardrailTrip(model, candidate, crossed.Bound);
                }

                // A conflict means the shared state moved on (another replica rolled back first, or an operator
                // changed it); the next evaluation judges the candidates of the state this replica serves then.
                Log.Tripped(logger, model, reason, result.Status);
                trips.Add(new GuardrailTrip(model, candidate, crossed.Bound, crossed.Limit, crossed.Actual, result.Status));
                break; // the table changed; the next evaluation sees the new candidates
            }
        }

        return trips;
    }

    private bool IsEnabled(string model) =>
        catalog.TryGet(model, out var registry) && registry.Current.Rollout.Guardrails is { } own ? own.Enabled : options.CurrentValue.Guardrails.Enabled;

    private static (string Bound, double Limit, double Actual)? Check(Window window, DateTimeOffset cutoff, GuardrailSettings bounds)
    {
        double[] latencies;
        long failures;
        (long Agree, long Total, double SumMae, int Count) agreement = default;
        lock (window)
        {
            while (window.Requests.TryPeek(out var r) && r.At < cutoff)
            {
                window.Requests.Dequeue();
            }

            while (window.Comparisons.TryPeek(out var c) && c.At < cutoff)
            {
                window.Comparisons.Dequeue();
            }

            latencies = window.Requests.Select(r => r.LatencyMs).ToArray();
            failures = window.Requests.Count(r => r.Failed);
            foreach (var (_, sample) in window.Comparisons)
            {
                agreement = (agreement.Agree + sample.FlagAgreements, agreement.Total + sample.FlagTotal, agreement.SumMae + sample.MeanAbsoluteError, agreement.Count + 1);
            }
        }

        if (latencies.Length >= bounds.MinSamples)
        {
            var errorRate = (double)failures / latencies.Length;
            if (bounds.MaxErrorRate is { } maxErrors && errorRate > maxErrors)
            {
                return ("error_rate", maxErrors, errorRate);
            }

            if (bounds.MaxP99LatencyMs is { } maxP99)
            {
                Array.Sort(latencies);
                // Nearest-rank p99.
                var p99 = latencies[Math.Max(0, (int)Math.Ceiling(0.99 * latencies.Length) - 1)];
                if (p99 > maxP99)
                {
                    return ("p99_latency_ms", maxP99, p99);
                }
            }
        }

        if (agreement.Count >= bounds.MinSamples)
        {
            var mae = agreement.SumMae / agreement.Count;
            if (bounds.MaxMeanAbsoluteError is { } maxMae && mae > maxMae)
            {
                return ("mean_absolute_error", maxMae, mae);
            }

            if (bounds.MinFlagAgreement is { } minAgree && agreement.Total > 0)
            {
                var ratio = (double)agreement.Agree / agreement.Total;
                if (ratio < minAgree)
                {
                    return ("flag_agreement", minAgree, ratio);
                }
            }
        }

        return null;
    }

    private sealed class Window
    {
        public readonly Queue<(DateTimeOffset At, double LatencyMs, bool Failed)> Requests = new();
        public readonly Queue<(DateTimeOffset At, ComparisonSample Sample)> Comparisons = new();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.GuardrailTripped, Level = LogLevel.Warning, Message = "Model {Model}: guardrail tripped ({Reason}); rollback {Outcome}")]
        public static partial void Tripped(ILogger logger, string model, string reason, VariantChangeStatus outcome);
    }
}

/// <summary>
/// Runs <see cref="GuardrailMonitor.EvaluateAsync"/> every evaluation interval, on the injected clock; also when
/// guardrails are off in configuration, since a model's rollout state can turn them on.
/// </summary>
internal sealed class GuardrailEvaluationService(GuardrailMonitor monitor, IOptionsMonitor<VariantOptions> options, TimeProvider timeProvider)
    : Microsoft.Extensions.Hosting.BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.CurrentValue.Guardrails.EvaluationInterval, timeProvider);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            await monitor.EvaluateAsync(stoppingToken).ConfigureAwait(false);
        }
    }
}
