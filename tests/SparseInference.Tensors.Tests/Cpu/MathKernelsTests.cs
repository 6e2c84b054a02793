using SparseInference.Tensors.Cpu;

namespace SparseInference.Tensors.Tests.Cpu;

public sealed class MathKernelsTests
{
    [Fact]
    public void Erf_DenseGrid_MaxErrorBelow1e6()
    {
        double worst = 0;
        for (var x = -8.0; x <= 8.0; x += 1e-3)
        {
            worst = Math.Max(worst, Math.Abs(MathKernels.Erf((float)x) - Reference.Erf((float)x)));
        }
        Assert.True(worst < 1e-6, $"max |erf error| = {worst:E3}");
    }

    [Fact]
    public void Erf_KnownValues_Match()
    {
        Assert.Equal(0.0, MathKernels.Erf(0f), 7);
        Assert.Equal(0.8427007929497149, MathKernels.Erf(1f), 6);
        Assert.Equal(-0.9953222650189527, MathKernels.Erf(-2f), 6);
    }
}
