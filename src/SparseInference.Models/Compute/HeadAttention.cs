using SparseInference.Models.Attention;

namespace SparseInference.Models.Compute;

/// <summary>
/// Attention for one head of one sequence, flash-style: query tiles stream over their selected key ranges in
/// chunks with an online softmax, so no L×L matrix is formed and unselected key blocks are never touched.
/// Owns its scratch: one instance per task, never shared.
/// </summary>
internal sealed unsafe class HeadAttention : IDisposable
{
    private const int KeyChunk = 128;
    private const float Log2E = 1.44269504088896341f;
    private const float Ln2 = 0.693147180559945309f;
    private const int ScoreStride = KeyChunk + Gemm.NR;
    public const int DenseQueryTile = 48;

    private readonly int _length;
    private readonly int _dHead;
    private readonly int _keyStride;
    private readonly NativeBuffer _q;
    private readonly NativeBuffer _kt;
    private readonly NativeBuffer _v;
    private readonly NativeBuffer _scores;
    private readonly NativeBuffer _acc;
    private readonly NativeBuffer _rowMax;
    private readonly NativeBuffer _rowSum;
    private readonly int _maxTile;

    /// <param name="qkv">Row-major [length, 3·dModel] projections of this sequence (q, then k, then v).</param>
    public HeadAttention(float* qkv, int length, int dModel, int head, int dHead, int maxTile)
    {
        _length = length;
        _dHead = dHead;
        _maxTile = maxTile;
        _keyStride = RoundUp(length, Gemm.NR) + Gemm.NR;
        _q = new NativeBuffer((long)length * dHead + Gemm.NR);
        _kt = new NativeBuffer((long)dHead * _keyStride, zero: true);
        _v = new NativeBuffer((long)length * dHead + Gemm.NR, zero: true);
        _scores = new NativeBuffer((long)maxTile * ScoreStride);
        _acc = new NativeBuffer((long)maxTile * dHead);
        _rowMax = new NativeBuffer(maxTile);
        _rowSum = new NativeBuffer(maxTile);

        // Queries carry log2(e)/√d_head: scores come out of the GEMM in the log2 domain and the softmax uses 2^x,
        // cheaper than e^x (softmax(s) = 2^(s·log2 e) normalised).
        float scale = Log2E / MathF.Sqrt(dHead);
        int stride = 3 * dModel;
        float* q = _q.Pointer, kt = _kt.Pointer, v = _v.Pointer;
        for (int t = 0; t < length; t++)
        {
            float* row = qkv + (long)t * stride + head * dHead;
            for (int j = 0; j < dHead; j++)
            {
                q[(long)t * dHead + j] = row[j] * scale;
                kt[(long)j * _keyStride + t] = row[dModel + j];
                v[(long)t * dHead + j] = row[2 * dModel + j];
            }
        }
    }

    public int Length => _length;

    /// <summary>Pooled block scores <c>S(qb, kb) = q̄_qb · k̄_kb / √d_head</c> (valid positions only), row-major [n, n].</summary>
    public float[] PooledScores(BlockGeometry geometry)
    {
        int n = geometry.Blocks, dh = _dHead;
        var qMean = new float[n * dh];
        var kMean = new float[n * dh];
        for (int b = 0; b < n; b++)
        {
            int start = geometry.Start(b), size = geometry.Size(b);
            for (int j = 0; j < dh; j++)
            {
                float qs = 0f, ks = 0f;
                float* ktRow = _kt.Pointer + (long)j * _keyStride;
                for (int t = start; t < start + size; t++)
                {
                    qs += _q.Pointer[(long)t * dh + j];
                    ks += ktRow[t];
                }

                qMean[b * dh + j] = qs / size;
                kMean[b * dh + j] = ks / size;
            }
        }

        var scores = new float[n * n];
        fixed (float* qm = qMean, km = kMean)
        {
            for (int qb = 0; qb < n; qb++)
            {
                for (int kb = 0; kb < n; kb++)
                {
                    scores[qb * n + kb] = RowOps.Dot(qm + qb * dh, km + kb * dh, dh) * Ln2;
                }
            }
        }

        return scores;
    }

    /// <summary>Every query attends every key; writes [length, dHead] to <paramref name="output"/> with row stride <paramref name="ldo"/>.</summary>
    public void Dense(float* output, int ldo)
    {
        Span<(int, int)> all = [(0, _length)];
        for (int q0 = 0; q0 < _length; q0 += _maxTile)
        {
            Tile(q0, Math.Min(_maxTile, _length - q0), all, output, ldo);
        }
    }

