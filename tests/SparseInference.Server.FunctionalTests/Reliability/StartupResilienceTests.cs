using System.Net;
using System.Text.Json.Nodes;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// Start-up survives any one bad model: it is UNAVAILABLE with a reason naming the field, bound and value (or the
/// tensor), in the repository index and on its ready endpoint, and the other models serve.
/// </summary>
public sealed class StartupResilienceTests
{
    [Fact]
    public async Task Start_RepositoryWithOversizedAndNonFiniteModels_OthersServeAndEachBadOneSaysWhy()
    {
        using var server = LiveServerProcess.Start(prepareRepository: repository =>
        {
            HostileServer.CopyModel(repository, "seq-overflow", null, config => config["max_seq_len"] = int.MaxValue);
            HostileServer.CopyModel(repository, "seq-huge", null, config => config["max_seq_len"] = 4_000_000);
            HostileServer.CopyModel(repository, "wide-model", null, config => config["d_model"] = 1 << 20);
            HostileServer.CopyModel(repository, "nan-weights", null);
            HostileServer.PoisonFirstValue(repository, "nan-weights", "layers.0.attn.qkv.weight", float.NaN);
        });
        await server.WaitReadyAsync(TimeSpan.FromSeconds(90));
        using var rest = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.RestPort}") };
        using var grpc = new GrpcTestClient(server.GrpcPort);

        var reply = await InferClient.InferAsync(rest, ServerFixture.ModelName, SensorWindows.Make(1, 64, ServerFixture.Channels), [1, 64, ServerFixture.Channels]);
        Assert.True(reply.Status == HttpStatusCode.OK, $"{(int)reply.Status} {reply.Error}");

        var index = JsonNode.Parse(await (await rest.PostAsync("/v2/repository/index", null)).Content.ReadAsStringAsync())!.AsArray();
        string Reason(string name)
        {
            var entry = index.Single(e => e!["name"]!.GetValue<string>() == name)!;
            Assert.Equal("UNAVAILABLE", entry["state"]!.GetValue<string>());
            return entry["reason"]!.GetValue<string>();
        }

        Assert.Equal("READY", index.Single(e => e!["name"]!.GetValue<string>() == ServerFixture.ModelName)!["state"]!.GetValue<string>());
        AssertNames(Reason("seq-overflow"), "max_seq_len", "131072", "2147483647");
        AssertNames(Reason("seq-huge"), "max_seq_len", "131072", "4000000");
        AssertNames(Reason("wide-model"), "d_model", "16384", "1048576");
        AssertNames(Reason("nan-weights"), "tensor 'layers.0.attn.qkv.weight'", "NaN");

        foreach (var name in new[] { "seq-overflow", "seq-huge", "wide-model", "nan-weights" })
        {
            using var ready = await rest.GetAsync($"/v2/models/{name}/ready");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Contains(Reason(name).TrimEnd('.'), JsonNode.Parse(await ready.Content.ReadAsStringAsync())!["error"]!.GetValue<string>());
            Assert.False((await grpc.UnaryAsync("ModelReady", new ModelReadyRequest { Name = name }, ModelReadyResponse.Parser)).Single().Ready);
        }
    }

    private static void AssertNames(string reason, params string[] parts)
    {
        foreach (var part in parts)
        {
            Assert.True(reason.Contains(part, StringComparison.Ordinal), $"reason '{reason}' does not name {part}");
        }
    }
}
