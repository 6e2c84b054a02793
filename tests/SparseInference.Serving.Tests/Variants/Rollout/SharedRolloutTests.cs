using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using SparseInference.Serving.State;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Guardrails;
using SparseInference.Serving.Variants.Rollout;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Tests.Variants.Rollout;

/// <summary>
/// Several replicas in one process, each with its own service provider (registry, guardrails, store instance) on one
/// state directory, as pods share one volume. The multi-process version is in the deployment tests.
/// </summary>
public sealed class SharedRolloutTests : IDisposable
{
    private static readonly VariantDefinition Dense = new("dense", "dense");
    private static readonly VariantDefinition Candidate = new("cand", "block-topk", 0.9);

    private readonly string _stateDirectory = VariantTestKit.TempStateDirectory();
    private readonly List<ServiceProvider> _providers = [];

    public void Dispose() => _providers.ForEach(p => p.Dispose());

    [Fact]
    public async Task SetSplit_OnOneReplica_OtherReplicaSyncsToTheSameRevisionAndStickyAssignment()
    {
        var a = await ReplicaAsync();
        var b = await ReplicaAsync();
        await VariantTestKit.WithVariants(a.Registry, Candidate);

        var result = await a.Registry.SetSplitAsync(VariantTestKit.Split(("dense", 70), ("cand", 30)) with { Experiment = "shared" });
        var before = b.Registry.Current;
        var status = await b.Registry.SyncAsync();

        Assert.True(result.Succeeded, result.Error);
        Assert.Equal(0, before.Version);
        Assert.Equal(2, result.Table.Version);
        Assert.Equal(new RolloutStatus(2, 2, null, status.CheckedAt), status);
        Assert.Equal(a.Registry.Current.Version, b.Registry.Current.Version);
        Assert.Equal("shared", b.Registry.Current.Experiment);
        var keys = Enumerable.Range(0, 1000).Select(i => $"line-{i}").ToList();
        Assert.Equal(keys.Select(k => Sticky(a, k)), keys.Select(k => Sticky(b, k)));
        Assert.InRange(keys.Count(k => Sticky(b, k) == "cand"), 250, 350);
    }

    [Fact]
    public async Task AddModelAsync_NewReplica_ServesTheStoredStateBeforeItsFirstRequest()
    {
        var a = await ReplicaAsync();
        await VariantTestKit.WithVariants(a.Registry, Candidate);
        await a.Registry.SetSplitAsync(VariantTestKit.Split(("dense", 50), ("cand", 50)) with { Experiment = "restart" });

        var restarted = await ReplicaAsync();

        Assert.Equal(2, restarted.Registry.Current.Version);
        Assert.Equal(Candidate, restarted.Registry.Current.Variants["cand"].Definition);
        var keys = Enumerable.Range(0, 1000).Select(i => $"line-{i}").ToList();
        Assert.Equal(keys.Select(k => Sticky(a, k)), keys.Select(k => Sticky(restarted, k)));
        Assert.True(restarted.Registry.Status.Converged);
    }

    [Fact]
    public async Task Sync_StateThatFailsToBuildOnOneReplica_ReportedThereWhileItKeepsServingItsRevision()
    {
        var a = await ReplicaAsync();
        var b = await ReplicaAsync();
        b.Source.MissingHere.Add("weights/cand");
        var served = b.Registry.Current;

        var created = await a.Registry.UpsertVariantAsync(Candidate with { WeightsDirectory = "weights/cand" });
        var status = await b.Registry.SyncAsync();

        Assert.Equal(VariantChangeStatus.Created, created.Status);
        Assert.Same(served, b.Registry.Current);
        Assert.Equal((1L, 0L, false), (status.DesiredRevision, status.AppliedRevision, status.Converged));
        Assert.Equal((1L, RolloutApplyFailures.BuildFailed), (status.LastError!.Revision, status.LastError.Reason));
        Assert.Contains("building variant 'cand'", status.LastError.Message);
        Assert.Contains("does not exist", status.LastError.Message);
        Assert.Equal("dense", b.Registry.Route(new RoutingContext(Key: "line-1")).VariantName);

        // Retried after the retry interval (not before), and applied once the weights are there.
        b.Source.MissingHere.Clear();
        var beforeRetry = await b.Registry.SyncAsync();
        Assert.Equal((0L, 1L), (beforeRetry.AppliedRevision, beforeRetry.LastError?.Revision));
        Assert.Same(served, b.Registry.Current);
        b.Time.Advance(TimeSpan.FromSeconds(31));
        Assert.True((await b.Registry.SyncAsync()).Converged);
        Assert.Equal(1, b.Registry.Current.Version);
    }

