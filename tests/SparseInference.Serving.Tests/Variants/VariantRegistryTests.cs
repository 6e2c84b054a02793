using Microsoft.Extensions.DependencyInjection;
using SparseInference.Models;
using Xunit.Abstractions;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Tests.Variants;

public class VariantRegistryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task UpsertVariant_OnDefaultWeights_SharesTheLoadedModelWithoutLoading()
    {
        var source = new TestModelSource();
        using var provider = VariantTestKit.Services(source);
        var (_, registry, defaultModel) = VariantTestKit.Catalog(provider);

        var result = await registry.UpsertVariantAsync(new VariantDefinition("bigbird-0.75", "bigbird", 0.75));

        Assert.Equal(VariantChangeStatus.Created, result.Status);
        Assert.Same(defaultModel, registry.Current.Variants["bigbird-0.75"].LoadedModel);
        Assert.Same(defaultModel, registry.Current.Variants["dense"].LoadedModel);
        Assert.Equal(0, source.Loads);
    }

    [Fact]
    public void AddModel_ManifestVariants_AllDefinedOnSharedWeightsAtZeroTraffic()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var catalog = provider.GetRequiredService<VariantCatalog>();
        var model = new SpecEchoModel();

        var registry = catalog.AddModel("m", model, new VariantDefinition("dense", "dense"),
            [new VariantDefinition("bigbird-0.75", "bigbird", 0.75), new VariantDefinition("block-topk-0.9", "block-topk", 0.9)]);

        Assert.Equal(["bigbird-0.75", "block-topk-0.9", "dense"], registry.Current.Variants.Keys.Order(StringComparer.Ordinal));
        Assert.All(registry.Current.Variants.Values, v => Assert.Same(model, v.LoadedModel));
        Assert.Equal(1.0, registry.Current.Split.WeightOf("dense"));
        Assert.Equal("block-topk-0.9", registry.Route(new RoutingContext(RequestedVariant: "block-topk-0.9")).VariantName);
    }

    [Fact]
    public void AddModel_DuplicateManifestVariant_ThrowsNamingIt()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var catalog = provider.GetRequiredService<VariantCatalog>();

        var ex = Assert.Throws<ArgumentException>(() => catalog.AddModel("m", new SpecEchoModel(), new VariantDefinition("dense", "dense"), [new VariantDefinition("dense", "window", 0.5)]));

        Assert.Contains("Variant 'dense' of model 'm': name: expected each name once", ex.Message);
    }

    [Fact]
    public async Task UpsertVariant_TwoVariantsOnSameWeightsDirectory_LoadOnceAndShare()
    {
        var source = new TestModelSource();
        using var provider = VariantTestKit.Services(source);
        var (_, registry, defaultModel) = VariantTestKit.Catalog(provider);

        await VariantTestKit.WithVariants(registry,
            new VariantDefinition("ft-dense", "dense", WeightsDirectory: "/models/pump/finetuned"),
            new VariantDefinition("ft-bigbird", "bigbird", 0.5, WeightsDirectory: "/models/pump/finetuned/"));

        Assert.Equal(1, source.Loads);
        var a = registry.Current.Variants["ft-dense"].LoadedModel;
        Assert.Same(a, registry.Current.Variants["ft-bigbird"].LoadedModel);
        Assert.NotSame(defaultModel, a);
    }

    [Fact]
    public async Task UpsertVariant_WeightsFailToLoad_ReturnsBuildFailedAndOldVariantKeepsServing()
    {
        var source = new TestModelSource();
        using var provider = VariantTestKit.Services(source);
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "bigbird", 0.5));
        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 1), ("cand", 1)))).Succeeded);
        var before = registry.Current;

        var result = await registry.UpsertVariantAsync(new VariantDefinition("cand", "bigbird", 0.9, WeightsDirectory: "/models/missing"));

        Assert.Equal(VariantChangeStatus.BuildFailed, result.Status);
        Assert.Contains("does not exist", result.Error);
        Assert.Contains("'cand' keeps serving", result.Error);
        Assert.Same(before, registry.Current);
        var decision = registry.Route(new RoutingContext(RequestedVariant: "cand"));
        Assert.Equal(0.5, decision.Primary.Spec.Sparsity);
        Assert.Equal(SpecEchoModel.Expected(2f, decision.Primary.Spec, 0f), decision.Primary.Forward(VariantTestKit.Input(2f)).Output[0]);
    }

    [Fact]
    public async Task UpsertVariant_WarmupReturnsNaN_ReturnsBuildFailedAndTableUnchanged()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, model) = VariantTestKit.Catalog(provider);
        model.ProducesNaN = spec => spec.Sparsity > 0.8;
        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "topk", 0.5));
        var before = registry.Current;

        var result = await registry.UpsertVariantAsync(new VariantDefinition("cand", "topk", 0.95));

        Assert.Equal(VariantChangeStatus.BuildFailed, result.Status);
        Assert.Contains("warm-up forward: expected finite outputs", result.Error);
        Assert.Same(before, registry.Current);
        Assert.Equal(0.5, registry.Current.Variants["cand"].Spec.Sparsity);
    }

    [Fact]
    public async Task UpsertVariant_InvalidFields_ReturnsInvalidNamingEachField()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, _) = VariantTestKit.Catalog(provider);

        var result = await registry.UpsertVariantAsync(new VariantDefinition("Bad Name", "diagonal", 1.5));

        Assert.Equal(VariantChangeStatus.Invalid, result.Status);
        Assert.Contains("name: expected", result.Error);
        Assert.Contains("pattern: expected one of [dense, window", result.Error);
        Assert.Contains("actual 'diagonal'", result.Error);
        Assert.Contains("sparsity: expected a number in [0, 1), actual 1.5", result.Error);
    }

    [Fact]
    public async Task ConcurrentChanges_SecondWhileFirstLoads_GetsConflictAndWeightsLoadOnce()
    {
        var source = new TestModelSource { HoldLoads = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        using var provider = VariantTestKit.Services(source);
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        var definition = new VariantDefinition("ft", "bigbird", 0.75, WeightsDirectory: "/models/pump/ft");

        var first = registry.UpsertVariantAsync(definition);
        await source.LoadStarted.Task.WaitAsync(TimeSpan.FromSeconds(10));
        // Bounded waits: a registry that queued changes instead of refusing them would hang here.
        var second = await registry.UpsertVariantAsync(definition).WaitAsync(TimeSpan.FromSeconds(5));
        var third = await registry.SetSplitAsync(VariantTestKit.Split(("dense", 1))).WaitAsync(TimeSpan.FromSeconds(5));
        source.HoldLoads.SetResult();

        Assert.Equal(VariantChangeStatus.Conflict, second.Status);
        Assert.Contains("another change is being applied", second.Error);
        Assert.Equal(VariantChangeStatus.Conflict, third.Status);
        Assert.Equal(VariantChangeStatus.Created, (await first).Status);
        Assert.Equal(1, source.Loads);
    }

    [Fact]
    public async Task Route_ChangeWhileRequestInFlight_RequestFinishesOnTheVariantItStartedOn()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "bigbird", 0.25));
        var decision = registry.Route(new RoutingContext(RequestedVariant: "cand"));

        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "bigbird", 0.75));
        var first = decision.Primary.Forward(VariantTestKit.Input(1f)).Output[0];

        Assert.Equal(1f + 0.25f + 10f * SpecEchoModel.PatternIndex("bigbird"), first);
        Assert.Equal(0.75, registry.Route(new RoutingContext(RequestedVariant: "cand")).Primary.Spec.Sparsity);
    }

    [Fact]
    public async Task SwapSparsityEveryFewMs_EightTasksRoutingForTwoSeconds_NoFailuresAndResultsMatchNamedVariant()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("sparse", "bigbird", 0.1));
        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 1), ("sparse", 1)))).Succeeded);
        double[] levels = [0.1, 0.3, 0.5, 0.7, 0.9];
        // Runs at least 2 s and at least 100 swaps (a loaded two-core box slows the swapper), at most 20 s.
        using var stop = new CancellationTokenSource();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var seenLevels = new System.Collections.Concurrent.ConcurrentDictionary<double, bool>();
        long requests = 0;

        var workers = Enumerable.Range(0, 8).Select(worker => Task.Factory.StartNew(() =>
        {
            var n = 0;
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    var input = (float)(n % 7);
                    var decision = registry.Route(new RoutingContext($"w{worker}-{n++}"));
                    var variant = decision.Primary;
                    var result = variant.Forward(VariantTestKit.Input(input, input + 1)).Output;
                    var expectedSpec = variant.Name == "dense" ? new AttentionSpec("dense") : variant.Spec;
                    if (variant.Name == "sparse" && (variant.Spec.Pattern != "bigbird" || Array.IndexOf(levels, variant.Spec.Sparsity) < 0))
                    {
                        failures.Enqueue($"variant 'sparse' carries spec {variant.Spec}");
                    }

                    if (result[0] != SpecEchoModel.Expected(input, expectedSpec, 0f) || result[1] != SpecEchoModel.Expected(input + 1, expectedSpec, 0f))
                    {
                        failures.Enqueue($"{variant.Name} (sparsity {variant.Spec.Sparsity}) returned {result[0]}");
                    }

                    if (variant.Name == "sparse")
                    {
                        seenLevels[variant.Spec.Sparsity] = true;
                    }

                    Interlocked.Increment(ref requests);

                    // Requests arrive, they do not spin: leave the swapper its share of two cores.
                    Thread.Yield();
                }
                catch (Exception ex)
                {
                    failures.Enqueue(ex.ToString());
                }
            }
        }, TaskCreationOptions.LongRunning)).ToArray();

        var swaps = 0;
        var swapErrors = new List<string>();
        var swapper = Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                var result = registry.UpsertVariantAsync(new VariantDefinition("sparse", "bigbird", levels[(swaps + 1) % levels.Length])).GetAwaiter().GetResult();
                if (!result.Succeeded)
                {
                    swapErrors.Add(result.Error ?? result.Status.ToString());
                }

                swaps++;
                if ((clock.Elapsed >= TimeSpan.FromSeconds(2) && swaps >= 100) || clock.Elapsed >= TimeSpan.FromSeconds(20))
                {
                    stop.Cancel();
                }

                Thread.Sleep(2);
            }
        }, TaskCreationOptions.LongRunning);

        await Task.WhenAll([.. workers, swapper]);
        Assert.Empty(swapErrors);
        output.WriteLine($"{clock.Elapsed.TotalSeconds:0.0} s, {swaps} swaps, {requests} requests, sparsity levels seen: {seenLevels.Count}, failures: {failures.Count}");
        Assert.Empty(failures);
        Assert.True(swaps >= 100, $"only {swaps} swaps happened in {clock.Elapsed}");
        Assert.True(requests >= 1000, $"only {requests} requests ran");
        Assert.True(seenLevels.Count >= 3, $"requests saw only sparsity levels [{string.Join(", ", seenLevels.Keys)}]");
    }

    [Fact]
    public async Task PromoteThenRollback_RestoresThePreviousSplit()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "block-topk", 0.9));
        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 9), ("cand", 1)))).Succeeded);

        var promoted = await registry.PromoteAsync("cand");
        Assert.Equal(1.0, promoted.Table.Split.WeightOf("cand"));
        Assert.Equal("cand", registry.Route(new RoutingContext("any-line")).VariantName);

        var rolledBack = await registry.RollbackAsync("test");
        Assert.Equal(VariantChangeStatus.Applied, rolledBack.Status);
        Assert.Equal(0.1, registry.Current.Split.WeightOf("cand"), 12);

        Assert.Equal(VariantChangeStatus.Applied, (await registry.RollbackAsync("test")).Status);
        Assert.Equal(1.0, registry.Current.Split.WeightOf("dense"));
        var none = await registry.RollbackAsync("test");
        Assert.Equal(VariantChangeStatus.Conflict, none.Status);
        Assert.Contains("expected an earlier split", none.Error);
    }

    [Fact]
    public async Task DeleteVariant_WithTraffic_ConflictsAndWithoutTraffic_Removes()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, _) = VariantTestKit.Catalog(provider);
        await VariantTestKit.WithVariants(registry, new VariantDefinition("cand", "window", 0.5));
        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 1)) with { Shadow = new ShadowConfig("cand", 10) })).Succeeded);

        var refused = await registry.DeleteVariantAsync("cand");
        Assert.Equal(VariantChangeStatus.Conflict, refused.Status);
        Assert.Contains("shadow candidate", refused.Error);

        Assert.True((await registry.SetSplitAsync(VariantTestKit.Split(("dense", 1)))).Succeeded);
        Assert.Equal(VariantChangeStatus.Applied, (await registry.DeleteVariantAsync("cand")).Status);
        Assert.False(registry.Current.Variants.ContainsKey("cand"));
        Assert.Equal(VariantChangeStatus.NotFound, (await registry.DeleteVariantAsync("cand")).Status);
    }

    [Fact]
    public async Task SetSplit_UnknownVariantAndNegativeWeight_InvalidNamingFields()
    {
        using var provider = VariantTestKit.Services(new TestModelSource());
        var (_, registry, _) = VariantTestKit.Catalog(provider);

        var result = await registry.SetSplitAsync(VariantTestKit.Split(("dense", -1), ("ghost", 1)) with { Shadow = new ShadowConfig("dense", 150) });

        Assert.Equal(VariantChangeStatus.Invalid, result.Status);
        Assert.Contains("weights.dense: expected a finite number >= 0, actual -1", result.Error);
        Assert.Contains("weights.ghost: expected a defined variant [dense], actual 'ghost'", result.Error);
        Assert.Contains("shadow.percent: expected a number in [0, 100], actual 150", result.Error);
    }
}
