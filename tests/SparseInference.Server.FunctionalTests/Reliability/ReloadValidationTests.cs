using System.Net;
using System.Text.Json.Nodes;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>A reload is validated whole before anything is published: when it fails, the old version keeps serving, ready.</summary>
[Collection(HostileServerCollection.Name)]
public sealed class ReloadValidationTests(HostileServer server)
{
    private const string Name = HostileServer.Reloaded;

    [Theory]
    [InlineData("""[{"name":"dense","pattern":"dense"},{"name":"Dense","pattern":"window","sparsity":0.5}]""", "'Dense'")]
    [InlineData("""[{"name":"dense","pattern":"dense"},{"name":"bigbird","pattern":"bigbird","sparsity":0.5,"global_blocks":-1}]""", "globalBlocks")]
    [InlineData("""[{"name":"dense","pattern":"dense"},{"name":"bigbird","pattern":"bigbird","sparsity":0.5,"block_size":100000}]""", "blockSize")]
    public async Task RepositoryLoad_VariantsTheRegistryRefuses_Refused400AndTheOldVersionServesReady(string variants, string named)
    {
        var before = await VariantNamesAsync();
        var config = $$"""{"default_variant":"dense","variants":{{variants}}}""";
        using var response = await server.Admin.PostAsync($"/v2/repository/models/{Name}/load", HostileServer.LoadBody(config));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode} {text}");
        Assert.Contains(named, JsonNode.Parse(text)!["error"]!.GetValue<string>());

        Assert.Equal(HttpStatusCode.OK, (await server.Rest.GetAsync($"/v2/models/{Name}/ready")).StatusCode);
        Assert.True((await server.Grpc.UnaryAsync("ModelReady", new ModelReadyRequest { Name = Name }, ModelReadyResponse.Parser)).Single().Ready);
        var reply = await InferClient.InferAsync(server.Rest, Name, SensorWindows.Make(1, 8, HostileServer.Channels), [1, 8, HostileServer.Channels]);
        Assert.True(reply.Status == HttpStatusCode.OK, $"{(int)reply.Status} {reply.Error}");
        Assert.Equal(before, await VariantNamesAsync());
    }

    /// <summary>The admin API's view of the model's variants (404 if it lost them).</summary>
    private async Task<string[]> VariantNamesAsync()
    {
        using var response = await server.Admin.GetAsync($"/admin/models/{Name}/variants");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"admin variants of {Name}: {(int)response.StatusCode} {text}");
        return [.. JsonNode.Parse(text)!["variants"]!.AsArray().Select(v => v!["name"]!.GetValue<string>()).Order(StringComparer.Ordinal)];
    }
}
