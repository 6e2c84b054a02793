using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Protocol;

namespace SparseInference.Serving.Tests.Hosting;

public sealed class TracingSetupTests
{
    [Fact]
    public void AddSparseInferenceTracing_NoEndpoint_RegistersNoProvider()
    {
        var services = new ServiceCollection().AddSparseInferenceTracing(Configuration(null));
        using var provider = services.BuildServiceProvider();
        Assert.Null(provider.GetService<TracerProvider>());
    }

    [Fact]
    public void AddSparseInferenceTracing_RelativeEndpoint_ThrowsNamingTheKey()
    {
        var error = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddSparseInferenceTracing(Configuration("collector:4317")));
        Assert.Contains(TracingSetup.EndpointKey, error.Message);
        Assert.Contains("collector:4317", error.Message);
    }

    [Fact]
    public async Task AddSparseInferenceTracing_HttpEndpoint_ExportsReceiveSpanToTheCollector()
    {
        var port = FreePort();
        using var collector = new HttpListener();
        collector.Prefixes.Add($"http://127.0.0.1:{port}/");
        collector.Start();
        var received = Task.Run(async () =>
        {
            var context = await collector.GetContextAsync();
            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            var request = (context.Request.HttpMethod, context.Request.Url!.AbsolutePath, context.Request.ContentType, body.ToArray());
            context.Response.StatusCode = 200;
            context.Response.Close();
            return request;
        });

        var services = new ServiceCollection().AddSparseInferenceTracing(Configuration($"http://127.0.0.1:{port}/v1/traces"));
        using (var provider = services.BuildServiceProvider())
        {
            var tracer = provider.GetRequiredService<TracerProvider>();
            using (var span = InferenceTracing.StartReceive("skab-pump", "rest"))
            {
                Assert.NotNull(span);
            }

            Assert.True(tracer.ForceFlush(10_000), "ForceFlush: expected the export to finish within 10 s");
        }

        var (method, path, contentType, payload) = await received.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("POST", method);
        Assert.Equal("/v1/traces", path);
        Assert.Equal("application/x-protobuf", contentType);
        // The OTLP protobuf carries span names and attribute values as plain UTF-8 strings.
        var text = System.Text.Encoding.UTF8.GetString(payload);
        Assert.Contains("receive", text);
        Assert.Contains("skab-pump", text);
    }

    private static IConfiguration Configuration(string? endpoint) =>
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [TracingSetup.EndpointKey] = endpoint }).Build();

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
