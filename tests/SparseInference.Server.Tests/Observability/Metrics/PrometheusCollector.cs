using System.Diagnostics.Metrics;
using Prometheus;
using SparseInference.Server.Observability.Metrics;

namespace SparseInference.Server.Tests.Observability.Metrics;

/// <summary>
/// The host's Prometheus exporter over one meter, for reading instruments the way a scrape sees them: a prometheus-net
/// registry of its own and the <see cref="PrometheusMeterBridge"/> that names and publishes the meter's instruments.
/// </summary>
public sealed class PrometheusCollector : IDisposable
{
    private readonly CollectorRegistry _registry = Prometheus.Metrics.NewCustomRegistry();
    private readonly PrometheusMeterBridge _bridge;

    public PrometheusCollector(Meter meter)
    {
        _bridge = new PrometheusMeterBridge(_registry, instrument => ReferenceEquals(instrument.Meter, meter));
    }

    /// <summary>The text exposition a scrape of the metrics port gets.</summary>
    public async Task<string> CollectAsync()
    {
        using var output = new MemoryStream();
        await _registry.CollectAndExportAsTextAsync(output);
        return System.Text.Encoding.UTF8.GetString(output.ToArray());
    }

    public void Dispose() => _bridge.Dispose();
}
