using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using SparseInference.LoadGen;

LoadGenOptions options;
try
{
    options = LoadGenOptions.Parse(args);
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine(ex.Message);
    return 2;
}
if (options.Help)
{
    Console.WriteLine(LoadGenOptions.Usage);
    return 0;
}

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};

IReadOnlyList<SensorLine> lines;
try
{
    lines = options.CsvDirectory is { } directory
        ? SensorCsv.ReadDirectory(directory, options.Channels, options.Lines ?? int.MaxValue)
        : SensorCsv.Synthetic(options.Lines ?? 8, Math.Max(options.Window * 16, 1024), options.Channels);
}
catch (Exception ex) when (ex is IOException or InvalidDataException or UnauthorizedAccessException)
{
    Console.Error.WriteLine(ex.Message);
    return 2;
}
var windows = new WindowSource(lines, options.Window, options.Stride ?? options.Window);

var handler = new SocketsHttpHandler
{
    MaxConnectionsPerServer = 1024,
    EnableMultipleHttp2Connections = true,
    PooledConnectionLifetime = TimeSpan.FromMinutes(10),
};
using var rest = new HttpClient(handler, disposeHandler: false) { BaseAddress = new Uri(options.RestUrl), Timeout = Timeout.InfiniteTimeSpan };
using var grpc = OipGrpc.Channel(options.GrpcUrl, TimeSpan.FromMinutes(10));
var target = new InferTarget(options.Model, options.Version, options.InputName, options.Channels, options.Parameters);
using IInferClient client = options.Protocol == Protocol.Grpc ? new GrpcInferClient(grpc, target) : new RestInferClient(rest, target, options.Binary);

async Task<ServerCounters?> ReadServerAsync(CancellationToken token)
{
    try
    {
        using var response = await rest.GetAsync(target.ModelPath + "/stats", token);
        return response.IsSuccessStatusCode ? ServerCounters.Parse(await response.Content.ReadAsStringAsync(token)) : null;
    }
    catch (Exception ex) when (ex is HttpRequestException or JsonException)
    {
        return null;
    }
}

var runner = new LoadRunner(client, windows, ReadServerAsync, TimeProvider.System, options.Timeout);
var results = new List<LevelResult>();
if (!options.Json)
{
    Console.WriteLine($"{options.Protocol.ToString().ToLowerInvariant()}{(options.Protocol == Protocol.Rest ? options.Binary ? "/binary" : "/json" : "")} model={options.Model} window={options.Window} lines={windows.Lines} duration={options.Duration.TotalSeconds}s warmup={options.Warmup.TotalSeconds}s");
}
try
{
    if (options.Rates.Count > 0)
    {
        foreach (var rate in options.Rates)
        {
            results.Add(await runner.RunOpenLoopAsync(rate, options.Warmup, options.Duration, options.MaxInFlight, cancel.Token));
            if (!options.Json)
                Console.WriteLine(Report.Line(results[^1]));
        }
    }
    else
    {
        foreach (var concurrency in options.Concurrency)
        {
            results.Add(await runner.RunClosedLoopAsync(concurrency, options.Warmup, options.Duration, cancel.Token));
            if (!options.Json)
                Console.WriteLine(Report.Line(results[^1]));
        }
    }
}
catch (OperationCanceledException) when (cancel.IsCancellationRequested)
{
    Console.Error.WriteLine("Interrupted.");
}

if (options.Json)
    Console.WriteLine(Report.Json(options, results));
return results.All(r => r.Succeeded > 0) ? 0 : 1;

namespace SparseInference.LoadGen
{
    internal static class Report
    {
        public static string Line(LevelResult r)
        {
            var l = r.Latency;
            var line = new StringBuilder().Append(CultureInfo.InvariantCulture, $"{r.Mode} {r.Level.ToString(CultureInfo.InvariantCulture),-6} throughput {r.ThroughputPerSecond,9:F1} infer/s  ok {r.Succeeded}");
            if (r.Failures.Count > 0)
                line.Append(CultureInfo.InvariantCulture, $" failed {string.Join(",", r.Failures.Select(f => $"{f.Key}={f.Value}"))}");
            line.Append(CultureInfo.InvariantCulture, $"  latency ms p50 {l.P50Ms:F2} p90 {l.P90Ms:F2} p95 {l.P95Ms:F2} p99 {l.P99Ms:F2} max {l.MaxMs:F2}");
            if (r.Server is { } s)
                line.Append(CultureInfo.InvariantCulture, $"  server queue {s.AverageQueueUs:F0} us compute {s.AverageComputeUs:F0} us avg batch {s.AverageBatch:F2}");
            return line.ToString();
        }

        public static string Json(LoadGenOptions options, IReadOnlyList<LevelResult> results)
        {
            using var stream = new MemoryStream();
            using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartObject();
                w.WriteString("protocol", options.Protocol.ToString().ToLowerInvariant());
                w.WriteString("encoding", options.Binary ? "binary" : "json");
                w.WriteString("model", options.Model);
                w.WriteNumber("window", options.Window);
                w.WriteStartArray("results");
                foreach (var r in results)
                {
                    w.WriteStartObject();
                    w.WriteString("mode", r.Mode);
                    w.WriteNumber("level", r.Level);
                    w.WriteNumber("duration_s", r.Duration.TotalSeconds);
                    w.WriteNumber("completed", r.Completed);
                    w.WriteNumber("succeeded", r.Succeeded);
                    w.WriteStartObject("failures");
                    foreach (var (status, count) in r.Failures)
                        w.WriteNumber(status, count);
                    w.WriteEndObject();
                    w.WriteNumber("throughput_per_s", r.ThroughputPerSecond);
                    w.WriteStartObject("latency_ms");
                    w.WriteNumber("mean", r.Latency.MeanMs);
                    w.WriteNumber("min", r.Latency.MinMs);
                    w.WriteNumber("p50", r.Latency.P50Ms);
                    w.WriteNumber("p90", r.Latency.P90Ms);
                    w.WriteNumber("p95", r.Latency.P95Ms);
                    w.WriteNumber("p99", r.Latency.P99Ms);
                    w.WriteNumber("max", r.Latency.MaxMs);
                    w.WriteEndObject();
                    if (r.Server is { } s)
                    {
                        w.WriteStartObject("server");
                        w.WriteNumber("queue_avg_us", s.AverageQueueUs);
                        w.WriteNumber("compute_infer_avg_us", s.AverageComputeUs);
                        w.WriteNumber("avg_batch", s.AverageBatch);
                        w.WriteNumber("success_count", s.SuccessCount);
                        w.WriteNumber("execution_count", s.ExecutionCount);
                        w.WriteNumber("inference_count", s.InferenceCount);
                        w.WriteEndObject();
                    }
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            return Encoding.UTF8.GetString(stream.ToArray());
        }
    }
}
