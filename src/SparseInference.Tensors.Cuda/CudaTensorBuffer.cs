using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

/// <summary>
/// Device memory behind a tensor, and the BF16 copy of one of its views while that is current. With
/// <see cref="Fp32Pending"/> the copy is the only holder of that view's values (a BF16-only product output).
/// </summary>
internal sealed class CudaTensorBuffer(CudaComputeBackend backend, CudaBuffer memory) : TensorBuffer(backend, memory.Bytes)
{
    private long copyOffset;
    private long copyCount;
    private CudaBuffer? copy;

    public CudaBuffer Memory { get; } = memory;

    /// <summary>The FP32 memory of the copied view is not written yet; the BF16 copy holds its values.</summary>
    public bool Fp32Pending { get; private set; }

    /// <summary>The kept copy of the view at (byte offset, element count), or null.</summary>
    public CudaBuffer? Bf16Copy(long byteOffset, long count) =>
        copy is not null && copyOffset == byteOffset && copyCount == count ? copy : null;

    /// <summary>Whether a write of [byteOffset, byteOffset + bytes) covers the copied view entirely.</summary>
    public bool CopyWithin(long byteOffset, long bytes) =>
        copy is not null && byteOffset <= copyOffset && byteOffset + bytes >= copyOffset + (copyCount * 4);

    /// <summary>The pending view and its copy.</summary>
    public (long Offset, long Count, CudaBuffer Copy) PendingCopy() => (copyOffset, copyCount, copy!);

    public void Fp32Filled() => Fp32Pending = false;

    /// <summary>Keeps <paramref name="bf16"/> as the current copy of a view, replacing any other (never a pending one).</summary>
    public void KeepBf16Copy(long byteOffset, long count, CudaBuffer bf16, bool fp32Pending)
    {
        if (IsDisposed)
        {
            bf16.Dispose();
            return;
        }

        if (Fp32Pending)
        {
            throw new InvalidOperationException("A pending BF16-only output would be dropped before its FP32 values were filled.");
        }

        copy?.Dispose();
        (copyOffset, copyCount, copy) = (byteOffset, count, bf16);
        Fp32Pending = fp32Pending;
    }

    /// <summary>Some view of this buffer is being written (pending values already filled where needed): no copy is current.</summary>
    public void Written()
    {
        copy?.Dispose();
        copy = null;
        Fp32Pending = false;
        Transposed?.Dispose();
        Transposed = null;
    }

    /// <summary>The whole buffer's FP32 matrix transposed (a Linear weight as the fused layers read it), until it is written.</summary>
    public CudaBuffer? Transposed { get; private set; }

    /// <summary>Keeps <paramref name="transposed"/> (owned from here on) as the buffer's transposed copy.</summary>
    public void KeepTransposed(CudaBuffer transposed)
    {
        if (IsDisposed)
        {
            transposed.Dispose();
            return;
        }

        Transposed?.Dispose();
        Transposed = transposed;
    }

    /// <summary>
    /// Forgets the copy after a recording that never ran: it holds no values. (Its view's FP32 values, if pending, are
    /// lost with it; only tensors a failed recording wrote, which are discarded, can be in that state.)
    /// </summary>
    public void DropCopy() => Written();

    protected override void Release()
    {
        Written();
        Memory.Dispose();
    }
}
