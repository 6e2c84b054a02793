namespace SparseInference.Serving.Metrics;

/// <summary>One device's memory as the exporter reports it (<c>sparseinference_device_memory_*_bytes{device}</c>).</summary>
public readonly record struct DeviceMemoryReading(long UsedBytes, long TotalBytes);

/// <summary>
/// Reads the memory of one compute device. A backend that owns device memory (CUDA) registers one for its device,
/// named like <c>cuda:0</c>; the process probe for <c>cpu</c> is always present.
/// </summary>
public interface IDeviceMemoryProbe
{
    /// <summary>The <c>device</c> label value: <c>cpu</c>, <c>cuda:0</c>, ...</summary>
    string Device { get; }

    /// <summary>The current reading, or null when the device cannot be read now (the series is then left out).</summary>
    DeviceMemoryReading? Read();
}

/// <summary>
/// The CPU backend's view: what the process holds (its working set) out of what the runtime may use (the machine's
/// memory, or the container limit when one is set, as the GC sees it).
/// </summary>
public sealed class ProcessMemoryProbe : IDeviceMemoryProbe
{
    public const string CpuDevice = "cpu";

    public string Device => CpuDevice;

    public DeviceMemoryReading? Read()
    {
        var total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return total > 0 ? new DeviceMemoryReading(Environment.WorkingSet, total) : null;
    }
}

/// <summary>
/// Estimated bytes of the working buffers one forward needs: the activations of a layer (input, Q, K, V, attention
/// output and the feed-forward expansion, fp32) plus one layer's attention scores for the pairs actually computed.
/// The engine does not report its allocations, so this follows the model shape; it scales with batch, length and density.
/// </summary>
public static class WorkingBufferEstimate
{
    private const int ActivationsPerPosition = 6; // x, q, k, v, attention output, residual
    private const int FeedForwardExpansion = 4;

    public static long Bytes(int batch, int time, int dModel, int layers, long computedPairs)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfNegative(time);
        ArgumentOutOfRangeException.ThrowIfNegative(computedPairs);
        var positions = (long)batch * time;
        var activations = positions * dModel * (ActivationsPerPosition + FeedForwardExpansion);
        var scoresPerLayer = computedPairs / Math.Max(1, layers);
        return sizeof(float) * (activations + scoresPerLayer);
    }
}

/// <summary>
/// Bytes of weights a loaded version holds: the size of its <c>model.safetensors</c> (FP32 tensors, loaded as stored),
/// read once per version.
/// </summary>
public static class ModelWeightBytes
{
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Repository.ModelVersion, StrongBox> Cache = new();

    public static long Of(Repository.ModelVersion version) =>
        Cache.GetValue(version, static v =>
        {
            var file = new FileInfo(Path.Combine(v.Directory, "model.safetensors"));
            return new StrongBox(file.Exists ? file.Length : 0);
        }).Value;

    private sealed class StrongBox(long value)
    {
        public long Value { get; } = value;
    }
}
