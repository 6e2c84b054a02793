using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SparseInference.Server.FunctionalTests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>SIGTERM against the real server process while requests are in flight.</summary>
public sealed class GracefulShutdownTests
{
    private const int DrainDelaySeconds = 3;
    private const int TimeoutSeconds = 10;

    private sealed record Outcome(TimeSpan Sent, TimeSpan Done, HttpStatusCode? Status, Exception? Error);

    [Fact]
    public async Task Sigterm_WithRequestsInFlight_FlipsReadinessCompletesAcceptedAndExitsInTime()
    {
        using var server = LiveServerProcess.Start(new Dictionary<string, string>
        {
            ["SparseInference__Shutdown__DrainDelaySeconds"] = DrainDelaySeconds.ToString(),
            ["SparseInference__Shutdown__TimeoutSeconds"] = TimeoutSeconds.ToString(),
        });
        await server.WaitReadyAsync(TimeSpan.FromSeconds(60));

        const int T = 256;
        var body = SensorWindows.InferBody(SensorWindows.Json(SensorWindows.Make(1, T, ServerFixture.Channels)), 1, T, ServerFixture.Channels);
        var clock = Stopwatch.StartNew();
        var outcomes = new ConcurrentBag<Outcome>();
        using var stop = new CancellationTokenSource();
        using var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = Timeout.InfiniteTimeSpan }) { Timeout = TimeSpan.FromSeconds(30) };
        var url = $"http://127.0.0.1:{server.RestPort}/v2/models/{ServerFixture.ModelName}/infer";

        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var sent = clock.Elapsed;
                try
                {
                    using var response = await http.PostAsync(url, new StringContent(body, Encoding.UTF8, "application/json"));
                    await response.Content.ReadAsByteArrayAsync();
                    outcomes.Add(new Outcome(sent, clock.Elapsed, response.StatusCode, null));
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                {
                    outcomes.Add(new Outcome(sent, clock.Elapsed, null, ex));
                    await Task.Delay(20);
                }
            }
        })).ToArray();

        // Signal once requests are flowing (a loaded machine may take a while for the first ones).
        for (var wait = Stopwatch.StartNew(); outcomes.Count(o => o.Status == HttpStatusCode.OK) < 4 && wait.Elapsed < TimeSpan.FromSeconds(60);)
        {
            await Task.Delay(100);
        }

        Assert.Contains(outcomes, o => o.Status == HttpStatusCode.OK);
        var signalled = clock.Elapsed;
        server.Terminate();

        // Readiness flips at once: within the drain delay, while the listener still answers.
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        HttpStatusCode? ready = null;
        for (var i = 0; i < 20 && ready != HttpStatusCode.ServiceUnavailable; i++)
        {
            ready = (await probe.GetAsync($"http://127.0.0.1:{server.RestPort}/v2/health/ready")).StatusCode;
            if (ready != HttpStatusCode.ServiceUnavailable)
            {
                await Task.Delay(25);
            }
        }

        var flipped = clock.Elapsed - signalled;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready);
        Assert.True(flipped < TimeSpan.FromSeconds(1), $"readiness flipped after {flipped.TotalMilliseconds:F0} ms");

        var exited = server.WaitForExit(TimeSpan.FromSeconds(TimeoutSeconds + 5));
        var exitedAt = clock.Elapsed;
        var exitedAfter = exitedAt - signalled;
        await Task.Delay(500);
        await stop.CancelAsync();
        await Task.WhenAll(workers);
        Assert.True(exited, $"server still running {TimeoutSeconds + 5} s after SIGTERM:\n{server.Log}");
        Assert.Equal(0, server.ExitCode);
        Assert.True(exitedAfter < TimeSpan.FromSeconds(TimeoutSeconds + 2), $"exit took {exitedAfter.TotalSeconds:F1} s");

        // Every request sent before the signal, and during the drain delay, completed with 200: no resets, no 5xx. "Sent" is
        // the client's clock before it connects; on a loaded machine the connection may open hundreds of milliseconds later,
        // so the last second of the delay is left out.
        var accepted = outcomes.Where(o => o.Sent < signalled + TimeSpan.FromSeconds(DrainDelaySeconds - 1)).ToList();
        var failedAccepted = accepted.Where(o => o.Status != HttpStatusCode.OK).ToList();
        Assert.True(accepted.Count > 4, $"only {accepted.Count} requests before shutdown");
        Assert.True(failedAccepted.Count == 0,
            $"{failedAccepted.Count} of {accepted.Count} accepted requests failed: " + string.Join("; ", failedAccepted.Take(5).Select(o => $"{o.Sent.TotalMilliseconds:F0} ms: {o.Status?.ToString() ?? o.Error!.GetBaseException().Message}")));

        // Once the listeners are gone, requests are refused (connection refused) or answered 503, never 500.
        var late = outcomes.Where(o => o.Sent > exitedAt).ToList();
        Assert.All(late, o => Assert.True(
            o.Status is HttpStatusCode.ServiceUnavailable or HttpStatusCode.OK || o.Error?.GetBaseException() is SocketException or HttpRequestException or IOException,
            $"late request: {o.Status?.ToString() ?? o.Error!.GetBaseException().Message}"));
        Assert.Contains(late, o => o.Error is not null);
    }
}
