using SparseInference.Tensors.Cpu;

namespace SparseInference.Tensors.Tests.Cpu;

public sealed class CpuBackendAttentionTests
{
    private const double Tolerance = 2e-5;

    [Theory]
    [InlineData(1, 1, 1, 4, 1)]
    [InlineData(3, 2, 37, 16, 2)]
    [InlineData(2, 3, 130, 12, 2)]
    [InlineData(1, 2, 70, 64, 1)]
    [InlineData(3, 4, 64, 8, 2)] // the served model's heads: one 8-wide P·V step
    [InlineData(2, 2, 300, 32, 2)] // several key chunks per row
    [InlineData(1, 1, 40, 48, 1)] // a 32-wide and a 16-wide P·V step
    public void Attention_Dense_MatchesNaiveSoftmaxAttention(int batch, int heads, int seqLen, int d, int threads)
    {
        using var backend = new CpuBackend(threads);
        var (q, k, v) = Qkv(batch, heads, seqLen, d, seed: 1);
        var lengths = Enumerable.Range(0, batch).Select(b => Math.Max(1, seqLen - b * seqLen / 3)).ToArray();
        using var tq = backend.FromHost(q, batch, heads, seqLen, d);
        using var tk = backend.FromHost(k, batch, heads, seqLen, d);
        using var tv = backend.FromHost(v, batch, heads, seqLen, d);
        using var to = backend.Allocate(batch, heads, seqLen, d);

        var result = backend.Attention(tq, tk, tv, to, heads, lengths);

        var (expected, pairs) = Reference.Attention(q, k, v, batch, heads, seqLen, d, lengths, (_, _, _, _) => true);
        TestData.AssertClose(expected, to.ToArray<float>(), Tolerance, 1e-4, "out");
        Assert.Equal(pairs, result.ComputedPairs);
        Assert.Equal(heads * lengths.Sum(l => (long)l * l), result.DensePairs);
        Assert.Equal(1.0, result.Density);
    }

    [Theory]
    [InlineData(false, 16, 75, 1, 16)]
    [InlineData(true, 16, 75, 2, 16)]
    [InlineData(false, 7, 50, 2, 16)]
    [InlineData(true, 32, 129, 2, 16)]
    [InlineData(false, 8, 64, 2, 8)]
    [InlineData(true, 64, 300, 2, 32)]
    public void Attention_RandomBlockLayout_MatchesNaiveMaskedAttentionAndCountsPairs(bool shared, int blockSize, int seqLen, int threads, int d)
    {
        const int batch = 3, heads = 2;
        using var backend = new CpuBackend(threads);
        var (q, k, v) = Qkv(batch, heads, seqLen, d, seed: 2);
        int[] lengths = [seqLen, seqLen - 9, 5];
        var layout = RandomLayout(batch, heads, seqLen, blockSize, shared, seed: 3);
        using var tq = backend.FromHost(q, batch, heads, seqLen, d);
        using var tk = backend.FromHost(k, batch, heads, seqLen, d);
        using var tv = backend.FromHost(v, batch, heads, seqLen, d);
        using var to = backend.Allocate(batch, heads, seqLen, d);

        var result = backend.Attention(tq, tk, tv, to, heads, lengths, layout);

        var (expected, pairs) = Reference.Attention(q, k, v, batch, heads, seqLen, d, lengths,
            (b, h, t, j) => layout.KeyBlocksOf(b, h, t / blockSize).Contains(j / blockSize));
        TestData.AssertClose(expected, to.ToArray<float>(), Tolerance, 1e-4, "out");
        Assert.Equal(pairs, result.ComputedPairs);
        Assert.True(result.ComputedPairs < result.DensePairs, "the random layout should skip some pairs");
    }

    [Fact]
    public void Attention_DenseLayoutAndNullLayout_GiveSameResultAndPairs()
    {
        const int batch = 2, heads = 2, seqLen = 45, d = 8;
        using var backend = new CpuBackend(2);
        var (q, k, v) = Qkv(batch, heads, seqLen, d, seed: 4);
        int[] lengths = [45, 31];
        using var tq = backend.FromHost(q, batch, heads, seqLen, d);
        using var tk = backend.FromHost(k, batch, heads, seqLen, d);
        using var tv = backend.FromHost(v, batch, heads, seqLen, d);
        using var o1 = backend.Allocate(batch, heads, seqLen, d);
        using var o2 = backend.Allocate(batch, heads, seqLen, d);

        var r1 = backend.Attention(tq, tk, tv, o1, heads, lengths);
        var r2 = backend.Attention(tq, tk, tv, o2, heads, lengths, BlockLayout.Dense(batch, heads, seqLen, 16));

        TestData.AssertClose(o1.ToArray<float>().Select(x => (double)x).ToArray(), o2.ToArray<float>(), 1e-6, 1e-5, "out");
        Assert.Equal(r1, r2);
    }

