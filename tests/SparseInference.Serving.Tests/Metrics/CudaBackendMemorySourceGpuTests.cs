using SparseInference.Serving.Metrics;
using SparseInference.Tensors;
using SparseInference.Tensors.Cuda;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Serving.Tests.Metrics;

/// <summary>The CUDA memory source against a real device: skipped, with the backend's reason, where no GPU is usable (CI).</summary>
public sealed class CudaBackendMemorySourceGpuTests
{
    [CudaFact]
    public async Task Collect_RealDeviceAfterAllocatingWeights_ReportsDriverMemoryAndWeightBytes()
    {
        Assert.True(CudaComputeBackend.TryCreate(out var backend, out var reason), reason);
        using var cuda = backend!;
        var source = new CudaBackendMemorySource(() => cuda, cuda.Name);
        using var metrics = new ServingMetrics(deviceProbes: [new BackendDeviceMemoryProbe(source)]);
        BackendMemoryMetrics.AddTo(metrics.Meter, [source]);
        using var collector = new PrometheusCollector(metrics.Meter);

        var before = PrometheusText.Parse(await collector.CollectAsync());
        const long elements = 64L * 1024 * 1024; // 256 MiB of FP32 weights
        using var weights = cuda.Allocate(new Shape((int)elements), DType.F32, zeroed: true, MemoryCategory.Weights);
        var after = PrometheusText.Parse(await collector.CollectAsync());

        var total = after.Value("sparseinference_device_memory_total_bytes", ("device", cuda.Name));
        var usedBefore = before.Value("sparseinference_device_memory_used_bytes", ("device", cuda.Name));
        var usedAfter = after.Value("sparseinference_device_memory_used_bytes", ("device", cuda.Name));
        Assert.Equal(cuda.Gpu.Info.TotalMemoryBytes, total);
        Assert.InRange(usedAfter, 1, total);
        // The driver's count grows by at least the allocation (the pool may round up).
        Assert.True(usedAfter - usedBefore >= elements * 4, $"used grew by {usedAfter - usedBefore} bytes for a {elements * 4}-byte allocation");
        Assert.Equal(elements * 4,
            after.Value("sparseinference_device_memory_allocated_bytes", ("device", cuda.Name), ("use", "weights"))
            - before.Value("sparseinference_device_memory_allocated_bytes", ("device", cuda.Name), ("use", "weights")));
    }

    [Fact]
    public async Task Collect_SourceWithoutBackend_ReportsNoDeviceSeries()
    {
        var source = new CudaBackendMemorySource(() => null, "cuda:0");
        using var metrics = new ServingMetrics(deviceProbes: [new BackendDeviceMemoryProbe(source)]);
        BackendMemoryMetrics.AddTo(metrics.Meter, [source]);
        using var collector = new PrometheusCollector(metrics.Meter);

        Assert.DoesNotContain("cuda:0", await collector.CollectAsync());
    }
}

/// <summary>A test that needs a CUDA GPU: skipped with the backend's own reason where none is usable, as on CI.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> Unavailable = new(() =>
    {
        if (CudaDevice.TryCreate(out var backend, out var reason))
        {
            backend!.Dispose();
            return null;
        }

        return reason ?? "unknown reason";
    });

    public CudaFactAttribute()
    {
        if (Unavailable.Value is { } reason)
        {
            Skip = "No usable CUDA GPU: " + reason;
        }
    }
}
