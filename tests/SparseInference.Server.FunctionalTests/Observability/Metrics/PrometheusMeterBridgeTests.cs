using System.Diagnostics;
using System.Diagnostics.Metrics;
using Prometheus;
using SparseInference.Server.Observability.Metrics;
using SparseInference.Server.Tests.Observability.Metrics;

namespace SparseInference.Server.FunctionalTests.Observability.Metrics;

public sealed class PrometheusMeterBridgeTests : IDisposable
{
    private readonly Meter _meter = new("SparseInference.Tests." + Guid.NewGuid().ToString("N"));
    private readonly CollectorRegistry _registry = Prometheus.Metrics.NewCustomRegistry();
    private readonly PrometheusMeterBridge _bridge;

    public PrometheusMeterBridgeTests()
    {
        _bridge = new PrometheusMeterBridge(_registry, i => ReferenceEquals(i.Meter, _meter));
    }

    public void Dispose()
    {
        _bridge.Dispose();
        _meter.Dispose();
    }

    [Fact]
    public async Task Collect_Counter_HelpTypeAndExactTotalsPerLabelSet()
    {
        var counter = _meter.CreateCounter<long>("sparseinference.requests", "{request}", "Inference requests.");
        counter.Add(3, new TagList { { "model", "pump" }, { "outcome", "success" } });
        counter.Add(2, new TagList { { "outcome", "success" }, { "model", "pump" } });
        counter.Add(1, new TagList { { "model", "pump" }, { "outcome", "error" } });

        var text = await CollectAsync();
        var parsed = PrometheusText.Parse(text);

        Assert.Contains("# HELP sparseinference_requests_total Inference requests.\n", text);
        Assert.Equal("counter", parsed.Types["sparseinference_requests_total"]);
        Assert.Equal(5, parsed.Value("sparseinference_requests_total", ("model", "pump"), ("outcome", "success")));
        Assert.Equal(1, parsed.Value("sparseinference_requests_total", ("model", "pump"), ("outcome", "error")));
        Assert.Equal(2, parsed.Samples.Count(s => s.Name == "sparseinference_requests_total"));
    }

