using System.Diagnostics;
using System.Net;
using SparseInference.Server.FunctionalTests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Observability;

/// <summary>
/// The dashboards against the real service: a real Prometheus scrapes the server's metrics port while known traffic
/// runs, then every dashboard query must return data.
/// </summary>
[Collection(ObservabilityCollection.Name)]
public sealed class DashboardEndToEndTests(ObservabilityFixture server)
{
    private const string Job = "sparseinference";

    /// <summary>
    /// Expressions that may come back empty, each with its reason. Every other query must return data: the known traffic
    /// covers REST and gRPC, valid and invalid requests, every variant, the dynamic batcher, and shadow traffic with drops
    /// and a guardrail trip (<see cref="ObservabilityFixture"/>).
    /// </summary>
    private static readonly (string Fragment, string Reason)[] MayBeEmpty = [];

    [Fact]
    public async Task Query_EveryDashboardExpression_ReturnsDataFromTheRealServer()
    {
        using var prometheus = await PrometheusProcess.StartAsync(Job, $"127.0.0.1:{server.MetricsPort}", TimeSpan.FromMilliseconds(500));
        var traffic = await server.EnsureTrafficAsync();
        Assert.NotEmpty(traffic.RestStatuses);
        Assert.Equal(HttpStatusCode.OK, traffic.ShadowSplitStatus);
        Assert.All(traffic.ShadowStatuses, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.True(traffic.GuardrailTripped, "the shadow guardrail did not trip: " + traffic.ShadowTableAfterTrip);
        var afterTraffic = DateTimeOffset.UtcNow;
        await Task.Delay(TimeSpan.FromSeconds(1));
        await prometheus.WaitForScrapesAsync(Job, scrapes: 2, afterTraffic, TimeSpan.FromSeconds(60));

        var queries = DashboardQueries.All();
        Assert.True(queries.Count >= 30, $"dashboard queries: expected at least 30, actual {queries.Count}");
        var failures = new List<string>();
        var empty = 0;
        foreach (var query in queries)
        {
            var result = await prometheus.QueryAsync(query.Expression);
            var mayBeEmpty = MayBeEmpty.Any(m => query.Expression.Contains(m.Fragment, StringComparison.Ordinal));
            if (result.Status != "success" || (result.SeriesCount == 0 && !mayBeEmpty))
            {
                failures.Add($"{query}\n    -> {result.Status}, {result.SeriesCount} series {result.Error}");
            }

            empty += result.SeriesCount == 0 ? 1 : 0;
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
        // Only those panels may be empty.
        Assert.Equal(queries.Count(q => MayBeEmpty.Any(m => q.Expression.Contains(m.Fragment, StringComparison.Ordinal))), empty);
    }

    [Fact]
    public async Task Query_VariantRequestRate_SeesEachDrivenVariant()
    {
        using var prometheus = await PrometheusProcess.StartAsync(Job, $"127.0.0.1:{server.MetricsPort}", TimeSpan.FromMilliseconds(500));
        await server.EnsureTrafficAsync();
        await prometheus.WaitForScrapesAsync(Job, scrapes: 2, DateTimeOffset.UtcNow, TimeSpan.FromSeconds(60));
        var result = await prometheus.QueryAsync($"sum by (variant) (sparseinference_requests_total{{model=\"{ServerFixture.ModelName}\", outcome=\"success\"}})");
        var variants = result.Series.Select(s => s.GetProperty("metric").GetProperty("variant").GetString()).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(ObservabilityFixture.Variants.Order(StringComparer.Ordinal), variants);
    }

    [Fact]
    public async Task Promtool_CheckMetricsOnARealScrape_ReportsNoErrors()
    {
        await server.EnsureTrafficAsync();
        var scrape = await server.ScrapeAsync();
        var start = new ProcessStartInfo("promtool") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("check");
        start.ArgumentList.Add("metrics");
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(scrape);
        process.StandardInput.Close();
        await process.WaitForExitAsync();
        // promtool exits 3 for lint findings (naming advice) and 1 for errors; findings are printed either way.
        var report = (await output) + (await error);
        Assert.True(process.ExitCode is 0 or 3, $"promtool check metrics: expected exit 0 (or 3 with lint advice only), actual {process.ExitCode}\n{report}");
        Assert.DoesNotContain("error while linting", report, StringComparison.OrdinalIgnoreCase);
    }
}
