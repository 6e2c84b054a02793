using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using SparseInference.Serving.Protocol.Grpc;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Tests.Variants.Routing;

public class RoutingPolicyTests
{
    private static async Task<VariantRegistry> ThreeWay(ServiceProvider provider, string? experiment = null)
    {
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("bigbird-0.75", "bigbird", 0.75), new VariantDefinition("block-topk-0.9", "block-topk", 0.9));
        var split = VariantTestKit.Split(("dense", 70), ("bigbird-0.75", 20), ("block-topk-0.9", 10)) with { Experiment = experiment };
        Assert.True((await registry.SetSplitAsync(split)).Succeeded);
        return registry;
    }

    [Fact]
    public async Task Route_StickyOver10000Keys_SplitWithinTwoPointsOfWeights()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var registry = await ThreeWay(provider);
        var counts = new Dictionary<string, int>();
        for (var i = 0; i < 10_000; i++)
        {
            var decision = registry.Route(new RoutingContext(Key: $"line-{i}"));
            Assert.Equal(RoutingPolicyNames.Sticky, decision.Policy);
            counts[decision.VariantName] = counts.GetValueOrDefault(decision.VariantName) + 1;
        }

        Assert.InRange(counts["dense"] / 100.0, 68, 72);
        Assert.InRange(counts["bigbird-0.75"] / 100.0, 18, 22);
        Assert.InRange(counts["block-topk-0.9"] / 100.0, 8, 12);
    }

    [Fact]
    public async Task Route_SameKeyAndWeights_SameVariantAcrossCallsTablesAndReplicas()
    {
        using var replicaA = VariantTestKit.Services(new TestModelSource());
        using var replicaB = VariantTestKit.Services(new TestModelSource());
        var a = await ThreeWay(replicaA);
        var b = await ThreeWay(replicaB);
        var first = Enumerable.Range(0, 2000).Select(i => a.Route(new RoutingContext($"line-{i}")).VariantName).ToArray();

        // Re-applying the same weights builds a new table version; assignment must not move.
        Assert.True((await a.SetSplitAsync(a.Current.Split)).Succeeded);
        for (var i = 0; i < first.Length; i++)
        {
            Assert.Equal(first[i], a.Route(new RoutingContext($"line-{i}")).VariantName);
            Assert.Equal(first[i], b.Route(new RoutingContext($"line-{i}")).VariantName);
        }
    }

    [Fact]
    public async Task Route_DifferentExperimentName_ReassignsKeys()
    {
        using var provider1 = VariantTestKit.Services(new TestModelSource());
        using var provider2 = VariantTestKit.Services(new TestModelSource());
        var a = await ThreeWay(provider1);
        var b = await ThreeWay(provider2, experiment: "pump-anomaly-2026-q3");
        var moved = Enumerable.Range(0, 2000).Count(i => a.Route(new RoutingContext($"line-{i}")).VariantName != b.Route(new RoutingContext($"line-{i}")).VariantName);
        Assert.True(moved > 500, $"only {moved} of 2000 keys moved after renaming the experiment");
    }

    [Fact]
    public async Task Route_NoKey_WeightedDrawWithinTwoPointsOfWeights()
    {
        using var provider = VariantTestKit.Services(new TestModelSource(), random: new SeededRandom(42));
        var registry = await ThreeWay(provider);
        var counts = new Dictionary<string, int>();
        for (var i = 0; i < 10_000; i++)
        {
            var decision = registry.Route(RoutingContext.Empty);
            Assert.Equal(RoutingPolicyNames.Weighted, decision.Policy);
            counts[decision.VariantName] = counts.GetValueOrDefault(decision.VariantName) + 1;
        }

        Assert.InRange(counts["dense"] / 100.0, 68, 72);
        Assert.InRange(counts["block-topk-0.9"] / 100.0, 8, 12);
    }

    [Fact]
    public async Task Route_VariantParameter_OverridesSplitEvenAtWeightZero()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("topk-0.5", "topk", 0.5));

        var decision = registry.Route(new RoutingContext(Key: "line-1", RequestedVariant: "topk-0.5"));

        Assert.Equal("topk-0.5", decision.VariantName);
        Assert.Equal(RoutingPolicyNames.Override, decision.Policy);
        Assert.Equal("dense", registry.Route(new RoutingContext(Key: "line-1")).VariantName);
    }

    [Fact]
    public async Task Route_UnknownVariantParameter_ThrowsNamingFieldExpectedAndActual()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, _) = VariantTestKit.Catalog(provider);

        var ex = Assert.Throws<VariantRoutingException>(() => registry.Route(new RoutingContext(RequestedVariant: "nope")));

        Assert.Contains("parameters.variant", ex.Message);
        Assert.Contains("[dense]", ex.Message);
        Assert.Contains("'nope'", ex.Message);
    }

    [Fact]
    public async Task Route_ShadowAtTwentyFivePercent_MirrorsThatShareOfKeysAndNeverToItself()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("bigbird-0.75", "bigbird", 0.75));
        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 1)) with { Shadow = new ShadowConfig("bigbird-0.75", 25) })).Succeeded);

        var mirrored = 0;
        string? mirroredKey = null;
        for (var i = 0; i < 10_000; i++)
        {
            var decision = registry.Route(new RoutingContext($"line-{i}"));
            Assert.Equal("dense", decision.VariantName);
            if (decision.Shadow is { } shadow)
            {
                Assert.Equal("bigbird-0.75", shadow.Name);
                mirrored++;
                mirroredKey ??= $"line-{i}";
            }
        }

        Assert.InRange(mirrored / 100.0, 23, 27);
        var overridden = registry.Route(new RoutingContext(mirroredKey, RequestedVariant: "bigbird-0.75"));
        Assert.Null(overridden.Shadow);
    }

    [Fact]
    public void FromRequest_ParameterPresent_WinsOverHeader()
    {
        var parameters = new Dictionary<string, object?> { ["line_id"] = "L-4", ["variant"] = "dense" };
        var context = RoutingContext.FromRequest(parameters, _ => "from-header", "line_id", "X-Routing-Key");
        Assert.Equal(new RoutingContext("L-4", "dense"), context);
    }

    [Fact]
    public void FromRequest_NoParameter_FallsBackToHeader()
    {
        var context = RoutingContext.FromRequest(new Dictionary<string, object?>(), h => h == "X-Routing-Key" ? "L-9" : null, "line_id", "X-Routing-Key");
        Assert.Equal("L-9", context.Key);
        Assert.Null(context.RequestedVariant);
    }

    [Fact]
    public void FromRequest_JsonNumberParameter_UsesItsText()
    {
        using var doc = JsonDocument.Parse("""{"line_id": 17}""");
        var parameters = new Dictionary<string, object?> { ["line_id"] = doc.RootElement.GetProperty("line_id").Clone() };
        Assert.Equal("17", RoutingContext.FromRequest(parameters, null, "line_id", "X-Routing-Key").Key);
    }

    [Fact]
    public void FromGrpcRequest_Int64KeyAndStringVariant_ConvertedLikeRest()
    {
        var parameters = new Dictionary<string, InferParameter>
        {
            ["line_id"] = new() { Int64Param = 42 },
            ["variant"] = new() { StringParam = "bigbird-0.75" },
        };

        var context = RoutingContext.FromGrpcRequest(parameters, _ => "ignored", "line_id", "X-Routing-Key");

        Assert.Equal(new RoutingContext("42", "bigbird-0.75"), context);
    }

    [Fact]
    public void FromGrpcRequest_NoKeyParameter_ReadsLowerCaseMetadata()
    {
        var context = RoutingContext.FromGrpcRequest([], m => m == "x-routing-key" ? "L-2" : null, "line_id", "X-Routing-Key");
        Assert.Equal("L-2", context.Key);
    }

    [Fact]
    public void FromRequest_ValuesWithTextualToString_UseThatText()
    {
        var parameters = new Dictionary<string, TextParameter> { ["line_id"] = new("L-12"), ["variant"] = new("dense") };

        var context = RoutingContext.FromRequest(parameters, null, "line_id", "X-Routing-Key");

        Assert.Equal(new RoutingContext("L-12", "dense"), context);
    }

    /// <summary>Shaped like the protocol layer's parameter: a value whose ToString is its text.</summary>
    private readonly record struct TextParameter(string Value)
    {
        public override string ToString() => Value;
    }
}