    [Fact]
    public async Task Collect_HistogramWithAdvisedBuckets_CumulativeBucketsSumAndCount()
    {
        var histogram = _meter.CreateHistogram<double>("latency", "s", "Latency.", tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.5, 1] });
        foreach (var value in new[] { 0.05, 0.1, 0.3, 2.0 })
            histogram.Record(value, new KeyValuePair<string, object?>("variant", "sparse"));

        var parsed = PrometheusText.Parse(await CollectAsync());

        Assert.Equal("histogram", parsed.Types["latency_seconds"]);
        Assert.Equal(2, parsed.Value("latency_seconds_bucket", ("variant", "sparse"), ("le", "0.1")));
        Assert.Equal(3, parsed.Value("latency_seconds_bucket", ("variant", "sparse"), ("le", "0.5")));
        Assert.Equal(3, parsed.Value("latency_seconds_bucket", ("variant", "sparse"), ("le", "1")));
        Assert.Equal(4, parsed.Value("latency_seconds_bucket", ("variant", "sparse"), ("le", "+Inf")));
        Assert.Equal(2.45, parsed.Value("latency_seconds_sum", ("variant", "sparse")), 12);
        Assert.Equal(4, parsed.Value("latency_seconds_count", ("variant", "sparse")));
    }

    [Fact]
    public async Task Collect_HistogramWithoutAdvice_UsesDefaultBuckets()
    {
        var histogram = _meter.CreateHistogram<int>("batch.size");
        histogram.Record(3);

        var parsed = PrometheusText.Parse(await CollectAsync());

        var buckets = parsed.Samples.Where(s => s.Name == "batch_size_bucket").Select(s => s.Labels["le"]).ToArray();
        Assert.Equal(PrometheusMeterBridge.DefaultBuckets.Count + 1, buckets.Length);
        Assert.Equal(0, parsed.Value("batch_size_bucket", ("le", "2.5")));
        Assert.Equal(1, parsed.Value("batch_size_bucket", ("le", "5")));
    }

    [Fact]
    public async Task Collect_LabelValuesWithQuotesBackslashesAndNewlines_AreEscaped()
    {
        var counter = _meter.CreateCounter<int>("odd");
        counter.Add(1, new KeyValuePair<string, object?>("path", "a\"b\\c\nd"));

        var text = await CollectAsync();

        Assert.Contains("odd_total{path=\"a\\\"b\\\\c\\nd\"} 1\n", text);
        Assert.Equal("a\"b\\c\nd", PrometheusText.Parse(text).Single("odd_total").Labels["path"]);
    }

    [Fact]
    public async Task Collect_GaugesAndUpDownCounters_LastValueAndRunningSum()
    {
        var depth = _meter.CreateUpDownCounter<long>("queue.depth", "{request}");
        depth.Add(5);
        depth.Add(-2);
        var weights = _meter.CreateGauge<long>("model.weights", "By");
        weights.Record(100, new KeyValuePair<string, object?>("model", "m"));
        weights.Record(4096, new KeyValuePair<string, object?>("model", "m"));
        _meter.CreateObservableGauge("configured.sparsity", () => 0.75, "1");

        var parsed = PrometheusText.Parse(await CollectAsync());

        Assert.Equal("gauge", parsed.Types["queue_depth"]);
        Assert.Equal(3, parsed.Value("queue_depth"));
        Assert.Equal(4096, parsed.Value("model_weights_bytes", ("model", "m")));
        Assert.Equal(0.75, parsed.Value("configured_sparsity_ratio"));
    }

    [Fact]
    public async Task Collect_ObservableCounter_ReportsTheObservedTotalNotASum()
    {
        var total = 10L;
        _meter.CreateObservableCounter("bytes.read", () => total, "By");

        await CollectAsync();
        total = 25;
        var parsed = PrometheusText.Parse(await CollectAsync());

        Assert.Equal("counter", parsed.Types["bytes_read_bytes_total"]);
        Assert.Equal(25, parsed.Value("bytes_read_bytes_total"));
    }

    [Fact]
    public async Task Collect_ObservableSeriesNoLongerReported_IsRemoved()
    {
        var devices = new List<string> { "cuda:0", "cuda:1" };
        _meter.CreateObservableGauge("device.memory.used", () => devices.Select(d => new Measurement<long>(1, new KeyValuePair<string, object?>("device", d))), "By");

        Assert.Equal(2, PrometheusText.Parse(await CollectAsync()).Samples.Count(s => s.Name == "device_memory_used_bytes"));
        devices.RemoveAt(1);

        var parsed = PrometheusText.Parse(await CollectAsync());
        Assert.Equal("cuda:0", Assert.Single(parsed.Samples, s => s.Name == "device_memory_used_bytes").Labels["device"]);
    }

    [Fact]
    public async Task Collect_MeasurementsWithOtherTagKeys_KeepTheFirstLabelNames()
    {
        var counter = _meter.CreateCounter<int>("mixed");
        counter.Add(1, new KeyValuePair<string, object?>("model", "m"));
        counter.Add(2, new KeyValuePair<string, object?>("model", "m"), new KeyValuePair<string, object?>("extra", "x"));
        counter.Add(4);

        var parsed = PrometheusText.Parse(await CollectAsync());

        Assert.Equal(3, parsed.Value("mixed_total", ("model", "m")));
        Assert.Equal(4, parsed.Value("mixed_total", ("model", "")));
    }

    [Theory]
    [InlineData("sparseinference.request.duration", "s", PrometheusType.Histogram, "sparseinference_request_duration_seconds")]
    [InlineData("my-metric..name", "ms", PrometheusType.Gauge, "my_metric_name_milliseconds")]
    [InlineData("heap", "By", PrometheusType.Gauge, "heap_bytes")]
    [InlineData("flops.saved", "{flop}", PrometheusType.Counter, "flops_saved_total")]
    [InlineData("transferred_total", "By", PrometheusType.Counter, "transferred_bytes_total")]
    [InlineData("density", "1", PrometheusType.Histogram, "density")]
    [InlineData("sparsity", "1", PrometheusType.Gauge, "sparsity_ratio")]
    [InlineData("2xx", "", PrometheusType.Gauge, "_2xx")]
    [InlineData("rate", "By/s", PrometheusType.Gauge, "rate_bytes_per_second")]
    public void MetricName_InstrumentNameAndUnit_FollowsPrometheusConventions(string name, string unit, PrometheusType type, string expected)
    {
        var instrument = _meter.CreateCounter<int>(name, unit);
        Assert.Equal(expected, PrometheusNames.MetricName(instrument, type));
    }

    [Fact]
    public async Task Collect_DisposedMeter_DropsItsSeries()
    {
        using var other = new Meter("other");
        var registry = Prometheus.Metrics.NewCustomRegistry();
        using var bridge = new PrometheusMeterBridge(registry, i => i.Meter.Name == "other");
        other.CreateCounter<int>("gone").Add(1, new KeyValuePair<string, object?>("model", "m"));
        Assert.Contains("gone_total{", await CollectAsync(registry));

        other.Dispose();

        Assert.DoesNotContain("gone_total{", await CollectAsync(registry));
    }

    [Fact]
    public async Task Collect_EveryInstrumentKind_PassesPromtoolCheckMetrics()
    {
        _meter.CreateCounter<long>("requests", "{request}", "Requests.").Add(1, new KeyValuePair<string, object?>("model", "m"));
        _meter.CreateHistogram<double>("latency", "s", "Latency.").Record(0.2, new KeyValuePair<string, object?>("model", "m"));
        _meter.CreateUpDownCounter<long>("depth", "{request}", "Depth.").Add(2);
        _meter.CreateGauge<double>("sparsity", "1", "Sparsity.").Record(0.5);
        _meter.CreateObservableCounter("reads", () => 3L, "By", "Reads.");
        var text = await CollectAsync();

        var result = await Promtool.CheckMetricsAsync(text);

        Assert.True(result.ExitCode == 0 && result.Output.Length == 0, $"promtool check metrics exited {result.ExitCode}:\n{result.Output}\n--- exposition ---\n{text}");
    }

    private Task<string> CollectAsync() => CollectAsync(_registry);

    private static async Task<string> CollectAsync(CollectorRegistry registry)
    {
        using var output = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(output);
        return System.Text.Encoding.UTF8.GetString(output.ToArray());
    }
}
