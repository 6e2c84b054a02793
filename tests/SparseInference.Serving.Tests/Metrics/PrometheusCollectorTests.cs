using System.Diagnostics;
using System.Diagnostics.Metrics;
using SparseInference.Serving.Metrics;

namespace SparseInference.Serving.Tests.Metrics;

public sealed class PrometheusCollectorTests : IDisposable
{
    private readonly Meter _meter = new("SparseInference.Tests." + Guid.NewGuid().ToString("N"));
    private readonly PrometheusCollector _collector;

    public PrometheusCollectorTests()
    {
        _collector = new PrometheusCollector(_meter);
    }

    public void Dispose()
    {
        _collector.Dispose();
        _meter.Dispose();
    }

    [Fact]
    public async Task CollectAsync_Counter_WritesHelpTypeAndExactTotalsPerLabelSet()
    {
        var counter = _meter.CreateCounter<long>("sparseinference.requests", "{request}", "Inference requests.");
        counter.Add(3, new TagList { { "model", "pump" }, { "outcome", "success" } });
        counter.Add(2, new TagList { { "outcome", "success" }, { "model", "pump" } });
        counter.Add(1, new TagList { { "model", "pump" }, { "outcome", "error" } });

        var text = await _collector.CollectAsync();

        Assert.Equal(
            "# HELP sparseinference_requests_total Inference requests.\n" +
            "# TYPE sparseinference_requests_total counter\n" +
            "sparseinference_requests_total{model=\"pump\",outcome=\"success\"} 5\n" +
            "sparseinference_requests_total{model=\"pump\",outcome=\"error\"} 1\n",
            text);
    }

    [Fact]
    public async Task CollectAsync_HistogramWithAdvisedBuckets_WritesCumulativeBucketsSumAndCount()
    {
        var histogram = _meter.CreateHistogram<double>("latency", "s", "Latency.", tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.5, 1] });
        foreach (var value in new[] { 0.05, 0.1, 0.3, 2.0 })
            histogram.Record(value, new KeyValuePair<string, object?>("variant", "sparse"));

        var parsed = PrometheusText.Parse(await _collector.CollectAsync());

        Assert.Equal("histogram", parsed.Types["latency_seconds"]);
        Assert.Equal(2, parsed.Value("latency_seconds_bucket", ("variant", "sparse"), ("le", "0.1")));
        Assert.Equal(3, parsed.Value("latency_seconds_bucket", ("variant", "sparse"), ("le", "0.5")));
        Assert.Equal(3, parsed.Value("latency_seconds_bucket", ("variant", "sparse"), ("le", "1")));
        Assert.Equal(4, parsed.Value("latency_seconds_bucket", ("variant", "sparse"), ("le", "+Inf")));
        Assert.Equal(2.45, parsed.Value("latency_seconds_sum", ("variant", "sparse")), 12);
        Assert.Equal(4, parsed.Value("latency_seconds_count", ("variant", "sparse")));
    }

    [Fact]
    public async Task CollectAsync_HistogramWithoutAdvice_UsesDefaultBuckets()
    {
        var histogram = _meter.CreateHistogram<int>("batch.size");
        histogram.Record(3);

        var parsed = PrometheusText.Parse(await _collector.CollectAsync());

        var buckets = parsed.Samples.Where(s => s.Name == "batch_size_bucket").Select(s => s.Labels["le"]).ToArray();
        Assert.Equal(PrometheusCollector.DefaultBuckets.Count + 1, buckets.Length);
        Assert.Equal(0, parsed.Value("batch_size_bucket", ("le", "2.5")));
        Assert.Equal(1, parsed.Value("batch_size_bucket", ("le", "5")));
    }

    [Fact]
    public async Task CollectAsync_LabelValuesWithQuotesBackslashesAndNewlines_AreEscaped()
    {
        var counter = _meter.CreateCounter<int>("odd");
        counter.Add(1, new KeyValuePair<string, object?>("path", "a\"b\\c\nd"));

        var text = await _collector.CollectAsync();

        Assert.Contains("odd_total{path=\"a\\\"b\\\\c\\nd\"} 1\n", text);
        Assert.Equal("a\"b\\c\nd", PrometheusText.Parse(text).Single("odd_total").Labels["path"]);
    }

    [Fact]
    public async Task CollectAsync_GaugesAndUpDownCounters_ReportLastValueAndRunningSum()
    {
        var depth = _meter.CreateUpDownCounter<long>("queue.depth", "{request}");
        depth.Add(5);
        depth.Add(-2);
        var weights = _meter.CreateGauge<long>("model.weights", "By");
        weights.Record(100, new KeyValuePair<string, object?>("model", "m"));
        weights.Record(4096, new KeyValuePair<string, object?>("model", "m"));
        _meter.CreateObservableGauge("configured.sparsity", () => 0.75, "1");

        var parsed = PrometheusText.Parse(await _collector.CollectAsync());

        Assert.Equal("gauge", parsed.Types["queue_depth"]);
        Assert.Equal(3, parsed.Value("queue_depth"));
        Assert.Equal(4096, parsed.Value("model_weights_bytes", ("model", "m")));
        Assert.Equal(0.75, parsed.Value("configured_sparsity_ratio"));
    }

    [Fact]
    public async Task CollectAsync_ObservableCounter_ReportsTheObservedTotalNotASum()
    {
        var total = 10L;
        _meter.CreateObservableCounter("bytes.read", () => total, "By");

        await _collector.CollectAsync();
        total = 25;
        var parsed = PrometheusText.Parse(await _collector.CollectAsync());

        Assert.Equal(25, parsed.Value("bytes_read_bytes_total"));
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
        Assert.Equal(expected, PrometheusNaming.MetricName(instrument, type));
    }

    [Fact]
    public async Task CollectAsync_DisposedMeter_DropsItsInstruments()
    {
        using var other = new Meter("other");
        using var collector = new PrometheusCollector(m => m.Name == "other");
        other.CreateCounter<int>("gone").Add(1);
        Assert.Contains("gone_total", await collector.CollectAsync());

        other.Dispose();

        Assert.DoesNotContain("gone_total", await collector.CollectAsync());
    }
}
