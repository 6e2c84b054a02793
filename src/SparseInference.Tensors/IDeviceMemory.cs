namespace SparseInference.Tensors;

/// <summary>Bytes a backend's allocator holds, by use.</summary>
/// <param name="WeightBytes">Rented for model weights.</param>
/// <param name="WorkspaceBytes">Rented as kernel workspace (attention partials, BF16 operand copies).</param>
/// <param name="ActivationBytes">Rented for activations of forwards in flight.</param>
/// <param name="CachedBytes">Held from the driver but free in the allocator's cache.</param>
public readonly record struct DeviceMemoryUse(long WeightBytes, long WorkspaceBytes, long ActivationBytes, long CachedBytes);

/// <summary>
/// Optional capability of a backend that owns device memory (the CUDA backend): what the device holds and what the
/// backend's pool holds by use, for the memory metrics, and giving cached blocks back once a model is released.
/// Every member may throw <see cref="ObjectDisposedException"/> once the backend is closed.
/// </summary>
public interface IDeviceMemory
{
    /// <summary>Free and total bytes of the device as its driver sees them (other processes' allocations included).</summary>
    (long FreeBytes, long TotalBytes) DeviceMemory();

    /// <summary>The backend's allocator, by use.</summary>
    DeviceMemoryUse MemoryUse();

    /// <summary>Returns the allocator's cached, unused blocks to the driver (after a model's weights were released).</summary>
    void ReleaseCachedMemory();
}
