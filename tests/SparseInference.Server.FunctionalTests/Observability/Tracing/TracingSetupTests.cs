using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Protocol;
using SparseInference.Server.FunctionalTests.Reliability;
using SparseInference.Server.Observability.Tracing;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Observability.Tracing;

public sealed class TracingSetupTests
{
    [Fact]
    public async Task AddSparseInferenceTracing_NoEndpoint_RegistersNoProvider()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.AddSparseInferenceTracing();
        await using var app = builder.Build();
        Assert.Null(app.Services.GetService<TracerProvider>());
    }

    [Fact]
    public void AddSparseInferenceTracing_RelativeEndpoint_ThrowsNamingTheKey()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration[TracingSetup.EndpointKey] = "collector:4317";
        var error = Assert.Throws<InvalidOperationException>(() => builder.AddSparseInferenceTracing());
        Assert.Contains(TracingSetup.EndpointKey, error.Message);
        Assert.Contains("collector:4317", error.Message);
    }

    [Fact]
    public async Task AddSparseInferenceTracing_StandardOtlpVariables_ExportToThatCollector()
    {
        using var collector = new OtlpCollector();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration[TracingSetup.StandardEndpointKey] = collector.BaseAddress;
        builder.Configuration["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf";
        builder.AddSparseInferenceTracing();
        await using (var app = builder.Build())
        {
            var tracer = app.Services.GetRequiredService<TracerProvider>();
            using (var span = Serving.Protocol.InferenceTracing.StartReceive("skab-pump", "rest"))
            {
                Assert.NotNull(span);
            }

            Assert.True(tracer.ForceFlush(10_000), "ForceFlush: expected the export to finish within 10 s");
        }

        var request = await collector.NextAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("/v1/traces", request.Path);
        Assert.Equal("application/x-protobuf", request.ContentType);
        Assert.Contains("skab-pump", request.Text);
    }

    /// <summary>
    /// The real server process with our option set: a traced gRPC inference reaches the collector as the request span (with
    /// gRPC's rpc attributes) and the inference spans, all in the caller's trace, flushed when the process stops.
    /// </summary>
    [Fact]
    public async Task Server_OtlpEndpointOption_ExportsRequestAndInferenceSpansOfAGrpcCall()
    {
        using var collector = new OtlpCollector();
        using var server = LiveServerProcess.Start(new Dictionary<string, string>
        {
            ["SparseInference__Tracing__OtlpEndpoint"] = collector.BaseAddress + "v1/traces",
            ["SparseInference__Shutdown__DrainDelaySeconds"] = "0",
        });
        await server.WaitReadyAsync(TimeSpan.FromSeconds(60));
        var traceId = ActivityTraceId.CreateRandom();
        using (var grpc = new GrpcTestClient(server.GrpcPort))
        {
            var request = GrpcProtocolTests.RawRequest(SensorWindows.Make(1, 8, ServerFixture.Channels), 1, 8);
            var result = await grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser,
                new Dictionary<string, string> { ["traceparent"] = $"00-{traceId.ToHexString()}-{ActivitySpanId.CreateRandom().ToHexString()}-01" });
            Assert.Equal(GrpcStatusCode.OK, result.Status);
        }

        server.Terminate();
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(30)), "the server did not stop within 30 s");

        var payloads = collector.Received.Select(r => r.Body).ToList();
        Assert.True(payloads.Count > 0, $"no export reached the collector; server log:\n{server.Log}");
        var all = payloads.SelectMany(p => p).ToArray();
        var text = Encoding.UTF8.GetString(all);
        var traceBytes = Convert.FromHexString(traceId.ToHexString());
        Assert.True(all.AsSpan().IndexOf(traceBytes) >= 0, "the caller's trace id: expected in the exported spans");
        foreach (var expected in new[] { "sparseinference", "receive", "compute", "rpc.system.name", "rpc.response.status_code", "inference.GRPCInferenceService/ModelInfer" })
        {
            Assert.True(text.Contains(expected, StringComparison.Ordinal), $"'{expected}': expected in the exported spans: {new string(text.Select(c => char.IsControl(c) ? ' ' : c).ToArray())}");
        }
    }

    /// <summary>An OTLP/HTTP collector on a loopback port that keeps every request it is sent and answers 200.</summary>
    private sealed class OtlpCollector : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly BlockingCollection<Export> _queue = [];
        private readonly Task _loop;

        public OtlpCollector()
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            BaseAddress = $"http://127.0.0.1:{port}/";
            _listener.Prefixes.Add(BaseAddress);
            _listener.Start();
            _loop = Task.Run(ServeAsync);
        }

        public sealed record Export(string Path, string? ContentType, byte[] Body)
        {
            public string Text => Encoding.UTF8.GetString(Body);
        }

        public string BaseAddress { get; }

        public ConcurrentQueue<Export> Received { get; } = new();

        public Task<Export> NextAsync(TimeSpan timeout) => Task.Run(() =>
            _queue.TryTake(out var export, timeout) ? export : throw new TimeoutException($"no OTLP export within {timeout}"));

        public void Dispose()
        {
            _listener.Close();
            _queue.CompleteAdding();
        }

        private async Task ServeAsync()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception) when (!_listener.IsListening)
                {
                    return;
                }

                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                var export = new Export(context.Request.Url!.AbsolutePath, context.Request.ContentType, body.ToArray());
                Received.Enqueue(export);
                _queue.Add(export);
                context.Response.StatusCode = 200;
                context.Response.Close();
            }
        }
    }
}
