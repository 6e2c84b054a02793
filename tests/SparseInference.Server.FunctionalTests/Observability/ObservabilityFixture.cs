using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SparseInference.Serving.Hosting;
using System.Text.Json.Nodes;
using SparseInference.Models;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Protocol;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Observability;

/// <summary>
/// A server of its own, so the traffic it saw is exactly the known traffic below: per variant of the default model,
/// <see cref="RestOk"/> valid and <see cref="RestInvalid"/> invalid REST infers and <see cref="GrpcOk"/> gRPC infers.
/// </summary>
public sealed class ObservabilityFixture : ServerFixture
{
    public const int RestOk = 7;
    public const int RestInvalid = 3;
    public const int GrpcOk = 5;
    public const int RestTime = 32;
    public const int GrpcTime = 16;

    public static readonly IReadOnlyList<string> Variants = ["dense", "window-0.75", "block-topk-0.75"];

    private readonly SemaphoreSlim _trafficGate = new(1, 1);
    private readonly StringWriter _jsonLog = new();
    private readonly TextWriter _jsonLogWriter;
    private readonly ActivityListener _listener;
    private TrafficRecord? _traffic;

    public ObservabilityFixture()
    {
        _jsonLogWriter = TextWriter.Synchronized(_jsonLog);
        // Spans of every in-process server land here; tests pick theirs by trace id.
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == Serving.Protocol.InferenceTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity => Spans.Enqueue(activity),
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>Every stopped span of the <c>SparseInference</c> source seen in this process.</summary>
    public ConcurrentQueue<Activity> Spans { get; } = new();

    /// <summary>The server's JSON log lines, written by the same Serilog setup the host uses for standard output.</summary>
    public IReadOnlyList<string> JsonLogLines()
    {
        lock (_jsonLogWriter)
        {
            return _jsonLog.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        }
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureLogging((context, logging) => logging.AddSparseInferenceLogging(context.Configuration, _jsonLogWriter));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _listener.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>Drives the known traffic once; later callers get the same record.</summary>
    public async Task<TrafficRecord> EnsureTrafficAsync()
    {
        await _trafficGate.WaitAsync();
        try
        {
            if (_traffic is null)
            {
                _traffic = await DriveAsync();
                await WaitForRequestLogAsync(Variants.Count * (RestOk + RestInvalid + GrpcOk));
            }

            return _traffic;
        }
        finally
        {
            _trafficGate.Release();
        }
    }

    /// <summary>The log sink writes from a background thread: wait until the traffic's request lines are out (at most 10 s).</summary>
    private async Task WaitForRequestLogAsync(int expected)
    {
        var marker = $"\"EventId\":{{\"Id\":{Serving.Protocol.InferenceRequestLog.CompletedEventId}";
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (JsonLogLines().Count(l => l.Contains(marker, StringComparison.Ordinal)) < expected && DateTime.UtcNow < until)
        {
            await Task.Delay(20);
        }
    }

    public async Task<string> ScrapeAsync()
    {
        using var metrics = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{MetricsPort}") };
        using var response = await metrics.GetAsync("/metrics");
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsStringAsync();
    }

    public static float[] RestWindow(int index) => SensorWindows.Make(1, RestTime, Channels, seed: 100 + index);

    public static float[] GrpcWindow(int index) => SensorWindows.Make(1, GrpcTime, Channels, seed: 200 + index);

    private async Task<TrafficRecord> DriveAsync()
    {
        var record = new TrafficRecord();
        foreach (var variant in Variants)
        {
            var extra = $"\"parameters\":{{\"variant\":\"{variant}\"}},";
            for (var i = 0; i < RestOk; i++)
            {
                var body = SensorWindows.InferBody(SensorWindows.Json(RestWindow(i)), 1, RestTime, Channels, extra: extra);
                using var message = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{ModelName}/infer") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
                if (i == 0)
                {
                    // The first request of each variant carries a W3C trace context; logs and spans must keep its trace id.
                    var traceId = ActivityTraceId.CreateRandom().ToHexString();
                    record.TraceIds[variant] = traceId;
                    message.Headers.Add("traceparent", $"00-{traceId}-{ActivitySpanId.CreateRandom().ToHexString()}-01");
                }

                using var response = await Rest.SendAsync(message);
                record.RestStatuses.Add(response.StatusCode);
                var json = JsonNode.Parse(await response.Content.ReadAsStringAsync());
                record.ReportedPairs.Add((variant, json?["parameters"]?["computed_pairs"]?.GetValue<long>() ?? -1, json?["parameters"]?["dense_pairs"]?.GetValue<long>() ?? -1));
            }

            for (var i = 0; i < RestInvalid; i++)
            {
                // Shape says 8 channels, the data holds one element fewer: refused before the engine.
                var values = RestWindow(i)[..^1];
                var body = SensorWindows.InferBody(SensorWindows.Json(values), 1, RestTime, Channels, extra: extra);
                using var response = await Rest.PostAsync($"/v2/models/{ModelName}/infer", new StringContent(body, Encoding.UTF8, "application/json"));
                record.InvalidStatuses.Add(response.StatusCode);
            }

            for (var i = 0; i < GrpcOk; i++)
            {
                var request = GrpcProtocolTests.RawRequest(GrpcWindow(i), 1, GrpcTime, id: $"obs-{variant}-{i}");
                request.Parameters["variant"] = new InferParameter { StringParam = variant };
                var result = await Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser);
                record.GrpcStatuses.Add(result.Status);
            }
        }

        return record;
    }

    /// <summary>The density the engine reports for one window and variant, computed with the engine directly.</summary>
    public static double ExpectedDensity(EncoderModel model, AttentionSpec spec, float[] window, int time)
    {
        var result = model.Forward(new ForwardInput { Batch = 1, Time = time, Values = window }, spec);
        return (double)result.ComputedPairs / result.DensePairs;
    }
}

/// <summary>What the clients saw of the known traffic.</summary>
public sealed class TrafficRecord
{
    public List<HttpStatusCode> RestStatuses { get; } = [];
    public List<HttpStatusCode> InvalidStatuses { get; } = [];
    public List<Serving.Grpc.GrpcStatusCode> GrpcStatuses { get; } = [];
    public List<(string Variant, long Computed, long Dense)> ReportedPairs { get; } = [];
    public Dictionary<string, string> TraceIds { get; } = [];
}

[CollectionDefinition(Name)]
public sealed class ObservabilityCollection : ICollectionFixture<ObservabilityFixture>
{
    public const string Name = "observability";
}
