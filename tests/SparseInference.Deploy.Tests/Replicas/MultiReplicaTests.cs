using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace SparseInference.Deploy.Tests.Replicas;

/// <summary>
/// Three real server processes on loopback behind a round-robin proxy, configured alike as the replicas of
/// one Deployment are: the same settings file, the same models, one shared rollout state. Checks that
/// a routing key keeps its variant whichever replica serves it, and that losing a replica under load loses no
/// request of a client that follows the retry policy of docs/deploy.md.
/// </summary>
public sealed class MultiReplicaTests(ITestOutputHelper output)
{
    private const int ReplicaCount = 3;
    private const string Experiment = "replicas-dense-vs-window";
    private const string Dense = "dense";
    private const string Window = "window-0.75";

    private static readonly TimeSpan StartupBudget = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ConvergenceBudget = TimeSpan.FromSeconds(10);
    private static readonly (string Variant, double Weight)[] Split = [(Dense, 50), (Window, 50)];

    [Fact]
    public async Task Infer_RoutingKeyOverThreeReplicas_EachKeyKeepsOneVariant()
    {
        using var set = await ReplicaSet.StartAsync(ReplicaCount, StartupBudget);
        await set.ApplySplitAsync(Split, Experiment, ConvergenceBudget);
        await using var proxy = new RoundRobinProxy(set.Replicas.Select(r => r.RestEndpoint).ToList());
        using var throughProxy = new RetryingInferenceClient(proxy.BaseAddress);
        var direct = set.Replicas.Select(r => new RetryingInferenceClient(new Uri($"http://127.0.0.1:{r.RestPort}"))).ToList();
        try
        {
            // Per key: one request straight to each replica (so every key is served by every replica) and three
            // through the proxy, all shuffled and sent from several tasks at once.
            var keys = Enumerable.Range(0, 50).Select(i => $"line-{i:D2}").ToList();
            var work = keys.SelectMany(key => direct.Concat(Enumerable.Repeat(throughProxy, 3)).Select((client, n) => (key, client, n))).ToList();
            Shuffle(work, seed: 7);
            var outcomes = new ConcurrentBag<(string Key, InferenceOutcome Outcome)>();
            await Parallel.ForEachAsync(work, new ParallelOptions { MaxDegreeOfParallelism = 6 }, async (item, token) =>
                outcomes.Add((item.key, await item.client.InferAsync(item.key, steps: 16, seed: item.n, token))));

            var failed = outcomes.Where(o => !o.Outcome.Succeeded).ToList();
            Assert.True(failed.Count == 0, $"{failed.Count} requests failed: {string.Join("\n", failed.Take(5).Select(f => $"{f.Key}: {string.Join(" | ", f.Outcome.Failures)}"))}");
            Assert.All(outcomes, o => Assert.Equal(o.Outcome.VariantHeader, o.Outcome.VariantParameter));

            var variantsPerKey = outcomes.GroupBy(o => o.Key).ToDictionary(g => g.Key, g => g.Select(o => o.Outcome.VariantHeader).Distinct().ToList());
            Assert.Equal(keys.Count, variantsPerKey.Count);
            var split = variantsPerKey.Where(kv => kv.Value.Count != 1).ToList();
            Assert.True(split.Count == 0, $"keys served by more than one variant: {string.Join(", ", split.Select(kv => $"{kv.Key} [{string.Join(", ", kv.Value)}]"))}");

            // The assignment is the documented function of experiment and key alone, so any replica (or any other
            // implementation of the same hash) agrees with it.
            var mismatched = variantsPerKey.Where(kv => kv.Value[0] != ExpectedVariant(kv.Key)).Select(kv => kv.Key).ToList();
            Assert.True(mismatched.Count == 0, $"keys whose variant differs from the documented hash: {string.Join(", ", mismatched)}");

            var counts = variantsPerKey.Values.GroupBy(v => v[0]!).ToDictionary(g => g.Key, g => g.Count());
            Assert.True(counts.ContainsKey(Dense) && counts.ContainsKey(Window), $"expected both variants among {keys.Count} keys, actual {Describe(counts)}");
            Assert.All(proxy.ConnectionsPerBackend, c => Assert.True(c > 0, $"the proxy spread nothing over some replica: {string.Join(", ", proxy.ConnectionsPerBackend)}"));
            output.WriteLine($"{outcomes.Count} requests, {keys.Count} keys: {Describe(counts)} keys per variant; proxy connections per replica {string.Join("/", proxy.ConnectionsPerBackend)}");
        }
        finally
        {
            direct.ForEach(c => c.Dispose());
        }
    }

    /// <summary>
    /// One load, two losses: first a replica is stopped as Kubernetes stops a pod (SIGTERM: not-ready, drain,
    /// exit), then another is SIGKILLed as by an OOM kill or a node failure. Both share one start-up so the
    /// test stays short.
    /// </summary>
    [Fact]
    public async Task Infer_OneReplicaTerminatedThenOneKilledUnderLoad_EveryRequestSucceeds()
    {
        using var set = await ReplicaSet.StartAsync(ReplicaCount, StartupBudget);
        await set.ApplySplitAsync(Split, Experiment, ConvergenceBudget);
        await using var proxy = new RoundRobinProxy(set.Replicas.Select(r => r.RestEndpoint).ToList());
        using var client = new RetryingInferenceClient(proxy.BaseAddress);
        var (terminated, killed) = (set.Replicas[0], set.Replicas[1]);
        await WarmUpAsync(set);

        var clock = Stopwatch.StartNew();
        var outcomes = new ConcurrentBag<(string Key, TimeSpan Finished, InferenceOutcome Outcome)>();
        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, 6).Select(worker => Task.Run(async () =>
        {
            for (var n = 0; !stop.IsCancellationRequested; n++)
            {
                var key = $"line-{(worker * 7 + n) % 40:D2}";
                var outcome = await client.InferAsync(key, steps: 64, seed: n, CancellationToken.None);
                outcomes.Add((key, clock.Elapsed, outcome));
            }
        })).ToList();

