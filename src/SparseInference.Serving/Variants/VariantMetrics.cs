using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using SparseInference.Serving.Variants.Comparison;
using SparseInference.Serving.Variants.Rollout;

namespace SparseInference.Serving.Variants;

/// <summary>
/// Variant and shadow instruments on the shared "SparseInference" meter, labelled model/primary/candidate
/// so dashboards can put a candidate next to the variant it shadows.
/// </summary>
public sealed class VariantMetrics
{
    public const string MeterName = "SparseInference";

    /// <summary>
    /// Output differences of a good sparse variant are small (outputs are normalised sensor values), so the
    /// buckets are dense below 0.01 where the seconds-oriented Prometheus defaults have nothing.
    /// </summary>
    private static readonly InstrumentAdvice<double> ErrorBuckets = new()
    {
        HistogramBucketBoundaries = [1e-5, 1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    };

    /// <summary>Density lies in (0, 1]: one bucket per tenth, finer at the sparse end.</summary>
    private static readonly InstrumentAdvice<double> DensityBuckets = new()
    {
        HistogramBucketBoundaries = [0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    };

    private readonly Histogram<double> _mae;
    private readonly Histogram<double> _maxError;
    private readonly Counter<long> _dropped;
    private readonly Counter<long> _changes;
    private readonly Counter<long> _guardrailTrips;
    private readonly Histogram<double> _requestDuration;
    private readonly Histogram<double> _density;
    private readonly Counter<long> _failures;
    private readonly Counter<long> _applyFailures;
    private readonly ConcurrentDictionary<VariantRegistry, bool> _registries = new();

    public VariantMetrics(IMeterFactory meterFactory, ComparisonStore store)
    {
        var meter = meterFactory.Create(MeterName);
        _mae = meter.CreateHistogram<double>("sparseinference_shadow_agreement_mae", unit: null, description: "Mean absolute difference between primary and shadow outputs, per shadowed request.", tags: null, advice: ErrorBuckets);
        _maxError = meter.CreateHistogram<double>("sparseinference_shadow_max_error", unit: null, description: "Largest absolute difference between primary and shadow outputs, per shadowed request.", tags: null, advice: ErrorBuckets);
        _dropped = meter.CreateCounter<long>("sparseinference_shadow_dropped_total", description: "Shadow requests dropped because the shadow queue was full.");
        _changes = meter.CreateCounter<long>("sparseinference_variant_changes_total", description: "Variant and split changes by operation and outcome.");
        _guardrailTrips = meter.CreateCounter<long>("sparseinference_variant_guardrail_trips_total", description: "Automatic rollbacks made by guardrails.");
        _requestDuration = meter.CreateHistogram<double>("sparseinference_variant_request_duration_seconds", unit: "s", description: "Forward time of requests by the variant that served them.");
        _density = meter.CreateHistogram<double>("sparseinference_variant_attention_density", unit: null, description: "Computed attention pairs over dense pairs, by the variant that served the request (the cost side of an A/B).", tags: null, advice: DensityBuckets);
        _failures = meter.CreateCounter<long>("sparseinference_variant_failures_total", description: "Requests that failed on the server side, by variant.");
        meter.CreateObservableGauge("sparseinference_shadow_flag_agreement_ratio", () => FlagAgreement(store), description: "Share of output elements where primary and shadow agree on the anomaly flag, since start.");
        _applyFailures = meter.CreateCounter<long>("sparseinference_rollout_apply_failures_total", description: "Rollout revisions this replica could not read or build (it kept serving the previous one), by reason.");
        meter.CreateObservableGauge("sparseinference_rollout_revision", () => Revisions(desired: false), description: "Revision of the shared rollout state this replica serves, per model.");
        meter.CreateObservableGauge("sparseinference_rollout_desired_revision", () => Revisions(desired: true), description: "Revision of the shared rollout state in the store as this replica last read it, per model.");
    }

    /// <summary>Reports a registry's revisions and starts its failure series at 0, so a dashboard sees every replica before anything fails.</summary>
    internal void Track(VariantRegistry registry)
    {
        _registries[registry] = true;
        foreach (var reason in RolloutApplyFailures.All)
        {
            _applyFailures.Add(0, new("model", registry.Model), new("reason", reason));
        }
    }

    internal void Untrack(VariantRegistry registry) => _registries.TryRemove(registry, out _);

    internal void RecordApplyFailure(string model, string reason) => _applyFailures.Add(1, new("model", model), new("reason", reason));

    internal void RecordComparison(string model, string primary, string candidate, ComparisonSample sample)
    {
        var tags = Tags(model, primary, candidate);
        _mae.Record(sample.MeanAbsoluteError, tags);
        _maxError.Record(sample.MaxError, tags);
    }

    internal void RecordServed(string model, string variant, TimeSpan elapsed, double density)
    {
        var tags = new TagList { { "model", model }, { "variant", variant } };
        _requestDuration.Record(elapsed.TotalSeconds, tags);
        _density.Record(density, tags);
    }

    internal void RecordFailed(string model, string variant) => _failures.Add(1, new("model", model), new("variant", variant));

    internal void RecordDropped(string model, string primary, string candidate) => _dropped.Add(1, Tags(model, primary, candidate));

    internal void RecordChange(string model, string operation, VariantChangeStatus status) =>
        _changes.Add(1, new("model", model), new("operation", operation), new("outcome", status.ToString()));

    internal void RecordGuardrailTrip(string model, string variant, string bound) =>
        _guardrailTrips.Add(1, new("model", model), new("variant", variant), new("bound", bound));

    private static IEnumerable<Measurement<double>> FlagAgreement(ComparisonStore store)
    {
        foreach (var pair in store.Snapshot())
        {
            if (pair.FlagAgreementRatio is { } ratio)
            {
                yield return new Measurement<double>(ratio, Tags(pair.Model, pair.Primary, pair.Candidate));
            }
        }
    }

    private IEnumerable<Measurement<long>> Revisions(bool desired)
    {
        foreach (var registry in _registries.Keys)
        {
            var status = registry.Status;
            yield return new Measurement<long>(desired ? status.DesiredRevision : status.AppliedRevision, new KeyValuePair<string, object?>("model", registry.Model));
        }
    }

    private static TagList Tags(string model, string primary, string candidate) =>
        new() { { "model", model }, { "primary", primary }, { "candidate", candidate } };
}
