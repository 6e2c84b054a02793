namespace SparseInference.Tensors.Cuda.Memory;

/// <summary>What a device allocation holds, for the memory metrics.</summary>
public enum MemoryCategory
{
    /// <summary>Model weights, kept for the model's lifetime.</summary>
    Weights,

    /// <summary>Inputs, outputs and intermediates of a forward pass.</summary>
    Activations,

    /// <summary>Scratch space of an op (layouts, conversions).</summary>
    Workspace,
}

/// <summary>
/// A rented range of device memory. Disposing returns it to its <see cref="DeviceMemoryPool"/>.
/// </summary>
public sealed class CudaBuffer : IDisposable
{
    private readonly DeviceMemoryPool? pool;
    private int returned;

    internal CudaBuffer(DeviceMemoryPool pool, Interop.CudaDeviceMemoryHandle block, long bytes, MemoryCategory category)
    {
        this.pool = pool;
        Block = block;
        Pointer = block.Pointer;
        Bytes = bytes;
        Category = category;
    }

    private CudaBuffer(ulong pointer, long bytes)
    {
        Pointer = pointer;
        Bytes = bytes;
        Category = MemoryCategory.Activations;
    }

    /// <summary>A non-owning view of a range of another buffer; disposing it frees nothing.</summary>
    public static CudaBuffer View(CudaBuffer owner, long offsetBytes, long bytes)
    {
        ArgumentNullException.ThrowIfNull(owner);
        if (offsetBytes < 0 || bytes < 0 || offsetBytes + bytes > owner.Bytes)
        {
            throw new ArgumentOutOfRangeException(nameof(offsetBytes), $"view: expected a range within {owner.Bytes} bytes, got offset {offsetBytes} + {bytes} bytes.");
        }

        return new CudaBuffer(owner.Pointer + (ulong)offsetBytes, bytes);
    }

    /// <summary>The device address.</summary>
    public ulong Pointer { get; }

    /// <summary>Bytes asked for (the block behind it may be larger).</summary>
    public long Bytes { get; }

    public MemoryCategory Category { get; internal set; }

    internal Interop.CudaDeviceMemoryHandle? Block { get; }

    public void Dispose()
    {
        if (pool is not null && Interlocked.Exchange(ref returned, 1) == 0)
        {
            pool.Return(this);
        }
    }
}
