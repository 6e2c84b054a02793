using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Comparison;
using SparseInference.Serving.Variants.Guardrails;

namespace SparseInference.Serving.Tests.Variants.Guardrails;

public class GuardrailMonitorTests
{
    private static Dictionary<string, string?> Bounds(params (string Key, string Value)[] extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["SparseInference:Variants:Guardrails:Enabled"] = "true",
            ["SparseInference:Variants:Guardrails:Window"] = "00:01:00",
            ["SparseInference:Variants:Guardrails:MinSamples"] = "50",
        };
        foreach (var (key, value) in extra)
        {
            settings["SparseInference:Variants:Guardrails:" + key] = value;
        }

        return settings;
    }

    private static async Task<(VariantRegistry Registry, GuardrailMonitor Monitor)> CandidateAtTenPercent(ServiceProvider provider)
    {
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "block-topk", 0.9));
        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 90), ("cand", 10)))).Succeeded);
        return (registry, provider.GetRequiredService<GuardrailMonitor>());
    }

    [Fact]
    public async Task Evaluate_CandidateP99AboveBound_RollsBackToPreviousSplit()
    {
        var time = new ManualTimeProvider();
        using var provider = VariantTestKit.Services(new TestModelSource(), time: time, settings: Bounds(("MaxP99LatencyMs", "50")));
        var (registry, monitor) = await CandidateAtTenPercent(provider);
        for (var i = 0; i < 100; i++)
        {
            // 3 slow requests in 100: the p99 (nearest rank) is a slow one.
            monitor.RecordRequest(VariantTestKit.Model, "cand", TimeSpan.FromMilliseconds(i < 3 ? 200 : 10), failed: false);
            monitor.RecordRequest(VariantTestKit.Model, "dense", TimeSpan.FromMilliseconds(500), failed: false);
        }

        var trip = Assert.Single(await monitor.EvaluateAsync());

        Assert.Equal(("cand", "p99_latency_ms", 200.0, VariantChangeStatus.Applied), (trip.Variant, trip.Bound, trip.Actual, trip.Outcome));
        Assert.Equal(1.0, registry.Current.Split.WeightOf("dense"));
        Assert.Empty(await monitor.EvaluateAsync());
    }

    [Fact]
    public async Task Evaluate_P99WithinBound_KeepsSplit()
    {
        var time = new ManualTimeProvider();
        using var provider = VariantTestKit.Services(new TestModelSource(), time: time, settings: Bounds(("MaxP99LatencyMs", "50")));
        var (registry, monitor) = await CandidateAtTenPercent(provider);
        for (var i = 0; i < 100; i++)
        {
            monitor.RecordRequest(VariantTestKit.Model, "cand", TimeSpan.FromMilliseconds(i < 1 ? 200 : 10), failed: false);
        }

        Assert.Empty(await monitor.EvaluateAsync());
        Assert.Equal(0.1, registry.Current.Split.WeightOf("cand"), 12);
    }

    [Fact]
    public async Task Evaluate_ErrorsOlderThanWindow_AreForgotten()
    {
        var time = new ManualTimeProvider();
        using var provider = VariantTestKit.Services(new TestModelSource(), time: time, settings: Bounds(("MaxErrorRate", "0.05")));
        var (registry, monitor) = await CandidateAtTenPercent(provider);
        for (var i = 0; i < 60; i++)
        {
            monitor.RecordRequest(VariantTestKit.Model, "cand", TimeSpan.FromMilliseconds(5), failed: i % 2 == 0);
        }

        time.Advance(TimeSpan.FromSeconds(61));
        for (var i = 0; i < 60; i++)
        {
            monitor.RecordRequest(VariantTestKit.Model, "cand", TimeSpan.FromMilliseconds(5), failed: false);
        }

        Assert.Empty(await monitor.EvaluateAsync());
        Assert.Equal(0.1, registry.Current.Split.WeightOf("cand"), 12);

        for (var i = 0; i < 10; i++)
        {
            monitor.RecordRequest(VariantTestKit.Model, "cand", TimeSpan.FromMilliseconds(5), failed: true);
        }

        var trip = Assert.Single(await monitor.EvaluateAsync());
        Assert.Equal("error_rate", trip.Bound);
        Assert.Equal(10.0 / 70, trip.Actual, 9);
    }

    /// <summary>
    /// 50/50, then dense 100, then the candidate at 10%: the trip restores dense 100, where dense has grown against
    /// the split before it. Judging dense there would roll back to 50/50 and so on through the history.
    /// </summary>
    [Fact]
    public async Task Evaluate_AfterARollback_TheRestoredSplitsBaselineIsNotJudgedAndNothingCascades()
    {
        using var provider = VariantTestKit.Services(new TestModelSource(), time: new ManualTimeProvider(), settings: Bounds(("MaxP99LatencyMs", "50")));
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "block-topk", 0.9));
        foreach (var split in new[] { VariantTestKit.Split(("dense", 50), ("cand", 50)), VariantTestKit.Split(("dense", 100)), VariantTestKit.Split(("dense", 90), ("cand", 10)) })
        {
            Assert.True((await registry.SetSplitAsync(split)).Succeeded);
        }

        var monitor = provider.GetRequiredService<GuardrailMonitor>();
        for (var i = 0; i < 60; i++)
        {
            // Every variant is slow: the bound is crossed by the baseline too.
            monitor.RecordRequest(VariantTestKit.Model, "cand", TimeSpan.FromMilliseconds(80), failed: false);
            monitor.RecordRequest(VariantTestKit.Model, "dense", TimeSpan.FromMilliseconds(80), failed: false);
        }

        var trip = Assert.Single(await monitor.EvaluateAsync());
        var afterTrip = registry.Current.Version;

        Assert.Equal(("cand", VariantChangeStatus.Applied), (trip.Variant, trip.Outcome));
        Assert.Empty(await monitor.EvaluateAsync());
        Assert.Equal(1.0, registry.Current.Split.WeightOf("dense"));
        Assert.Equal(afterTrip, registry.Current.Version);
        Assert.True(registry.Current.Rollout.RolledBack);
    }

    [Fact]
    public async Task Evaluate_FewerSamplesThanMinimum_NoVerdict()
    {
        using var provider = VariantTestKit.Services(new TestModelSource(), time: new ManualTimeProvider(), settings: Bounds(("MaxErrorRate", "0.01")));
        var (_, monitor) = await CandidateAtTenPercent(provider);
        for (var i = 0; i < 49; i++)
        {
            monitor.RecordRequest(VariantTestKit.Model, "cand", TimeSpan.FromMilliseconds(5), failed: true);
        }

        Assert.Empty(await monitor.EvaluateAsync());
    }

    [Fact]
    public async Task Evaluate_ShadowFlagDisagreement_StopsShadowingOnly()
    {
        using var provider = VariantTestKit.Services(new TestModelSource(), time: new ManualTimeProvider(), settings: Bounds(("MinFlagAgreement", "0.95")));
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "topk", 0.8));
        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 1)) with { Shadow = new ShadowConfig("cand", 50, 0.5) })).Succeeded);
        var monitor = provider.GetRequiredService<GuardrailMonitor>();
        for (var i = 0; i < 50; i++)
        {
            monitor.RecordComparison(VariantTestKit.Model, "cand", new ComparisonSample(0.1, 0.2, FlagAgreements: 9, FlagTotal: 10));
        }

        var trip = Assert.Single(await monitor.EvaluateAsync());

        Assert.Equal("flag_agreement", trip.Bound);
        Assert.Equal(0.9, trip.Actual, 9);
        Assert.Null(registry.Current.Split.Shadow);
        Assert.Equal(1.0, registry.Current.Split.WeightOf("dense"));
    }

    [Fact]
    public void Options_EnabledWithoutBounds_FailsValidationNamingTheSection()
    {
        using var provider = VariantTestKit.Services(new TestModelSource(), settings: new Dictionary<string, string?> { ["SparseInference:Variants:Guardrails:Enabled"] = "true" });

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<VariantOptions>>().Value);

        Assert.Contains("SparseInference:Variants:Guardrails: expected at least one bound", ex.Message);
    }
}
