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

        AttentionKernels.SelectTopK(scores, k, new float[n], kept);

        var expected = Enumerable.Range(0, n).OrderByDescending(j => scores[j]).ThenBy(j => j).Take(k).Order().ToArray();
        Assert.Equal(expected, kept);
    }

    [Fact]
    public void SelectTopK_NaNScores_RankLowest()
    {
        float[] scores = [float.NaN, 1f, float.NaN, 0f];
        var kept = new int[3];

        AttentionKernels.SelectTopK(scores, 3, new float[4], kept);

        Assert.Equal([0, 1, 3], kept);
    }
}