    [Fact]
    public async Task Change_AnotherReplicaWritesWhileThisOneBuilds_ConflictNothingWrittenAndNothingSwapped()
    {
        var a = await ReplicaAsync();
        var b = await ReplicaAsync();
        a.Source.HoldLoads = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var served = a.Registry.Current;

        var building = a.Registry.UpsertVariantAsync(Candidate with { WeightsDirectory = "weights/cand" });
        await a.Source.LoadStarted.Task.WaitAsync(TimeSpan.FromSeconds(20));
        var other = await b.Registry.UpsertVariantAsync(new VariantDefinition("other", "window", 0.5));
        a.Source.HoldLoads.SetResult();
        var result = await building;

        Assert.Equal(VariantChangeStatus.Created, other.Status);
        Assert.Equal(VariantChangeStatus.Conflict, result.Status);
        Assert.Contains("expected revision 0 in the store, actual 1", result.Error);
        Assert.Same(served, a.Registry.Current);
        var stored = await a.Provider.GetRequiredService<RolloutStore>().ReadAsync(VariantTestKit.Model);
        Assert.Equal(["other"], stored!.Variants.Select(v => v.Name));
    }

    [Fact]
    public async Task Change_OnAReplicaBehindTheStore_StartsFromTheStoredStateNotTheServedOne()
    {
        var a = await ReplicaAsync();
        var b = await ReplicaAsync();
        await VariantTestKit.WithVariants(a.Registry, Candidate);

        var split = await b.Registry.SetSplitAsync(VariantTestKit.Split(("dense", 90), ("cand", 10)));

        Assert.True(split.Succeeded, split.Error);
        Assert.Equal(2, b.Registry.Current.Version);
        Assert.Equal(0.1, b.Registry.Current.Split.WeightOf("cand"), 12);
    }

    [Fact]
    public async Task Guardrail_TripOnOneReplica_RollsBackTheSharedStateOnceAndRecordsTheTrip()
    {
        var settings = new Dictionary<string, string?>
        {
            ["SparseInference:Variants:Guardrails:Enabled"] = "true",
            ["SparseInference:Variants:Guardrails:MinSamples"] = "20",
            ["SparseInference:Variants:Guardrails:MaxP99LatencyMs"] = "50",
        };
        var a = await ReplicaAsync(settings);
        var b = await ReplicaAsync(settings);
        await VariantTestKit.WithVariants(a.Registry, Candidate);
        await a.Registry.SetSplitAsync(VariantTestKit.Split(("dense", 90), ("cand", 10)));
        await b.Registry.SyncAsync();
        foreach (var replica in new[] { a, b })
        {
            for (var i = 0; i < 20; i++)
            {
                replica.Monitor.RecordRequest(VariantTestKit.Model, "cand", TimeSpan.FromMilliseconds(80), failed: false);
            }
        }

        var tripA = Assert.Single(await a.Monitor.EvaluateAsync());
        // b judged revision 2 too, but the store has moved on: it must not roll back a second time.
        var tripB = Assert.Single(await b.Monitor.EvaluateAsync());
        await b.Registry.SyncAsync();

        Assert.Equal(VariantChangeStatus.Applied, tripA.Outcome);
        Assert.Equal(VariantChangeStatus.Conflict, tripB.Outcome);
        foreach (var replica in new[] { a, b })
        {
            var state = replica.Registry.Current.Rollout;
            Assert.Equal(3, state.Revision);
            Assert.Equal(1.0, state.Split.WeightOf("dense"));
            var trip = state.LastGuardrailTrip!;
            Assert.Equal((RolloutReplica.Name, "cand", "p99_latency_ms", 50.0, 80.0, 2L), (trip.Replica, trip.Variant, trip.Bound, trip.Limit, trip.Actual, trip.Revision));
            Assert.Contains("cand crossed p99_latency_ms", trip.Reason);
            Assert.Equal("guardrail via " + RolloutReplica.Name, state.UpdatedBy);
        }

        Assert.Empty(await b.Monitor.EvaluateAsync());
    }

    [Fact]
    public async Task Guardrails_SetInTheRolloutState_ApplyOnEveryReplicaWhileConfigurationHasThemOff()
    {
        var a = await ReplicaAsync();
        var b = await ReplicaAsync();
        await VariantTestKit.WithVariants(a.Registry, Candidate);
        var bounds = new GuardrailSettings(true, TimeSpan.FromMinutes(1), 10, MaxErrorRate: 0.1, MaxP99LatencyMs: null, MaxMeanAbsoluteError: null, MinFlagAgreement: null);
        Assert.True((await a.Registry.SetGuardrailsAsync(bounds)).Succeeded);
        await a.Registry.SetSplitAsync(VariantTestKit.Split(("dense", 90), ("cand", 10)));
        await b.Registry.SyncAsync();

        for (var i = 0; i < 10; i++)
        {
            b.Monitor.RecordRequest(VariantTestKit.Model, "cand", TimeSpan.FromMilliseconds(1), failed: i < 5);
        }

        var trip = Assert.Single(await b.Monitor.EvaluateAsync());
        await a.Registry.SyncAsync();

        Assert.Equal(bounds, b.Registry.Current.Rollout.Guardrails);
        Assert.Equal(("error_rate", VariantChangeStatus.Applied), (trip.Bound, trip.Outcome));
        Assert.Equal(1.0, a.Registry.Current.Split.WeightOf("dense"));
    }