    [Fact]
    public void Attention_Padding_PaddedQueriesAreZeroAndPaddedKeysIgnored()
    {
        const int batch = 2, heads = 2, seqLen = 40, d = 16;
        using var backend = new CpuBackend(2);
        var (q, k, v) = Qkv(batch, heads, seqLen, d, seed: 5);
        int[] lengths = [40, 23];
        var layout = BlockLayout.Dense(batch, heads, seqLen, 16);
        using var tq = backend.FromHost(q, batch, heads, seqLen, d);
        using var tk = backend.FromHost(k, batch, heads, seqLen, d);
        using var tv = backend.FromHost(v, batch, heads, seqLen, d);
        using var o1 = backend.FromHost(Enumerable.Repeat(float.NaN, q.Length).ToArray(), batch, heads, seqLen, d);
        backend.Attention(tq, tk, tv, o1, heads, lengths, layout);

        // Garbage in the padding of sequence 1 must not change anything.
        for (var h = 0; h < heads; h++)
        {
            for (var t = 23; t < seqLen; t++)
            {
                for (var c = 0; c < d; c++)
                {
                    var i = ((1 * heads + h) * seqLen + t) * d + c;
                    k[i] = 1e6f;
                    v[i] = -1e6f;
                    q[i] = 1e6f;
                }
            }
        }
        using var tk2 = backend.FromHost(k, batch, heads, seqLen, d);
        using var tv2 = backend.FromHost(v, batch, heads, seqLen, d);
        using var tq2 = backend.FromHost(q, batch, heads, seqLen, d);
        using var o2 = backend.Allocate(batch, heads, seqLen, d);
        backend.Attention(tq2, tk2, tv2, o2, heads, lengths, layout);

        var a1 = o1.ToArray<float>();
        var a2 = o2.ToArray<float>();
        Assert.Equal(a1, a2);
        for (var h = 0; h < heads; h++)
        {
            for (var t = 23; t < seqLen; t++)
            {
                Assert.All(a1.AsSpan(((1 * heads + h) * seqLen + t) * d, d).ToArray(), x => Assert.Equal(0f, x));
            }
        }
    }

