using SparseInference.Models.Attention;

namespace SparseInference.Models.Tests.Attention;

public sealed class PatternMathTests
{
    [Theory]
    [InlineData(0.5, 5, 3)]    // 2.5 rounds half up
    [InlineData(0.75, 2, 1)]   // 0.5 rounds up to 1
    [InlineData(0.9, 3, 1)]    // 0.3 rounds to 0, clamped to 1
    [InlineData(0.0, 7, 7)]
    [InlineData(0.75, 16, 4)]
    [InlineData(0.9, 512, 51)] // 51.2
    public void Budget_RoundsHalfUpAndClamps(double sparsity, int count, int expected)
        => Assert.Equal(expected, PatternMath.Budget(sparsity, count));

    [Fact]
    public void Mix_Zero_MatchesSplitMix64()
        => Assert.Equal(16294208416658607535UL, PatternMath.Mix(0));

    [Theory]
    [InlineData(7UL, 1, 2, 3, 4, 0.6318878010264237)]
    [InlineData(17297757506775570040UL, 0, 0, 5, 9, 0.8129209209822119)]
    public void Uniform_KnownInputs_MatchReferenceValues(ulong seed, int layer, int head, int qb, int kb, double expected)
        => Assert.Equal(expected, PatternMath.Uniform(seed, layer, head, qb, kb));

    [Fact]
    public void Uniform_ManyDraws_StayInOpenUnitInterval()
    {
        for (int kb = 0; kb < 1000; kb++)
        {
            double u = PatternMath.Uniform(3, 1, 0, 2, kb);
            Assert.InRange(u, double.Epsilon, 1.0 - 1e-17);
        }
    }
}
