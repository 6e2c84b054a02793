using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using SparseInference.Deploy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace SparseInference.Deploy.Tests.Replicas;

/// <summary>
/// One rollout state for a fleet: three real server processes sharing one state directory (the ReadWriteMany
/// volume), each with a model volume of its own, behind a round-robin proxy with a load generator running
/// throughout. Every change goes through one replica's admin API; the others follow through the store.
/// </summary>
public sealed class FleetRolloutTests(ITestOutputHelper output)
{
    private const int ReplicaCount = 3;
    private const string Dense = "dense";
    private const string Window = "window-0.75";
    private const string OwnWeights = "window-own-weights";

    /// <summary>Inside the model's directory on replicas 0 and 1; replica 2's volume lacks it.</summary>
    private const string CandidateWeights = "variants/candidate";

    private const string SplitExperiment = "fleet-split";
    private const string GuardrailExperiment = "fleet-guardrail";

    private static readonly TimeSpan StartupBudget = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The convergence bound held here: one poll interval (the default 1 s; file-system notifications are off, as on
    /// NFS or CephFS where another machine's writes raise none) plus the time to build the change (nothing to load
    /// for a split), with room for a 2-core machine running three servers and the load.
    /// </summary>
    private static readonly TimeSpan ConvergenceBound = TimeSpan.FromSeconds(5);

    /// <summary>A guardrail trip also waits for the evaluation interval (250 ms here) before the rollback is written.</summary>
    private static readonly TimeSpan TripBudget = TimeSpan.FromSeconds(15);

    /// <summary>Each phase ends only once the load has had this many more answers, so it spans every phase.</summary>
    private const int PhaseRequests = 20;

    private static readonly (string Variant, double Weight)[] HalfAndHalf = [(Dense, 50), (Window, 50)];
    private static readonly (string Variant, double Weight)[] CandidateAtTen = [(Dense, 90), (Window, 10)];

    [Fact]
    public async Task SharedRollout_SplitRestartGuardrailTripAndFailedBuild_EveryReplicaFollowsAndNoRequestFails()
    {
        var options = new ReplicaSetOptions
        {
            Environment = new Dictionary<string, string>
            {
                ["SparseInference__State__WatchFileSystem"] = "false",
                ["SparseInference__Variants__Guardrails__EvaluationInterval"] = "00:00:00.250",
            },
            PrepareModels = (index, models) =>
            {
                if (index < 2)
                {
                    CopyDirectory(Path.Combine(models, ReplicaSet.Model, "1"), Path.Combine(models, ReplicaSet.Model, CandidateWeights));
                }
            },
        };
        var clock = Stopwatch.StartNew();
        using var set = await ReplicaSet.StartAsync(ReplicaCount, StartupBudget, options);
        output.WriteLine($"{ReplicaCount} replicas ready after {clock.Elapsed.TotalSeconds:F1} s");
        await using var proxy = new RoundRobinProxy(set.Replicas.Select(r => r.RestEndpoint).ToList());
        // Keys that stay on dense under the guardrail experiment's split, so that only the requests sent to one
        // replica below feed a candidate's guardrail window.
        var loadKeys = Enumerable.Range(0, 400).Select(i => $"load-{i:D3}").Where(k => DocumentedStickyHash.Variant(GuardrailExperiment, k, CandidateAtTen) == Dense).Take(30).ToList();
        await using var load = new LoadGenerator(proxy.BaseAddress, loadKeys, workers: 3);
        await load.WaitForCompletedAsync(10);

        // 1. A split change through one replica reaches all three within the bound.
        var (status, table) = await set.AdminAsync(set.Replicas[0], HttpMethod.Put, "split", SplitBody(HalfAndHalf, SplitExperiment));
        Assert.True(status == HttpStatusCode.OK, $"PUT split: {(int)status} {table}");
        var splitRevision = (long)table!["version"]!;
        var convergence = await set.WaitForRevisionAsync(splitRevision, set.Replicas, ConvergenceBound);
        output.WriteLine($"split revision {splitRevision} served by replicas 0/1/2 after {string.Join(" / ", convergence.Select(t => $"{t.TotalMilliseconds:F0} ms"))} (bound {ConvergenceBound.TotalSeconds:F0} s)");
        var phases = new List<(string Phase, int Requests)> { ("split", await load.WaitForCompletedAsync(load.Completed + PhaseRequests)) };

        // 2. A killed replica comes back on the same split and the same assignment for 1,000 keys.
        var keys = Enumerable.Range(0, 1000).Select(i => $"line-{i:D4}").ToList();
        var restartee = set.Replicas[1];
        var before = await AssignAsync(restartee, keys);
        Assert.All(keys, k => Assert.Equal(DocumentedStickyHash.Variant(SplitExperiment, k, HalfAndHalf), before[k]));
        ReplicaSet.Kill(restartee);
        Assert.True(restartee.Process.WaitForExit(TimeSpan.FromSeconds(10)), "the killed replica still runs 10 s after SIGKILL");
        var restarted = await set.RestartAsync(restartee, StartupBudget);
        var rollout = await set.RolloutAsync(restarted);
        Assert.True(rollout is not null && (long)rollout["appliedRevision"]! == splitRevision && (bool)rollout["converged"]!,
            $"the restarted replica was ready on another state: {rollout}");
        var after = await AssignAsync(restarted, keys);
        var moved = keys.Where(k => before[k] != after[k]).ToList();
        Assert.True(moved.Count == 0, $"{moved.Count} of {keys.Count} keys changed variant across the restart, e.g. {string.Join(", ", moved.Take(5))}");
        output.WriteLine($"restart: {keys.Count} keys, {keys.Count(k => after[k] == Window)} on {Window}, none moved");
        phases.Add(("restart", await load.WaitForCompletedAsync(load.Completed + PhaseRequests)));

        // 3. A guardrail trip on one replica rolls all three back, and the shared state records it.
        await set.ApplySplitAsync([(Dense, 100)], GuardrailExperiment, ConvergenceBound);
        (status, table) = await set.AdminAsync(set.Replicas[0], HttpMethod.Put, "guardrails",
            new JsonObject { ["enabled"] = true, ["minSamples"] = 20, ["maxP99LatencyMs"] = 0.001 });
        Assert.True(status == HttpStatusCode.OK, $"PUT guardrails: {(int)status} {table}");
        (status, table) = await set.AdminAsync(set.Replicas[0], HttpMethod.Put, "split", SplitBody(CandidateAtTen, GuardrailExperiment));
        Assert.True(status == HttpStatusCode.OK, $"PUT split: {(int)status} {table}");
        var candidateRevision = (long)table!["version"]!;
        await set.WaitForRevisionAsync(candidateRevision, set.Replicas, ConvergenceBound);
        var tripper = set.Replicas[2];
        var candidateKeys = Enumerable.Range(0, 1000).Select(i => $"trip-{i:D3}").Where(k => DocumentedStickyHash.Variant(GuardrailExperiment, k, CandidateAtTen) == Window).Take(25).ToList();
        var served = await AssignAsync(tripper, candidateKeys);
        Assert.All(candidateKeys, k => Assert.Equal(Window, served[k]));
        var rollbackTimes = await set.WaitForRevisionAsync(candidateRevision + 1, set.Replicas, TripBudget);
        var document = (await set.RolloutAsync(set.Replicas[0]))!["serving"]!;
        Assert.Equal(candidateRevision + 1, (long)document["revision"]!);
        Assert.Equal("""{"dense":100}""", document["split"]!["weights"]!.ToJsonString());
        var trip = document["lastGuardrailTrip"]!;
        Assert.Equal(
            (ReplicaSet.ReplicaName(tripper), Window, "p99_latency_ms", candidateRevision),
            ((string?)trip["replica"], (string?)trip["variant"], (string?)trip["bound"], (long)trip["revision"]!));
        Assert.Contains($"{Window} crossed p99_latency_ms", (string?)trip["reason"]);
        Assert.Equal(1, await set.MetricAsync(tripper, "sparseinference_variant_guardrail_trips_total", ("model", ReplicaSet.Model), ("variant", Window), ("bound", "p99_latency_ms")));
        foreach (var other in set.Replicas.Where(r => r.Index != tripper.Index))
        {
            Assert.Null(await set.MetricAsync(other, "sparseinference_variant_guardrail_trips_total", ("model", ReplicaSet.Model), ("variant", Window), ("bound", "p99_latency_ms")));
        }

        output.WriteLine($"guardrail trip on replica {tripper.Index}: revision {candidateRevision + 1} served by replicas 0/1/2 after {string.Join(" / ", rollbackTimes.Select(t => $"{t.TotalMilliseconds:F0} ms"))}: {trip["reason"]}");
        (status, table) = await set.AdminAsync(set.Replicas[0], HttpMethod.Delete, "guardrails");
        Assert.True(status == HttpStatusCode.OK, $"DELETE guardrails: {(int)status} {table}");
        // One rollback, not a cascade through the history: the guardrails' removal is the very next revision.
        Assert.Equal(candidateRevision + 2, (long)table!["version"]!);
        await set.WaitForRevisionAsync((long)table!["version"]!, set.Replicas, ConvergenceBound);
        phases.Add(("guardrail", await load.WaitForCompletedAsync(load.Completed + PhaseRequests)));

        // 4. A state one replica cannot build (its volume lacks the weights) is reported there; all keep serving.
        var refuser = set.Replicas[2];
        var servedBefore = (long)(await set.RolloutAsync(refuser))!["appliedRevision"]!;
        (status, table) = await set.AdminAsync(set.Replicas[0], HttpMethod.Put, $"variants/{OwnWeights}",
            new JsonObject { ["pattern"] = "window", ["sparsity"] = 0.5, ["weights"] = CandidateWeights });
        Assert.True(status == HttpStatusCode.Created, $"PUT variant: {(int)status} {table}");
        var ownRevision = (long)table!["version"]!;
        await set.WaitForRevisionAsync(ownRevision, [set.Replicas[0], set.Replicas[1]], ConvergenceBound);
        var refused = await WaitForRefusalAsync(set, refuser, ownRevision, ConvergenceBound);
        Assert.Equal((servedBefore, false, "build_failed"), ((long)refused["appliedRevision"]!, (bool)refused["converged"]!, (string?)refused["lastError"]!["reason"]));
        Assert.Contains($"building variant '{OwnWeights}'", (string?)refused["lastError"]!["message"]);
        Assert.Contains("lacks them", (string?)refused["lastError"]!["message"]);
        Assert.Equal(servedBefore, await set.MetricAsync(refuser, "sparseinference_rollout_revision", ("model", ReplicaSet.Model)));
        Assert.Equal(ownRevision, await set.MetricAsync(refuser, "sparseinference_rollout_desired_revision", ("model", ReplicaSet.Model)));
        Assert.True(await set.MetricAsync(refuser, "sparseinference_rollout_apply_failures_total", ("model", ReplicaSet.Model), ("reason", "build_failed")) >= 1);
        Assert.Equal(0, await set.MetricAsync(set.Replicas[0], "sparseinference_rollout_apply_failures_total", ("model", ReplicaSet.Model), ("reason", "build_failed")));
        var stillServing = await AssignAsync(refuser, ["after-refusal"]);
        Assert.Equal(Dense, stillServing["after-refusal"]);
        output.WriteLine($"revision {ownRevision} refused by replica {refuser.Index} (serving {servedBefore}): {refused["lastError"]!["message"]}");
        phases.Add(("failed build", await load.WaitForCompletedAsync(load.Completed + PhaseRequests)));

        var outcomes = await load.StopAsync();
        var failed = outcomes.Where(o => !o.Outcome.Succeeded).ToList();
        output.WriteLine($"load: {outcomes.Count} requests ({string.Join(", ", phases.Select((p, i) => $"{p.Phase} {p.Requests - (i == 0 ? 0 : phases[i - 1].Requests)}"))}), " +
            $"{outcomes.Count(o => o.Outcome.Attempts > 1)} retried, {failed.Count} failed; proxy connections per replica {string.Join("/", proxy.ConnectionsPerBackend)}; {clock.Elapsed.TotalSeconds:F1} s in all");
        Assert.True(failed.Count == 0, $"{failed.Count} of {outcomes.Count} requests failed:\n{string.Join("\n", failed.Take(5).Select(f => $"{f.Key}: {string.Join(" | ", f.Outcome.Failures)}"))}");
    }

    /// <summary>tools/rollout/rollout.sh pointed at one replica: each step it takes reaches the other one through the store.</summary>
    [Fact]
    public async Task RolloutScript_PointedAtOneReplica_EveryStepReachesEveryReplica()
    {
        var options = new ReplicaSetOptions { Environment = new Dictionary<string, string> { ["SparseInference__State__WatchFileSystem"] = "false" } };
        using var set = await ReplicaSet.StartAsync(2, StartupBudget, options);

        var run = ExternalTool.Run(
            "bash",
            [
                RepositoryLayout.PathOf("tools", "rollout", "rollout.sh"), "--url", $"http://127.0.0.1:{set.Replicas[0].AdminPort}", "--model", ReplicaSet.Model,
                "--candidate", Window, "--steps", "shadow,10", "--flag-threshold", "0.5", "--guardrails", """{"enabled":true,"maxErrorRate":0.05}""", "--yes",
            ],
            environment: new Dictionary<string, string> { ["SPARSEINFERENCE_ADMIN_TOKEN"] = ReplicaSet.AdminToken },
            timeout: TimeSpan.FromMinutes(1));

        Assert.True(run.ExitCode == 0, run.Describe());
        // Guardrails, the shadow step and the 10% step: three revisions, each printed as the script wrote it.
        Assert.Contains("rollout revision 3 in the store", run.StandardOutput, StringComparison.Ordinal);
        await set.WaitForRevisionAsync(3, set.Replicas, ConvergenceBound);
        var other = (await set.RolloutAsync(set.Replicas[1]))!["serving"]!;
        Assert.Equal($$$"""{"weights":{"dense":90,"{{{Window}}}":10},"shadow":{"variant":"{{{Window}}}","percent":100,"flagThreshold":0.5}}""", other["split"]!.ToJsonString());
        Assert.Equal((true, 0.05), ((bool)other["guardrails"]!["enabled"]!, (double)other["guardrails"]!["maxErrorRate"]!));
    }

    private static JsonObject SplitBody(IEnumerable<(string Variant, double Weight)> weights, string experiment) => new()
    {
        ["weights"] = new JsonObject(weights.Select(w => KeyValuePair.Create(w.Variant, (JsonNode?)w.Weight))),
        ["experiment"] = experiment,
    };

    /// <summary>Each key sent once straight to one replica; returns the variant that served it.</summary>
    private static async Task<Dictionary<string, string>> AssignAsync(Replica replica, IReadOnlyList<string> keys)
    {
        using var client = new RetryingInferenceClient(new Uri($"http://127.0.0.1:{replica.RestPort}"));
        var result = new ConcurrentDictionary<string, string>();
        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (key, token) =>
        {
            var outcome = await client.InferAsync(key, steps: 16, seed: 0, token);
            Assert.True(outcome.Succeeded, $"replica {replica.Index}, key {key}: {string.Join(" | ", outcome.Failures)}");
            result[key] = outcome.VariantHeader!;
        });
        return new Dictionary<string, string>(result);
    }

