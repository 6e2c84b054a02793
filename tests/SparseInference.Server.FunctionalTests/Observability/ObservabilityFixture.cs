using System.Net;
using System.Text;
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
    private TrafficRecord? _traffic;

    /// <summary>Drives the known traffic once; later callers get the same record.</summary>
    public async Task<TrafficRecord> EnsureTrafficAsync()
    {
        await _trafficGate.WaitAsync();
        try
        {
            return _traffic ??= await DriveAsync();
        }
        finally
        {
            _trafficGate.Release();
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
                using var response = await Rest.PostAsync($"/v2/models/{ModelName}/infer", new StringContent(body, Encoding.UTF8, "application/json"));
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
}

[CollectionDefinition(Name)]
public sealed class ObservabilityCollection : ICollectionFixture<ObservabilityFixture>
{
    public const string Name = "observability";
}
