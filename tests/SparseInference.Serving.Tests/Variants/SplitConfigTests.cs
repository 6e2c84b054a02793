using System.Collections.Immutable;
using SparseInference.Serving.Variants;

namespace SparseInference.Serving.Tests.Variants;

public sealed class SplitConfigTests
{
    private static readonly IReadOnlyDictionary<string, Variant> Variants = new[] { "dense", "sparse" }
        .ToImmutableDictionary(n => n, n => new Variant("m", new VariantDefinition(n, "dense"), new SpecEchoModel(), 1));

    [Fact]
    public void Validate_FiniteWeightsSummingToInfinity_RefusedNamingTheTotal()
    {
        var split = new SplitConfig([new SplitWeight("dense", double.MaxValue), new SplitWeight("sparse", double.MaxValue)]);
        var error = Assert.Single(split.Validate(Variants));
        Assert.StartsWith("weights: expected a finite total", error);
        Assert.EndsWith("actual Infinity", error);
    }

    [Fact]
    public void Validate_LargeButFiniteTotal_Accepted()
    {
        Assert.Empty(new SplitConfig([new SplitWeight("dense", 1e300), new SplitWeight("sparse", 1e300)]).Validate(Variants));
    }
}
