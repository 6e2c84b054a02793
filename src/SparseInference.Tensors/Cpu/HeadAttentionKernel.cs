using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SparseInference.Tensors.Cpu;

/// <summary>
/// Block-sparse (dense = every block) flash attention for one (sequence, head). q (pre-scaled by log2 e / √d), Kᵀ
/// and V of the head are laid out once in the thread's scratch; then six query rows at a time stream over their
/// merged key ranges in chunks: scores on a 6×32 register tile over d, an online softmax in the log2 domain (2^x is
/// cheaper than e^x), and P·V on a 6-row tile as wide as the head (8, 16 or 32 columns a step). No L×L matrix exists
/// and unlisted key blocks are never touched.
/// </summary>
internal readonly unsafe struct HeadAttentionKernel
{
    /// <summary>Query rows per register tile.</summary>
    private const int MR = 6;

    /// <summary>Keys per online-softmax step: the 6 score rows stay in L1.</summary>
    private const int KeyChunk = 128;

    private const float Log2E = 1.44269504088896341f;

    [ThreadStatic] private static float[]? t_scratch;

    private readonly int _length;
    private readonly int _dHead;
    private readonly int _dPad;
    private readonly int _keyStride;
    private readonly float* _q;
    private readonly float* _kt;
    private readonly float* _v;
    private readonly float* _scores;
    private readonly float* _acc;
    private readonly float* _rowMax;
    private readonly float* _rowSum;

    /// <summary>Lays out the head's q, Kᵀ and V in the calling thread's scratch (valid until its next kernel).</summary>
    public HeadAttentionKernel(in AttentionGeometry g, int b, int h, int length)
    {
        _length = length;
        int d = _dHead = g.HeadDim;
        // V rows and the accumulator are as wide as the P·V step that covers d: 8, or a multiple of 16.
        _dPad = d <= 8 ? 8 : (d + 15) / 16 * 16;
        _keyStride = (length + 31) / 32 * 32;
        long qFloats = (long)length * d;
        // Score tiles read Kᵀ 32 keys wide from any chunk start: up to 32 floats past the last row.
        long ktFloats = (long)d * _keyStride + 32;
        long vFloats = (long)length * _dPad;
        long scoreFloats = MR * KeyChunk;
        long accFloats = MR * _dPad;
        long total = qFloats + ktFloats + vFloats + scoreFloats + accFloats + 2 * MR + 16;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < total)
        {
            // Pinned-object-heap array: its address is stable for the thread's lifetime.
            t_scratch = scratch = GC.AllocateUninitializedArray<float>((int)Math.Max(total, 4096), pinned: true);
        }

        var p = (float*)Unsafe.AsPointer(ref scratch[0]);
        _q = (float*)(((nint)p + 63) & ~(nint)63);
        _kt = _q + qFloats;
        _v = _kt + ktFloats;
        _scores = _v + vFloats;
        _acc = _scores + scoreFloats;
        _rowMax = _acc + accFloats;
        _rowSum = _rowMax + MR;

        float scale = Log2E / MathF.Sqrt(d);
        for (int t = 0; t < length; t++)
        {
            float* q = g.Q.Token(b, h, t), k = g.K.Token(b, h, t), v = g.V.Token(b, h, t);
            float* qd = _q + (long)t * d, vd = _v + (long)t * _dPad;
            for (int j = 0; j < d; j++)
            {
                qd[j] = q[j] * scale;
                _kt[(long)j * _keyStride + t] = k[j];
                vd[j] = v[j];
            }

            // Padding columns of V feed accumulator columns that are never written out; keep them finite.
            for (int j = d; j < _dPad; j++) vd[j] = 0f;
        }

        // Keys past the length are scored (32 at a time) but never enter the softmax: keep them finite.
        for (int j = 0; j < d; j++) new Span<float>(_kt + (long)j * _keyStride + length, _keyStride - length).Clear();
        new Span<float>(_kt + (long)d * _keyStride, 32).Clear();
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
            // Adjacent blocks merge into one range: longer chunks, same keys.
            if (count > 0 && ranges[count - 1].End == start) ranges[count - 1].End = end;
            else ranges[count++] = (start, end);
        }

        for (int t = q0; t < q1; t += MR)
        {
            Rows(t, Math.Min(MR, q1 - t), ranges[..count], output, b, h);
        }
    }

    /// <summary>Every valid query attends every valid key.</summary>
    public void Dense(StridedF32 output, int b, int h)
    {
        Span<(int, int)> all = [(0, _length)];
        for (int t = 0; t < _length; t += MR)
        {
            Rows(t, Math.Min(MR, _length - t), all, output, b, h);
        }
    }

    /// <summary>Query rows q0 … q0+rows−1 (rows ≤ 6) over the key ranges; a missing row aliases row 0 and is never stored.</summary>
    private void Rows(int q0, int rows, ReadOnlySpan<(int Start, int End)> ranges, StridedF32 output, int b, int h)
    {
        int d = _dHead, dPad = _dPad;
        float* o = _acc, rowMax = _rowMax, rowSum = _rowSum;
        new Span<float>(o, MR * dPad).Clear();
        for (int i = 0; i < MR; i++)
        {
            rowMax[i] = float.NegativeInfinity;
            rowSum[i] = 0f;
        }

        float* q = _q + (long)q0 * d;
        var qRows = new RowPointers(q, d, rows);
        var pRows = new RowPointers(_scores, KeyChunk, rows);
        foreach (var (start, end) in ranges)
        {
            for (int k0 = start; k0 < end; k0 += KeyChunk)
            {
                int width = Math.Min(KeyChunk, end - k0);
                for (int j = 0; j < width; j += 32)
                {
                    Scores6x32(d, qRows, _kt + k0 + j, _keyStride, _scores + j, KeyChunk);
                }

                for (int i = 0; i < rows; i++)
                {
                    float* si = _scores + (long)i * KeyChunk;
                    float previous = rowMax[i];
                    float next = MathF.Max(previous, Max(si, width));
                    float rescale = float.Exp2(previous - next);
                    rowSum[i] = rowSum[i] * rescale + Exp2ShiftSum(si, width, next);
                    if (rescale != 1f) Scale(o + (long)i * dPad, dPad, rescale);
                    rowMax[i] = next;
                }

                float* v = _v + (long)k0 * dPad;
                int c = 0;
                for (; c + 32 <= dPad; c += 32) Values6x32(width, pRows, v + c, dPad, o + c, dPad);
                if (c + 16 <= dPad) Values6x16(width, pRows, v + c, dPad, o + c, dPad);
                else if (dPad == 8) Values6x8(width, pRows, v, dPad, o, dPad);
            }
        }

        for (int i = 0; i < rows; i++)
        {
            float* src = o + (long)i * dPad;
            float* dst = output.Token(b, h, q0 + i);
            if (rowSum[i] > 0f)
            {
                float inv = 1f / rowSum[i];
                for (int j = 0; j < d; j++) dst[j] = src[j] * inv;
            }
            else
            {
                new Span<float>(dst, d).Clear();
            }
        }
    }

    /// <summary>Six row pointers of a row-major matrix; rows past the valid count alias row 0.</summary>
    private readonly struct RowPointers(float* first, int stride, int rows)
    {
        public readonly float* R0 = first;
        public readonly float* R1 = rows > 1 ? first + stride : first;
        public readonly float* R2 = rows > 2 ? first + 2 * stride : first;
        public readonly float* R3 = rows > 3 ? first + 3 * stride : first;
        public readonly float* R4 = rows > 4 ? first + 4 * stride : first;
        public readonly float* R5 = rows > 5 ? first + 5 * stride : first;
    }

    /// <summary>s[i, 0..32) = Σ_c q_i[c]·kt[c·ldk + 0..32) for the six rows (s row stride <paramref name="lds"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores6x32(int d, in RowPointers q, float* kt, int ldk, float* s, int lds)
    {
        float* a0 = q.R0, a1 = q.R1, a2 = q.R2, a3 = q.R3, a4 = q.R4, a5 = q.R5;
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int c = 0; c < d; c++)
        {
            var b0 = Vector512.Load(kt);
            var b1 = Vector512.Load(kt + 16);
            kt += ldk;
            var av = Vector512.Create(a0[c]);
            c00 = Vector512.FusedMultiplyAdd(av, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a1[c]);
            c10 = Vector512.FusedMultiplyAdd(av, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a2[c]);
            c20 = Vector512.FusedMultiplyAdd(av, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a3[c]);
            c30 = Vector512.FusedMultiplyAdd(av, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a4[c]);
            c40 = Vector512.FusedMultiplyAdd(av, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a5[c]);
            c50 = Vector512.FusedMultiplyAdd(av, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
        }

        c00.Store(s); c01.Store(s + 16);
        s += lds;
        c10.Store(s); c11.Store(s + 16);
        s += lds;
        c20.Store(s); c21.Store(s + 16);
        s += lds;
        c30.Store(s); c31.Store(s + 16);
        s += lds;
        c40.Store(s); c41.Store(s + 16);
        s += lds;
        c50.Store(s); c51.Store(s + 16);
    }

    /// <summary>o[i, 0..32) += Σ_{j &lt; n} p_i[j]·v[j·ldv + 0..32) for the six rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Values6x32(int n, in RowPointers p, float* v, int ldv, float* o, int ldo)
    {
        float* p0 = p.R0, p1 = p.R1, p2 = p.R2, p3 = p.R3, p4 = p.R4, p5 = p.R5;
        float* o0 = o, o1 = o + ldo, o2 = o + 2 * ldo, o3 = o + 3 * ldo, o4 = o + 4 * ldo, o5 = o + 5 * ldo;
        Vector512<float> c00 = Vector512.Load(o0), c01 = Vector512.Load(o0 + 16), c10 = Vector512.Load(o1), c11 = Vector512.Load(o1 + 16);
        Vector512<float> c20 = Vector512.Load(o2), c21 = Vector512.Load(o2 + 16), c30 = Vector512.Load(o3), c31 = Vector512.Load(o3 + 16);
        Vector512<float> c40 = Vector512.Load(o4), c41 = Vector512.Load(o4 + 16), c50 = Vector512.Load(o5), c51 = Vector512.Load(o5 + 16);
        for (int j = 0; j < n; j++)
        {
            var b0 = Vector512.Load(v);
            var b1 = Vector512.Load(v + 16);
            v += ldv;
            var av = Vector512.Create(p0[j]);
            c00 = Vector512.FusedMultiplyAdd(av, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(p1[j]);
            c10 = Vector512.FusedMultiplyAdd(av, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(p2[j]);
            c20 = Vector512.FusedMultiplyAdd(av, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(p3[j]);
            c30 = Vector512.FusedMultiplyAdd(av, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(p4[j]);
            c40 = Vector512.FusedMultiplyAdd(av, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(p5[j]);
            c50 = Vector512.FusedMultiplyAdd(av, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
        }

        c00.Store(o0); c01.Store(o0 + 16);
        c10.Store(o1); c11.Store(o1 + 16);
        c20.Store(o2); c21.Store(o2 + 16);
        c30.Store(o3); c31.Store(o3 + 16);
        c40.Store(o4); c41.Store(o4 + 16);
        c50.Store(o5); c51.Store(o5 + 16);
    }

    /// <summary>o[i, 0..16) += Σ_{j &lt; n} p_i[j]·v[j·ldv + 0..16) for the six rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Values6x16(int n, in RowPointers p, float* v, int ldv, float* o, int ldo)
    {
        float* p0 = p.R0, p1 = p.R1, p2 = p.R2, p3 = p.R3, p4 = p.R4, p5 = p.R5;
        float* o0 = o, o1 = o + ldo, o2 = o + 2 * ldo, o3 = o + 3 * ldo, o4 = o + 4 * ldo, o5 = o + 5 * ldo;
        Vector512<float> c0 = Vector512.Load(o0), c1 = Vector512.Load(o1), c2 = Vector512.Load(o2);
        Vector512<float> c3 = Vector512.Load(o3), c4 = Vector512.Load(o4), c5 = Vector512.Load(o5);
        for (int j = 0; j < n; j++)
        {
            var bv = Vector512.Load(v);
            v += ldv;
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(p0[j]), bv, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Create(p1[j]), bv, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Create(p2[j]), bv, c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.Create(p3[j]), bv, c3);
            c4 = Vector512.FusedMultiplyAdd(Vector512.Create(p4[j]), bv, c4);
            c5 = Vector512.FusedMultiplyAdd(Vector512.Create(p5[j]), bv, c5);
        }

        c0.Store(o0);
        c1.Store(o1);
        c2.Store(o2);
        c3.Store(o3);
        c4.Store(o4);
        c5.Store(o5);
    }

    /// <summary>o[i, 0..8) += Σ_{j &lt; n} p_i[j]·v[j·ldv + 0..8) for the six rows (heads of 8 or fewer dims).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Values6x8(int n, in RowPointers p, float* v, int ldv, float* o, int ldo)
    {
        float* p0 = p.R0, p1 = p.R1, p2 = p.R2, p3 = p.R3, p4 = p.R4, p5 = p.R5;
        float* o0 = o, o1 = o + ldo, o2 = o + 2 * ldo, o3 = o + 3 * ldo, o4 = o + 4 * ldo, o5 = o + 5 * ldo;
        Vector256<float> c0 = Vector256.Load(o0), c1 = Vector256.Load(o1), c2 = Vector256.Load(o2);
        Vector256<float> c3 = Vector256.Load(o3), c4 = Vector256.Load(o4), c5 = Vector256.Load(o5);
        for (int j = 0; j < n; j++)
        {
            var bv = Vector256.Load(v);
            v += ldv;
            c0 = Vector256.FusedMultiplyAdd(Vector256.Create(p0[j]), bv, c0);
            c1 = Vector256.FusedMultiplyAdd(Vector256.Create(p1[j]), bv, c1);
            c2 = Vector256.FusedMultiplyAdd(Vector256.Create(p2[j]), bv, c2);
            c3 = Vector256.FusedMultiplyAdd(Vector256.Create(p3[j]), bv, c3);
            c4 = Vector256.FusedMultiplyAdd(Vector256.Create(p4[j]), bv, c4);
            c5 = Vector256.FusedMultiplyAdd(Vector256.Create(p5[j]), bv, c5);
        }

        c0.Store(o0);
        c1.Store(o1);
        c2.Store(o2);
        c3.Store(o3);
        c4.Store(o4);
        c5.Store(o5);
    }

    private static float Max(float* x, int n)
    {
        float m = float.NegativeInfinity;
        int i = 0;
        if (n >= 16)
        {
            var acc = Vector512.Create(float.NegativeInfinity);
            for (; i <= n - 16; i += 16) acc = Vector512.Max(acc, Vector512.Load(x + i));
            var half = Vector256.Max(acc.GetLower(), acc.GetUpper());
            for (int j = 0; j < 8; j++) m = MathF.Max(m, half[j]);
        }

        for (; i < n; i++) m = MathF.Max(m, x[i]);
        return m;
    }

    /// <summary>x[i] = 2^(x[i] − shift) in place for x[i] ≤ shift; returns the sum.</summary>
    private static float Exp2ShiftSum(float* x, int n, float shift)
    {
        var vs = Vector512.Create(shift);
        var acc = Vector512<float>.Zero;
        int i = 0;
        for (; i <= n - 16; i += 16)
        {
            var e = MathKernels.Exp2NonPositive(Vector512.Load(x + i) - vs);
            e.Store(x + i);
            acc += e;
        }

        float sum = Vector512.Sum(acc);
        for (; i < n; i++)
        {
            float e = float.Exp2(x[i] - shift);
            x[i] = e;
            sum += e;
        }

        return sum;
    }

    private static void Scale(float* y, int n, float a)
    {
        var va = Vector256.Create(a);
        int i = 0;
        for (; i <= n - 8; i += 8) (Vector256.Load(y + i) * va).Store(y + i);
        for (; i < n; i++) y[i] *= a;
    }
}
