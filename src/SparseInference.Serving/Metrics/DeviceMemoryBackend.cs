using System.Diagnostics.Metrics;
using SparseInference.Tensors.Cuda;

namespace SparseInference.Serving.Metrics;

/// <summary>Bytes a backend's allocator holds, by use.</summary>
/// <param name="WeightBytes">Rented for model weights.</param>
/// <param name="WorkspaceBytes">Rented as kernel workspace (attention partials, BF16 operand copies).</param>
/// <param name="ActivationBytes">Rented for activations of forwards in flight.</param>
/// <param name="CachedBytes">Held from the driver but free in the allocator's cache.</param>
public readonly record struct BackendMemoryUse(long WeightBytes, long WorkspaceBytes, long ActivationBytes, long CachedBytes);

/// <summary>
/// A compute backend's own view of its device memory. The exporter turns each source into a device probe
/// (<c>sparseinference_device_memory_used_bytes</c> / <c>_total_bytes</c>) and the per-use gauge
/// <c>sparseinference_device_memory_allocated_bytes{device, use}</c>.
/// </summary>
public interface IBackendMemorySource
{
    /// <summary>The <c>device</c> label: <c>cuda:0</c>, ...</summary>
    string Device { get; }

    /// <summary>Free and total bytes of the device as its driver sees them (other processes included); null while the backend is not open.</summary>
    (long FreeBytes, long TotalBytes)? DeviceMemory();

    /// <summary>The allocator's bytes by use; null while the backend is not open.</summary>
    BackendMemoryUse? Use();
}

/// <summary>The device probe of a backend memory source: used = total − free.</summary>
public sealed class BackendDeviceMemoryProbe(IBackendMemorySource source) : IDeviceMemoryProbe
{
    public string Device => source.Device;

    public DeviceMemoryReading? Read() =>
        source.DeviceMemory() is { } memory ? new DeviceMemoryReading(memory.TotalBytes - memory.FreeBytes, memory.TotalBytes) : null;
}

/// <summary>The per-use gauge over every backend memory source.</summary>
public static class BackendMemoryMetrics
{
    public const string UseKey = "use";

    /// <summary>Adds <c>sparseinference.device.memory.allocated</c> (bytes, labels device and use) to <paramref name="meter"/>.</summary>
    public static void AddTo(Meter meter, IReadOnlyList<IBackendMemorySource> sources)
    {
        ArgumentNullException.ThrowIfNull(meter);
        ArgumentNullException.ThrowIfNull(sources);
        if (sources.Count == 0)
        {
            return;
        }

        meter.CreateObservableGauge("sparseinference.device.memory.allocated", () => Observe(sources), "By",
            "Device memory a backend's allocator holds, by use: weights, workspace, activations, cached (free in its cache).");
    }

    private static IEnumerable<Measurement<long>> Observe(IReadOnlyList<IBackendMemorySource> sources)
    {
        foreach (var source in sources)
        {
            if (source.Use() is not { } use)
            {
                continue;
            }

            var device = new KeyValuePair<string, object?>(ServingMetrics.DeviceKey, source.Device);
            yield return new Measurement<long>(use.WeightBytes, device, new KeyValuePair<string, object?>(UseKey, "weights"));
            yield return new Measurement<long>(use.WorkspaceBytes, device, new KeyValuePair<string, object?>(UseKey, "workspace"));
            yield return new Measurement<long>(use.ActivationBytes, device, new KeyValuePair<string, object?>(UseKey, "activations"));
            yield return new Measurement<long>(use.CachedBytes, device, new KeyValuePair<string, object?>(UseKey, "cached"));
        }
    }
}

/// <summary>
/// The CUDA backend's memory: <c>cuMemGetInfo</c> for the device, the backend's pool statistics for the uses. Reads
/// nothing (the series are left out) until the backend has been opened, which happens at the first model load, and
/// after it has been closed.
/// </summary>
public sealed class CudaBackendMemorySource(Func<CudaComputeBackend?> backend, string device) : IBackendMemorySource
{
    public string Device { get; } = device;

    public (long FreeBytes, long TotalBytes)? DeviceMemory()
    {
        try
        {
            return backend() is { } cuda ? cuda.Gpu.DeviceMemoryInfo() : null;
        }
        catch (Exception ex) when (ex is CudaException or ObjectDisposedException)
        {
            // Closed during shutdown, or the device is gone: no reading rather than a failed scrape.
            return null;
        }
    }

    public BackendMemoryUse? Use()
    {
        try
        {
            if (backend() is not { } cuda)
            {
                return null;
            }

            var statistics = cuda.MemoryStatistics;
            return new BackendMemoryUse(statistics.WeightBytes, statistics.WorkspaceBytes, statistics.ActivationBytes,
                Math.Max(0, statistics.ReservedBytes - statistics.InUseBytes));
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
    }
}
