using System.Globalization;
using System.Text;

namespace SparseInference.Deploy.Tests.Monitoring;

public enum MetricKind
{
    Counter,
    Gauge,
    Histogram,
}

/// <summary>One metric family the dashboards read, with the labels it is assumed to carry.</summary>
public sealed record AssumedMetric(string Name, MetricKind Kind, params string[] Labels)
{
    /// <summary>The series names Prometheus stores for this family.</summary>
    public IEnumerable<string> SeriesNames => Kind == MetricKind.Histogram
        ? [Name + "_bucket", Name + "_sum", Name + "_count"]
        : [Name];
}

/// <summary>
/// The metric names and labels the dashboards are written against: the names the service's exporter emits
/// (ServingMetrics and VariantMetrics through the Prometheus collector; docs/metrics.md lists them). A dashboard query may use no other series (DashboardTests), and every query
/// must return data from an exporter serving exactly these (DashboardEvaluationTests).
/// </summary>
public static class AssumedMetrics
{
    public static readonly IReadOnlyList<AssumedMetric> All =
    [
        new("sparseinference_requests_total", MetricKind.Counter, "model", "version", "variant", "protocol", "outcome"),
        new("sparseinference_request_duration_seconds", MetricKind.Histogram, "model", "version", "variant", "protocol"),
        new("sparseinference_queue_duration_seconds", MetricKind.Histogram, "model", "version", "variant"),
        new("sparseinference_compute_duration_seconds", MetricKind.Histogram, "model", "version", "variant"),
        new("sparseinference_batch_size", MetricKind.Histogram, "model", "version", "variant"),
        new("sparseinference_queue_depth", MetricKind.Gauge, "model", "version", "variant"),
        new("sparseinference_rejections_total", MetricKind.Counter, "model", "version", "variant", "reason"),
        new("sparseinference_attention_density", MetricKind.Histogram, "model", "version", "variant"),
        new("sparseinference_attention_configured_sparsity_ratio", MetricKind.Gauge, "model", "version", "variant"),
        new("sparseinference_attention_flops_computed_total", MetricKind.Counter, "model", "version", "variant"),
        new("sparseinference_attention_flops_saved_total", MetricKind.Counter, "model", "version", "variant"),
        new("sparseinference_model_weights_bytes", MetricKind.Gauge, "model", "version"),
        new("sparseinference_buffers_peak_working_bytes", MetricKind.Gauge, "model", "version", "variant"),
        new("sparseinference_device_memory_used_bytes", MetricKind.Gauge, "device"),
        new("sparseinference_device_memory_total_bytes", MetricKind.Gauge, "device"),
        new("sparseinference_process_working_set_bytes", MetricKind.Gauge),
        new("sparseinference_gc_heap_bytes", MetricKind.Gauge),
        new("sparseinference_shadow_agreement_mae", MetricKind.Histogram, "model", "primary", "candidate"),
        new("sparseinference_shadow_flag_agreement_ratio", MetricKind.Gauge, "model", "primary", "candidate"),
        new("sparseinference_shadow_dropped_total", MetricKind.Counter, "model", "primary", "candidate"),
        new("sparseinference_variant_guardrail_trips_total", MetricKind.Counter, "model", "variant", "bound"),
        new("sparseinference_rollout_revision", MetricKind.Gauge, "model"),
        new("sparseinference_rollout_desired_revision", MetricKind.Gauge, "model"),
        new("sparseinference_rollout_apply_failures_total", MetricKind.Counter, "model", "reason"),
    ];

    public static IReadOnlySet<string> SeriesNames { get; } = All.SelectMany(m => m.SeriesNames).ToHashSet(StringComparer.Ordinal);

    /// <summary>Label values the synthetic exposition uses: two of each, so grouping and division are exercised.</summary>
    private static readonly Dictionary<string, string[]> LabelValues = new()
    {
        ["model"] = ["skab-pump", "motor-current"],
        ["version"] = ["1"],
        ["variant"] = ["dense", "window-0.75"],
        ["protocol"] = ["rest", "grpc"],
        ["outcome"] = ["success", "error"],
        ["reason"] = ["queue_full", "deadline"],
        ["primary"] = ["dense"],
        ["candidate"] = ["window-0.75"],
        ["bound"] = ["p99_latency"],
        ["device"] = ["cpu"],
    };

    private static readonly double[] Buckets = [0.001, 0.01, 0.1, 1];

    /// <summary>
    /// The Prometheus text exposition of every assumed metric after <paramref name="scrape"/> scrapes:
    /// counters and histograms grow with each scrape so that rate() and increase() have something to show.
    /// </summary>
    public static string Exposition(int scrape)
    {
        var text = new StringBuilder();
        foreach (var metric in All)
        {
            var type = metric.Kind switch
            {
                MetricKind.Counter => "counter",
                MetricKind.Gauge => "gauge",
                _ => "histogram",
            };
            text.Append("# TYPE ").Append(metric.Name).Append(' ').Append(type).Append('\n');
            var index = 0;
            foreach (var labels in Combinations(metric.Labels))
            {
                index++;
                var grow = (double)(scrape + 1) * (10 + index);
                switch (metric.Kind)
                {
                    case MetricKind.Counter:
                        Sample(text, metric.Name, labels, grow);
                        break;
                    case MetricKind.Gauge:
                        Sample(text, metric.Name, labels, 0.25 + (index % 3) * 0.25);
                        break;
                    default:
                        for (var b = 0; b < Buckets.Length; b++)
                        {
                            Sample(text, metric.Name + "_bucket", [.. labels, ("le", Buckets[b].ToString(CultureInfo.InvariantCulture))], grow * (b + 1) / (Buckets.Length + 1));
                        }

                        Sample(text, metric.Name + "_bucket", [.. labels, ("le", "+Inf")], grow);
                        Sample(text, metric.Name + "_sum", labels, grow * 0.05);
                        Sample(text, metric.Name + "_count", labels, grow);
                        break;
                }
            }
        }

        return text.ToString();
    }

    private static IEnumerable<(string Name, string Value)[]> Combinations(IReadOnlyList<string> labels)
    {
        List<(string Name, string Value)[]> result = [[]];
        foreach (var label in labels)
        {
            result = result.SelectMany(prefix => LabelValues[label].Select(value => prefix.Append((label, value)).ToArray())).ToList();
        }

        return result;
    }

    private static void Sample(StringBuilder text, string name, IEnumerable<(string Name, string Value)> labels, double value)
    {
        text.Append(name);
        var list = labels.ToList();
        if (list.Count > 0)
        {
            text.Append('{').AppendJoin(',', list.Select(l => $"{l.Name}=\"{l.Value}\"")).Append('}');
        }

        text.Append(' ').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
    }
}
