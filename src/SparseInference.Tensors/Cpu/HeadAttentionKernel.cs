using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SparseInference.Tensors.Cpu;

/// <summary>
/// Block-sparse (dense = every block) flash attention for one (sequence, head). q (pre-scaled by log2 e / √d), Kᵀ
/// and V of the head are laid out once in the thread's scratch; then blocks of up to 48 query rows stream over their
/// merged key ranges in chunks, each chunk applied six rows at a time: scores on a 6×32 register tile over d, an
/// online softmax in the log2 domain (2^x is cheaper than e^x), and P·V on a 6-row tile as wide as the head (8, 16
/// or 32 columns a step). No L×L matrix exists and unlisted key blocks are never touched.
/// </summary>
internal readonly unsafe struct HeadAttentionKernel
{
    /// <summary>Query rows per register tile.</summary>
    private const int MR = 6;

    /// <summary>Keys per online-softmax step (at most): the 6 score rows stay in L1.</summary>
    private const int KeyChunk = 128;

    /// <summary>
    /// Query rows that walk the keys together: each key chunk's Kᵀ and V are read from L2 once per block and reused
    /// by its eight 6-row tiles, instead of once per tile.
    /// </summary>
    private const int BlockRows = 8 * MR;

    private const float Log2E = 1.44269504088896341f;

    [ThreadStatic] private static float[]? t_scratch;

    private readonly int _length;
    private readonly int _dHead;
    private readonly int _dPad;
    private readonly int _keyStride;
    private readonly int _keyChunk;
    private readonly float* _q;
    private readonly float* _kt;
    private readonly float* _v;
    private readonly float* _scores;
    private readonly float* _acc;
    private readonly float* _rowMax;
    private readonly float* _rowSum;
    private readonly float* _tile;

    /// <summary>Lays out the head's q, Kᵀ and V in the calling thread's scratch (valid until its next kernel).</summary>
    public HeadAttentionKernel(in AttentionGeometry g, int b, int h, int length)
    {
        _length = length;
        int d = _dHead = g.HeadDim;
        // V rows and the accumulator are as wide as the P·V step that covers d: 8, or a multiple of 16.
        _dPad = d <= 8 ? 8 : (d + 15) / 16 * 16;
        // Rows of Kᵀ a cache line longer than a multiple of 32 keys: a power-of-two stride would put the d rows that a
        // score tile reads into the same few L1 sets.
        _keyStride = (length + 31) / 32 * 32 + 16;
        long qFloats = (long)length * d;
        // Score tiles read Kᵀ 32 keys wide from any chunk start: up to 32 floats past the last row.
        long ktFloats = (long)d * _keyStride + 32;
        long vFloats = (long)length * _dPad;
        // A chunk of Kᵀ and V (2 · chunk · d floats) stays near 16 KiB: in L1 while the block's tiles use it.
        _keyChunk = _dPad >= 32 ? 64 : KeyChunk;
        long scoreFloats = MR * KeyChunk;
        long accFloats = BlockRows * _dPad;
        long total = qFloats + ktFloats + vFloats + scoreFloats + accFloats + 2 * BlockRows + MR * 32 + 32;
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
        _rowSum = _rowMax + BlockRows;
        _tile = (float*)(((nint)(_rowSum + BlockRows) + 63) & ~(nint)63);

        float scale = Log2E / MathF.Sqrt(d);
        for (int t = 0; t < length; t++)
        {
            float* q = g.Q.Token(b, h, t), v = g.V.Token(b, h, t);
            float* qd = _q + (long)t * d, vd = _v + (long)t * _dPad;
            for (int j = 0; j < d; j++)
            {
                qd[j] = q[j] * scale;
                vd[j] = v[j];
            }

            // Padding columns of V feed accumulator columns that are never written out; keep them finite.
            for (int j = d; j < _dPad; j++) vd[j] = 0f;
        }

        // Kᵀ 16 keys at a time: each row of Kᵀ gets a whole cache line while the 16 key rows stay in L1.
        float* keys = g.K.Token(b, h, 0);
        long keyStep = g.K.TokenStride;
        for (int t0 = 0; t0 < length; t0 += 16)
        {
            int count = Math.Min(16, length - t0);
            float* block = keys + t0 * keyStep;
            for (int j = 0; j < d; j++)
            {
                float* row = _kt + (long)j * _keyStride + t0;
                for (int t = 0; t < count; t++) row[t] = block[t * keyStep + j];
            }
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

        for (int t = q0; t < q1; t += BlockRows)
        {
            Rows(t, Math.Min(BlockRows, q1 - t), ranges[..count], output, b, h);
        }
    }

    /// <summary>Every valid query attends every valid key.</summary>
    public void Dense(StridedF32 output, int b, int h)
    {
        Span<(int, int)> all = [(0, _length)];
        for (int t = 0; t < _length; t += BlockRows)
        {
            Rows(t, Math.Min(BlockRows, _length - t), all, output, b, h);
        }
    }

    /// <summary>
    /// Query rows q0 … q0+rows−1 (rows ≤ <see cref="BlockRows"/>) over the key ranges, chunk by chunk, each chunk
    /// applied to the rows six at a time; in a last tile of fewer than six rows the missing rows alias its first
    /// row and are never stored.
    /// </summary>
    private void Rows(int q0, int rows, ReadOnlySpan<(int Start, int End)> ranges, StridedF32 output, int b, int h)
    {
        int d = _dHead, dPad = _dPad, chunk = _keyChunk;
        float* acc = _acc, rowMax = _rowMax, rowSum = _rowSum;
        int tiles = (rows + MR - 1) / MR;
        new Span<float>(acc, tiles * MR * dPad).Clear();
        for (int i = 0; i < tiles * MR; i++)
        {
            rowMax[i] = float.NegativeInfinity;
            rowSum[i] = 0f;
        }

        var pRowsFull = new RowPointers(_scores, KeyChunk, MR);
        foreach (var (start, end) in ranges)
        {
            for (int k0 = start; k0 < end; k0 += chunk)
            {
                int width = Math.Min(chunk, end - k0);
                float* v = _v + (long)k0 * dPad;
                for (int tile = 0; tile < tiles; tile++)
                {
                    int r0 = tile * MR, tileRows = Math.Min(MR, rows - r0);
                    var pRows = tileRows == MR ? pRowsFull : new RowPointers(_scores, KeyChunk, tileRows);
                    // Scores of six q rows against 32 keys at a time, on the GEMM's micro-kernel over Kᵀ in place. In a
                    // last tile of fewer rows the missing q rows are read from the scratch that follows (finite, never
                    // stored out).
                    float* qTile = _q + (long)(q0 + r0) * d;
                    for (int j = 0; j < width; j += 32)
                    {
                        Gemm.Kernel6x32Direct(d, qTile, d, _kt + k0 + j, _keyStride, _scores + j, KeyChunk);
                    }

                    float* o = acc + (long)r0 * dPad;
                    for (int i = 0; i < tileRows; i++)
                    {
                        float* si = _scores + (long)i * KeyChunk;
                        float previous = rowMax[r0 + i];
                        float next = MathF.Max(previous, Max(si, width));
                        float sum = Exp2ShiftSum(si, width, next);
                        if (previous == float.NegativeInfinity)
                        {
                            // A row's first chunk: nothing accumulated yet to rescale (the only chunk of a short row).
                            rowSum[r0 + i] = sum;
                        }
                        else if (previous != next)
                        {
                            float rescale = float.Exp2(previous - next);
                            rowSum[r0 + i] = rowSum[r0 + i] * rescale + sum;
                            Scale(o + (long)i * dPad, dPad, rescale);
                        }
                        else
                        {
                            rowSum[r0 + i] += sum;
                        }

                        rowMax[r0 + i] = next;
                    }

                    int c = 0;
                    for (; c + 32 <= dPad; c += 32)
                    {
                        // 32 columns of P·V on the GEMM's micro-kernel (P rows past the tile's are scores, never
                        // stored out), then added to the accumulator.
                        Gemm.Kernel6x32Direct(width, _scores, KeyChunk, v + c, dPad, _tile, 32);
                        AddTile(_tile, o + c, dPad);
                    }

                    if (c + 16 <= dPad) Values6x16(width, pRows, v + c, dPad, o + c, dPad);
                    else if (dPad == 8) Values6x8(width, pRows, v, dPad, o, dPad);
                }
            }
        }

        for (int i = 0; i < rows; i++)
        {
            float* src = acc + (long)i * dPad;
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

    /// <summary>o[i, 0..32) += tile[i, 0..32) for the six rows.</summary>
    private static void AddTile(float* tile, float* o, int ldo)
    {
        for (int i = 0; i < MR; i++, tile += 32, o += ldo)
        {
            (Vector512.Load(o) + Vector512.Load(tile)).Store(o);
            (Vector512.Load(o + 16) + Vector512.Load(tile + 16)).Store(o + 16);
        }
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

    /// <summary>
    /// o[i, 0..8) += Σ_{j &lt; n} p_i[j]·v[j·ldv + 0..8) for the six rows (heads of 8 or fewer dims). Even and odd keys
    /// go to separate accumulators: six 256-bit FMA chains alone would wait on the FMA latency, twelve keep both
    /// FMA pipes busy.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Values6x8(int n, in RowPointers p, float* v, int ldv, float* o, int ldo)
    {
        float* p0 = p.R0, p1 = p.R1, p2 = p.R2, p3 = p.R3, p4 = p.R4, p5 = p.R5;
        Vector256<float> e0 = default, e1 = default, e2 = default, e3 = default, e4 = default, e5 = default;
        Vector256<float> d0 = default, d1 = default, d2 = default, d3 = default, d4 = default, d5 = default;
        int j = 0;
        for (; j + 2 <= n; j += 2)
        {
            var even = Vector256.Load(v);
            var odd = Vector256.Load(v + ldv);
            v += 2 * ldv;
            e0 = Vector256.FusedMultiplyAdd(Vector256.Create(p0[j]), even, e0);
            d0 = Vector256.FusedMultiplyAdd(Vector256.Create(p0[j + 1]), odd, d0);
            e1 = Vector256.FusedMultiplyAdd(Vector256.Create(p1[j]), even, e1);
            d1 = Vector256.FusedMultiplyAdd(Vector256.Create(p1[j + 1]), odd, d1);
            e2 = Vector256.FusedMultiplyAdd(Vector256.Create(p2[j]), even, e2);
            d2 = Vector256.FusedMultiplyAdd(Vector256.Create(p2[j + 1]), odd, d2);
            e3 = Vector256.FusedMultiplyAdd(Vector256.Create(p3[j]), even, e3);
            d3 = Vector256.FusedMultiplyAdd(Vector256.Create(p3[j + 1]), odd, d3);
            e4 = Vector256.FusedMultiplyAdd(Vector256.Create(p4[j]), even, e4);
            d4 = Vector256.FusedMultiplyAdd(Vector256.Create(p4[j + 1]), odd, d4);
            e5 = Vector256.FusedMultiplyAdd(Vector256.Create(p5[j]), even, e5);
            d5 = Vector256.FusedMultiplyAdd(Vector256.Create(p5[j + 1]), odd, d5);
        }

        if (j < n)
        {
            var last = Vector256.Load(v);
            e0 = Vector256.FusedMultiplyAdd(Vector256.Create(p0[j]), last, e0);
            e1 = Vector256.FusedMultiplyAdd(Vector256.Create(p1[j]), last, e1);
            e2 = Vector256.FusedMultiplyAdd(Vector256.Create(p2[j]), last, e2);
            e3 = Vector256.FusedMultiplyAdd(Vector256.Create(p3[j]), last, e3);
            e4 = Vector256.FusedMultiplyAdd(Vector256.Create(p4[j]), last, e4);
            e5 = Vector256.FusedMultiplyAdd(Vector256.Create(p5[j]), last, e5);
        }

        (Vector256.Load(o) + (e0 + d0)).Store(o);
        o += ldo;
        (Vector256.Load(o) + (e1 + d1)).Store(o);
        o += ldo;
        (Vector256.Load(o) + (e2 + d2)).Store(o);
        o += ldo;
        (Vector256.Load(o) + (e3 + d3)).Store(o);
        o += ldo;
        (Vector256.Load(o) + (e4 + d4)).Store(o);
        o += ldo;
        (Vector256.Load(o) + (e5 + d5)).Store(o);
    }

    private static float Max(float* x, int n)
    {
        float m = float.NegativeInfinity;
        int i = 0;
        if (n >= 16)
        {
            var acc = Vector512.Load(x);
            for (i = 16; i <= n - 16; i += 16) acc = Vector512.Max(acc, Vector512.Load(x + i));
            var half = Vector256.Max(acc.GetLower(), acc.GetUpper());
            var quarter = Vector128.Max(half.GetLower(), half.GetUpper());
            quarter = Vector128.Max(quarter, Vector128.Shuffle(quarter, Vector128.Create(2, 3, 0, 1)));
            quarter = Vector128.Max(quarter, Vector128.Shuffle(quarter, Vector128.Create(1, 0, 3, 2)));
            m = quarter.ToScalar();
        }

        for (; i < n; i++) m = x[i] > m ? x[i] : m;
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
