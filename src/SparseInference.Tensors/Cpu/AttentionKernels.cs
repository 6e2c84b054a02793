using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SparseInference.Tensors.Cpu;

/// <summary>
/// Flash-style attention kernels. A work item is one (sequence, head); each query tile walks the listed key
/// blocks with an online softmax (running max m, running sum l, unnormalised accumulator), so no T×T score
/// matrix exists and unlisted blocks cost nothing.
/// </summary>
internal static unsafe class AttentionKernels
{
    /// <summary>Runs block-sparse attention (dense when layout is null) and returns the computed pairs.</summary>
    public static long BlockSparse(CpuParallel parallel, AttentionGeometry g, int[] lengths, BlockLayout? layout, int tile)
    {
        var tiles = BlockLayout.BlocksFor(g.SeqLen, tile);
        int[]? dense = layout is null ? Enumerable.Range(0, tiles).ToArray() : null;
        // A work item is one (sequence, head): its q, Kᵀ and V are laid out once and every query block reuses them.
        // Small inputs (a few short windows) run on the calling thread: a hand-off would cost more than it saves.
        long work = 0;
        foreach (var l in lengths) work += (long)l * l;
        work *= 2L * g.Heads * g.HeadDim;
        parallel.For(g.Batch * g.Heads, work < SerialBelow ? 1 : g.Batch * g.Heads, item =>
        {
            var h = item % g.Heads;
            var b = item / g.Heads;
            var len = lengths[b];
            for (var t = len; t < g.SeqLen; t++) new Span<float>(g.O.Token(b, h, t), g.HeadDim).Clear();
            if (len == 0) return;
            var kernel = new HeadAttentionKernel(g, b, h, len);
            if (layout is null)
            {
                kernel.Dense(g.O, b, h);
                return;
            }

            for (var qb = 0; qb < tiles; qb++) kernel.QueryBlock(qb, tile, layout.KeyBlocksOf(b, h, qb), g.O, b, h);
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

    /// <summary>Below this many multiply-adds (all items together) attention runs on one thread.</summary>
    private const long SerialBelow = 300_000;

    private static int ValidIn(int block, int size, int len) => Math.Clamp(len - block * size, 0, size);

    /// <summary>
    /// Scores of one query against 16 keys: Σ_c q[c]·kt[c·stride + 0..16), in four independent FMA chains
    /// (the sum of exact products is the same up to rounding; for integer-valued inputs it is exact).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Dot16(float* q, float* kt, int stride, int d)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var c = 0;
        for (; c + 4 <= d; c += 4)
        {
            var k0 = kt + c * stride;
            a0 = Vector512.FusedMultiplyAdd(Vector512.Create(q[c]), Vector512.Load(k0), a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Create(q[c + 1]), Vector512.Load(k0 + stride), a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Create(q[c + 2]), Vector512.Load(k0 + 2 * stride), a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.Create(q[c + 3]), Vector512.Load(k0 + 3 * stride), a3);
        }
        for (; c < d; c++) a0 = Vector512.FusedMultiplyAdd(Vector512.Create(q[c]), Vector512.Load(kt + c * stride), a0);
        return (a0 + a1) + (a2 + a3);
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
            var keys = new uint[lPad];
            var kept = new int[k];
            var probs = new float[k];
            fixed (float* pkt = kt, ps = scores)
            fixed (uint* pk = keys)
            {
                for (var t = 0; t < len; t++)
                {
                    var q = g.Q.Token(b, h, t);
                    ScoreRow(q, pkt, d, len, lPad, scale, ps);
                    SelectTopK(ps, pk, len, lPad, k, kept);
                    for (var j = 0; j < k; j++) probs[j] = scores[kept[j]];
                    TensorPrimitives.SoftMax(probs, probs);
                    var o = g.O.Token(b, h, t);
                    new Span<float>(o, d).Clear();
                    for (var j = 0; j < k; j++) AddScaled(g.V.Token(b, h, kept[j]), probs[j], o, d);
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
            for (; j + 16 <= lPad; j += 16) (Dot16(q, kt + j, lPad, d) * sv).Store(scores + j);
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
    internal static void SelectTopK(ReadOnlySpan<float> scores, int k, Span<int> kept)
    {
        var n = scores.Length;
        var lPad = (n + 15) & ~15;
        var padded = new float[lPad];
        scores.CopyTo(padded);
        var keys = new uint[lPad];
        fixed (float* ps = padded)
        fixed (uint* pk = keys)
        {
            SelectTopK(ps, pk, n, lPad, k, kept);
        }
    }

    /// <summary>o[0..d) += p·v[0..d).</summary>
    private static void AddScaled(float* v, float p, float* o, int d)
    {
        var c = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var pv = Vector512.Create(p);
            for (; c + 16 <= d; c += 16) Vector512.FusedMultiplyAdd(Vector512.Load(v + c), pv, Vector512.Load(o + c)).Store(o + c);
        }
        for (; c < d; c++) o[c] = MathF.FusedMultiplyAdd(v[c], p, o[c]);
    }

    /// <summary>Order-preserving map of a float to an unsigned key (NaN maps to the key of −∞, −0 to that of +0).</summary>
    private static uint SortKey(float s)
    {
        var bits = BitConverter.SingleToUInt32Bits(float.IsNaN(s) ? float.NegativeInfinity : s == 0f ? 0f : s);
        return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
    }

    /// <summary>
    /// The same selection as the span overload, for a score row of <paramref name="len"/> (buffers padded to lPad):
    /// the k-th largest key is found by bisection over the 32-bit key space, each step a vector count of keys ≥ t.
    /// </summary>
    internal static void SelectTopK(float* scores, uint* keys, int len, int lPad, int k, Span<int> kept)
    {
        var i0 = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var negInf = Vector512.Create(float.NegativeInfinity);
            for (; i0 + 16 <= len; i0 += 16)
            {
                var v = Vector512.Load(scores + i0);
                // NaN → −∞, −0 → +0 (adding +0 does that), then flip: negatives bitwise, positives by the sign bit.
                v = Vector512.ConditionalSelect(Vector512.Equals(v, v), v + Vector512<float>.Zero, negInf);
                var bits = v.AsUInt32();
                var negative = Vector512.ShiftRightArithmetic(bits.AsInt32(), 31).AsUInt32();
                (bits ^ (negative | Vector512.Create(0x80000000u))).Store(keys + i0);
            }
        }
        for (var i = i0; i < len; i++) keys[i] = SortKey(scores[i]);
        // Padding keys are 0, below every real key (the smallest, −∞, maps to 0x007FFFFF), and the search starts at 1.
        for (var i = len; i < lPad; i++) keys[i] = 0;
        uint lo = 1, hi = uint.MaxValue;
        while (lo < hi)
        {
            var mid = lo + (uint)(((ulong)hi - lo + 1) / 2);
            if (CountAtLeast(keys, lPad, mid) >= k) lo = mid;
            else hi = mid - 1;
        }
        var threshold = lo;
        var above = threshold == uint.MaxValue ? 0 : CountAtLeast(keys, lPad, threshold + 1);
        var equalsToTake = k - above;
        var count = 0;
        var start = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            // Walk the set bits of (key ≥ threshold) per 16 keys in index order; padding keys (0) never match.
            var tv = Vector512.Create(threshold);
            for (; start < lPad && count < k; start += 16)
            {
                var chunk = Vector512.Load(keys + start);
                var candidates = Vector512.GreaterThanOrEqual(chunk, tv).ExtractMostSignificantBits();
                while (candidates != 0 && count < k)
                {
                    var bit = System.Numerics.BitOperations.TrailingZeroCount(candidates);
                    candidates &= candidates - 1;
                    var i = start + bit;
                    if (keys[i] > threshold) kept[count++] = i;
                    else if (equalsToTake > 0)
                    {
                        kept[count++] = i;
                        equalsToTake--;
                    }
                }
            }
            return;
        }
        for (var i = start; i < len && count < k; i++)
        {
            var key = keys[i];
            if (key > threshold) kept[count++] = i;
            else if (key == threshold && equalsToTake > 0)
            {
                kept[count++] = i;
                equalsToTake--;
            }
        }
    }

    private static int CountAtLeast(uint* keys, int lPad, uint t)
    {
        var i = 0;
        var count = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var tv = Vector512.Create(t);
            for (; i + 16 <= lPad; i += 16)
            {
                count += System.Numerics.BitOperations.PopCount(Vector512.GreaterThanOrEqual(Vector512.Load(keys + i), tv).ExtractMostSignificantBits());
            }
        }
        for (; i < lPad; i++) count += keys[i] >= t ? 1 : 0;
        return count;
    }

}
