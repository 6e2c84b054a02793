using System.Net;
using System.Text;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Protocol;

[Collection(ServerCollection.Name)]
public sealed class MetricsPortTests(ServerFixture server)
{
    [Fact]
    public async Task Metrics_AfterRestAndGrpcInfer_ExportsRequestsPerProtocolAndVariant()
    {
        var body = SensorWindows.InferBody(SensorWindows.Json(SensorWindows.Make(1, 32, ServerFixture.Channels)), 1, 32, ServerFixture.Channels,
            extra: "\"parameters\":{\"variant\":\"window-0.75\"},");
        Assert.Equal(HttpStatusCode.OK, (await server.Rest.PostAsync($"/v2/models/{ServerFixture.ModelName}/infer", new StringContent(body, Encoding.UTF8, "application/json"))).StatusCode);
        var grpc = GrpcProtocolTests.RawRequest(SensorWindows.Make(1, 8, ServerFixture.Channels), 1, 8);
        Assert.Equal(GrpcStatusCode.OK, (await server.Grpc.UnaryAsync("ModelInfer", grpc, ModelInferResponse.Parser)).Status);

        using var metrics = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.MetricsPort}") };
        var response = await metrics.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        var requestLines = text.Split('\n').Where(l => l.StartsWith("sparseinference_requests_total{", StringComparison.Ordinal)).ToList();
        Assert.Contains(requestLines, l => l.Contains("model=\"skab-pump\"") && l.Contains("variant=\"window-0.75\"") && l.Contains("protocol=\"rest\"") && l.Contains("outcome=\"success\""));
        Assert.Contains(requestLines, l => l.Contains("model=\"skab-pump\"") && l.Contains("variant=\"dense\"") && l.Contains("protocol=\"grpc\""));
        Assert.Contains("sparseinference_attention_density", text);
    }

    [Fact]
    public async Task Metrics_OnRestPort_IsNotServed()
    {
        Assert.Equal(HttpStatusCode.NotFound, (await server.Rest.GetAsync("/metrics")).StatusCode);
    }
}
