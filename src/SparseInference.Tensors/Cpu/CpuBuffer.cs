using System.Runtime.InteropServices;

namespace SparseInference.Tensors.Cpu;

/// <summary>64-byte aligned native host memory, freed on dispose or, if forgotten, by the finalizer.</summary>
internal sealed unsafe class CpuBuffer : TensorBuffer
{
    private const nuint Alignment = 64;
    private void* _pointer;

    public CpuBuffer(CpuBackend backend, long sizeInBytes, bool zeroed) : base(backend, sizeInBytes)
    {
        // Never allocate 0 bytes: a valid pointer keeps the kernels free of special cases.
        var bytes = (nuint)Math.Max(sizeInBytes, 1);
        _pointer = NativeMemory.AlignedAlloc(bytes, Alignment);
        if (zeroed) NativeMemory.Clear(_pointer, bytes);
        if (sizeInBytes > 0) GC.AddMemoryPressure(sizeInBytes);
    }

    ~CpuBuffer() => Release();

    /// <summary>The GEMM layout of a weight stored in this buffer (see <see cref="CpuBackend.PrepareWeight"/>), or null.</summary>
    public PackedWeight? Packed { get; set; }

    public byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return (byte*)_pointer;
        }
    }

    protected override void Release()
    {
        if (_pointer == null) return;
        NativeMemory.AlignedFree(_pointer);
        _pointer = null;
        if (SizeInBytes > 0) GC.RemoveMemoryPressure(SizeInBytes);
    }
}
