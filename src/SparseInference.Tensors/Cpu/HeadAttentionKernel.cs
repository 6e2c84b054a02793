using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SparseInference.Tensors.Cpu;

/// <summary>
/// Block-sparse (dense = every block) flash attention for one (sequence, head). q (pre-scaled by log2 e / √d), Kᵀ
/// and V of the head are laid out once; query tiles then stream over their merged key ranges in chunks, scores and
/// P·V on the <see cref="TileGemm"/> micro-kernel, with an online softmax in the log2 domain (2^x is cheaper than
/// e^x). No L×L matrix exists and unlisted key blocks are never touched.
/// </summary>
internal sealed unsafe class HeadAttentionKernel : IDisposable
{
    private const int KeyChunk = 128;
    private const float Log2E = 1.44269504088896341f;
    private const int ScoreStride = KeyChunk + TileGemm.NR;

    /// <summary>Query rows per tile: enough rows to amortise the Kᵀ chunk, few enough that scores stay in L1.</summary>
    public const int MaxQueryTile = 48;

    private readonly int _length;
    private readonly int _dHead;
    private readonly int _keyStride;
    private readonly int _maxTile;
    private float* _q;
    private readonly float* _kt;
    private readonly float* _v;
    private readonly float* _scores;
    private readonly float* _acc;
    private readonly float* _rowMax;
    private readonly float* _rowSum;

    public HeadAttentionKernel(in AttentionGeometry g, int b, int h, int length, int maxTile)
    {
        _length = length;
        _dHead = g.HeadDim;
        _maxTile = maxTile;
        int d = _dHead;
        _keyStride = RoundUp(length, TileGemm.NR) + TileGemm.NR;
        long qFloats = (long)length * d + TileGemm.NR;
        long ktFloats = (long)d * _keyStride;
        long vFloats = (long)length * d + TileGemm.NR;
        long scoreFloats = (long)maxTile * ScoreStride;
        long accFloats = (long)maxTile * d;
        long total = qFloats + ktFloats + vFloats + scoreFloats + accFloats + 2L * maxTile;
        _q = (float*)NativeMemory.AlignedAlloc((nuint)(total * sizeof(float)), 64);
        _kt = _q + qFloats;
        _v = _kt + ktFloats;
        _scores = _v + vFloats;
        _acc = _scores + scoreFloats;
        _rowMax = _acc + accFloats;
        _rowSum = _rowMax + maxTile;
        // Padding columns of Kᵀ and rows of V are read by the micro-kernel (never stored): keep them finite.
        NativeMemory.Clear(_kt, (nuint)((ktFloats + vFloats) * sizeof(float)));

        float scale = Log2E / MathF.Sqrt(d);
        for (int t = 0; t < length; t++)
        {
            float* q = g.Q.Token(b, h, t), k = g.K.Token(b, h, t), v = g.V.Token(b, h, t);
            float* qd = _q + (long)t * d, vd = _v + (long)t * d;
            for (int j = 0; j < d; j++)
            {
                qd[j] = q[j] * scale;
                _kt[(long)j * _keyStride + t] = k[j];
                vd[j] = v[j];
            }
        }
    }

    /// <summary>
    /// Query block <paramref name="qb"/> (rows qb·tile … of the valid length) attends the key blocks listed, clamped
    /// to the valid length; rows are written to <paramref name="output"/>(t) and a row with no key is zero.
    /// </summary>
    public void QueryBlock(int qb, int tile, ReadOnlySpan<int> keyBlocks, StridedF32 output, int b, int h)
    {
        int q0 = qb * tile, q1 = Math.Min(q0 + tile, _length);
        if (q1 <= q0) return;
        Span<(int Start, int End)> ranges = keyBlocks.Length <= 64 ? stackalloc (int, int)[keyBlocks.Length] : new (int, int)[keyBlocks.Length];
        int count = 0;
        foreach (int kb in keyBlocks)
        {
            int start = kb * tile, end = Math.Min(start + tile, _length);
            if (end <= start) continue;
            // Adjacent blocks merge into one range: longer GEMM chunks, same keys.
            if (count > 0 && ranges[count - 1].End == start) ranges[count - 1].End = end;
            else ranges[count++] = (start, end);
        }

        for (int t = q0; t < q1; t += _maxTile)
        {
            Tile(t, Math.Min(_maxTile, q1 - t), ranges[..count], output, b, h);
        }
    }

    /// <summary>Every valid query attends every valid key.</summary>
    public void Dense(StridedF32 output, int b, int h)
    {
        Span<(int, int)> all = [(0, _length)];
        for (int t = 0; t < _length; t += _maxTile)
        {
            Tile(t, Math.Min(_maxTile, _length - t), all, output, b, h);
        }
    }

