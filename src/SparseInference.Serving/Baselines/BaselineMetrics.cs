using System.Diagnostics.Metrics;

namespace SparseInference.Serving.Baselines;

/// <summary>Line-baseline instruments on the shared "SparseInference" meter (docs/metrics.md).</summary>
public sealed class BaselineMetrics
{
    public const string MeterName = "SparseInference";

    /// <summary>Values of the <c>baseline</c> label of <c>sparseinference_baseline_requests_total</c>: the response parameter.</summary>
    public const string WithBaseline = LineScoring.BaselineApplied;
    public const string WithoutBaseline = LineScoring.BaselineNone;

    private readonly Counter<long> _requests;
    private readonly Counter<long> _readFailures;
    private Func<IEnumerable<(string Model, int Lines)>> _lines = () => [];

    public BaselineMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(MeterName);
        _requests = meter.CreateCounter<long>("sparseinference_baseline_requests_total", description: "Requests of models that score per line, by whether a line baseline scored them (line) or not (none).");
        _readFailures = meter.CreateCounter<long>("sparseinference_baseline_read_failures_total", description: "Baseline documents this replica could not read from the state store, per read (it kept the line's previous revision).");
        meter.CreateObservableGauge("sparseinference_baselines", ObserveLines, description: "Lines with a baseline this replica applies, per model.");
    }

    /// <summary>Where the gauge reads the applied lines per model from (the replica's <see cref="LineBaselines"/>).</summary>
    internal void Observe(Func<IEnumerable<(string Model, int Lines)>> lines) => _lines = lines;

    internal void RecordScored(string model, bool withBaseline) =>
        _requests.Add(1, new("model", model), new("baseline", withBaseline ? WithBaseline : WithoutBaseline));

    internal void RecordReadFailure(string model) => _readFailures.Add(1, new KeyValuePair<string, object?>("model", model));

    private IEnumerable<Measurement<long>> ObserveLines()
    {
        foreach (var (model, lines) in _lines())
            yield return new Measurement<long>(lines, new KeyValuePair<string, object?>("model", model));
    }
}
