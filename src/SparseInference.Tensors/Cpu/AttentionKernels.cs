using System.Numerics.Tensors;

namespace SparseInference.Tensors.Cpu;

/// <summary>
/// Flash-style attention kernels. A work item is one (sequence, head, query tile); it walks the listed key
/// blocks with an online softmax (running max m, running sum l, unnormalised accumulator), so no T×T score
/// matrix exists and unlisted blocks cost nothing.
/// </summary>
internal static unsafe class AttentionKernels
{
    /// <summary>Runs block-sparse attention (dense when layout is null) and returns the computed pairs.</summary>
    public static long BlockSparse(CpuParallel parallel, AttentionGeometry g, int[] lengths, BlockLayout? layout, int tile)
    {
        var tiles = BlockLayout.BlocksFor(g.SeqLen, tile);
        var items = g.Batch * g.Heads * tiles;
        int[]? dense = layout is null ? Enumerable.Range(0, tiles).ToArray() : null;
        var d = g.HeadDim;
        var scale = 1f / MathF.Sqrt(d);
        parallel.For(items, item =>
        {
            var qb = item % tiles;
            var h = item / tiles % g.Heads;
            var b = item / tiles / g.Heads;
            ReadOnlySpan<int> keyBlocks = layout is null ? dense : layout.KeyBlocksOf(b, h, qb);
            QueryTile(g, b, h, qb, tile, lengths[b], keyBlocks, scale);
        });

        // Pairs: valid queries of the tile × valid keys of each listed block.
        long pairs = 0;
        for (var b = 0; b < g.Batch; b++)
        {
            var len = lengths[b];
            for (var h = 0; h < g.Heads; h++)
            {
                if (layout is not null && layout.SharedAcrossHeads && h > 0) break;
                for (var qb = 0; qb < tiles; qb++)
                {
                    long nq = ValidIn(qb, tile, len);
                    if (nq == 0) continue;
                    ReadOnlySpan<int> keyBlocks = layout is null ? dense : layout.KeyBlocksOf(b, h, qb);
                    long nk = 0;
                    foreach (var kb in keyBlocks) nk += ValidIn(kb, tile, len);
                    pairs += nq * nk;
                }
            }
        }
        // Shared rows were counted once (head 0); every head computes them.
        if (layout is not null && layout.SharedAcrossHeads) pairs *= g.Heads;
        return pairs;
    }

    private static int ValidIn(int block, int size, int len) => Math.Clamp(len - block * size, 0, size);

    [ThreadStatic] private static float[]? t_scratch;

    private static float[] Scratch(int size)
    {
        var s = t_scratch;
        if (s is null || s.Length < size) t_scratch = s = new float[size];
        return s;
    }

    private static void QueryTile(AttentionGeometry g, int b, int h, int qb, int tile, int len, ReadOnlySpan<int> keyBlocks, float scale)
    {
        var d = g.HeadDim;
        var qStart = qb * tile;
        var qEndPadded = Math.Min(qStart + tile, g.SeqLen);
        var qEnd = Math.Min(qEndPadded, len);
        // Padded queries produce zeros.
        for (var t = Math.Max(qStart, qEnd); t < qEndPadded; t++) new Span<float>(g.O.Token(b, h, t), d).Clear();
        var nq = qEnd - qStart;
        if (nq <= 0) return;

        // Scratch: q tile (scaled), accumulators, running max/sum, transposed key block, score row.
        var scratch = Scratch(nq * d * 2 + nq * 2 + d * tile + tile);
        fixed (float* s = scratch)
        {
            var qs = s;
            var acc = qs + nq * d;
            var mRow = acc + nq * d;
            var lRow = mRow + nq;
            var kt = lRow + nq;
            var sRow = kt + d * tile;
            for (var i = 0; i < nq; i++)
            {
                TensorPrimitives.Multiply(new ReadOnlySpan<float>(g.Q.Token(b, h, qStart + i), d), scale, new Span<float>(qs + i * d, d));
                mRow[i] = float.NegativeInfinity;
                lRow[i] = 0f;
            }
            new Span<float>(acc, nq * d).Clear();

            foreach (var kb in keyBlocks)
            {
                var kStart = kb * tile;
                var nk = Math.Min(kStart + tile, len) - kStart;
                if (nk <= 0) continue;
                // K block transposed to [d, nk] so a score row is d vector FMAs across keys.
                for (var j = 0; j < nk; j++)
                {
                    var kr = g.K.Token(b, h, kStart + j);
                    for (var c = 0; c < d; c++) kt[c * nk + j] = kr[c];
                }
                for (var i = 0; i < nq; i++)
                {
                    var scores = new Span<float>(sRow, nk);
                    scores.Clear();
                    var qi = qs + i * d;
                    for (var c = 0; c < d; c++) TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(kt + c * nk, nk), qi[c], scores, scores);
                    var mx = TensorPrimitives.Max<float>(scores);
                    var mNew = MathF.Max(mRow[i], mx);
                    var correction = MathF.Exp(mRow[i] - mNew);
                    TensorPrimitives.Subtract(scores, mNew, scores);
                    TensorPrimitives.Exp(scores, scores);
                    lRow[i] = lRow[i] * correction + TensorPrimitives.Sum<float>(scores);
                    mRow[i] = mNew;
                    var ai = new Span<float>(acc + i * d, d);
                    if (correction != 1f) TensorPrimitives.Multiply(ai, correction, ai);
                    for (var j = 0; j < nk; j++)
                    {
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(g.V.Token(b, h, kStart + j), d), scores[j], ai, ai);
                    }
                }
            }
            for (var i = 0; i < nq; i++)
            {
                var o = new Span<float>(g.O.Token(b, h, qStart + i), d);
                if (lRow[i] > 0f) TensorPrimitives.Multiply(new ReadOnlySpan<float>(acc + i * d, d), 1f / lRow[i], o);
                else o.Clear(); // no listed valid key: nothing to attend to
            }
        }
    }

    /// <summary>Token-level top-k attention; returns Σ_b H·L_b·k_b.</summary>
    public static long TopK(CpuParallel parallel, AttentionGeometry g, int[] lengths, int[] keep)
    {
        var d = g.HeadDim;
        var scale = 1f / MathF.Sqrt(d);
        parallel.For(g.Batch * g.Heads, item =>
        {
            var h = item % g.Heads;
            var b = item / g.Heads;
            var len = lengths[b];
            var k = keep[b];
            for (var t = len; t < g.SeqLen; t++) new Span<float>(g.O.Token(b, h, t), d).Clear();
            if (len == 0) return;
            var scores = new float[len];
            var order = new int[len];
            var probs = new float[k];
            for (var t = 0; t < len; t++)
            {
                var q = new ReadOnlySpan<float>(g.Q.Token(b, h, t), d);
                // All scores of the row are needed to choose the k best; only those k are softmaxed and accumulated.
                for (var j = 0; j < len; j++) scores[j] = TensorPrimitives.Dot(q, new ReadOnlySpan<float>(g.K.Token(b, h, j), d)) * scale;
                TopKSelect.Select(scores, k, order);
                for (var j = 0; j < k; j++) probs[j] = scores[order[j]];
                TensorPrimitives.SoftMax(probs, probs);
                var o = new Span<float>(g.O.Token(b, h, t), d);
                o.Clear();
                for (var j = 0; j < k; j++) TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(g.V.Token(b, h, order[j]), d), probs[j], o, o);
            }
        });
        long pairs = 0;
        for (var b = 0; b < g.Batch; b++) pairs += (long)lengths[b] * keep[b];
        return pairs * g.Heads;
    }
}