    private void Tile(int q0, int rows, ReadOnlySpan<(int Start, int End)> ranges, StridedF32 output, int b, int h)
    {
        int dh = _dHead;
        float* s = _scores, o = _acc, rowMax = _rowMax, rowSum = _rowSum;
        new Span<float>(o, rows * dh).Clear();
        for (int i = 0; i < rows; i++)
        {
            rowMax[i] = float.NegativeInfinity;
            rowSum[i] = 0f;
        }

        float* qTile = _q + (long)q0 * dh;
        foreach (var (start, end) in ranges)
        {
            for (int k0 = start; k0 < end; k0 += KeyChunk)
            {
                int width = Math.Min(KeyChunk, end - k0);
                TileGemm.Multiply(rows, RoundUp(width, TileGemm.NR), dh, qTile, dh, _kt + k0, _keyStride, s, ScoreStride, accumulate: false);
                for (int i = 0; i < rows; i++)
                {
                    float* si = s + (long)i * ScoreStride;
                    float previous = rowMax[i];
                    float next = MathF.Max(previous, Max(si, width));
                    float rescale = float.Exp2(previous - next);
                    rowSum[i] = rowSum[i] * rescale + Exp2ShiftSum(si, width, next);
                    if (rescale != 1f) Scale(o + (long)i * dh, dh, rescale);
                    rowMax[i] = next;
                }

                TileGemm.Multiply(rows, dh, width, s, ScoreStride, _v + (long)k0 * dh, dh, o, dh, accumulate: true);
            }
        }

        for (int i = 0; i < rows; i++)
        {
            float* src = o + (long)i * dh;
            float* dst = output.Token(b, h, q0 + i);
            if (rowSum[i] > 0f)
            {
                float inv = 1f / rowSum[i];
                for (int j = 0; j < dh; j++) dst[j] = src[j] * inv;
            }
            else
            {
                new Span<float>(dst, dh).Clear();
            }
        }
    }

    private static float Max(float* x, int n)
    {
        float m = float.NegativeInfinity;
        int i = 0;
        if (n >= 8)
        {
            var acc = Vector256.Create(float.NegativeInfinity);
            for (; i <= n - 8; i += 8) acc = Vector256.Max(acc, Vector256.Load(x + i));
            for (int j = 0; j < 8; j++) m = MathF.Max(m, acc[j]);
        }

        for (; i < n; i++) m = MathF.Max(m, x[i]);
        return m;
    }

    /// <summary>x[i] = 2^(x[i] − shift) in place for x[i] ≤ shift; returns the sum.</summary>
    private static float Exp2ShiftSum(float* x, int n, float shift)
    {
        var vs = Vector256.Create(shift);
        var acc = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            var e = Exp2NonPositive(Vector256.Load(x + i) - vs);
            e.Store(x + i);
            acc += e;
        }

        float sum = Vector256.Sum(acc);
        for (; i < n; i++)
        {
            float e = float.Exp2(x[i] - shift);
            x[i] = e;
            sum += e;
        }

        return sum;
    }

    /// <summary>
    /// 2^x for x ≤ 0, clamped at −125 where the result is negligible. Degree-6 Taylor polynomial of 2^r on
    /// r ∈ [−½, ½] (relative error about 1.3e-7); the scale 2^n goes straight into the exponent.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Exp2NonPositive(Vector256<float> x)
    {
        if (Fma.IsSupported && Avx2.IsSupported)
        {
            x = Avx.Max(x, Vector256.Create(-125f));
            var n = Avx.RoundToNearestInteger(x);
            var r = Avx.Subtract(x, n);
            var p = Fma.MultiplyAdd(Vector256.Create(1.5403530393381608e-4f), r, Vector256.Create(1.3333558146428443e-3f));
            p = Fma.MultiplyAdd(p, r, Vector256.Create(9.618129107628477e-3f));
            p = Fma.MultiplyAdd(p, r, Vector256.Create(5.550410866482158e-2f));
            p = Fma.MultiplyAdd(p, r, Vector256.Create(0.2402265069591007f));
            p = Fma.MultiplyAdd(p, r, Vector256.Create(0.6931471805599453f));
            p = Fma.MultiplyAdd(p, r, Vector256.Create(1f));
            var e = Avx2.ShiftLeftLogical(Avx.ConvertToVector256Int32(n), 23);
            return Avx2.Add(p.AsInt32(), e).AsSingle();
        }

        return Vector256.Exp(Vector256.Max(x, Vector256.Create(-125f)) * Vector256.Create(0.6931471805599453f));
    }

    private static void Scale(float* y, int n, float a)
    {
        var va = Vector256.Create(a);
        int i = 0;
        for (; i <= n - 8; i += 8) (Vector256.Load(y + i) * va).Store(y + i);
        for (; i < n; i++) y[i] *= a;
    }

    private static int RoundUp(int x, int multiple) => (x + multiple - 1) / multiple * multiple;

    public void Dispose()
    {
        if (_q != null)
        {
            NativeMemory.AlignedFree(_q);
            _q = null;
        }
    }
}
