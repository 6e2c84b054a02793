using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SparseInference.Models;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Tensors.Cuda;
using SparseInference.Server.Tests.Infrastructure;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Hosting;

public sealed class ComputeDeviceTests
{
    private const string Model = "skab-pump";
    private const int Channels = 8;

    [Fact]
    public async Task Infer_DeviceCudaWithoutUsableGpu_WarnsWithReasonAndServesOnCpu()
    {
        var gpuUsable = CudaComputeBackend.TryCreate(out var probe, out var reason);
        probe?.Dispose();
        using var server = new DeviceServer("cuda");
        server.StartServer();
        using var rest = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.RestPort}"), Timeout = TimeSpan.FromSeconds(60) };

        const int T = 24;
        var values = SensorWindows.Make(1, T, Channels, seed: 5);
        using var response = await rest.PostAsync($"/v2/models/{Model}/infer",
            new StringContent(SensorWindows.InferBody(SensorWindows.Json(values), 1, T, Channels), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        var output = body["outputs"]!.AsArray().Single(o => o!["name"]!.GetValue<string>() == "output")!;
        var y = SensorWindows.Floats(output["data"]);

        var entries = server.Logs.Entries.ToArray();
        if (gpuUsable)
        {
            // A machine with a GPU: the loader must have said so instead of warning.
            Assert.Contains(entries, e => e.Level == LogLevel.Information && e.Message.StartsWith("Compute device: cuda:0", StringComparison.Ordinal));
            Assert.Equal(T * Channels, y.Length);
            return;
        }

        var warning = Assert.Single(entries, e => e.Level == LogLevel.Warning && e.Message.Contains("CUDA is unavailable", StringComparison.Ordinal));
        Assert.Contains("SparseInference:Device is 'cuda'", warning.Message);
        Assert.Contains(reason!.TrimEnd('.'), warning.Message);
        Assert.EndsWith("Falling back to the CPU.", warning.Message);

        // Served by the CPU engine: the same numbers as the engine run directly on the shipped model.
        using var engine = EncoderModel.Load(Path.Combine(RepositoryPaths.Root, "models", Model, "1"));
        var expected = engine.Forward(new ForwardInput { Batch = 1, Time = T, Values = values }).Output;
        Assert.Equal(expected.Length, y.Length);
        for (var i = 0; i < y.Length; i++)
        {
            Assert.Equal(expected[i], y[i], 4);
        }
    }

    [Fact]
    public async Task Start_DeviceCpu_LogsCpuAndNoCudaWarning()
    {
        using var server = new DeviceServer("cpu");
        server.StartServer();
        using var rest = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.RestPort}"), Timeout = TimeSpan.FromSeconds(60) };
        using var ready = await rest.GetAsync($"/v2/models/{Model}/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        var entries = server.Logs.Entries.ToArray();
        Assert.Contains(entries, e => e.Message == "Compute device: cpu (CPU backend, AVX-512 where available)");
        Assert.DoesNotContain(entries, e => e.Message.Contains("CUDA", StringComparison.Ordinal));
    }

    /// <summary>The real server on free ports, serving the repository's <c>models/</c>, with <c>SparseInference:Device</c> set.</summary>
    private sealed class DeviceServer : WebApplicationFactory<Program>
    {
        private readonly Dictionary<string, string?> _settings;

        public DeviceServer(string device)
        {
            var listeners = Enumerable.Range(0, 4).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
            listeners.ForEach(l => l.Start());
            var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
            listeners.ForEach(l => l.Stop());
            RestPort = ports[0];
            _settings = new Dictionary<string, string?>
            {
                ["SparseInference:Ports:Rest"] = ports[0].ToString(),
                ["SparseInference:Ports:Grpc"] = ports[1].ToString(),
                ["SparseInference:Ports:Metrics"] = ports[2].ToString(),
                ["SparseInference:Ports:Admin"] = ports[3].ToString(),
                ["SparseInference:ModelRepository"] = Path.Combine(RepositoryPaths.Root, "models"),
                ["SparseInference:Shutdown:DrainDelaySeconds"] = "0",
                ["SparseInference:Device"] = device,
                [TestStateDirectory.Key] = TestStateDirectory.Create(),
            };
            UseKestrel();
        }

        public int RestPort { get; }

        public LogSink Logs { get; } = new();

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.ConfigureServices(services => services.AddSingleton<Serilog.Core.ILogEventSink>(Logs));
            builder.ConfigureAppConfiguration((_, configuration) => configuration.AddInMemoryCollection(_settings));
        }
    }
}
