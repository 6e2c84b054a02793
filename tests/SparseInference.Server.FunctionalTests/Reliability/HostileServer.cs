using System.Buffers.Binary;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Observability;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// The built server as its own process, configured as a deployment would be against hostile clients: an admin token,
/// a small in-flight memory budget, guardrails on, and copies of the default model with settings the tests need
/// (a tiny queue, a candidate split, a large batch size). Clients for every port, and the metrics it exposes.
/// </summary>
public sealed class HostileServer : IAsyncLifetime
{
    public const string AdminToken = "hostile-admin-token-0123456789";
    public const long InFlightBudgetBytes = 32L << 20;

    public const string Model = ServerFixture.ModelName;
    public const int Channels = ServerFixture.Channels;
    public const int MaxSeqLen = ServerFixture.MaxSeqLen;

    /// <summary>A queue of two, one request per batch: a leaked queue slot shows within a few requests.</summary>
    public const string Throttled = "throttled";

    /// <summary>A copy that tests reload with overrides the variants refuse.</summary>
    public const string Reloaded = "reloaded";

    /// <summary>A copy whose split the guardrail tests give a candidate.</summary>
    public const string Guarded = "guarded";

    /// <summary>A copy whose split tests try to break.</summary>
    public const string Split = "split";

    /// <summary>A copy batching up to 1024 sequences per batch: large requests take the batched path.</summary>
    public const string WideBatches = "wide-batches";

    private LiveServerProcess? _process;

    internal LiveServerProcess Process => _process!;

    public HttpClient Rest { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public HttpClient AdminWithoutToken { get; private set; } = null!;

    public HttpClient Metrics { get; private set; } = null!;

    internal GrpcTestClient Grpc { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _process = LiveServerProcess.Start(
            new Dictionary<string, string>
            {
                ["SparseInference__Admin__Token"] = AdminToken,
                ["SparseInference__Limits__InFlightMemoryBytes"] = InFlightBudgetBytes.ToString(),
                ["SparseInference__Shutdown__DrainDelaySeconds"] = "0",
                ["SparseInference__Variants__Guardrails__Enabled"] = "true",
                ["SparseInference__Variants__Guardrails__MinSamples"] = "20",
                ["SparseInference__Variants__Guardrails__MaxErrorRate"] = "0.2",
                ["SparseInference__Variants__Guardrails__EvaluationInterval"] = "00:00:00.200",
            },
            repository =>
            {
                CopyModel(repository, Throttled, """{"variants":[{"name":"dense","pattern":"dense"}],"batching":{"max_batch_size":1,"max_queue_delay_microseconds":0,"default_queue_policy":{"max_queue_size":2}}}""");
                CopyModel(repository, Reloaded, null);
                CopyModel(repository, Guarded, null);
                CopyModel(repository, Split, null);
                CopyModel(repository, WideBatches, """{"variants":[{"name":"dense","pattern":"dense"}],"batching":{"max_batch_size":1024,"max_queue_delay_ms":20,"max_padding_waste":0}}""");
            });
        await _process.WaitReadyAsync(TimeSpan.FromSeconds(90));
        Rest = Client(_process.RestPort);
        Admin = Client(_process.AdminPort);
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        AdminWithoutToken = Client(_process.AdminPort);
        Metrics = Client(_process.MetricsPort);
        Grpc = new GrpcTestClient(_process.GrpcPort);
    }

    public Task DisposeAsync()
    {
        Rest?.Dispose();
        Admin?.Dispose();
        AdminWithoutToken?.Dispose();
        Metrics?.Dispose();
        Grpc?.Dispose();
        _process?.Dispose();
        return Task.CompletedTask;
    }

    public async Task<MetricsExposition> ScrapeAsync() => MetricsExposition.Parse(await Metrics.GetStringAsync("/metrics"));

    /// <summary>Waits until nothing is queued and no request holds memory; false when that does not happen in time.</summary>
    public async Task<bool> SettlesAsync(TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        do
        {
            var metrics = await ScrapeAsync();
            if (metrics.Where("sparseinference_queue_depth").All(s => s.Value == 0) && metrics.Sum("sparseinference_memory_in_flight_bytes") == 0)
            {
                return true;
            }

            await Task.Delay(50);
        }
        while (DateTime.UtcNow < until);
        return false;
    }

    /// <summary>A load request body with a serving.json override.</summary>
    public static StringContent LoadBody(string servingJson) =>
        new(new JsonObject { ["parameters"] = new JsonObject { ["config"] = servingJson } }.ToJsonString(), System.Text.Encoding.UTF8, "application/json");

    /// <summary>
    /// Copies the repository's default model under another name, with its own serving.json (or the default model's) and,
    /// when <paramref name="editConfig"/> is given, its config.json edited.
    /// </summary>
    internal static void CopyModel(string repository, string name, string? servingJson, Action<JsonObject>? editConfig = null)
    {
        var source = Path.Combine(RepositoryPaths.Root, "models", Model);
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(repository, name, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target, overwrite: true);
        }

        if (servingJson is not null)
        {
            File.WriteAllText(Path.Combine(repository, name, "serving.json"), servingJson);
        }

        if (editConfig is not null)
        {
            var path = Path.Combine(repository, name, "1", "config.json");
            var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            editConfig(config);
            File.WriteAllText(path, config.ToJsonString());
        }
    }

    /// <summary>Overwrites the first element of an FP32 tensor of a copied model's weights.</summary>
    internal static void PoisonFirstValue(string repository, string name, string tensor, float value)
    {
        var path = Path.Combine(repository, name, "1", "model.safetensors");
        var bytes = File.ReadAllBytes(path);
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonNode.Parse(bytes.AsSpan(8, headerLength))!;
        if (header[tensor]?["dtype"]?.GetValue<string>() != "F32")
        {
            throw new InvalidOperationException($"{path}: expected an F32 tensor '{tensor}'");
        }

        var begin = header[tensor]!["data_offsets"]![0]!.GetValue<long>();
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan((int)(8 + headerLength + begin)), value);
        File.WriteAllBytes(path, bytes);
    }

    private static HttpClient Client(int port) => new() { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
}

[CollectionDefinition(Name)]
public sealed class HostileServerCollection : ICollectionFixture<HostileServer>
{
    public const string Name = "hostile server";
}
