using System.Diagnostics;
using System.Diagnostics.Metrics;
using SparseInference.Serving.Variants.Comparison;

namespace SparseInference.Serving.Variants;

/// <summary>
/// Variant and shadow instruments on the shared "SparseInference" meter, labelled model/primary/candidate
/// so dashboards can put a candidate next to the variant it shadows.
/// </summary>
public sealed class VariantMetrics
{
    public const string MeterName = "SparseInference";

    private readonly Histogram<double> _mae;
    private readonly Histogram<double> _maxError;
    private readonly Counter<long> _dropped;
    private readonly Counter<long> _changes;
    private readonly Counter<long> _guardrailTrips;
    private readonly Histogram<double> _requestDuration;
    private readonly Histogram<double> _density;
    private readonly Counter<long> _failures;

    public VariantMetrics(IMeterFactory meterFactory, ComparisonStore store)
    {
        var meter = meterFactory.Create(MeterName);
        _mae = meter.CreateHistogram<double>("sparseinference_shadow_agreement_mae", description: "Mean absolute difference between primary and shadow outputs, per shadowed request.");
        _maxError = meter.CreateHistogram<double>("sparseinference_shadow_max_error", description: "Largest absolute difference between primary and shadow outputs, per shadowed request.");
        _dropped = meter.CreateCounter<long>("sparseinference_shadow_dropped_total", description: "Shadow requests dropped because the shadow queue was full.");
        _changes = meter.CreateCounter<long>("sparseinference_variant_changes_total", description: "Variant and split changes by operation and outcome.");
        _guardrailTrips = meter.CreateCounter<long>("sparseinference_variant_guardrail_trips_total", description: "Automatic rollbacks made by guardrails.");
        _requestDuration = meter.CreateHistogram<double>("sparseinference_variant_request_duration_seconds", unit: "s", description: "Forward time of requests by the variant that served them.");
        _density = meter.CreateHistogram<double>("sparseinference_variant_attention_density", description: "Computed attention pairs over dense pairs, by the variant that served the request (the cost side of an A/B).");
        _failures = meter.CreateCounter<long>("sparseinference_variant_failures_total", description: "Requests that failed on the server side, by variant.");
        meter.CreateObservableGauge("sparseinference_shadow_flag_agreement_ratio", () => FlagAgreement(store), description: "Share of output elements where primary and shadow agree on the anomaly flag, since start.");
    }

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

    private static TagList Tags(string model, string primary, string candidate) =>
        new() { { "model", model }, { "primary", primary }, { "candidate", candidate } };
}
