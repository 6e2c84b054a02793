using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using SparseInference.Models;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Comparison;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Tests.Variants.Comparison;

public class ShadowComparisonTests
{
    [Fact]
    public void Compare_KnownOutputs_MaeMaxErrorAndFlagAgreement()
    {
        var primary = Result(0.1f, 0.9f, 0.2f, 0.7f);
        var candidate = Result(0.2f, 0.4f, 0.2f, 0.9f);

        var sample = OutputComparer.Compare(primary, candidate, flagThreshold: 0.5);

        Assert.Equal((0.1 + 0.5 + 0 + 0.2) / 4, sample.MeanAbsoluteError, 6);
        Assert.Equal(0.5, sample.MaxError, 6);
        // Flags: primary [F,T,F,T], candidate [F,F,F,T] -> 3 of 4 agree.
        Assert.Equal(0.75, sample.FlagAgreementRatio);
        Assert.Null(OutputComparer.Compare(primary, candidate, null).FlagAgreementRatio);
    }

    [Fact]
    public void Compare_DifferentShapes_ThrowsNamingBothShapes()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => OutputComparer.Compare(Result(1f, 2f), Result(1f), null));
        Assert.Contains("expected [1, 2]", ex.Message);
        Assert.Contains("actual [1, 1]", ex.Message);
    }

    [Fact]
    public async Task ShadowedRequest_CallerGetsOnlyPrimaryAnswer_ComparisonRecordsTheDifference()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, model) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("bigbird-0.5", "bigbird", 0.5));
        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 1)) with { Shadow = new ShadowConfig("bigbird-0.5", 100, FlagThreshold: 15) })).Succeeded);
        var dispatcher = provider.GetRequiredService<ShadowDispatcher>();
        await dispatcher.StartAsync(CancellationToken.None);
        var router = provider.GetRequiredService<VariantRouter>();
        var store = provider.GetRequiredService<ComparisonStore>();
        var forwardsBefore = model.Forwards;

        var answers = new List<(string Variant, float[] Output)>();
        for (var i = 0; i < 20; i++)
        {
            var input = VariantTestKit.Input(1f, 2f, 3f);
            var decision = router.Route(VariantTestKit.Model, new RoutingContext($"line-{i}"));
            var result = decision.Primary.Forward(input);
            router.ReportCompleted(decision, input, result, TimeSpan.FromMilliseconds(1));
            answers.Add((decision.VariantName, result.Output));
        }

        var pair = await WaitForAsync(() => store.Snapshot(VariantTestKit.Model).SingleOrDefault(p => p.Compared == 20));
        await dispatcher.StopAsync(CancellationToken.None);

        // Every caller saw the dense answer, although the candidate ran for each of them.
        Assert.All(answers, a =>
        {
            Assert.Equal("dense", a.Variant);
            Assert.Equal([1f, 2f, 3f], a.Output);
        });
        Assert.Equal(40, model.Forwards - forwardsBefore);
        Assert.Equal("dense", pair.Primary);
        Assert.Equal("bigbird-0.5", pair.Candidate);
        // bigbird adds 0.5 + 10 x its pattern index to every element.
        var offset = 0.5 + 10 * SpecEchoModel.PatternIndex("bigbird");
        Assert.Equal(offset, pair.MeanAbsoluteError, 4);
        Assert.Equal(offset, pair.MaxError, 4);
        Assert.Equal(0.0, pair.FlagAgreementRatio); // primary never above 15, candidate always
    }

    [Fact]
    public async Task TryEnqueue_QueueFull_DropsCountsAndNeverBlocks()
    {
        var settings = new Dictionary<string, string?> { ["SparseInference:Variants:ShadowQueueCapacity"] = "2" };
        using var provider = VariantTestKit.Services(new TestModelSource(), settings: settings);
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "topk", 0.5));
        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 1)) with { Shadow = new ShadowConfig("cand", 100) })).Succeeded);
        var dropped = new ConcurrentBag<long>();
        using var listener = Listen<long>(provider, "sparseinference_shadow_dropped_total", (value, _) => dropped.Add(value));
        var dispatcher = provider.GetRequiredService<ShadowDispatcher>();
        var router = provider.GetRequiredService<VariantRouter>();
        var store = provider.GetRequiredService<ComparisonStore>();

        // Workers not started: nothing drains the queue, as under overload.
        var accepted = 0;
        for (var i = 0; i < 10; i++)
        {
            var input = VariantTestKit.Input(1f);
            var decision = router.Route(VariantTestKit.Model, new RoutingContext($"line-{i}"));
            Assert.NotNull(decision.Shadow);
            if (dispatcher.TryEnqueue(decision, input, decision.Primary.Forward(input)))
            {
                accepted++;
            }
        }

        Assert.Equal(2, accepted);
        var pair = Assert.Single(store.Snapshot(VariantTestKit.Model));
        Assert.Equal(8, pair.Dropped);
        Assert.Equal(8, dropped.Sum());
        Assert.Equal(0, pair.Compared);
    }

    [Fact]
    public async Task TryEnqueue_ServingUnderPressure_ShedsShadowWorkAndCountsIt()
    {
        var pressure = new SwitchablePressure { UnderPressure = true };
        var source = new TestModelSource();
        using var provider = VariantTestKit.Services(source, configure: s => s.AddSingleton<IServingPressure>(pressure));
        var (_, registry, model) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "topk", 0.5));
        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 1)) with { Shadow = new ShadowConfig("cand", 100) })).Succeeded);
        var dispatcher = provider.GetRequiredService<ShadowDispatcher>();
        var router = provider.GetRequiredService<VariantRouter>();
        var store = provider.GetRequiredService<ComparisonStore>();

        var input = VariantTestKit.Input(1f);
        var decision = router.Route(VariantTestKit.Model, new RoutingContext("line-1"));
        Assert.False(dispatcher.TryEnqueue(decision, input, decision.Primary.Forward(input)));

        pressure.UnderPressure = false;
        Assert.True(dispatcher.TryEnqueue(decision, input, decision.Primary.Forward(input)));
        pressure.UnderPressure = true;
        var forwards = model.Forwards;
        await dispatcher.StartAsync(CancellationToken.None);
        var pair = await WaitForAsync(() => store.Snapshot(VariantTestKit.Model).SingleOrDefault(p => p.Dropped == 2));
        await dispatcher.StopAsync(CancellationToken.None);

        // The queued one was shed by the worker too: the candidate never ran.
        Assert.Equal(forwards, model.Forwards);
        Assert.Equal(0, pair.Compared);
    }

    private sealed class SwitchablePressure : IServingPressure
    {
        public volatile bool UnderPressure;

        public bool ShouldShedShadowWork => UnderPressure;
    }

    [Fact]
    public async Task ShadowCandidateThrows_CallerUnaffectedAndFailureCounted()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, model) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "window", 0.5));
        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 1)) with { Shadow = new ShadowConfig("cand", 100) })).Succeeded);
        var dispatcher = provider.GetRequiredService<ShadowDispatcher>();
        await dispatcher.StartAsync(CancellationToken.None);
        var router = provider.GetRequiredService<VariantRouter>();
        var store = provider.GetRequiredService<ComparisonStore>();

        // A token input on a continuous model: the candidate throws, the primary already answered.
        var decision = router.Route(VariantTestKit.Model, new RoutingContext("line-1"));
        var primaryResult = decision.Primary.Forward(VariantTestKit.Input(1f));
        router.ReportCompleted(decision, new ForwardInput { Batch = 1, Time = 1, TokenIds = [3] }, primaryResult, TimeSpan.Zero);

        var pair = await WaitForAsync(() => store.Snapshot(VariantTestKit.Model).SingleOrDefault(p => p.CandidateFailures == 1));
        await dispatcher.StopAsync(CancellationToken.None);
        Assert.Equal(0, pair.Compared);
        Assert.Equal([1f], primaryResult.Output);
    }

    [Fact]
    public async Task ShadowComparison_PublishesMaeAndMaxErrorWithModelPrimaryCandidateLabels()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "dense", WeightsDirectory: "/models/pump/v2"));
        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 1)) with { Shadow = new ShadowConfig("cand", 100, FlagThreshold: 50) })).Succeeded);
        var recorded = new ConcurrentBag<(string Instrument, double Value, string Labels)>();
        using var mae = Listen<double>(provider, "sparseinference_shadow_agreement_mae", (v, tags) => recorded.Add(("mae", v, tags)));
        using var max = Listen<double>(provider, "sparseinference_shadow_max_error", (v, tags) => recorded.Add(("max", v, tags)));
        var dispatcher = provider.GetRequiredService<ShadowDispatcher>();
        await dispatcher.StartAsync(CancellationToken.None);
        var router = provider.GetRequiredService<VariantRouter>();

        var input = VariantTestKit.Input(1f, 2f);
        var decision = router.Route(VariantTestKit.Model, new RoutingContext("line-1"));
        router.ReportCompleted(decision, input, decision.Primary.Forward(input), TimeSpan.Zero);
        await WaitForAsync(() => recorded.Count >= 2 ? recorded : null);
        await dispatcher.StopAsync(CancellationToken.None);

        // The candidate's own weights add 100 to every element.
        Assert.Contains(("mae", 100.0, "candidate=cand,model=pump-anomaly,primary=dense"), recorded);
        Assert.Contains(("max", 100.0, "candidate=cand,model=pump-anomaly,primary=dense"), recorded);
    }

    [Fact]
    public async Task ReportCompleted_PublishesDensityAndDurationByServingVariant()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("topk-0.75", "topk", 0.75));
        var recorded = new ConcurrentBag<(string Instrument, double Value, string Labels)>();
        using var density = Listen<double>(provider, "sparseinference_variant_attention_density", (v, tags) => recorded.Add(("density", v, tags)));
        using var duration = Listen<double>(provider, "sparseinference_variant_request_duration_seconds", (v, tags) => recorded.Add(("duration", v, tags)));
        var router = provider.GetRequiredService<VariantRouter>();

        foreach (var variant in new[] { "dense", "topk-0.75" })
        {
            var input = VariantTestKit.Input(1f, 2f, 3f, 4f);
            var decision = router.Route(VariantTestKit.Model, new RoutingContext(RequestedVariant: variant));
            router.ReportCompleted(decision, input, decision.Primary.Forward(input), TimeSpan.FromMilliseconds(20));
        }

        Assert.Contains(("density", 1.0, "model=pump-anomaly,variant=dense"), recorded);
        Assert.Contains(("density", 0.25, "model=pump-anomaly,variant=topk-0.75"), recorded);
        Assert.Contains(("duration", 0.02, "model=pump-anomaly,variant=topk-0.75"), recorded);
    }

    [Fact]
    public void ShadowErrorAndDensityHistograms_AdviseBucketsForTheirRange()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var factory = provider.GetRequiredService<IMeterFactory>();
        var advised = new ConcurrentDictionary<string, IReadOnlyList<double>>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (ReferenceEquals(instrument.Meter.Scope, factory) && instrument is Histogram<double> h && h.Advice?.HistogramBucketBoundaries is { } b)
                {
                    advised[instrument.Name] = b;
                }
            },
        };
        listener.Start();
        provider.GetRequiredService<VariantMetrics>();

        Assert.Contains(1e-4, advised["sparseinference_shadow_agreement_mae"]);
        Assert.Contains(1e-4, advised["sparseinference_shadow_max_error"]);
        Assert.Equal(1.0, advised["sparseinference_variant_attention_density"][^1]);
    }

    private static MeterListener Listen<T>(IServiceProvider provider, string name, Action<T, string> onMeasurement)
        where T : struct
    {
        var factory = provider.GetRequiredService<IMeterFactory>();
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                // Only this test's container: other tests publish on meters of the same name in parallel.
                if (instrument.Name == name && ReferenceEquals(instrument.Meter.Scope, factory))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<T>((_, value, tags, _) =>
            onMeasurement(value, string.Join(",", tags.ToArray().OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Key}={t.Value}"))));
        listener.Start();
        return listener;
    }

    private static async Task<T> WaitForAsync<T>(Func<T?> probe)
        where T : class
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (probe() is { } value)
            {
                return value;
            }

            await Task.Delay(10);
        }

        throw new TimeoutException("the shadow work did not complete within 10 s");
    }

    private static ForwardResult Result(params float[] values) =>
        new() { Output = values, Shape = [1, values.Length], ComputedPairs = 1, DensePairs = 1 };
}