        try
        {
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            var servedBeforeTerm = proxy.ConnectionsPerBackend[terminated.Index];
            var termAt = clock.Elapsed;
            ReplicaSet.Terminate(terminated);
            // Drain delay (5 s) plus in-flight work; the load runs on throughout.
            Assert.True(terminated.Process.WaitForExit(TimeSpan.FromSeconds(20)), $"the terminated replica did not exit within 20 s:\n{terminated.Process.Log}");
            Assert.True(terminated.Process.ExitCode == 0, $"exit code {terminated.Process.ExitCode} after SIGTERM:\n{terminated.Process.Log}");
            Assert.False(proxy.IsReady(terminated.Index), "the proxy still routes to the terminated replica");

            var servedBeforeKill = proxy.ConnectionsPerBackend[killed.Index];
            var survivorBeforeKill = proxy.ConnectionsPerBackend[2];
            var killAt = clock.Elapsed;
            ReplicaSet.Kill(killed);
            Assert.True(killed.Process.WaitForExit(TimeSpan.FromSeconds(5)), "the killed replica still runs 5 s after SIGKILL");
            await Task.Delay(TimeSpan.FromSeconds(2));
            await stop.CancelAsync();
            await Task.WhenAll(load);

            var all = outcomes.ToList();
            var failed = all.Where(o => !o.Outcome.Succeeded).ToList();
            var graceful = all.Where(o => o.Finished > termAt && o.Finished <= killAt).ToList();
            var hard = all.Where(o => o.Finished > killAt).ToList();
            output.WriteLine($"before SIGTERM: {all.Count(o => o.Finished <= termAt)} requests; SIGTERM to exit: {Summary(graceful)}; after SIGKILL: {Summary(hard)}; " +
                $"failed in all: {failed.Count}; proxy connections per replica {string.Join("/", proxy.ConnectionsPerBackend)}; " +
                $"SIGTERM at {termAt.TotalSeconds:F1} s, SIGKILL at {killAt.TotalSeconds:F1} s");
            foreach (var r in all.Where(o => o.Outcome.Attempts > 1).Take(10))
            {
                output.WriteLine($"  retried {r.Key}, finished at {r.Finished.TotalSeconds:F2} s: {string.Join(" | ", r.Outcome.Failures)}");
            }

            Assert.True(failed.Count == 0, $"{failed.Count} of {all.Count} requests failed after {RetryingInferenceClient.MaxAttempts} attempts:\n" +
                string.Join("\n", failed.Take(5).Select(f => $"{f.Key} at {f.Finished.TotalSeconds:F2} s: {string.Join(" | ", f.Outcome.Failures)}")));
            Assert.True(servedBeforeTerm > 0 && servedBeforeKill > 0, $"a lost replica served nothing before it went ({servedBeforeTerm}, {servedBeforeKill}): the test would prove nothing");
            Assert.True(graceful.Count > 0 && hard.Count > 0, $"no load while a replica went ({graceful.Count} during the drain, {hard.Count} after the kill)");
            // Not-ready first, listeners closed only after the drain delay: behind a proxy that follows readiness, a
            // client never sees a replica that is stopped the planned way.
            Assert.True(graceful.All(o => o.Outcome.Attempts == 1), $"{graceful.Count(o => o.Outcome.Attempts > 1)} requests needed a retry during a graceful shutdown");
            Assert.True(proxy.ConnectionsPerBackend[2] > survivorBeforeKill, "the surviving replica took no traffic after the kill");
            Assert.False(proxy.IsReady(killed.Index), "the proxy still routes to the killed replica");

            // Losing replicas moves no line to another variant.
            var keysOnTwoVariants = all.GroupBy(o => o.Key).Where(g => g.Select(o => o.Outcome.VariantHeader).Distinct().Count() > 1).Select(g => g.Key).ToList();
            Assert.True(keysOnTwoVariants.Count == 0, $"keys served by more than one variant: {string.Join(", ", keysOnTwoVariants)}");
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(load).WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    private static string Summary(IReadOnlyCollection<(string Key, TimeSpan Finished, InferenceOutcome Outcome)> outcomes) =>
        $"{outcomes.Count} requests, {outcomes.Count(o => o.Outcome.Attempts > 1)} needed a retry";

    /// <summary>A few requests straight to every replica, so the load measured below does not start on cold processes.</summary>
    private static async Task WarmUpAsync(ReplicaSet set)
    {
        await Task.WhenAll(set.Replicas.Select(async replica =>
        {
            using var client = new RetryingInferenceClient(new Uri($"http://127.0.0.1:{replica.RestPort}"));
            for (var n = 0; n < 3; n++)
            {
                var outcome = await client.InferAsync("warm-up", steps: 64, seed: n, CancellationToken.None);
                Assert.True(outcome.Succeeded, $"replica {replica.Index}: warm-up request failed: {string.Join(" | ", outcome.Failures)}");
            }
        }));
    }

    private static string ExpectedVariant(string key) => DocumentedStickyHash.Variant(Experiment, key, Split);

    private static void Shuffle<T>(List<T> items, int seed)
    {
        var random = new Random(seed);
        for (var i = items.Count - 1; i > 0; i--)
        {
            var j = random.Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private static string Describe<TKey>(Dictionary<TKey, int> counts)
        where TKey : notnull =>
        string.Join(", ", counts.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal).Select(kv => $"{kv.Key}: {kv.Value}"));
}
