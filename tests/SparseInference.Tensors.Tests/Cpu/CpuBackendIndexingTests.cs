using SparseInference.Tensors.Cpu;

namespace SparseInference.Tensors.Tests.Cpu;

public sealed class CpuBackendIndexingTests
{
    [Fact]
    public void Embedding_TokenIds_CopiesTableRows()
    {
        const int vocab = 11, width = 5;
        using var backend = new CpuBackend(1);
        var table = TestData.Uniform(1, vocab * width);
        int[] ids = [3, 0, 10, 3, 7, 1];
        using var tt = backend.FromHost(table, vocab, width);
        using var ti = backend.FromHost(ids, 2, 3);
        using var to = backend.Allocate(2, 3, width);

        backend.Embedding(tt, ti, to);

        var actual = to.ToArray<float>();
        for (var i = 0; i < ids.Length; i++)
        {
            Assert.Equal(table.AsSpan(ids[i] * width, width).ToArray(), actual.AsSpan(i * width, width).ToArray());
        }
    }

    [Fact]
    public void Embedding_IdOutOfRange_ThrowsNamingPositionAndValue()
    {
        using var backend = new CpuBackend(1);
        using var tt = backend.Allocate(4, 2);
        using var ti = backend.FromHost(new[] { 1, 4 }, 2);
        using var to = backend.Allocate(2, 2);

        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => backend.Embedding(tt, ti, to));

        Assert.Contains("ids[1]", ex.Message);
        Assert.Contains("got 4", ex.Message);
    }

    [Fact]
    public void Gather_Rank3Source_PicksRowsInIndexOrder()
    {
        using var backend = new CpuBackend(1);
        var src = TestData.Uniform(2, 6 * 2 * 3);
        int[] idx = [5, 0, 2, 2];
        using var ts = backend.FromHost(src, 6, 2, 3);
        using var ti = backend.FromHost(idx, 4);
        using var to = backend.Allocate(4, 2, 3);

        backend.Gather(ts, ti, to);

        var actual = to.ToArray<float>();
        for (var i = 0; i < idx.Length; i++) Assert.Equal(src.AsSpan(idx[i] * 6, 6).ToArray(), actual.AsSpan(i * 6, 6).ToArray());
    }

    [Fact]
    public void ScatterAddRows_WithScale_AddsScaledRowsAtIndices()
    {
        using var backend = new CpuBackend(1);
        var dst = TestData.Uniform(3, 5 * 4);
        var src = TestData.Uniform(4, 2 * 4);
        using var td = backend.FromHost(dst, 5, 4);
        using var ts = backend.FromHost(src, 2, 4);
        using var ti = backend.FromHost(new[] { 3, 1 }, 2);
        using var tscale = backend.FromHost(new[] { 0.5f, -2f }, 2);

        backend.ScatterAddRows(ts, ti, td, tscale);

        var expected = dst.Select(v => (double)v).ToArray();
        for (var c = 0; c < 4; c++)
        {
            expected[3 * 4 + c] += 0.5 * src[c];
            expected[1 * 4 + c] += -2.0 * src[4 + c];
        }
        TestData.AssertClose(expected, td.ToArray<float>(), 1e-6, 0, "destination");
    }

    [Fact]
    public void TopK_TiesAndNaN_OrderByValueThenLowerIndex()
    {
        using var backend = new CpuBackend(1);
        float[] x = [1f, 3f, float.NaN, 3f, 2f, 3f, -1f, 2f];
        using var tx = backend.FromHost(x, 1, 8);
        using var tv = backend.Allocate(1, 5);
        using var ti = backend.Allocate(new Shape(1, 5), DType.I32);

        backend.TopK(tx, 5, tv, ti);

        Assert.Equal([1, 3, 5, 4, 7], ti.ToArray<int>());
        Assert.Equal([3f, 3f, 3f, 2f, 2f], tv.ToArray<float>());
    }

    [Fact]
    public void TopK_RandomRowsWithManyTies_MatchesStableSort()
    {
        const int rows = 9, n = 200, k = 57;
        using var backend = new CpuBackend(2);
        var rng = new Random(5);
        // Few distinct values: ties everywhere.
        var x = Enumerable.Range(0, rows * n).Select(_ => (float)rng.Next(0, 12)).ToArray();
        using var tx = backend.FromHost(x, rows, n);
        using var tv = backend.Allocate(rows, k);
        using var ti = backend.Allocate(new Shape(rows, k), DType.I32);

        backend.TopK(tx, k, tv, ti);

        var actual = ti.ToArray<int>();
        for (var r = 0; r < rows; r++)
        {
            var expected = Enumerable.Range(0, n).OrderByDescending(j => x[r * n + j]).ThenBy(j => j).Take(k).ToArray();
            Assert.Equal(expected, actual.AsSpan(r * k, k).ToArray());
        }
    }
}
