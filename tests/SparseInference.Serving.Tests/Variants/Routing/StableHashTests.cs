using System.Text;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Tests.Variants.Routing;

public class StableHashTests
{
    [Theory]
    [InlineData("", 0xcbf29ce484222325UL)]
    [InlineData("a", 0xaf63dc4c8601ec8cUL)]
    [InlineData("foobar", 0x85944171f73967e8UL)]
    public void Fnv1a64_ReferenceVectors_MatchPublishedValues(string text, ulong expected)
    {
        Assert.Equal(expected, StableHash.Fnv1a64(Encoding.UTF8.GetBytes(text)));
    }

    // Pinned from an independent implementation (FNV-1a 64 + fmix64 in Python); a change here would move
    // every line to a different variant on upgrade, so it must be deliberate.
    [Theory]
    [InlineData("pump-anomaly", "line-7", 0x20496cea5f786017UL, 0.1261203834723985)]
    [InlineData("pump-anomaly", "Linie-Öl", 0x0cf6f7623095228eUL, 0.050643407318223144)]
    public void Of_KnownKey_ReturnsPinnedValue(string experiment, string key, ulong expectedHash, double expectedPoint)
    {
        Assert.Equal(expectedHash, StableHash.Of(experiment, key));
        Assert.Equal(expectedPoint, StableHash.UnitInterval(experiment, key), 15);
    }

    [Fact]
    public void Of_SeparatorBetweenExperimentAndKey_KeepsConcatenationsApart()
    {
        Assert.NotEqual(StableHash.Of("ab", "c"), StableHash.Of("a", "bc"));
    }

    [Fact]
    public void UnitInterval_ManyKeys_StaysInHalfOpenUnitRangeAndSpreads()
    {
        var buckets = new int[10];
        for (var i = 0; i < 10_000; i++)
        {
            var u = StableHash.UnitInterval("exp", $"line-{i}");
            Assert.InRange(u, 0.0, 0.9999999999999999);
            buckets[(int)(u * 10)]++;
        }

        // Sequential keys must not cluster: each tenth gets 10% ± 2 points.
        Assert.All(buckets, b => Assert.InRange(b, 800, 1200));
    }
}
