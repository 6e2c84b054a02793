using SparseInference.Tensors.Cpu;

namespace SparseInference.Tensors.Tests.Cpu;

public sealed class CpuBackendNormalizationTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 64)]
    [InlineData(13, 67)]
    public void LayerNorm_RandomRows_MatchesBiasedVarianceReference(int rows, int n)
    {
        using var backend = new CpuBackend(2);
        // An offset of 3 makes a one-pass variance visibly wrong.
        var x = TestData.Uniform(1, rows * n, 2f, 4f);
        var gamma = TestData.Uniform(2, n);
        var beta = TestData.Uniform(3, n);
        using var tx = backend.FromHost(x, rows, n);
        using var tg = backend.FromHost(gamma, n);
        using var tb = backend.FromHost(beta, n);
        using var ty = backend.Allocate(rows, n);

        backend.LayerNorm(tx, tg, tb, 1e-5f, ty);

        TestData.AssertClose(Reference.LayerNorm(x, gamma, beta, rows, n, 1e-5), ty.ToArray<float>(), 2e-5, 1e-5, "y");
    }

    [Fact]
    public void Softmax_RowsSumToOneAndMatchReference()
    {
        const int rows = 5, n = 33;
        using var backend = new CpuBackend(2);
        var x = TestData.Uniform(4, rows * n, -30f, 30f);
        using var tx = backend.FromHost(x, rows, n);
        using var ty = backend.Allocate(rows, n);

        backend.Softmax(tx, ty);

        TestData.AssertClose(Reference.Softmax(x, rows, n), ty.ToArray<float>(), 1e-6, 1e-5, "softmax");
    }
}
