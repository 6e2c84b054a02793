using SparseInference.Serving.Metrics;

namespace SparseInference.Server.Tests.Observability.Metrics;

/// <summary>The serving instruments as a scrape of the metrics port reads them: names, labels, buckets, and promtool's verdict.</summary>
public sealed class ServingMetricsExpositionTests : IDisposable
{
    private static readonly VariantLabels Dense = new("pump-encoder", "1", "dense");
    private static readonly VariantLabels Sparse = new("pump-encoder", "1", "bigbird-0.9");

    private readonly ServingMetrics _metrics = new();
    private readonly PrometheusCollector _collector;

    public ServingMetricsExpositionTests()
    {
        _collector = new PrometheusCollector(_metrics.Meter);
    }

    public void Dispose()
    {
        _collector.Dispose();
        _metrics.Dispose();
    }

    private void RecordEverything()
    {
        _metrics.RecordRequest(Sparse, "rest", RequestOutcomes.Success, 0.004);
        _metrics.RecordRequest(Sparse, "grpc", RequestOutcomes.Success, 0.012);
        _metrics.RecordRequest(Dense, "rest", RequestOutcomes.Rejected, 0.0001);
        _metrics.RecordQueueDuration(Sparse, 0.0005);
        _metrics.RecordComputeDuration(Sparse, 0.003);
        _metrics.RecordBatch(Sparse, 4, 0.125);
        _metrics.QueueDepthChanged(Sparse, 3);
        _metrics.QueueDepthChanged(Sparse, -1);
        _metrics.RecordRejection(Dense, RejectionReasons.QueueFull);
        _metrics.RecordRejection(Dense, RejectionReasons.Invalid);
        _metrics.SetConfiguredSparsity(Sparse, 0.9);
        _metrics.SetConfiguredSparsity(Dense, 0);
        _metrics.RecordForward(Sparse, computedPairs: 100, densePairs: 1000, flopsPerPair: 512);
        _metrics.SetWeightsBytes("pump-encoder", "1", 4_194_304);
        _metrics.SetWorkingBufferBytes(Sparse, 65_536);
    }

    [Fact]
    public async Task Collect_AfterRecordingEveryInstrument_ReportsExactValues()
    {
        RecordEverything();

        var parsed = PrometheusText.Parse(await _collector.CollectAsync());

        Assert.Equal(1, parsed.Value("sparseinference_requests_total", ("variant", "bigbird-0.9"), ("protocol", "grpc"), ("outcome", "success")));
        Assert.Equal(2, parsed.Value("sparseinference_variant_requests_total", ("variant", "bigbird-0.9")));
        Assert.Equal(2, parsed.Value("sparseinference_request_duration_seconds_count", ("variant", "bigbird-0.9"), ("protocol", "rest")) +
                        parsed.Value("sparseinference_request_duration_seconds_count", ("variant", "bigbird-0.9"), ("protocol", "grpc")));
        Assert.Equal(1, parsed.Value("sparseinference_request_duration_seconds_bucket", ("variant", "bigbird-0.9"), ("protocol", "rest"), ("le", "0.005")));
        Assert.Equal(0, parsed.Value("sparseinference_request_duration_seconds_bucket", ("variant", "bigbird-0.9"), ("protocol", "grpc"), ("le", "0.01")));
        Assert.Equal(0.0005, parsed.Value("sparseinference_queue_duration_seconds_sum", ("variant", "bigbird-0.9")), 12);
        Assert.Equal(1, parsed.Value("sparseinference_compute_duration_seconds_count", ("variant", "bigbird-0.9")));
        Assert.Equal(1, parsed.Value("sparseinference_batch_size_bucket", ("variant", "bigbird-0.9"), ("le", "4")));
        Assert.Equal(0, parsed.Value("sparseinference_batch_size_bucket", ("variant", "bigbird-0.9"), ("le", "2")));
        Assert.Equal(0.125, parsed.Value("sparseinference_batch_padding_waste_sum", ("variant", "bigbird-0.9")));
        Assert.Equal(2, parsed.Value("sparseinference_queue_depth", ("variant", "bigbird-0.9")));
        Assert.Equal(1, parsed.Value("sparseinference_rejections_total", ("variant", "dense"), ("reason", "queue_full")));
        Assert.Equal(1, parsed.Value("sparseinference_rejections_total", ("variant", "dense"), ("reason", "invalid")));
        Assert.Equal(0.9, parsed.Value("sparseinference_attention_configured_sparsity_ratio", ("variant", "bigbird-0.9")));
        Assert.Equal(0.1, parsed.Value("sparseinference_attention_density_sum", ("variant", "bigbird-0.9")), 12);
        Assert.Equal(51_200, parsed.Value("sparseinference_attention_flops_computed_total", ("variant", "bigbird-0.9")));
        Assert.Equal(460_800, parsed.Value("sparseinference_attention_flops_saved_total", ("variant", "bigbird-0.9")));
        Assert.Equal(4_194_304, parsed.Value("sparseinference_model_weights_bytes", ("model", "pump-encoder"), ("version", "1")));
        Assert.Equal(65_536, parsed.Value("sparseinference_buffers_working_bytes", ("variant", "bigbird-0.9")));
        Assert.True(parsed.Value("sparseinference_process_working_set_bytes") > 0);
        Assert.True(parsed.Value("sparseinference_gc_heap_bytes") > 0);
    }

    [Fact]
    public async Task Collect_AfterRecordingEveryInstrument_PassesPromtoolCheckMetrics()
    {
        RecordEverything();
        var text = await _collector.CollectAsync();

        var result = await Promtool.CheckMetricsAsync(text);

        Assert.True(result.ExitCode == 0 && result.Output.Length == 0,
            $"promtool check metrics exited {result.ExitCode}:\n{result.Output}\n--- exposition ---\n{text}");
    }

    [Fact]
    public async Task Promtool_OnBadExposition_ReportsProblems()
    {
        // Guards the check above: promtool must actually be judging what it is given.
        var result = await Promtool.CheckMetricsAsync("# TYPE requests counter\nrequests 1\n");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("_total", result.Output);
    }
}
