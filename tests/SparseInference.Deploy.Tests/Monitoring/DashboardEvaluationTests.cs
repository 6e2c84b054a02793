using System.Net;
using SparseInference.Deploy.Tests.LiveServer;
using SparseInference.Server.FunctionalTests.Observability;

namespace SparseInference.Deploy.Tests.Monitoring;

/// <summary>
/// Every dashboard query evaluated by a real Prometheus that scrapes an exporter serving exactly the
/// assumed metrics (<see cref="AssumedMetrics"/>): each must succeed and return at least one series, so a
/// panel is empty only if the service stops exporting what the dashboards were written against.
/// </summary>
public sealed class DashboardEvaluationTests
{
    private const string Job = "sparseinference";

    [Fact]
    public async Task Query_EveryDashboardExpression_ReturnsSeriesFromTheAssumedMetrics()
    {
        var started = DateTimeOffset.UtcNow;
        using var exporter = SyntheticExporter.Start();
        using var prometheus = await PrometheusProcess.StartAsync(Job, exporter.Target, TimeSpan.FromMilliseconds(500));
        await prometheus.WaitForScrapesAsync(Job, scrapes: 4, started, TimeSpan.FromSeconds(60));

        var failures = new List<string>();
        foreach (var expression in DashboardExpressions.All())
        {
            var result = await prometheus.QueryAsync(expression.Expression);
            if (result.Status != "success" || result.SeriesCount == 0)
            {
                failures.Add($"{expression}\n    -> {result.Status}, {result.SeriesCount} series {result.Error}");
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public async Task Query_MisspelledMetric_ReturnsNoSeries()
    {
        var started = DateTimeOffset.UtcNow;
        using var exporter = SyntheticExporter.Start();
        using var prometheus = await PrometheusProcess.StartAsync(Job, exporter.Target, TimeSpan.FromMilliseconds(500));
        await prometheus.WaitForScrapesAsync(Job, scrapes: 2, started, TimeSpan.FromSeconds(60));

        var present = await prometheus.QueryAsync("sum(rate(sparseinference_requests_total[5m]))");
        var misspelled = await prometheus.QueryAsync("sum(rate(sparseinference_request_total[5m]))");

        Assert.Equal(1, present.SeriesCount);
        Assert.Equal(0, misspelled.SeriesCount);
    }

    /// <summary>Serves <see cref="AssumedMetrics.Exposition"/> at /metrics, growing with every scrape.</summary>
    private sealed class SyntheticExporter : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly Task _serving;
        private int _scrapes;

        private SyntheticExporter(int port)
        {
            Target = $"127.0.0.1:{port}";
            _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            _listener.Start();
            _serving = Task.Run(ServeAsync);
        }

        public string Target { get; }

        public static SyntheticExporter Start() => new(ServerProcess.FreePort());

        public void Dispose()
        {
            _listener.Stop();
            _listener.Close();
            try
            {
                _serving.Wait(TimeSpan.FromSeconds(5));
            }
            catch (AggregateException)
            {
                // The listener was stopped under a pending GetContext.
            }
        }

        private async Task ServeAsync()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }

                try
                {
                    var body = System.Text.Encoding.UTF8.GetBytes(AssumedMetrics.Exposition(Interlocked.Increment(ref _scrapes)));
                    context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                    await context.Response.OutputStream.WriteAsync(body);
                    context.Response.Close();
                }
                catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException)
                {
                    // Prometheus gave up on a slow scrape and closed the connection; serve the next one.
                }
            }
        }
    }
}
