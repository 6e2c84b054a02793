namespace SparseInference.Tensors;

/// <summary>Where a backend keeps tensor storage.</summary>
public enum DeviceKind
{
    /// <summary>Host memory, addressable by the CPU.</summary>
    Cpu,
    /// <summary>CUDA device memory; reachable from the host only through explicit copies.</summary>
    Cuda,
}

/// <summary>
/// Storage owned by one backend: host memory for the CPU backend, device memory for an accelerator.
/// Only the owning backend reads or writes it; the host reaches it through
/// <see cref="IComputeBackend.CopyFromHost"/> and <see cref="IComputeBackend.CopyToHost"/>.
/// </summary>
public abstract class TensorBuffer : IDisposable
{
    protected TensorBuffer(IComputeBackend backend, long sizeInBytes)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentOutOfRangeException.ThrowIfNegative(sizeInBytes);
        Backend = backend;
        SizeInBytes = sizeInBytes;
    }

    /// <summary>The backend that allocated this buffer and runs ops on it.</summary>
    public IComputeBackend Backend { get; }

    /// <summary>Capacity in bytes.</summary>
    public long SizeInBytes { get; }

    /// <summary>True once the storage has been released.</summary>
    public bool IsDisposed { get; private set; }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the storage; called once.</summary>
    protected abstract void Release();
}