    [Fact]
    public void Attention_TokenMajorAndPacked_MatchHeadsMajor()
    {
        const int batch = 2, heads = 3, seqLen = 21, d = 8, width = heads * d;
        using var backend = new CpuBackend(2);
        var (q, k, v) = Qkv(batch, heads, seqLen, d, seed: 6);
        int[] lengths = [21, 13];
        var layout = RandomLayout(batch, heads, seqLen, 4, shared: false, seed: 7);
        using var tq = backend.FromHost(q, batch, heads, seqLen, d);
        using var tk = backend.FromHost(k, batch, heads, seqLen, d);
        using var tv = backend.FromHost(v, batch, heads, seqLen, d);
        using var oHeads = backend.Allocate(batch, heads, seqLen, d);
        var expected = backend.Attention(tq, tk, tv, oHeads, heads, lengths, layout);

        // Token-major [B, T, H·d] and packed [B, T, 3·H·d] copies of the same q, k, v.
        var qt = new float[q.Length];
        var kt = new float[q.Length];
        var vt = new float[q.Length];
        var packed = new float[3 * q.Length];
        for (var b = 0; b < batch; b++)
        for (var h = 0; h < heads; h++)
        for (var t = 0; t < seqLen; t++)
        for (var c = 0; c < d; c++)
        {
            var src = ((b * heads + h) * seqLen + t) * d + c;
            var dst = (b * seqLen + t) * width + h * d + c;
            qt[dst] = q[src];
            kt[dst] = k[src];
            vt[dst] = v[src];
            var pdst = (b * seqLen + t) * 3 * width + h * d + c;
            packed[pdst] = q[src];
            packed[pdst + width] = k[src];
            packed[pdst + 2 * width] = v[src];
        }
        using var tqt = backend.FromHost(qt, batch, seqLen, width);
        using var tkt = backend.FromHost(kt, batch, seqLen, width);
        using var tvt = backend.FromHost(vt, batch, seqLen, width);
        using var tpacked = backend.FromHost(packed, batch, seqLen, 3 * width);
        using var oTokens = backend.Allocate(batch, seqLen, width);
        using var oPacked = backend.Allocate(batch, seqLen, width);

        var r1 = backend.Attention(tqt, tkt, tvt, oTokens, heads, lengths, layout);
        var r2 = backend.AttentionPacked(tpacked, oPacked, heads, lengths, layout);

        var heads4 = oHeads.ToArray<float>();
        var tokens = oTokens.ToArray<float>();
        var packedOut = oPacked.ToArray<float>();
        for (var b = 0; b < batch; b++)
        for (var h = 0; h < heads; h++)
        for (var t = 0; t < seqLen; t++)
        for (var c = 0; c < d; c++)
        {
            var x = heads4[((b * heads + h) * seqLen + t) * d + c];
            Assert.Equal(x, tokens[(b * seqLen + t) * width + h * d + c]);
            Assert.Equal(x, packedOut[(b * seqLen + t) * width + h * d + c]);
        }
        Assert.Equal(expected, r1);
        Assert.Equal(expected, r2);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void TopKAttention_QuantisedScoresWithTies_MatchesReferenceAndCountsPairs(int threads)
    {
        const int batch = 2, heads = 2, seqLen = 29, d = 4;
        using var backend = new CpuBackend(threads);
        var (q, k, v) = Qkv(batch, heads, seqLen, d, seed: 8);
        // Keys from a few discrete values make equal scores common.
        var rng = new Random(9);
        for (var i = 0; i < k.Length; i++) k[i] = rng.Next(-1, 2);
        for (var i = 0; i < q.Length; i++) q[i] = rng.Next(-1, 2);
        int[] lengths = [29, 17];
        int[] keep = [7, 3];
        using var tq = backend.FromHost(q, batch, heads, seqLen, d);
        using var tk = backend.FromHost(k, batch, heads, seqLen, d);
        using var tv = backend.FromHost(v, batch, heads, seqLen, d);
        using var to = backend.FromHost(Enumerable.Repeat(float.NaN, q.Length).ToArray(), batch, heads, seqLen, d);

        var result = backend.TopKAttention(AttentionInputs.Separate(tq, tk, tv, heads), to, lengths, keep);

        var expected = Reference.TopKAttention(q, k, v, batch, heads, seqLen, d, lengths, keep);
        TestData.AssertClose(expected, to.ToArray<float>(), Tolerance, 1e-4, "out");
        Assert.Equal(heads * (29L * 7 + 17L * 3), result.ComputedPairs);
    }

    [Fact]
    public void Attention_LayoutForOtherHeadCount_ThrowsNamingLayout()
    {
        using var backend = new CpuBackend(1);
        using var t = backend.Allocate(1, 2, 8, 4);
        using var o = backend.Allocate(1, 2, 8, 4);
        var layout = BlockLayout.Dense(1, 3, 8, 4);

        var ex = Assert.Throws<ArgumentException>(() => backend.Attention(t, t, t, o, 2, [], layout));

        Assert.Equal("layout", ex.ParamName);
    }

    internal static (float[] Q, float[] K, float[] V) Qkv(int batch, int heads, int seqLen, int d, int seed)
    {
        var n = batch * heads * seqLen * d;
        // Scores of a few units: the softmax is neither flat nor one-hot.
        return (TestData.Uniform(seed, n, -2f, 2f), TestData.Uniform(seed + 100, n, -2f, 2f), TestData.Uniform(seed + 200, n));
    }

    /// <summary>Each query block keeps itself plus a random subset of the other key blocks.</summary>
    internal static BlockLayout RandomLayout(int batch, int heads, int seqLen, int blockSize, bool shared, int seed)
    {
        var rng = new Random(seed);
        var n = BlockLayout.BlocksFor(seqLen, blockSize);
        var builder = new BlockLayout.Builder(blockSize, batch, heads, n, shared);
        for (var b = 0; b < batch; b++)
        for (var h = 0; h < (shared ? 1 : heads); h++)
        for (var qb = 0; qb < n; qb++)
        {
            var blocks = Enumerable.Range(0, n).Where(kb => kb == qb || rng.NextDouble() < 0.4).OrderBy(_ => rng.Next()).ToArray();
            builder.AddRow(blocks);
        }
        return builder.Build();
    }
}
