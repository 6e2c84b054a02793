namespace SparseInference.LoadGen.Tests;

public sealed class PercentilesTests
{
    private static readonly double[] OneToHundred = [.. Enumerable.Range(1, 100).Select(i => (double)i)];

    [Theory]
    [InlineData(50, 50)]
    [InlineData(90, 90)]
    [InlineData(95, 95)]
    [InlineData(99, 99)]
    [InlineData(100, 100)]
    [InlineData(0.5, 1)]
    public void NearestRank_OneToHundred_ReturnsTheRankedSample(double percentile, double expected)
    {
        Assert.Equal(expected, Percentiles.NearestRank(OneToHundred, percentile));
    }

    [Fact]
    public void NearestRank_FourSamples_RoundsRankUp()
    {
        double[] sorted = [10, 20, 30, 40];
        Assert.Equal(20, Percentiles.NearestRank(sorted, 50));
        Assert.Equal(30, Percentiles.NearestRank(sorted, 50.1));
        Assert.Equal(40, Percentiles.NearestRank(sorted, 99));
        Assert.Equal(10, Percentiles.NearestRank(sorted, 25));
    }

    [Fact]
    public void NearestRank_SingleSample_IsEveryPercentile()
    {
        Assert.Equal(7, Percentiles.NearestRank([7], 1));
        Assert.Equal(7, Percentiles.NearestRank([7], 99));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(100.5)]
    [InlineData(double.NaN)]
    public void NearestRank_PercentileOutOfRange_Throws(double percentile)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Percentiles.NearestRank(OneToHundred, percentile));
        Assert.Equal("percentile", ex.ParamName);
    }

    [Fact]
    public void NearestRank_NoSamples_Throws()
    {
        Assert.Throws<ArgumentException>(() => Percentiles.NearestRank([], 50));
    }

    [Fact]
    public void Summarize_UnsortedSamples_SortsAndReportsEveryStatistic()
    {
        var samples = OneToHundred.Reverse().ToArray();

        var summary = Percentiles.Summarize(samples);

        Assert.Equal(new LatencySummary(100, 50.5, 1, 50, 90, 95, 99, 100), summary);
    }

    [Fact]
    public void Summarize_NoSamples_IsAllZero()
    {
        Assert.Equal(default, Percentiles.Summarize([]));
    }
}
