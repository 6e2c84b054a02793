using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// Model control (repository load and unload) needs the admin token on the admin port; an override may not name files
/// outside the repository, and every number in it is range-checked. A refused attempt changes nothing.
/// </summary>
[Collection(HostileServerCollection.Name)]
public sealed class ModelControlSecurityTests(HostileServer server)
{
    private const string Model = HostileServer.Model;

    [Theory]
    [InlineData("unload")]
    [InlineData("load")]
    public async Task RepositoryControl_OnTheInferencePort_Refused403NamingTheAdminPortAndNothingChanges(string action)
    {
        using var response = await server.Rest.PostAsync($"/v2/repository/models/{Model}/{action}", null);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("admin port", await ErrorAsync(response));
        await AssertServesAsync(Model);
    }

    [Fact]
    public async Task RepositoryControl_OverGrpc_PermissionDeniedAndNothingChanges()
    {
        var unload = await server.Grpc.UnaryAsync("RepositoryModelUnload", new RepositoryModelUnloadRequest { ModelName = Model }, RepositoryModelUnloadResponse.Parser);
        Assert.Equal(GrpcStatusCode.PermissionDenied, unload.Status);
        Assert.Contains("admin port", unload.Message);
        var load = new RepositoryModelLoadRequest { ModelName = Model };
        load.Parameters["config"] = new ModelRepositoryParameter { StringParam = """{"variants":[{"name":"dense","pattern":"dense","weights":"/"}]}""" };
        Assert.Equal(GrpcStatusCode.PermissionDenied, (await server.Grpc.UnaryAsync("RepositoryModelLoad", load, RepositoryModelLoadResponse.Parser)).Status);
        await AssertServesAsync(Model);
    }

    [Theory]
    [InlineData(null, HttpStatusCode.Unauthorized)]
    [InlineData("not-the-admin-token-at-all", HttpStatusCode.Forbidden)]
    public async Task RepositoryUnload_OnTheAdminPortWithoutTheToken_RefusedAndNothingChanges(string? token, HttpStatusCode expected)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v2/repository/models/{Model}/unload");
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using var response = await server.AdminWithoutToken.SendAsync(request);
        Assert.Equal(expected, response.StatusCode);
        await AssertServesAsync(Model);
    }

    [Fact]
    public async Task RepositoryLoad_OverrideWithWeightsOutsideTheRepository_Refused400AndTheServingVersionStays()
    {
        // A complete, loadable model directory, outside the repository: only the path rule can refuse it.
        var outside = Directory.CreateTempSubdirectory("si-outside-").FullName;
        try
        {
            HostileServer.CopyModel(outside, "elsewhere", null);
            var absolute = Path.Combine(outside, "elsewhere", "1");
            var relative = Path.GetRelativePath(Path.Combine(server.Process.RepositoryRoot, HostileServer.Reloaded), absolute);
            foreach (var weights in new[] { absolute, relative, "../../../../../../../../etc" })
            {
                var config = new JsonObject
                {
                    ["default_variant"] = "dense",
                    ["variants"] = new JsonArray(
                        new JsonObject { ["name"] = "dense", ["pattern"] = "dense" },
                        new JsonObject { ["name"] = "stolen", ["pattern"] = "dense", ["weights"] = weights }),
                }.ToJsonString();
                using var response = await server.Admin.PostAsync($"/v2/repository/models/{HostileServer.Reloaded}/load", HostileServer.LoadBody(config));
                var error = await ErrorAsync(response);
                Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"weights '{weights}': {(int)response.StatusCode} {error}");
                Assert.Contains("variant 'stolen'", error);
                Assert.Contains("inside the model repository", error);
                await AssertServesAsync(HostileServer.Reloaded);
            }
        }
        finally
        {
            Directory.Delete(outside, recursive: true);
        }
    }

    [Theory]
    [InlineData("""{"max_queue_delay_ms":10000}""", "batching.max_queue_delay_ms", "5000")]
    [InlineData("""{"max_queue_delay_microseconds":10000000}""", "batching.max_queue_delay_microseconds", "5000000")]
    [InlineData("""{"priority_levels":1000000000}""", "batching.priority_levels", "64")]
    [InlineData("""{"workers":100000}""", "batching.workers", "64")]
    [InlineData("""{"max_batch_size":1000000}""", "batching.max_batch_size", "1024")]
    [InlineData("""{"preferred_batch_size":[4096]}""", "batching.preferred_batch_size[0]", "1024")]
    [InlineData("""{"default_queue_policy":{"max_queue_size":2000000000}}""", "batching.default_queue_policy.max_queue_size", "65536")]
    [InlineData("""{"default_queue_policy":{"default_timeout_microseconds":1e18}}""", "batching.default_queue_policy.default_timeout_microseconds", "3600000000")]
    public async Task RepositoryLoad_OverrideNumberAboveItsBound_Refused400NamingKeyAndBound(string batching, string key, string bound)
    {
        var config = $$"""{"variants":[{"name":"dense","pattern":"dense"}],"batching":{{batching}}}""";
        using var response = await server.Admin.PostAsync($"/v2/repository/models/{HostileServer.Reloaded}/load", HostileServer.LoadBody(config));
        var error = await ErrorAsync(response);
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode} {error}");
        Assert.Contains(key, error);
        Assert.Contains(bound, error);
        await AssertServesAsync(HostileServer.Reloaded);
    }

    /// <summary>Ready on both protocols and answering inference.</summary>
    private async Task AssertServesAsync(string model)
    {
        Assert.Equal(HttpStatusCode.OK, (await server.Rest.GetAsync($"/v2/models/{model}/ready")).StatusCode);
        Assert.True((await server.Grpc.UnaryAsync("ModelReady", new ModelReadyRequest { Name = model }, ModelReadyResponse.Parser)).Single().Ready);
        var reply = await InferClient.InferAsync(server.Rest, model, SensorWindows.Make(1, 8, HostileServer.Channels), [1, 8, HostileServer.Channels]);
        Assert.True(reply.Status == HttpStatusCode.OK, $"{model}: {(int)reply.Status} {reply.Error}");
    }

    private static async Task<string> ErrorAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return text.Length == 0 ? "" : JsonNode.Parse(text)?["error"]?.GetValue<string>() ?? text;
    }
}
