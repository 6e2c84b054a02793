using SparseInference.Serving.Metrics;
using SparseInference.Tensors;

namespace SparseInference.Server.Tests.Observability.Metrics;

/// <summary>What the exporter writes for a backend's device memory, from a backend memory source with set numbers.</summary>
public sealed class DeviceMemoryExpositionTests : IDisposable
{
    private readonly FakeBackendMemory _source = new();
    private readonly ServingMetrics _metrics;
    private readonly PrometheusCollector _collector;

    public DeviceMemoryExpositionTests()
    {
        _metrics = new ServingMetrics(deviceProbes: [new ProcessMemoryProbe(), new BackendDeviceMemoryProbe(_source)]);
        BackendMemoryMetrics.AddTo(_metrics.Meter, [_source]);
        _collector = new PrometheusCollector(_metrics.Meter);
    }

    public void Dispose()
    {
        _collector.Dispose();
        _metrics.Dispose();
    }

    [Fact]
    public async Task Collect_OpenBackend_ReportsUsedTotalAndBytesByUse()
    {
        _source.Memory = (FreeBytes: 60_000_000_000, TotalBytes: 80_000_000_000);
        _source.Current = new DeviceMemoryUse(WeightBytes: 4_194_304, WorkspaceBytes: 1_048_576, ActivationBytes: 2_097_152, CachedBytes: 524_288);

        var text = await _collector.CollectAsync();
        var parsed = PrometheusText.Parse(text);

        Assert.Equal(20_000_000_000, parsed.Value("sparseinference_device_memory_used_bytes", ("device", "cuda:0")));
        Assert.Equal(80_000_000_000, parsed.Value("sparseinference_device_memory_total_bytes", ("device", "cuda:0")));
        Assert.Equal(4_194_304, parsed.Value("sparseinference_device_memory_allocated_bytes", ("device", "cuda:0"), ("use", "weights")));
        Assert.Equal(1_048_576, parsed.Value("sparseinference_device_memory_allocated_bytes", ("device", "cuda:0"), ("use", "workspace")));
        Assert.Equal(2_097_152, parsed.Value("sparseinference_device_memory_allocated_bytes", ("device", "cuda:0"), ("use", "activations")));
        Assert.Equal(524_288, parsed.Value("sparseinference_device_memory_allocated_bytes", ("device", "cuda:0"), ("use", "cached")));
        Assert.Equal("gauge", parsed.Types["sparseinference_device_memory_allocated_bytes"]);
        // The process view stays beside the device.
        Assert.True(parsed.Value("sparseinference_device_memory_used_bytes", ("device", "cpu")) > 0);
    }

    [Fact]
    public async Task Collect_BackendNotOpen_LeavesDeviceSeriesOut()
    {
        var text = await _collector.CollectAsync();

        Assert.DoesNotContain("device=\"cuda:0\"", text);
        Assert.Contains("sparseinference_device_memory_used_bytes{device=\"cpu\"}", text);
    }

    [Fact]
    public async Task Collect_AfterTheBackendAllocates_FollowsTheSource()
    {
        _source.Memory = (70, 100);
        _source.Current = new DeviceMemoryUse(10, 0, 0, 0);
        var before = PrometheusText.Parse(await _collector.CollectAsync());
        _source.Memory = (40, 100);
        _source.Current = new DeviceMemoryUse(40, 0, 0, 0);
        var after = PrometheusText.Parse(await _collector.CollectAsync());

        Assert.Equal(30, before.Value("sparseinference_device_memory_used_bytes", ("device", "cuda:0")));
        Assert.Equal(60, after.Value("sparseinference_device_memory_used_bytes", ("device", "cuda:0")));
        Assert.Equal(40, after.Value("sparseinference_device_memory_allocated_bytes", ("device", "cuda:0"), ("use", "weights")));
    }

    private sealed class FakeBackendMemory : IBackendMemorySource
    {
        public (long FreeBytes, long TotalBytes)? Memory { get; set; }

        public DeviceMemoryUse? Current { get; set; }

        public string Device => "cuda:0";

        public (long FreeBytes, long TotalBytes)? DeviceMemory() => Memory;

        public DeviceMemoryUse? Use() => Current;
    }
}
