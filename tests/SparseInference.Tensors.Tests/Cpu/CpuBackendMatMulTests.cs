using SparseInference.Tensors.Cpu;

namespace SparseInference.Tensors.Tests.Cpu;

public sealed class CpuBackendMatMulTests
{
    public static TheoryData<int, int, int, bool, bool, int> Shapes => new()
    {
        // m, n, k, transA, transB, threads: odd sizes that are not multiples of the vector width or the tile.
        { 1, 1, 1, false, false, 1 },
        { 7, 5, 3, false, false, 2 },
        { 33, 47, 29, false, false, 2 },
        { 33, 47, 29, true, false, 2 },
        { 33, 47, 29, false, true, 2 },
        { 33, 47, 29, true, true, 2 },
        { 130, 97, 301, false, true, 2 },
        { 257, 129, 517, false, false, 2 },
        { 257, 129, 517, true, true, 1 },
        { 6, 1000, 64, false, true, 2 },
        { 1000, 6, 64, false, false, 2 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatMul_RandomShapes_MatchesDoubleReference(int m, int n, int k, bool transA, bool transB, int threads)
    {
        using var backend = new CpuBackend(threads);
        var a = TestData.Uniform(1, (long)m * k);
        var b = TestData.Uniform(2, (long)k * n);
        using var ta = backend.FromHost(a, transA ? [k, m] : [m, k]);
        using var tb = backend.FromHost(b, transB ? [n, k] : [k, n]);
        using var tc = backend.Allocate(m, n);

        backend.MatMul(ta, tb, tc, new MatMulOptions(transA, transB));

        var expected = Reference.MatMul(a, b, null, m, n, k, transA, transB, 1, 0, null);
        TestData.AssertClose(expected, tc.ToArray<float>(), 1e-4, 1e-4, "C");
    }

    [Theory]
    [InlineData(false, false, 37, 41, 19)]
    [InlineData(true, true, 37, 41, 19)]
    [InlineData(false, true, 100, 545, 600)] // several K chunks and N blocks: beta applies once, bias and GELU at the end
    public void MatMul_AlphaBetaBiasGelu_MatchesDoubleReference(bool transA, bool transB, int m, int n, int k)
    {
        using var backend = new CpuBackend(2);
        var a = TestData.Uniform(3, m * k);
        var b = TestData.Uniform(4, k * n);
        var c0 = TestData.Uniform(5, m * n);
        var bias = TestData.Uniform(6, n);
        using var ta = backend.FromHost(a, transA ? [k, m] : [m, k]);
        using var tb = backend.FromHost(b, transB ? [n, k] : [k, n]);
        using var tc = backend.FromHost(c0, m, n);
        using var tbias = backend.FromHost(bias, n);

        backend.MatMul(ta, tb, tc, new MatMulOptions(transA, transB, Alpha: 0.75f, Beta: -1.5f, Activation: Activation.Gelu), tbias);

        var expected = Reference.MatMul(a, b, c0, m, n, k, transA, transB, 0.75, -1.5, bias, Activation.Gelu);
        TestData.AssertClose(expected, tc.ToArray<float>(), 1e-4, 1e-4, "C");
    }

    [Theory]
    [InlineData(1, 1, 1, true, 1)]
    [InlineData(64, 96, 32, true, 1)] // a small served model's qkv: one region
    [InlineData(33, 47, 29, false, 2)]
    [InlineData(130, 97, 301, true, 2)] // several K chunks, partial last panel
    [InlineData(700, 1100, 300, true, 2)] // several N blocks and row regions on two threads
    public void MatMul_PreparedWeight_MatchesDoubleReference(int m, int n, int k, bool transB, int threads)
    {
        using var backend = new CpuBackend(threads);
        var a = TestData.Uniform(21, (long)m * k);
        var b = TestData.Uniform(22, (long)k * n);
        var c0 = TestData.Uniform(23, (long)m * n);
        var bias = TestData.Uniform(24, n);
        using var ta = backend.FromHost(a, m, k);
        using var tb = backend.FromHost(b, transB ? [n, k] : [k, n]);
        using var tc = backend.FromHost(c0, m, n);
        using var tbias = backend.FromHost(bias, n);
        backend.PrepareWeight(tb, transB);

        backend.MatMul(ta, tb, tc, new MatMulOptions(TransposeB: transB, Beta: 1f, Activation: Activation.Gelu), tbias);

        var expected = Reference.MatMul(a, b, c0, m, n, k, false, transB, 1, 1, bias, Activation.Gelu);
        TestData.AssertClose(expected, tc.ToArray<float>(), 1e-4, 1e-4, "C");
    }

    [Fact]
    public void MatMul_PreparedWeightUsedWithOtherTranspose_MatchesDoubleReference()
    {
        // Prepared as Bᵀ, used as B (a square weight): the layout does not match and B is read as stored.
        const int m = 20, n = 24, k = 24;
        using var backend = new CpuBackend(1);
        var a = TestData.Uniform(25, m * k);
        var b = TestData.Uniform(26, k * n);
        using var ta = backend.FromHost(a, m, k);
        using var tb = backend.FromHost(b, k, n);
        using var tc = backend.Allocate(m, n);
        backend.PrepareWeight(tb, transposed: true);

        backend.MatMul(ta, tb, tc, MatMulOptions.Default);

        TestData.AssertClose(Reference.MatMul(a, b, null, m, n, k, false, false, 1, 0, null), tc.ToArray<float>(), 1e-4, 1e-4, "C");
    }

    [Fact]
    public void MatMul_PreparedWeightOverwrittenByCopy_UsesNewValues()
    {
        const int m = 13, n = 40, k = 17;
        using var backend = new CpuBackend(1);
        var a = TestData.Uniform(27, m * k);
        var b = TestData.Uniform(28, k * n);
        using var ta = backend.FromHost(a, m, k);
        using var tb = backend.FromHost(TestData.Uniform(29, k * n), n, k);
        using var tc = backend.Allocate(m, n);
        backend.PrepareWeight(tb, transposed: true);

        tb.Upload<float>(b);
        backend.MatMul(ta, tb, tc, MatMulOptions.Linear);

        TestData.AssertClose(Reference.MatMul(a, b, null, m, n, k, false, true, 1, 0, null), tc.ToArray<float>(), 1e-4, 1e-4, "C");
    }

    [Fact]
    public void PrepareWeight_Rank3_ThrowsNamingWeight()
    {
        using var backend = new CpuBackend(1);
        using var w = backend.Allocate(2, 3, 4);

        var ex = Assert.Throws<ArgumentException>(() => backend.PrepareWeight(w, transposed: true));
        Assert.Equal("weight", ex.ParamName);
    }

    [Fact]
    public void MatMul_BetaZero_IgnoresNaNInOutput()
    {
        using var backend = new CpuBackend(1);
        using var a = backend.FromHost(TestData.Uniform(7, 4 * 3), 4, 3);
        using var b = backend.FromHost(TestData.Uniform(8, 3 * 5), 3, 5);
        using var c = backend.FromHost(Enumerable.Repeat(float.NaN, 20).ToArray(), 4, 5);

        backend.MatMul(a, b, c, MatMulOptions.Default);

        Assert.All(c.ToArray<float>(), x => Assert.False(float.IsNaN(x)));
    }

    [Fact]
    public void Linear_Rank3InputWithBias_MatchesPyTorchLinear()
    {
        // y = x·Wᵀ + b with W [out, in]; x [B, T, in] folds into one GEMM.
        const int batch = 3, time = 11, inF = 13, outF = 17;
        using var backend = new CpuBackend(2);
        var x = TestData.Uniform(9, batch * time * inF);
        var w = TestData.Uniform(10, outF * inF);
        var bias = TestData.Uniform(11, outF);
        using var tx = backend.FromHost(x, batch, time, inF);
        using var tw = backend.FromHost(w, outF, inF);
        using var tb = backend.FromHost(bias, outF);
        using var ty = backend.Allocate(batch, time, outF);

        backend.Linear(tx, tw, tb, ty);

        var expected = Reference.MatMul(x, w, null, batch * time, outF, inF, false, true, 1, 0, bias);
        TestData.AssertClose(expected, ty.ToArray<float>(), 1e-5, 1e-5, "y");
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void MatMul_Batched_EachBatchMatchesReference(bool transA, bool transB)
    {
        const int batch = 4, m = 9, n = 23, k = 18;
        using var backend = new CpuBackend(2);
        var a = TestData.Uniform(12, batch * m * k);
        var b = TestData.Uniform(13, batch * k * n);
        using var ta = backend.FromHost(a, transA ? [2, 2, k, m] : [2, 2, m, k]);
        using var tb = backend.FromHost(b, transB ? [2, 2, n, k] : [2, 2, k, n]);
        using var tc = backend.Allocate(2, 2, m, n);

        backend.MatMul(ta, tb, tc, new MatMulOptions(transA, transB));

        var actual = tc.ToArray<float>();
        for (var i = 0; i < batch; i++)
        {
            var expected = Reference.MatMul(a, b, null, m, n, k, transA, transB, 1, 0, null, offA: i * m * k, offB: i * k * n);
            TestData.AssertClose(expected, actual.AsSpan(i * m * n, m * n), 1e-5, 1e-5, $"batch {i}");
        }
    }

    [Fact]
    public void MatMul_BroadcastRank2AWithBatchedB_UsesSameAForEachBatch()
    {
        const int batch = 3, m = 5, n = 7, k = 6;
        using var backend = new CpuBackend(2);
        var a = TestData.Uniform(14, m * k);
        var b = TestData.Uniform(15, batch * k * n);
        using var ta = backend.FromHost(a, m, k);
        using var tb = backend.FromHost(b, batch, k, n);
        using var tc = backend.Allocate(batch, m, n);

        backend.MatMul(ta, tb, tc, MatMulOptions.Default);

        var actual = tc.ToArray<float>();
        for (var i = 0; i < batch; i++)
        {
            var expected = Reference.MatMul(a, b, null, m, n, k, false, false, 1, 0, null, offB: i * k * n);
            TestData.AssertClose(expected, actual.AsSpan(i * m * n, m * n), 1e-5, 1e-5, $"batch {i}");
        }
    }

    [Fact]
    public void MatMul_InnerDimensionMismatch_ThrowsNamingB()
    {
        using var backend = new CpuBackend(1);
        using var a = backend.Allocate(4, 3);
        using var b = backend.Allocate(5, 2);
        using var c = backend.Allocate(4, 2);

        var ex = Assert.Throws<ArgumentException>(() => backend.MatMul(a, b, c, MatMulOptions.Default));

        Assert.Equal("b", ex.ParamName);
        Assert.Contains("K = 3", ex.Message);
    }
}
