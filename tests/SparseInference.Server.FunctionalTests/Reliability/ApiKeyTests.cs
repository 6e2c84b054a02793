using System.Net;
using System.Text;
using SparseInference.Serving.Protocol.Grpc;
using SparseInference.Server.FunctionalTests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>Optional inference API keys (<c>SparseInference:Inference:ApiKeys</c>) on the real server process.</summary>
public sealed class ApiKeyTests
{
    private const string Key = "k-3f9a1c";

    [Fact]
    public async Task Inference_WithApiKeysConfigured_RequiresAKeyOnRestAndGrpcButNotOnHealth()
    {
        using var server = LiveServerProcess.Start(new Dictionary<string, string>
        {
            ["SparseInference__Inference__ApiKeys__0"] = "other-key",
            ["SparseInference__Inference__ApiKeys__1"] = Key,
            ["SparseInference__Shutdown__DrainDelaySeconds"] = "0",
        });
        await server.WaitReadyAsync(TimeSpan.FromSeconds(60));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.RestPort}") };
        var body = SensorWindows.InferBody(SensorWindows.Json(SensorWindows.Make(1, 4, ServerFixture.Channels)), 1, 4, ServerFixture.Channels);
        var infer = $"/v2/models/{ServerFixture.ModelName}/infer";

        Task<HttpResponseMessage> Post(string? header, string? value)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, infer) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            if (header is not null)
            {
                request.Headers.TryAddWithoutValidation(header, value);
            }

            return http.SendAsync(request);
        }

        var missing = await Post(null, null);
        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        Assert.Contains("API key", await missing.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Unauthorized, (await Post("Authorization", "Bearer wrong")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Post("X-API-Key", Key + "x")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync($"/v2/models/{ServerFixture.ModelName}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Post("Authorization", "Bearer " + Key)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Post("X-API-Key", Key)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v2/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v2/health/live")).StatusCode);

        using var grpc = new GrpcTestClient(server.GrpcPort);
        var request = new ModelMetadataRequest { Name = ServerFixture.ModelName };
        var denied = await grpc.UnaryAsync("ModelMetadata", request, ModelMetadataResponse.Parser);
        Assert.Equal(GrpcStatusCode.Unauthenticated, denied.Status);
        Assert.Contains("API key", denied.Message);
        var wrong = await grpc.UnaryAsync("ModelMetadata", request, ModelMetadataResponse.Parser, new Dictionary<string, string> { ["authorization"] = "Bearer nope" });
        Assert.Equal(GrpcStatusCode.Unauthenticated, wrong.Status);
        var allowed = await grpc.UnaryAsync("ModelMetadata", request, ModelMetadataResponse.Parser, new Dictionary<string, string> { ["authorization"] = "Bearer " + Key });
        Assert.True(allowed.Status == GrpcStatusCode.OK, server.Log);
        Assert.Equal(ServerFixture.ModelName, allowed.Single().Name);
        Assert.Equal(GrpcStatusCode.OK, (await grpc.UnaryAsync("ServerLive", new ServerLiveRequest(), ServerLiveResponse.Parser)).Status);
    }

    [Fact]
    public async Task Inference_WithoutApiKeys_StaysOpen()
    {
        using var server = LiveServerProcess.Start(new Dictionary<string, string> { ["SparseInference__Shutdown__DrainDelaySeconds"] = "0" });
        await server.WaitReadyAsync(TimeSpan.FromSeconds(60));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.RestPort}") };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"/v2/models/{ServerFixture.ModelName}")).StatusCode);
    }
}
