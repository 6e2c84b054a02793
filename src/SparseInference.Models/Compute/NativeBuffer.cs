using System.Runtime.InteropServices;

namespace SparseInference.Models.Compute;

/// <summary>
/// 64-byte aligned unmanaged FP32 scratch owned by one forward or one task: never shared, freed on dispose,
/// so concurrent forwards need no locking and the GC never moves what kernels point at.
/// </summary>
internal sealed unsafe class NativeBuffer : IDisposable
{
    public NativeBuffer(long length, bool zero = false)
    {
        Length = length;
        nuint bytes = (nuint)(Math.Max(1, length) * sizeof(float));
        Pointer = (float*)NativeMemory.AlignedAlloc(bytes, 64);
        if (zero)
        {
            NativeMemory.Clear(Pointer, bytes);
        }
    }

    public float* Pointer { get; private set; }

    public long Length { get; }

    public Span<float> Span => new(Pointer, checked((int)Length));

    public void Dispose()
    {
        if (Pointer != null)
        {
            NativeMemory.AlignedFree(Pointer);
            Pointer = null;
        }

        GC.SuppressFinalize(this);
    }

    ~NativeBuffer()
    {
        if (Pointer != null)
        {
            NativeMemory.AlignedFree(Pointer);
        }
    }
}
