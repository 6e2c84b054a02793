using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using SparseInference.Deploy.Tests.Infrastructure;
using SparseInference.Deploy.Tests.LiveServer;

namespace SparseInference.Deploy.Tests.Monitoring;

/// <summary>The answer to one instant query: Prometheus' status, the number of series, its error if any.</summary>
public sealed record QueryResult(string Status, int SeriesCount, string? Error);

/// <summary>
/// A real Prometheus (the installed binary) scraping one job, with its HTTP API for instant queries.
/// Point it at the synthetic exporter here, or at a running server's metrics port for end-to-end checks.
/// </summary>
public sealed class PrometheusServer : IDisposable
{
    private readonly Process _process;
    private readonly string _directory;
    private readonly HttpClient _http;

    private PrometheusServer(Process process, string directory, int port)
    {
        _process = process;
        _directory = directory;
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(10) };
    }

    /// <param name="job">The scrape job name (dashboards filter process metrics on job=~"sparseinference.*").</param>
    /// <param name="target">host:port serving /metrics.</param>
    public static async Task<PrometheusServer> StartAsync(string job, string target, TimeSpan scrapeInterval)
    {
        Validators.EnsureInstalled();
        var directory = Directory.CreateTempSubdirectory("sparseinference-prometheus-").FullName;
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
        var port = ServerProcess.FreePort();
        var start = new ProcessStartInfo("prometheus")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
                 {
                     $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(directory, "data")}",
                     $"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
                 })
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("prometheus: the process did not start");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new PrometheusServer(process, directory, port);
        await server.WaitUntilAsync(async () => (await server.GetStatusAsync("-/ready")) == System.Net.HttpStatusCode.OK, TimeSpan.FromSeconds(30), "prometheus /-/ready");
        return server;
    }

    public async Task<QueryResult> QueryAsync(string expression)
    {
        using var response = await _http.GetAsync(new Uri($"api/v1/query?query={Uri.EscapeDataString(expression)}", UriKind.Relative));
        using var body = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync());
        var root = body.RootElement;
        var status = root.GetProperty("status").GetString() ?? "";
        var error = root.TryGetProperty("error", out var e) ? e.GetString() : null;
        var count = status == "success" && root.GetProperty("data").GetProperty("result") is { ValueKind: JsonValueKind.Array } result
            ? result.GetArrayLength()
            : 0;
        return new QueryResult(status, count, error);
    }

    /// <summary>Waits until every series of the job has been scraped at least <paramref name="scrapes"/> times.</summary>
    public Task WaitForScrapesAsync(string job, int scrapes, TimeSpan budget) =>
        WaitUntilAsync(async () =>
        {
            var result = await QueryAsync($"min(count_over_time(up{{job=\"{job}\"}}[10m])) >= {scrapes} and min(up{{job=\"{job}\"}}) == 1");
            return result.SeriesCount > 0;
        }, budget, $"{scrapes} successful scrapes of job {job}");

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

    private async Task<System.Net.HttpStatusCode?> GetStatusAsync(string path)
    {
        try
        {
            using var response = await _http.GetAsync(new Uri(path, UriKind.Relative));
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
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
