using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using SparseInference.Testing;
using Xunit.Abstractions;

namespace SparseInference.Deploy.Tests.Replicas;

/// <summary>
/// Line baselines shared by a fleet: two real server processes on one state directory (the ReadWriteMany volume). A line
/// onboarded, replaced or removed through either replica's admin API is served the same way by the other, and a replica
/// that restarts serves the line's baseline from its first request.
/// </summary>
public sealed class FleetBaselineTests(ITestOutputHelper output)
{
    private const string Line = "pump-fleet";
    private const int Window = 64;

    private static readonly TimeSpan StartupBudget = TimeSpan.FromSeconds(60);

    /// <summary>One poll interval (1 s; no file-system notifications, as on NFS) with room for a loaded 2-core machine, as for the rollout state.</summary>
    private static readonly TimeSpan ConvergenceBound = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Baseline_OnboardedThroughOneReplica_ServedByTheOther_ReplacedRemovedAndKeptAcrossARestart()
    {
        var options = new ReplicaSetOptions { Environment = new Dictionary<string, string> { ["SparseInference__State__WatchFileSystem"] = "false" } };
        using var set = await ReplicaSet.StartAsync(2, StartupBudget, options);
        var (first, second) = (set.Replicas[0], set.Replicas[1]);

        // 1. Onboarded through replica 0: replica 1 scores the line with it within the bound, to the same numbers.
        var onboarded = await PutAsync(first, SyntheticLine.Rows(400, seed: 31));
        Assert.True(onboarded.Status == HttpStatusCode.OK, onboarded.ToString());
        var (onFirst, _) = await ScoreUntilAsync(first, r => r.Baseline == "line", TimeSpan.Zero);
        var (onSecond, took) = await ScoreUntilAsync(second, r => r.Baseline == "line", ConvergenceBound);
        Assert.Equal(1L, (long)onSecond.Parameters["baseline_revision"]!);
        Assert.Equal(onFirst.Score, onSecond.Score);
        Assert.Equal(onFirst.Anomaly, onSecond.Anomaly);
        output.WriteLine($"revision 1 onboarded through replica 0, served by replica 1 after {took.TotalMilliseconds:F0} ms (bound {ConvergenceBound.TotalSeconds:F0} s)");

        // 2. Replaced through replica 1: replica 0 follows to revision 2.
        var replaced = await PutAsync(second, SyntheticLine.Rows(400, seed: 32));
        Assert.True(replaced.Status == HttpStatusCode.OK && replaced.Revision == 2, replaced.ToString());
        var (replacedOnFirst, tookReplace) = await ScoreUntilAsync(first, r => (long?)r.Parameters["baseline_revision"] == 2, ConvergenceBound);
        var (replacedOnSecond, _) = await ScoreUntilAsync(second, r => (long?)r.Parameters["baseline_revision"] == 2, TimeSpan.Zero);
        Assert.Equal(replacedOnSecond.Score, replacedOnFirst.Score);
        Assert.NotEqual(onFirst.Score, replacedOnFirst.Score);
        output.WriteLine($"revision 2 replaced through replica 1, served by replica 0 after {tookReplace.TotalMilliseconds:F0} ms");

        // 3. A replica killed and started again on the same volume serves revision 2 from its first request.
        ReplicaSet.Kill(second);
        Assert.True(second.Process.WaitForExit(TimeSpan.FromSeconds(10)), "the killed replica still runs 10 s after SIGKILL");
        var restarted = await set.RestartAsync(second, StartupBudget);
        var (afterRestart, _) = await ScoreUntilAsync(restarted, r => true, TimeSpan.Zero);
        Assert.Equal(("line", 2L), (afterRestart.Baseline, (long)afterRestart.Parameters["baseline_revision"]!));
        Assert.Equal(replacedOnFirst.Score, afterRestart.Score);

        // 4. Removed through the restarted replica: replica 0 scores the line without a baseline again.
        using (var admin = Admin(restarted))
        {
            var removed = await LineBaselineRequests.DeleteAsync(admin, ReplicaSet.Model, Line);
            Assert.Equal(HttpStatusCode.NoContent, removed.Status);
        }

        var (removedOnFirst, tookRemove) = await ScoreUntilAsync(first, r => r.Baseline == "none", ConvergenceBound);
        Assert.False(removedOnFirst.Parameters.AsObject().ContainsKey("baseline_revision"));
        output.WriteLine($"removed through the restarted replica, gone from replica 0 after {tookRemove.TotalMilliseconds:F0} ms");
        Assert.Equal(0, await set.MetricAsync(first, "sparseinference_baselines", ("model", ReplicaSet.Model)));
    }

    private static async Task<JsonReply> PutAsync(Replica replica, IReadOnlyList<double[]> rows)
    {
        using var admin = Admin(replica);
        return await LineBaselineRequests.PutCsvAsync(admin, ReplicaSet.Model, Line, SyntheticLine.Csv(rows));
    }

    /// <summary>Scores the line's windows on one replica until <paramref name="done"/> holds (at once when <paramref name="bound"/> is zero); returns the answer and how long it took.</summary>
    private async Task<(ScoredReply Reply, TimeSpan Took)> ScoreUntilAsync(Replica replica, Func<ScoredReply, bool> done, TimeSpan bound)
    {
        using var rest = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{replica.RestPort}"), Timeout = TimeSpan.FromSeconds(30) };
        var raw = SyntheticLine.Windows(SyntheticLine.Rows(700, seed: 31), [420, 560, 699], Window);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var reply = await LineBaselineRequests.InferAsync(rest, ReplicaSet.Model, raw, 3, Window, Line);
            Assert.True(reply.Status == HttpStatusCode.OK, $"replica {replica.Index}: {reply}");
            if (done(reply))
                return (reply, clock.Elapsed);
            if (clock.Elapsed > bound)
                throw new Xunit.Sdk.XunitException($"replica {replica.Index}: expected the change within {bound}, actual after {clock.Elapsed} still {reply.Parameters.ToJsonString()}");
            await Task.Delay(25);
        }
    }

    private static HttpClient Admin(Replica replica)
    {
        var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{replica.AdminPort}"), Timeout = TimeSpan.FromSeconds(60) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ReplicaSet.AdminToken);
        return admin;
    }
}