    [Fact]
    public async Task Sync_HandWrittenDocuments_InvalidOneReportedAndKeptOutThenValidOneApplied()
    {
        var a = await ReplicaAsync();
        var store = a.Provider.GetRequiredService<IStateStore>();
        var path = Path.Combine(_stateDirectory, VariantTestKit.Model, "rollout.json");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllTextAsync(path, """{"revision": 4, "split": {"weights": {"dense": 50, "ghost": 50}}}""");

        var invalid = await a.Registry.SyncAsync();

        Assert.Equal(0, a.Registry.Current.Version);
        Assert.Equal(RolloutApplyFailures.Invalid, invalid.LastError!.Reason);
        Assert.Contains("weights.ghost: expected a defined variant [dense, window-0.5]", invalid.LastError.Message);

        await File.WriteAllTextAsync(path, """
            {
              "revision": 5,
              // GitOps: committed by hand
              "variants": [{"name": "cand", "pattern": "window", "sparsity": 0.5}],
              "split": {"weights": {"dense": 50, "cand": 50}, "experiment": "by-hand"}
            }
            """);
        var valid = await a.Registry.SyncAsync();

        Assert.True(valid.Converged);
        Assert.Equal((5L, "by-hand"), (a.Registry.Current.Version, a.Registry.Current.Experiment));
        Assert.Equal(5, (await store.ReadAsync(RolloutStore.DocumentId(VariantTestKit.Model)))!.Revision);
    }

    [Fact]
    public async Task Document_AfterChanges_HoldsEveryFieldOfTheStateReadably()
    {
        var a = await ReplicaAsync();
        await VariantTestKit.WithVariants(a.Registry, Candidate);
        await a.Registry.SetSplitAsync(new SplitConfig([new SplitWeight("dense", 80), new SplitWeight("cand", 20)], new ShadowConfig("cand", 25, 0.5), "exp-1"));
        await a.Registry.DeleteVariantAsync("window-0.5");

        var text = await File.ReadAllTextAsync(Path.Combine(_stateDirectory, VariantTestKit.Model, "rollout.json"));
        var document = JsonNode.Parse(text)!;

        Assert.Contains("\n  \"revision\": 3,", text);
        Assert.Equal(VariantTestKit.Model, (string?)document["model"]);
        Assert.Equal("delete via " + RolloutReplica.Name, (string?)document["updatedBy"]);
        Assert.Equal("""[{"name":"cand","pattern":"block-topk","sparsity":0.9,"blockSize":16,"globalBlocks":1,"seed":0}]""", document["variants"]!.ToJsonString());
        Assert.Equal("""["window-0.5"]""", document["removedVariants"]!.ToJsonString());
        Assert.Equal("""{"weights":{"dense":80,"cand":20},"shadow":{"variant":"cand","percent":25,"flagThreshold":0.5},"experiment":"exp-1"}""", document["split"]!.ToJsonString());
        Assert.Equal("""[{"weights":{"dense":1}}]""", document["history"]!.ToJsonString());
        Assert.DoesNotContain("window-0.5", a.Registry.Current.Variants.Keys);
    }

    private static string Sticky(Replica replica, string key) => replica.Registry.Route(new RoutingContext(Key: key)).VariantName;

    private async Task<Replica> ReplicaAsync(Dictionary<string, string?>? settings = null)
    {
        var source = new TestModelSource();
        var time = new ManualTimeProvider();
        var all = new Dictionary<string, string?>(settings ?? []) { ["SparseInference:State:Directory"] = _stateDirectory };
        var provider = VariantTestKit.Services(source, random: new SeededRandom(1), time: time, settings: all);
        _providers.Add(provider);
        var (registry, failures) = await provider.GetRequiredService<VariantCatalog>()
            .AddModelAsync(VariantTestKit.Model, new SpecEchoModel(), Dense, [new VariantDefinition("window-0.5", "window", 0.5)]);
        Assert.Empty(failures);
        return new Replica(provider, registry, provider.GetRequiredService<GuardrailMonitor>(), source, time);
    }

    private sealed record Replica(ServiceProvider Provider, VariantRegistry Registry, GuardrailMonitor Monitor, TestModelSource Source, ManualTimeProvider Time);
}
