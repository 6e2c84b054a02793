using SparseInference.Tensors.Cpu;

namespace SparseInference.Tensors.Tests.Cpu;

public sealed class AttentionKernelsTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(2, 50, 1)]
    [InlineData(3, 50, 50)]
    [InlineData(4, 333, 17)]
    [InlineData(5, 1024, 700)]
    public void SelectTopK_ManyTies_KeepsSameSetAsStableSort(int seed, int n, int k)
    {
        var rng = new Random(seed);
        var scores = Enumerable.Range(0, n).Select(_ => (float)rng.Next(0, 9)).ToArray();
        var kept = new int[k];

        AttentionKernels.SelectTopK(scores, k, kept);

        var expected = Enumerable.Range(0, n).OrderByDescending(j => scores[j]).ThenBy(j => j).Take(k).Order().ToArray();
        Assert.Equal(expected, kept);
    }

    [Theory]
    [InlineData(6, 37, 5)]
    [InlineData(7, 300, 150)]
    public void SelectTopK_NegativeZeroAndInfinities_MatchStableSort(int seed, int n, int k)
    {
        var rng = new Random(seed);
        float[] pool = [-3f, -1.5f, -0f, 0f, 2f, float.NegativeInfinity, float.PositiveInfinity, -1e-30f, 1e-30f];
        var scores = Enumerable.Range(0, n).Select(_ => pool[rng.Next(pool.Length)]).ToArray();
        var kept = new int[k];

        AttentionKernels.SelectTopK(scores, k, kept);

        // −0 and +0 are equal scores: the tie goes to the lower index.
        var expected = Enumerable.Range(0, n).OrderByDescending(j => scores[j]).ThenBy(j => j).Take(k).Order().ToArray();
        Assert.Equal(expected, kept);
    }

    [Fact]
    public void SelectTopK_NaNScores_RankLowest()
    {
        float[] scores = [float.NaN, 1f, float.NaN, 0f];
        var kept = new int[3];

        AttentionKernels.SelectTopK(scores, 3, kept);

        Assert.Equal([0, 1, 3], kept);
    }
}
