using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

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
            if (Vector512.IsHardwareAccelerated) QueryTile512(g, b, h, qb, tile, lengths[b], keyBlocks, scale);
            else QueryTile(g, b, h, qb, tile, lengths[b], keyBlocks, scale);
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

    /// <summary>
    /// Vector512 query tile. Scratch holds the scaled q tile and the accumulators with d padded to a multiple of 16,
    /// and per key block Kᵀ [d, nk padded to 16] and V [nk, d padded]: a score row is d broadcast-FMAs per 16 keys,
    /// the online-softmax update runs on those vectors, and P·V is d/16 FMAs per kept key.
    /// </summary>
    private static void QueryTile512(AttentionGeometry g, int b, int h, int qb, int tile, int len, ReadOnlySpan<int> keyBlocks, float scale)
    {
        var d = g.HeadDim;
        var qStart = qb * tile;
        var qEndPadded = Math.Min(qStart + tile, g.SeqLen);
        var qEnd = Math.Min(qEndPadded, len);
        for (var t = Math.Max(qStart, qEnd); t < qEndPadded; t++) new Span<float>(g.O.Token(b, h, t), d).Clear();
        var nq = qEnd - qStart;
        if (nq <= 0) return;

        var dPad = (d + 15) & ~15;
        var kPad = (tile + 15) & ~15;
        var scratch = Scratch(nq * dPad * 2 + nq * 2 + d * kPad + kPad * dPad + kPad + 16);
        fixed (float* s0 = scratch)
        {
            var s = (float*)(((nint)s0 + 63) & ~(nint)63);
            var qs = s;
            var acc = qs + nq * dPad;
            var kt = acc + nq * dPad;
            var vb = kt + d * kPad;
            var pRow = vb + kPad * dPad;
            var mRow = pRow + kPad;
            var lRow = mRow + nq;
            new Span<float>(qs, nq * dPad * 2).Clear();
            for (var i = 0; i < nq; i++)
            {
                TensorPrimitives.Multiply(new ReadOnlySpan<float>(g.Q.Token(b, h, qStart + i), d), scale, new Span<float>(qs + i * dPad, d));
                mRow[i] = float.NegativeInfinity;
                lRow[i] = 0f;
            }
            var negInf = Vector512.Create(float.NegativeInfinity);
            foreach (var kb in keyBlocks)
            {
                var kStart = kb * tile;
                var nk = Math.Min(kStart + tile, len) - kStart;
                if (nk <= 0) continue;
                var nkPad = (nk + 15) & ~15;
                var chunks = nkPad >> 4;
                for (var j = 0; j < nk; j++)
                {
                    var kr = g.K.Token(b, h, kStart + j);
                    for (var c = 0; c < d; c++) kt[c * nkPad + j] = kr[c];
                    var vr = g.V.Token(b, h, kStart + j);
                    var vd = vb + j * dPad;
                    new ReadOnlySpan<float>(vr, d).CopyTo(new Span<float>(vd, d));
                    for (var c = d; c < dPad; c++) vd[c] = 0f;
                }
                for (var j = nk; j < nkPad; j++)
                {
                    for (var c = 0; c < d; c++) kt[c * nkPad + j] = 0f;
                }
                // Lanes past nk in the last chunk are masked to −∞ so they add nothing.
                var tailValid = Vector512.LessThan(Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), Vector512.Create(nk - (chunks - 1) * 16)).AsSingle();
                for (var i = 0; i < nq; i++)
                {
                    var qi = qs + i * dPad;
                    var blockMax = negInf;
                    for (var ch = 0; ch < chunks; ch++)
                    {
                        var sc = Vector512<float>.Zero;
                        var kcol = kt + ch * 16;
                        for (var c = 0; c < d; c++) sc = Vector512.FusedMultiplyAdd(Vector512.Create(qi[c]), Vector512.Load(kcol + c * nkPad), sc);
                        if (ch == chunks - 1) sc = Vector512.ConditionalSelect(tailValid, sc, negInf);
                        sc.Store(pRow + ch * 16);
                        blockMax = Vector512.Max(blockMax, sc);
                    }
                    var mOld = mRow[i];
                    var mNew = MathF.Max(mOld, HorizontalMax(blockMax));
                    var correction = MathF.Exp(mOld - mNew);
                    var mv = Vector512.Create(mNew);
                    var sum = Vector512<float>.Zero;
                    for (var ch = 0; ch < chunks; ch++)
                    {
                        var pv = Vector512.Exp(Vector512.Load(pRow + ch * 16) - mv);
                        pv.Store(pRow + ch * 16);
                        sum += pv;
                    }
                    lRow[i] = lRow[i] * correction + Vector512.Sum(sum);
                    mRow[i] = mNew;
                    var ai = acc + i * dPad;
                    var cv = Vector512.Create(correction);
                    for (var c = 0; c < dPad; c += 16)
                    {
                        var o = Vector512.Load(ai + c) * cv;
                        for (var j = 0; j < nk; j++) o = Vector512.FusedMultiplyAdd(Vector512.Create(pRow[j]), Vector512.Load(vb + j * dPad + c), o);
                        o.Store(ai + c);
                    }
                }
            }
            for (var i = 0; i < nq; i++)
            {
                var o = new Span<float>(g.O.Token(b, h, qStart + i), d);
                if (lRow[i] > 0f) TensorPrimitives.Multiply(new ReadOnlySpan<float>(acc + i * dPad, d), 1f / lRow[i], o);
                else o.Clear();
            }
        }
    }

    private static float HorizontalMax(Vector512<float> v)
    {
        var m = Vector256.Max(v.GetLower(), v.GetUpper());
        var m4 = Vector128.Max(m.GetLower(), m.GetUpper());
        m4 = Vector128.Max(m4, Vector128.Shuffle(m4, Vector128.Create(2, 3, 0, 1)));
        m4 = Vector128.Max(m4, Vector128.Shuffle(m4, Vector128.Create(1, 0, 3, 2)));
        return m4.ToScalar();
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

    /// <summary>
    /// Token-level top-k attention; returns Σ_b H·L_b·k_b. A work item is one (sequence, head): Kᵀ of the sequence is
    /// laid out once, each query's score row is computed in full (choosing the k best needs every score), the k-th
    /// largest score is found by selection, and only the kept keys are softmaxed and accumulated.
    /// </summary>
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
            var lPad = (len + 15) & ~15;
            var kt = new float[d * lPad];
            for (var j = 0; j < len; j++)
            {
                var kr = g.K.Token(b, h, j);
                for (var c = 0; c < d; c++) kt[c * lPad + j] = kr[c];
            }
            var scores = new float[lPad];
            var work = new float[len];
            var kept = new int[k];
            var probs = new float[k];
            fixed (float* pkt = kt, ps = scores)
            {
                for (var t = 0; t < len; t++)
                {
                    var q = g.Q.Token(b, h, t);
                    ScoreRow(q, pkt, d, len, lPad, scale, ps);
                    SelectTopK(scores.AsSpan(0, len), k, work, kept);
                    for (var j = 0; j < k; j++) probs[j] = scores[kept[j]];
                    TensorPrimitives.SoftMax(probs, probs);
                    var o = new Span<float>(g.O.Token(b, h, t), d);
                    o.Clear();
                    for (var j = 0; j < k; j++) TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(g.V.Token(b, h, kept[j]), d), probs[j], o, o);
                }
            }
        });
        long pairs = 0;
        for (var b = 0; b < g.Batch; b++) pairs += (long)lengths[b] * keep[b];
        return pairs * g.Heads;
    }

    /// <summary>scores[j] = (q·k_j)·scale for j &lt; len, from Kᵀ laid out [d, lPad].</summary>
    private static void ScoreRow(float* q, float* kt, int d, int len, int lPad, float scale, float* scores)
    {
        var j = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var sv = Vector512.Create(scale);
            for (; j + 16 <= lPad; j += 16)
            {
                var acc = Vector512<float>.Zero;
                for (var c = 0; c < d; c++) acc = Vector512.FusedMultiplyAdd(Vector512.Create(q[c]), Vector512.Load(kt + c * lPad + j), acc);
                (acc * sv).Store(scores + j);
            }
        }
        for (; j < len; j++)
        {
            var acc = 0f;
            for (var c = 0; c < d; c++) acc = MathF.FusedMultiplyAdd(q[c], kt[c * lPad + j], acc);
            scores[j] = acc * scale;
        }
    }

    /// <summary>
    /// Indices (ascending) of the k largest scores, ties broken toward the lower index: every score above the
    /// k-th largest value, then the lowest-indexed scores equal to it until k are taken. NaN ranks lowest.
    /// </summary>
    internal static void SelectTopK(ReadOnlySpan<float> scores, int k, Span<float> work, Span<int> kept)
    {
        var n = scores.Length;
        for (var i = 0; i < n; i++) work[i] = float.IsNaN(scores[i]) ? float.NegativeInfinity : scores[i];
        var threshold = KthLargest(work[..n], k);
        var above = 0;
        for (var i = 0; i < n; i++)
        {
            if (Key(scores[i]) > threshold) above++;
        }
        var equalsToTake = k - above;
        var count = 0;
        for (var i = 0; i < n && count < k; i++)
        {
            var s = Key(scores[i]);
            if (s > threshold) kept[count++] = i;
            else if (s == threshold && equalsToTake > 0)
            {
                kept[count++] = i;
                equalsToTake--;
            }
        }
    }

    private static float Key(float s) => float.IsNaN(s) ? float.NegativeInfinity : s;

    /// <summary>The k-th largest value (1-based) of v, reordering v (Hoare quickselect, median of three).</summary>
    internal static float KthLargest(Span<float> v, int k)
    {
        int lo = 0, hi = v.Length - 1, target = k - 1;
        while (lo < hi)
        {
            var mid = lo + ((hi - lo) >> 1);
            float a = v[lo], b = v[mid], c = v[hi];
            var pivot = Math.Max(Math.Min(a, b), Math.Min(Math.Max(a, b), c));
            int i = lo, j = hi;
            while (i <= j)
            {
                while (v[i] > pivot) i++;
                while (v[j] < pivot) j--;
                if (i <= j)
                {
                    (v[i], v[j]) = (v[j], v[i]);
                    i++;
                    j--;
                }
            }
            if (target <= j) hi = j;
            else if (target >= i) lo = i;
            else return v[target];
        }
        return v[target];
    }
}
