using System.Net;
using System.Net.Http.Headers;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Reliability;
using SparseInference.Serving.Tests.Infrastructure;
using SparseInference.Testing;

namespace SparseInference.Server.FunctionalTests.Baselines;

/// <summary>A line onboarded on the real server process outlives the process: the next one on the same state directory serves it.</summary>
public sealed class LineBaselineRestartTests
{
    private const string Model = ServerFixture.ModelName;
    private const string AdminToken = "restart-admin-token-0123456789";
    private const string Line = "pump-restart";
    private const int Window = 64;

    private static readonly TimeSpan Startup = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Restart_SameStateDirectory_ScoresTheLineWithItsBaselineFromTheFirstRequest()
    {
        var settings = new Dictionary<string, string>
        {
            ["SparseInference__State__Directory"] = TestStateDirectory.Create(),
            ["SparseInference__Admin__Token"] = AdminToken,
            ["SparseInference__Shutdown__DrainDelaySeconds"] = "0",
        };
        var raw = SyntheticLine.Windows(SyntheticLine.Rows(700, seed: 21), [450, 600, 699], Window);
        JsonReply onboarded;
        ScoredReply before;
        using (var first = LiveServerProcess.Start(settings))
        {
            await first.WaitReadyAsync(Startup);
            using var admin = AdminClient(first);
            using var rest = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{first.RestPort}") };
            onboarded = await LineBaselineRequests.PutCsvAsync(admin, Model, Line, SyntheticLine.Csv(SyntheticLine.Rows(400, seed: 21)));
            before = await LineBaselineRequests.InferAsync(rest, Model, raw, 3, Window, Line);
            first.Terminate();
            Assert.True(first.WaitForExit(TimeSpan.FromSeconds(30)), $"the first server did not exit after SIGTERM:\n{first.Log}");
        }

        using var second = LiveServerProcess.Start(settings);
        await second.WaitReadyAsync(Startup);
        using var secondRest = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{second.RestPort}") };
        using var secondAdmin = AdminClient(second);
        var after = await LineBaselineRequests.InferAsync(secondRest, Model, raw, 3, Window, Line);
        var listed = await LineBaselineRequests.ListAsync(secondAdmin, Model);

        Assert.True(onboarded.Status == HttpStatusCode.OK, onboarded.ToString());
        Assert.True(before.Status == HttpStatusCode.OK && after.Status == HttpStatusCode.OK, $"before: {before}\nafter: {after}\n{second.Log}");
        Assert.Equal(("line", 1L), (before.Baseline, (long)before.Parameters["baseline_revision"]!));
        Assert.Equal(before.Parameters.ToJsonString(), after.Parameters.ToJsonString());
        Assert.Equal(before.Score, after.Score);
        Assert.Equal(before.Anomaly, after.Anomaly);
        var line = Assert.Single(listed.Body!.AsArray());
        Assert.Equal((Line, 1L, 1L), ((string)line!["line"]!, (long)line["revision"]!, (long)line["applied_revision"]!));
    }

    private static HttpClient AdminClient(LiveServerProcess server)
    {
        var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.AdminPort}") };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        return admin;
    }
}
