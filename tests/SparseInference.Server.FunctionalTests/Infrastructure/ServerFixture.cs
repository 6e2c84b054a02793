using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;
using SparseInference.Server.Tests.Infrastructure;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Infrastructure;

/// <summary>
/// The real server (Program, Kestrel, real sockets, the real engine) on four free ports, serving a temporary copy of
/// the repository's <c>models/</c> (the default SKAB pump model) plus small models from the engine's golden files:
/// a two-version model, a token classifier, and a broken model.
/// </summary>
public class ServerFixture : WebApplicationFactory<Program>, IAsyncLifetime
{
    /// <summary>The default model shipped in the repository's <c>models/</c>.</summary>
    public const string ModelName = "skab-pump";
    public const int Channels = 8;
    public const int MaxSeqLen = 512;
    public const string VersionedName = "sensor";
    public const string ClassifierName = "classifier";
    public const int MaxGrpcMessageBytes = 1 << 20;

    /// <summary>A small model on the delay policy, whose queue waits long enough (100 ms) for concurrent requests to meet in one batch.</summary>
    public const string BatchedName = "batched";
    public const int BatchedChannels = 3;

    /// <summary>A copy of the default model that tests reload with tiny queues through the load API's config override.</summary>
    public const string ThrottledName = "throttled";

    public const string AdminToken = "functional-admin-token-0123456789";

    public const string BatchedServingJson = """
        {
          "default_variant": "dense",
          "variants": [
            { "name": "dense", "pattern": "dense", "sparsity": 0.0 },
            { "name": "window-0.5", "pattern": "window", "sparsity": 0.5 }
          ],
          "batching": { "policy": "delay", "max_batch_size": 16, "max_queue_delay_ms": 100 }
        }
        """;

    public const string SensorServingJson = """
        {
          "default_version": "1",
          "default_variant": "dense",
          "variants": [
            { "name": "dense", "pattern": "dense", "sparsity": 0.0 },
            { "name": "window-0.75", "pattern": "window", "sparsity": 0.75 }
          ],
          "batching": { "max_batch_size": 8, "max_queue_delay_ms": 2 }
        }
        """;

    public ServerFixture()
    {
        RepositoryRoot = Directory.CreateTempSubdirectory("si-repo-").FullName;
        CopyDirectory(Path.Combine(RepositoryPaths.Root, "models"), RepositoryRoot);
        AnomalyThreshold = JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryRoot, ModelName, "1", "config.json")))!["anomaly_threshold"]!.GetValue<double>();

        var golden = Path.Combine(RepositoryPaths.Root, "tests", "fixtures", "golden", "models");
        CopyModel(Path.Combine(golden, "tiny-continuous-sinusoidal"), Path.Combine(RepositoryRoot, VersionedName, "1"), 0.5);
        CopyModel(Path.Combine(golden, "tiny-continuous-learned"), Path.Combine(RepositoryRoot, VersionedName, "2"), null);
        File.WriteAllText(Path.Combine(RepositoryRoot, VersionedName, "serving.json"), SensorServingJson);
        CopyModel(Path.Combine(golden, "tiny-tokens-classifier"), Path.Combine(RepositoryRoot, ClassifierName, "1"), null);
        CopyModel(Path.Combine(golden, "tiny-continuous-sinusoidal"), Path.Combine(RepositoryRoot, BatchedName, "1"), null);
        File.WriteAllText(Path.Combine(RepositoryRoot, BatchedName, "serving.json"), BatchedServingJson);
        CopyDirectory(Path.Combine(RepositoryRoot, ModelName, "1"), Path.Combine(RepositoryRoot, ThrottledName, "1"));
        Directory.CreateDirectory(Path.Combine(RepositoryRoot, "broken", "1"));
        File.WriteAllText(Path.Combine(RepositoryRoot, "broken", "1", "config.json"), "{ \"format\": \"sparseinference-encoder\" }");
        File.WriteAllBytes(Path.Combine(RepositoryRoot, "broken", "1", "model.safetensors"), [1, 2, 3]);

        var ports = FreePorts(4);
        (RestPort, GrpcPort, MetricsPort, AdminPort) = (ports[0], ports[1], ports[2], ports[3]);
        UseKestrel();
    }

    public string RepositoryRoot { get; }

    /// <summary>The server's rollout state store.</summary>
    public string StateDirectory { get; } = TestStateDirectory.Create();

    /// <summary>The default model's <c>anomaly_threshold</c>, read from its config.json.</summary>
    public double AnomalyThreshold { get; }
    public int RestPort { get; }
    public int GrpcPort { get; }
    public int MetricsPort { get; }
    public int AdminPort { get; }

    public LogSink Logs { get; } = new();

    public HttpClient Rest { get; private set; } = null!;

    /// <summary>The admin port, with the admin bearer token.</summary>
    public HttpClient Admin { get; private set; } = null!;
    internal GrpcTestClient Grpc { get; private set; } = null!;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.ConfigureServices(services => services.AddSingleton<ILogEventSink>(Logs));
        var settings = new Dictionary<string, string?>
        {
            ["SparseInference:Ports:Rest"] = RestPort.ToString(),
            ["SparseInference:Ports:Grpc"] = GrpcPort.ToString(),
            ["SparseInference:Ports:Metrics"] = MetricsPort.ToString(),
            ["SparseInference:Ports:Admin"] = AdminPort.ToString(),
            ["SparseInference:ModelRepository"] = RepositoryRoot,
            ["SparseInference:Shutdown:DrainDelaySeconds"] = "0",
            ["SparseInference:Limits:MaxGrpcMessageBytes"] = MaxGrpcMessageBytes.ToString(),
            ["SparseInference:Admin:Token"] = AdminToken,
            [TestStateDirectory.Key] = StateDirectory,
            // The server's own Debug events (gRPC cancellations, batch retries) reach the test sink.
            ["Serilog:MinimumLevel:Override:SparseInference"] = "Debug",
        };
        AddSettings(settings);
        builder.ConfigureAppConfiguration((_, configuration) => configuration.AddInMemoryCollection(settings));
    }

    /// <summary>Lets a derived fixture add or override configuration keys before the server starts.</summary>
    protected virtual void AddSettings(IDictionary<string, string?> settings)
    {
    }

    public Task InitializeAsync()
    {
        StartServer();
        Rest = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{RestPort}"), Timeout = TimeSpan.FromSeconds(60) };
        Admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{AdminPort}"), Timeout = TimeSpan.FromSeconds(60) };
        Admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminToken);
        Grpc = new GrpcTestClient(GrpcPort);
        return Task.CompletedTask;
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        Rest?.Dispose();
        Admin?.Dispose();
        Grpc?.Dispose();
        await DisposeAsync();
        try
        {
            Directory.Delete(RepositoryRoot, recursive: true);
        }
        catch (IOException)
        {
            // A temp directory left behind is harmless.
        }
    }

    private static void CopyModel(string source, string destination, double? anomalyThreshold)
    {
        Directory.CreateDirectory(destination);
        File.Copy(Path.Combine(source, "model.safetensors"), Path.Combine(destination, "model.safetensors"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        config["anomaly_threshold"] = anomalyThreshold;
        File.WriteAllText(Path.Combine(destination, "config.json"), config.ToJsonString());
    }

    internal static void CopyDirectory(string source, string destination)
    {
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(destination, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        listeners.ForEach(l => l.Start());
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        listeners.ForEach(l => l.Stop());
        return ports;
    }
}

[CollectionDefinition(Name)]
public sealed class ServerCollection : ICollectionFixture<ServerFixture>
{
    public const string Name = "server";
}