    private static async Task<JsonNode> WaitForRefusalAsync(ReplicaSet set, Replica replica, long revision, TimeSpan budget)
    {
        var clock = Stopwatch.StartNew();
        JsonNode? rollout = null;
        while (clock.Elapsed < budget)
        {
            rollout = await set.RolloutAsync(replica);
            if (rollout?["lastError"] is { } error && (long)error["revision"]! == revision)
            {
                return rollout;
            }

            await Task.Delay(25);
        }

        throw new Xunit.Sdk.XunitException($"replica {replica.Index}: expected revision {revision} reported as refused within {budget}, actual {rollout}");
    }

    private static void CopyDirectory(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.EnumerateFiles(source))
        {
            File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        }
    }

    /// <summary>Workers sending keyed requests through the proxy back to back, with the client retry policy of docs/deploy.md.</summary>
    private sealed class LoadGenerator : IAsyncDisposable
    {
        private readonly RetryingInferenceClient _client;
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentQueue<(string Key, InferenceOutcome Outcome)> _outcomes = new();
        private readonly List<Task> _workers;

        public LoadGenerator(Uri proxy, IReadOnlyList<string> keys, int workers)
        {
            _client = new RetryingInferenceClient(proxy);
            _workers = [.. Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
            {
                for (var n = 0; !_stop.IsCancellationRequested; n++)
                {
                    var key = keys[(w * 7 + n) % keys.Count];
                    _outcomes.Enqueue((key, await _client.InferAsync(key, steps: 16, seed: n, CancellationToken.None)));
                }
            }))];
        }

        public int Completed => _outcomes.Count;

        /// <summary>Waits until <paramref name="count"/> requests have their final outcome; returns the count then.</summary>
        public async Task<int> WaitForCompletedAsync(int count)
        {
            var clock = Stopwatch.StartNew();
            while (Completed < count)
            {
                if (clock.Elapsed > TimeSpan.FromSeconds(60))
                {
                    throw new Xunit.Sdk.XunitException($"load: expected {count} answers within 60 s, actual {Completed}");
                }

                await Task.Delay(10);
            }

            return Completed;
        }

        public async Task<IReadOnlyList<(string Key, InferenceOutcome Outcome)>> StopAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_workers).WaitAsync(TimeSpan.FromSeconds(30));
            return [.. _outcomes];
        }

        public async ValueTask DisposeAsync()
        {
            if (!_stop.IsCancellationRequested)
            {
                await StopAsync();
            }

            _client.Dispose();
            _stop.Dispose();
        }
    }
}
