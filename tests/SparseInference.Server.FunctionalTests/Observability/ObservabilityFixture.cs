using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting.Internal;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;
using SparseInference.Server.Observability.Logging;
using System.Text.Json.Nodes;
using SparseInference.Models;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Protocol;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Observability;

/// <summary>
/// A server of its own, so the traffic it saw is exactly the known traffic below: per variant of the default model,
/// <see cref="RestOk"/> valid and <see cref="RestInvalid"/> invalid REST infers and <see cref="GrpcOk"/> gRPC infers.
/// Shadow traffic runs on another model (<see cref="ServerFixture.BatchedName"/>), so the default model's counts stay
/// exact: its sparse variant shadows dense for every request, a burst overflows the one-slot shadow queue (drops),
/// and a guardrail whose error bound any sparse output crosses rolls the shadow back (a trip).
/// </summary>
public sealed class ObservabilityFixture : ServerFixture
{
    public const int RestOk = 7;
    public const int RestInvalid = 3;
    public const int GrpcOk = 5;
    public const int RestTime = 32;
    public const int GrpcTime = 16;

    public static readonly IReadOnlyList<string> Variants = ["dense", "window-0.75", "block-topk-0.75"];

    /// <summary>Requests sent at once to the shadowed model; they meet in one batch and finish together.</summary>
    public const int ShadowBurst = 16;

    /// <summary>Requests sent one after another to the shadowed model, each compared with its shadow.</summary>
    public const int ShadowSequential = 6;

    public const int GuardrailMinSamples = 4;
    public const string ShadowCandidate = "window-0.5";

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

    /// <summary>The server's log events as JSON lines, formatted as the host formats them for a container's standard output.</summary>
    public IReadOnlyList<string> JsonLogLines()
    {
        lock (_jsonLogWriter)
        {
            return _jsonLog.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        }
    }

    protected override void AddSettings(IDictionary<string, string?> settings)
    {
        // One shadow slot, so a burst drops shadow work; a mean-absolute-error bound no sparse output meets, evaluated
        // every half second once a few comparisons are in.
        settings["SparseInference:Variants:ShadowQueueCapacity"] = "1";
        settings["SparseInference:Variants:ShadowWorkers"] = "1";
        settings["SparseInference:Variants:Guardrails:Enabled"] = "true";
        settings["SparseInference:Variants:Guardrails:MinSamples"] = GuardrailMinSamples.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["SparseInference:Variants:Guardrails:EvaluationInterval"] = "00:00:00.500";
        settings["SparseInference:Variants:Guardrails:MaxMeanAbsoluteError"] = "1e-9";
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        // Every event the server logs, as the containers' console gets it (the same formatter, one JSON object per line).
        var formatter = LoggingSetup.ConsoleFormatter(new HostingEnvironment { EnvironmentName = Environments.Production });
        builder.ConfigureServices(services => services.AddSingleton<ILogEventSink>(new TextSink(formatter, _jsonLogWriter)));
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

    /// <summary>Request lines are written once the response has gone out: wait until the traffic's are in (at most 10 s).</summary>
    private async Task WaitForRequestLogAsync(int expected)
    {
        var marker = $"\"{RequestLogFields.Model}\":\"{ModelName}\"";
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

        await DriveShadowAsync(record);
        return record;
    }

    /// <summary>Shadows dense with the sparse variant on the batched model, then waits for the guardrail to trip.</summary>
    private async Task DriveShadowAsync(TrafficRecord record)
    {
        var split = "{\"weights\":{\"dense\":100},\"shadow\":{\"variant\":\"" + ShadowCandidate + "\",\"percent\":100,\"flagThreshold\":0.5},\"experiment\":\"observability-shadow\"}";
        using (var put = await Admin.PutAsync($"/admin/models/{BatchedName}/split", new StringContent(split, Encoding.UTF8, "application/json")))
        {
            record.ShadowSplitStatus = put.StatusCode;
        }

        long[] shape = [1, RestTime, BatchedChannels];
        var burst = await Task.WhenAll(Enumerable.Range(0, ShadowBurst)
            .Select(i => InferClient.InferAsync(Rest, BatchedName, SensorWindows.Make(1, RestTime, BatchedChannels, seed: 300 + i), shape)));
        record.ShadowStatuses.AddRange(burst.Select(r => r.Status));
        for (var i = 0; i < ShadowSequential; i++)
        {
            record.ShadowStatuses.Add((await InferClient.InferAsync(Rest, BatchedName, SensorWindows.Make(1, RestTime, BatchedChannels, seed: 400 + i), shape)).Status);
        }

        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTimeOffset.UtcNow < deadline && !record.GuardrailTripped)
        {
            record.GuardrailTripped = (await ScrapeAsync()).Contains("sparseinference_variant_guardrail_trips_total{", StringComparison.Ordinal);
            if (!record.GuardrailTripped)
            {
                await Task.Delay(200);
            }
        }

        using var table = await Admin.GetAsync($"/admin/models/{BatchedName}/variants");
        record.ShadowTableAfterTrip = await table.Content.ReadAsStringAsync();
    }

    /// <summary>The density the engine reports for one window and variant, computed with the engine directly.</summary>
    public static double ExpectedDensity(EncoderModel model, AttentionSpec spec, float[] window, int time)
    {
        var result = model.Forward(new ForwardInput { Batch = 1, Time = time, Values = window }, spec);
        return (double)result.ComputedPairs / result.DensePairs;
    }
}

/// <summary>Writes each event through <paramref name="formatter"/> to <paramref name="output"/>.</summary>
internal sealed class TextSink(ITextFormatter formatter, TextWriter output) : ILogEventSink
{
    public void Emit(LogEvent logEvent)
    {
        lock (output)
        {
            formatter.Format(logEvent, output);
        }
    }
}

/// <summary>What the clients saw of the known traffic.</summary>
public sealed class TrafficRecord
{
    public List<HttpStatusCode> RestStatuses { get; } = [];
    public List<HttpStatusCode> InvalidStatuses { get; } = [];
    public List<GrpcStatusCode> GrpcStatuses { get; } = [];
    public List<(string Variant, long Computed, long Dense)> ReportedPairs { get; } = [];
    public Dictionary<string, string> TraceIds { get; } = [];
    public HttpStatusCode ShadowSplitStatus { get; set; }
    public List<HttpStatusCode> ShadowStatuses { get; } = [];
    public bool GuardrailTripped { get; set; }
    public string ShadowTableAfterTrip { get; set; } = "";
}

[CollectionDefinition(Name)]
public sealed class ObservabilityCollection : ICollectionFixture<ObservabilityFixture>
{
    public const string Name = "observability";
}