    /// <summary>Query block qb attends the key blocks of <paramref name="selection"/>; returns nothing else touched.</summary>
    public void Blocks(KeyBlockSelection selection, float* output, int ldo)
    {
        var geometry = selection.Geometry;
        Span<(int, int)> ranges = new (int, int)[geometry.Blocks];
        for (int qb = 0; qb < geometry.Blocks; qb++)
        {
            int count = 0;
            foreach (int kb in selection.KeyBlocks(qb))
            {
                int start = geometry.Start(kb), end = start + geometry.Size(kb);
                // Adjacent blocks merge into one range: longer GEMM chunks, same keys.
                if (count > 0 && ranges[count - 1].Item2 == start)
                {
                    ranges[count - 1].Item2 = end;
                }
                else
                {
                    ranges[count++] = (start, end);
                }
            }

            int q0 = geometry.Start(qb), rows = geometry.Size(qb);
            for (int t = 0; t < rows; t += _maxTile)
            {
                Tile(q0 + t, Math.Min(_maxTile, rows - t), ranges[..count], output, ldo);
            }
        }
    }

    private void Tile(int q0, int rows, ReadOnlySpan<(int Start, int End)> ranges, float* output, int ldo)
    {
        int dh = _dHead;
        float* s = _scores.Pointer, o = _acc.Pointer, rowMax = _rowMax.Pointer, rowSum = _rowSum.Pointer;
        new Span<float>(o, rows * dh).Clear();
        for (int i = 0; i < rows; i++)
        {
            rowMax[i] = float.NegativeInfinity;
            rowSum[i] = 0f;
        }

        float* qTile = _q.Pointer + (long)q0 * dh;
        foreach (var (start, end) in ranges)
        {
            for (int k0 = start; k0 < end; k0 += KeyChunk)
            {
                int width = Math.Min(KeyChunk, end - k0);
                Gemm.Multiply(rows, RoundUp(width, Gemm.NR), dh, qTile, dh, _kt.Pointer + k0, _keyStride, s, ScoreStride, GemmEpilogue.Store);
                for (int i = 0; i < rows; i++)
                {
                    float* si = s + (long)i * ScoreStride;
                    float previous = rowMax[i];
                    float next = MathF.Max(previous, RowOps.Max(si, width));
                    float rescale = float.Exp2(previous - next);
                    rowSum[i] = rowSum[i] * rescale + RowOps.Exp2ShiftSum(si, width, next);
                    if (rescale != 1f)
                    {
                        RowOps.Scale(o + (long)i * dh, dh, rescale);
                    }

                    rowMax[i] = next;
                }

                Gemm.Multiply(rows, dh, width, s, ScoreStride, _v.Pointer + (long)k0 * dh, dh, o, dh, GemmEpilogue.Accumulate);
            }
        }

        for (int i = 0; i < rows; i++)
        {
            float inv = 1f / rowSum[i];
            float* src = o + (long)i * dh;
            float* dst = output + (long)(q0 + i) * ldo;
            for (int j = 0; j < dh; j++)
            {
                dst[j] = src[j] * inv;
            }
        }
    }

    /// <summary>Token top-k: each query keeps its <paramref name="k"/> best keys (ties: lower index).</summary>
    public void TopK(int k, float* output, int ldo)
    {
        int dh = _dHead, length = _length;
        int rowStride = RoundUp(length, Gemm.NR);
        const int tile = 16;
        using var scores = new NativeBuffer((long)tile * rowStride);
        var scratch = new float[length];
        var indices = new int[k];
        for (int q0 = 0; q0 < length; q0 += tile)
        {
            int rows = Math.Min(tile, length - q0);
            Gemm.Multiply(rows, rowStride, dh, _q.Pointer + (long)q0 * dh, dh, _kt.Pointer, _keyStride, scores.Pointer, rowStride, GemmEpilogue.Store);
            for (int i = 0; i < rows; i++)
            {
                var row = new ReadOnlySpan<float>(scores.Pointer + (long)i * rowStride, length);
                TopSelection.IndicesOfLargest(row, k, scratch, indices);
                float max = float.NegativeInfinity;
                foreach (int j in indices)
                {
                    max = MathF.Max(max, row[j]);
                }

                float* dst = output + (long)(q0 + i) * ldo;
                new Span<float>(dst, dh).Clear();
                float sum = 0f;
                foreach (int j in indices)
                {
                    float p = float.Exp2(row[j] - max);
                    sum += p;
                    RowOps.AddScaled(dst, _v.Pointer + (long)j * dh, dh, p);
                }

                RowOps.Scale(dst, dh, 1f / sum);
            }
        }
    }

    private static int RoundUp(int x, int multiple) => (x + multiple - 1) / multiple * multiple;

    public void Dispose()
    {
        _q.Dispose();
        _kt.Dispose();
        _v.Dispose();
        _scores.Dispose();
        _acc.Dispose();
        _rowMax.Dispose();
        _rowSum.Dispose();
    }
}
