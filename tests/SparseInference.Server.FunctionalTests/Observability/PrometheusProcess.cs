using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace SparseInference.Server.FunctionalTests.Observability;

/// <summary>One instant query's answer: Prometheus' status, the series returned, its error if any.</summary>
public sealed record PromQueryResult(string Status, IReadOnlyList<JsonElement> Series, string? Error)
{
    public int SeriesCount => Series.Count;
}

/// <summary>The installed Prometheus on a free loopback port, scraping one target, queried through its HTTP API.</summary>
public sealed class PrometheusProcess : IDisposable
{
    private readonly Process _process;
    private readonly string _directory;
    private readonly HttpClient _http;

    private PrometheusProcess(Process process, string directory, int port)
    {
        _process = process;
        _directory = directory;
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(10) };
    }

    public static async Task<PrometheusProcess> StartAsync(string job, string target, TimeSpan scrapeInterval)
    {
        var directory = Directory.CreateTempSubdirectory("si-prometheus-").FullName;
        var interval = $"{(int)scrapeInterval.TotalMilliseconds}ms";
        var config = Path.Combine(directory, "prometheus.yml");
        File.WriteAllText(config, $"""
            global:
              scrape_interval: {interval}
              evaluation_interval: {interval}
            scrape_configs:
              - job_name: {job}
                static_configs:
                  - targets: ["{target}"]
            """);
        var port = FreePort();
        var start = new ProcessStartInfo("prometheus") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[]
                 {
                     $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(directory, "data")}",
                     $"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
                 })
        {
            start.ArgumentList.Add(argument);
        }

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("prometheus: the process did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("prometheus: expected on PATH (Debian package 'prometheus'), actual not found", e);
        }

        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new PrometheusProcess(process, directory, port);
        await server.WaitUntilAsync(async () =>
        {
            using var response = await server._http.GetAsync(new Uri("-/ready", UriKind.Relative));
            return response.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(30), "prometheus /-/ready");
        return server;
    }

    public async Task<PromQueryResult> QueryAsync(string expression)
    {
        using var response = await _http.GetAsync(new Uri($"api/v1/query?query={Uri.EscapeDataString(expression)}", UriKind.Relative));
        using var body = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync());
        var root = body.RootElement;
        var status = root.GetProperty("status").GetString() ?? "";
        var error = root.TryGetProperty("error", out var e) ? e.GetString() : null;
        var series = status == "success" && root.GetProperty("data").GetProperty("result") is { ValueKind: JsonValueKind.Array } result
            ? result.EnumerateArray().Select(r => r.Clone()).ToList()
            : [];
        return new PromQueryResult(status, series, error);
    }

    /// <summary>Waits until the target has been scraped successfully at least <paramref name="scrapes"/> times after <paramref name="since"/>.</summary>
    public async Task WaitForScrapesAsync(string job, int scrapes, DateTimeOffset since, TimeSpan budget)
    {
        try
        {
            await WaitUntilAsync(async () =>
            {
                var window = Math.Max(1, (int)Math.Ceiling((DateTimeOffset.UtcNow - since).TotalSeconds));
                var result = await QueryAsync($"sum_over_time(up{{job=\"{job}\"}}[{window}s]) >= {scrapes}");
                return result.SeriesCount > 0;
            }, budget, $"{scrapes} successful scrapes of job {job}");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}; target health: {await TargetHealthAsync(job)}", e);
        }
    }

    /// <summary>Prometheus' own account of the job's targets: health, last error, last scrape duration.</summary>
    private async Task<string> TargetHealthAsync(string job)
    {
        try
        {
            using var response = await _http.GetAsync(new Uri("api/v1/targets", UriKind.Relative));
            using var body = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync());
            var targets = body.RootElement.GetProperty("data").GetProperty("activeTargets").EnumerateArray()
                .Where(t => t.GetProperty("labels").TryGetProperty("job", out var j) && j.GetString() == job)
                .Select(t => $"{t.GetProperty("scrapeUrl").GetString()} {t.GetProperty("health").GetString()}"
                             + $" lastError='{t.GetProperty("lastError").GetString()}'"
                             + $" lastScrapeDuration={t.GetProperty("lastScrapeDuration").GetDouble():F3}s")
                .ToList();
            return targets.Count == 0 ? "no active target" : string.Join("; ", targets);
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return $"unavailable ({e.GetType().Name}: {e.Message})";
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(TimeSpan.FromSeconds(10));
        }

        _process.Dispose();
        _http.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A temp directory left behind is harmless.
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan budget, string what)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < budget)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"prometheus exited with {_process.ExitCode} while waiting for {what}");
            }

            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"{what}: expected within {budget}, actual not reached");
    }
}
