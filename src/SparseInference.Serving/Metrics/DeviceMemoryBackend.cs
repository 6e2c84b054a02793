using System.Diagnostics.Metrics;
using SparseInference.Serving.Hosting;
using SparseInference.Tensors;

namespace SparseInference.Serving.Metrics;

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
    DeviceMemoryUse? Use();
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
/// The configured backend's memory, where the backend reports it (<see cref="IDeviceMemory"/>: the driver's view of the
/// device and the backend's pool by use). Reads nothing (the series are left out) until the backend has been opened, which
/// happens at the first model load, and after it has been closed.
/// </summary>
public sealed class BackendMemorySource(Func<IComputeBackend?> backend, string device) : IBackendMemorySource
{
    /// <summary>The source of <paramref name="configured"/>'s backend, labelled with its canonical device name.</summary>
    public BackendMemorySource(ConfiguredBackend configured)
        : this(() => configured.Opened, configured.Device.ToString())
    {
    }

    public string Device { get; } = device;

    public (long FreeBytes, long TotalBytes)? DeviceMemory() => Read(static memory => memory.DeviceMemory());

    public DeviceMemoryUse? Use() => Read(static memory => memory.MemoryUse());

    private T? Read<T>(Func<IDeviceMemory, T> read)
        where T : struct
    {
        var current = backend();
        try
        {
            return current is IDeviceMemory memory ? read(memory) : null;
        }
        catch (Exception ex) when (ex is ObjectDisposedException || (current is IDeviceFaultClassifier faults && faults.IsDeviceFault(ex)))
        {
            // Closed during shutdown, or the device is gone: no reading rather than a failed scrape.
            return null;
        }
    }
}
