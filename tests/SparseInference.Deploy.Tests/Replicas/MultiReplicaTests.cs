using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Xunit.Abstractions;

namespace SparseInference.Deploy.Tests.Replicas;

/// <summary>
/// Three real server processes on loopback behind a round-robin proxy, configured alike as the replicas of
/// one Deployment are: the same settings file, the same model repository, the same variant split. Checks that
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
    private static readonly (string Variant, double Weight)[] Split = [(Dense, 50), (Window, 50)];

    [Fact]
    public async Task Infer_RoutingKeyOverThreeReplicas_EachKeyKeepsOneVariant()
    {
        using var set = await ReplicaSet.StartAsync(ReplicaCount, StartupBudget);
        await set.ApplySplitEverywhereAsync(Split, Experiment);
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

    [Fact]
    public Task Infer_OneReplicaSigkilledUnderLoad_EveryRequestSucceedsAfterRetries() =>
        LoseOneReplicaUnderLoadAsync(graceful: false);

    [Fact]
    public Task Infer_OneReplicaTerminatedUnderLoad_EveryRequestSucceedsWithoutRetries() =>
        LoseOneReplicaUnderLoadAsync(graceful: true);

    private async Task LoseOneReplicaUnderLoadAsync(bool graceful)
    {
        using var set = await ReplicaSet.StartAsync(ReplicaCount, StartupBudget);
        await set.ApplySplitEverywhereAsync(Split, Experiment);
        await using var proxy = new RoundRobinProxy(set.Replicas.Select(r => r.RestEndpoint).ToList());
        using var client = new RetryingInferenceClient(proxy.BaseAddress);
        var victim = set.Replicas[0];

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
            var servedByVictim = proxy.ConnectionsPerBackend[victim.Index];
            var lost = clock.Elapsed;
            if (graceful)
            {
                ReplicaSet.Terminate(victim);
                // Drain delay (5 s) plus the in-flight work; the load runs on throughout.
                Assert.True(victim.Process.WaitForExit(TimeSpan.FromSeconds(20)), $"the terminated replica did not exit within 20 s:\n{victim.Process.Log}");
                Assert.True(victim.Process.ExitCode == 0, $"exit code {victim.Process.ExitCode}:\n{victim.Process.Log}");
            }
            else
            {
                ReplicaSet.Kill(victim);
                Assert.True(victim.Process.WaitForExit(TimeSpan.FromSeconds(5)), "the killed replica still runs 5 s after SIGKILL");
            }

            var survivorsBefore = SurvivorConnections(proxy, victim);
            await Task.Delay(TimeSpan.FromSeconds(2));
            await stop.CancelAsync();
            await Task.WhenAll(load);

            var failed = outcomes.Where(o => !o.Outcome.Succeeded).ToList();
            var retried = outcomes.Where(o => o.Outcome.Attempts > 1).ToList();
            var after = outcomes.Count(o => o.Finished > lost);
            output.WriteLine(
                $"{(graceful ? "SIGTERM" : "SIGKILL")}: {outcomes.Count} requests ({after} finished after the replica was lost), {failed.Count} failed, " +
                $"{retried.Count} needed a retry (attempts: {Describe(outcomes.GroupBy(o => o.Outcome.Attempts).ToDictionary(g => g.Key.ToString(CultureInfo.InvariantCulture), g => g.Count()))}); " +
                $"proxy connections per replica {string.Join("/", proxy.ConnectionsPerBackend)}");
            foreach (var r in retried.Take(10))
            {
                output.WriteLine($"  retried {r.Key} at {r.Finished.TotalSeconds:F2} s: {string.Join(" | ", r.Outcome.Failures)}");
            }

            Assert.True(failed.Count == 0, $"{failed.Count} of {outcomes.Count} requests failed after {RetryingInferenceClient.MaxAttempts} attempts:\n" +
                string.Join("\n", failed.Take(5).Select(f => $"{f.Key} at {f.Finished.TotalSeconds:F2} s: {string.Join(" | ", f.Outcome.Failures)}")));
            Assert.True(servedByVictim > 0, "the lost replica served nothing before it went: the test would prove nothing");
            Assert.True(after > 0, "no request finished after the replica was lost");
            Assert.True(SurvivorConnections(proxy, victim) > survivorsBefore, "the surviving replicas took no traffic after the loss");
            Assert.False(proxy.IsReady(victim.Index), "the proxy still routes to the lost replica");
            if (graceful)
            {
                // Not-ready first, listeners closed only after the drain delay: a client behind a proxy that follows
                // readiness never sees the replica go.
                Assert.True(retried.Count == 0, $"{retried.Count} requests needed a retry during a graceful shutdown");
            }

            // Losing a replica moves no line to another variant.
            var keysOnTwoVariants = outcomes.GroupBy(o => o.Key).Where(g => g.Select(o => o.Outcome.VariantHeader).Distinct().Count() > 1).Select(g => g.Key).ToList();
            Assert.True(keysOnTwoVariants.Count == 0, $"keys served by more than one variant: {string.Join(", ", keysOnTwoVariants)}");
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(load).WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    private static long SurvivorConnections(RoundRobinProxy proxy, Replica victim) =>
        proxy.ConnectionsPerBackend.Where((_, i) => i != victim.Index).Sum();

    /// <summary>docs/variants.md: FNV-1a 64 of UTF-8 "experiment\0key", MurmurHash3 fmix64, top 53 bits onto the cumulative weights.</summary>
    private static string ExpectedVariant(string key)
    {
        var hash = 0xcbf29ce484222325UL;
        foreach (var b in Encoding.UTF8.GetBytes(Experiment + "\0" + key))
        {
            hash ^= b;
            hash *= 0x100000001b3UL;
        }

        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdUL;
        hash ^= hash >> 33;
        hash *= 0xc4ceb9fe1a85ec53UL;
        hash ^= hash >> 33;
        var point = (hash >> 11) * (1.0 / (1UL << 53)) * Split.Sum(s => s.Weight);
        var cumulative = 0.0;
        foreach (var (variant, weight) in Split)
        {
            cumulative += weight;
            if (point < cumulative)
            {
                return variant;
            }
        }

        return Split[^1].Variant;
    }

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
