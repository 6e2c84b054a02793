using System.Runtime.CompilerServices;

namespace SparseInference.Tensors.Cpu;

/// <summary>
/// A constant right-hand GEMM operand op(B) [K×N] laid out once as <see cref="Gemm.NR"/>-wide column panels over
/// the whole K (panel p at p·K·NR, row k of it at k·NR, columns past N zero), so that a MatMul reads the panels
/// in place instead of packing B per call; a K-chunk of a panel is contiguous too.
/// </summary>
internal sealed unsafe class PackedWeight
{
    private readonly float[] _storage;
    private readonly nint _offset;

    private PackedWeight(long byteOffset, bool transposed, int k, int n)
    {
        ByteOffset = byteOffset;
        Transposed = transposed;
        K = k;
        N = n;
        var panels = (n + Gemm.NR - 1) / Gemm.NR;
        // Pinned-object-heap array: the address stays valid for the life of the weight without a handle.
        _storage = GC.AllocateUninitializedArray<float>(checked(panels * k * Gemm.NR + 16), pinned: true);
        var p = (nint)Unsafe.AsPointer(ref _storage[0]);
        _offset = ((p + 63) & ~(nint)63) - p;
    }

    /// <summary>Where in its buffer the weight this layout was made from starts.</summary>
    public long ByteOffset { get; }

    /// <summary>Whether the layout is of Bᵀ (a B stored [N, K], as a Linear weight).</summary>
    public bool Transposed { get; }

    public int K { get; }

    public int N { get; }

    /// <summary>The first panel (64-byte aligned).</summary>
    public float* Panels => (float*)((byte*)Unsafe.AsPointer(ref _storage[0]) + _offset);

    /// <summary>Whether a MatMul of B at <paramref name="byteOffset"/> as op(B) [k×n] can read this layout.</summary>
    public bool Matches(long byteOffset, bool transposed, int k, int n) =>
        byteOffset == ByteOffset && transposed == Transposed && k == K && n == N;

    /// <summary>Lays out op(B) of a row-major B (leading dimension <paramref name="ldb"/>) into panels.</summary>
    public static PackedWeight Create(float* b, int ldb, long byteOffset, bool transposed, int k, int n)
    {
        var packed = new PackedWeight(byteOffset, transposed, k, n);
        var nr = Gemm.NR;
        var dst = packed.Panels;
        for (int col = 0, panel = 0; col < n; col += nr, panel++)
        {
            Gemm.PackB(transposed, b, ldb, 0, k, col, Math.Min(nr, n - col), dst + (long)panel * k * nr, nr);
        }
        return packed;
    }
}
