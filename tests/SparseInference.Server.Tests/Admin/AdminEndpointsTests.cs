using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using SparseInference.Server.Admin;
using SparseInference.Serving.Tests.Variants;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Comparison;
using SparseInference.Serving.Variants.Guardrails;
using SparseInference.Serving.Variants.Rollout;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Server.Tests.Admin;

public class AdminEndpointsTests
{
    private const string Variants = "/admin/models/pump-anomaly/variants";

    [Fact]
    public async Task ListVariants_NoAuthorizationHeader_Returns401WithBearerChallenge()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client(bearer: null);

        using var response = await client.GetAsync(Variants);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Contains("expected 'Bearer <token>'", await Error(response));
    }

    [Fact]
    public async Task ListVariants_WrongToken_Returns403()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client(bearer: "not-the-admin-token-at-all");

        using var response = await client.GetAsync(Variants);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("does not match", await Error(response));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public async Task PutVariant_NoTokenConfigured_Returns403SayingToConfigureOneAndChangesNothing(string? token)
    {
        await using var host = await AdminTestHost.StartAsync(token: token);
        using var client = host.Client(bearer: "anything-at-all-really");

        using var response = await client.PutAsync($"{Variants}/cand", Json("""{"pattern":"bigbird","sparsity":0.5}"""));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("SparseInference:Admin:Token to be configured", await Error(response));
        Assert.False(host.Registry.Current.Variants.ContainsKey("cand"));
    }

    [Fact]
    public async Task ListVariants_RightTokenOnPublicPort_Returns404()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client(adminPort: false);

        using var response = await client.GetAsync(Variants);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task ListVariants_PublicPortWithAdminHostHeader_StillReturns404()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client(adminPort: false);
        using var request = new HttpRequestMessage(HttpMethod.Get, Variants);
        request.Headers.Host = $"127.0.0.1:{host.AdminPort}";

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task DeleteVariant_WithoutTraffic_RemovesItAndListsModels()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client();
        await VariantTestKit.WithVariants(host.Registry, new VariantDefinition("old", "strided", 0.5));

        (await Ok(await client.DeleteAsync($"{Variants}/old"))).Dispose();
        using var again = await client.DeleteAsync($"{Variants}/old");
        using var models = await Ok(await client.GetAsync("/admin/models"));

        Assert.False(host.Registry.Current.Variants.ContainsKey("old"));
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        Assert.Equal("pump-anomaly", Assert.Single(models.RootElement.GetProperty("models").EnumerateArray()).GetString());
    }

    [Fact]
    public async Task ListVariants_RightToken_ReturnsTable()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client();

        using var doc = await Ok(await client.GetAsync(Variants));

        Assert.Equal("pump-anomaly", doc.RootElement.GetProperty("model").GetString());
        var variant = Assert.Single(doc.RootElement.GetProperty("variants").EnumerateArray());
        Assert.Equal("dense", variant.GetProperty("name").GetString());
        Assert.Equal(1.0, variant.GetProperty("share").GetDouble());
    }

    [Fact]
    public async Task Rollout_CreateShadowSplitPromoteRollback_EachStepServes()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client();

        using var created = await client.PutAsync($"{Variants}/bigbird-0.75", Json("""{"pattern":"bigbird","sparsity":0.75}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        (await Ok(await client.PutAsync("/admin/models/pump-anomaly/split", Json("""{"weights":{"dense":100},"shadow":{"variant":"bigbird-0.75","percent":100,"flagThreshold":0.5}}""")))).Dispose();
        var decision = host.Registry.Route(new RoutingContext("line-3"));
        Assert.Equal(("dense", "bigbird-0.75"), (decision.VariantName, decision.Shadow?.Name));

        (await Ok(await client.PutAsync("/admin/models/pump-anomaly/split", Json("""{"weights":{"dense":90,"bigbird-0.75":10}}""")))).Dispose();
        using (var promoted = await Ok(await client.PostAsync("/admin/models/pump-anomaly/promote/bigbird-0.75", null)))
        {
            Assert.Equal(1.0, promoted.RootElement.GetProperty("split").GetProperty("weights").GetProperty("bigbird-0.75").GetDouble());
        }

        Assert.Equal("bigbird-0.75", host.Registry.Route(new RoutingContext("line-3")).VariantName);
        using (var rolledBack = await Ok(await client.PostAsync("/admin/models/pump-anomaly/rollback", null)))
        {
            Assert.Equal(0.1, host.Registry.Current.Split.WeightOf("bigbird-0.75"), 12);
            Assert.True(rolledBack.RootElement.GetProperty("canRollback").GetBoolean());
        }

        // Changing only the sparsity keeps the pattern; the response shows the new generation.
        using (var changed = await Ok(await client.PutAsync($"{Variants}/bigbird-0.75", Json("""{"sparsity":0.5}"""))))
        {
            var v = changed.RootElement.GetProperty("variants").EnumerateArray().Single(e => e.GetProperty("name").GetString() == "bigbird-0.75");
            Assert.Equal(("bigbird", 0.5), (v.GetProperty("pattern").GetString(), v.GetProperty("sparsity").GetDouble()));
        }
    }

    [Fact]
    public async Task Comparison_AfterShadowedRequests_ReportsPairTotals()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client();
        await VariantTestKit.WithVariants(host.Registry, new VariantDefinition("cand", "dense", WeightsDirectory: "/models/pump/v2"));
        Assert.True((await host.Registry.SetSplitAsync(VariantTestKit.Split(("dense", 1)) with { Shadow = new ShadowConfig("cand", 100) })).Succeeded);
        var router = host.Services.GetRequiredService<VariantRouter>();
        for (var i = 0; i < 5; i++)
        {
            var input = VariantTestKit.Input(1f);
            var decision = router.Route(VariantTestKit.Model, new RoutingContext($"line-{i}"));
            router.ReportCompleted(decision, input, decision.Primary.Forward(input), TimeSpan.Zero);
        }

        var store = host.Services.GetRequiredService<ComparisonStore>();
        for (var wait = 0; wait < 500 && store.Snapshot(VariantTestKit.Model).FirstOrDefault()?.Compared != 5; wait++)
        {
            await Task.Delay(10);
        }

        using var doc = await Ok(await client.GetAsync("/admin/models/pump-anomaly/comparison"));
        var pair = Assert.Single(doc.RootElement.GetProperty("pairs").EnumerateArray());
        Assert.Equal(5, pair.GetProperty("compared").GetInt64());
        Assert.Equal(100.0, pair.GetProperty("meanAbsoluteError").GetDouble(), 6);
        Assert.Equal("cand", pair.GetProperty("candidate").GetString());
    }

    [Theory]
    [InlineData("""{"pattern":"bigbird","sparsity":1.2}""", "sparsity: expected a number in [0, 1), actual 1.2")]
    [InlineData("""{"pattern":"diagonal"}""", "pattern: expected one of [dense,")]
    [InlineData("""{"sparsity":0.5}""", "pattern: expected one of")]
    [InlineData("""{"pattern":"bigbird","sparsit":0.5}""", "sparsit")]
    [InlineData("""{"pattern":"bigbird","sparsity":"high"}""", "body: expected {\"pattern\"")]
    public async Task PutVariant_BadBody_Returns400NamingTheField(string body, string expectedInError)
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client();

        using var response = await client.PutAsync($"{Variants}/cand", Json(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expectedInError, await Error(response));
        Assert.False(host.Registry.Current.Variants.ContainsKey("cand"));
    }

    [Fact]
    public async Task PutVariant_WeightsMissing_Returns422AndOldVariantKeepsServing()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client();
        await VariantTestKit.WithVariants(host.Registry, new VariantDefinition("cand", "window", 0.5));

        using var response = await client.PutAsync($"{Variants}/cand", Json("""{"weights":"/models/missing"}"""));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains("does not exist", await Error(response));
        Assert.Null(host.Registry.Current.Variants["cand"].Definition.WeightsDirectory);
    }

    [Fact]
    public async Task PutVariant_TwoConcurrentChanges_OneGets409AndWeightsLoadOnce()
    {
        var source = new TestModelSource { HoldLoads = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var host = await AdminTestHost.StartAsync(source: source);
        using var client = host.Client();
        const string body = """{"pattern":"dense","weights":"/models/pump/v2"}""";

        var first = client.PutAsync($"{Variants}/v2", Json(body));
        await source.LoadStarted.Task.WaitAsync(TimeSpan.FromSeconds(10));
        // Bounded wait: an API that queued the second change instead of refusing it would hang here.
        using var second = await client.PutAsync($"{Variants}/v2", Json(body)).WaitAsync(TimeSpan.FromSeconds(5));
        source.HoldLoads.SetResult();
        using var firstResponse = await first;

        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
        Assert.Contains("another change is being applied", await Error(second));
        Assert.Equal(HttpStatusCode.Created, firstResponse.StatusCode);
        Assert.Equal(1, source.Loads);
    }

    [Fact]
    public async Task Endpoints_UnknownModel_Return404NamingKnownModels()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client();

        using var response = await client.PostAsync("/admin/models/ghost/rollback", null);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("model: expected one of [pump-anomaly], actual 'ghost'", await Error(response));
    }

    [Fact]
    public async Task GetRollout_AfterASplit_ReportsTheRevisionThisReplicaServesAndItsDocument()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client();
        (await Ok(await client.PutAsync($"{Variants}/cand", Json("""{"pattern":"window","sparsity":0.5}""")))).Dispose();
        (await Ok(await client.PutAsync("/admin/models/pump-anomaly/split", Json("""{"weights":{"dense":90,"cand":10},"experiment":"exp-7"}""")))).Dispose();

        using var doc = await Ok(await client.GetAsync("/admin/models/pump-anomaly/rollout"));

        var root = doc.RootElement;
        Assert.Equal((2, 2, true), (root.GetProperty("desiredRevision").GetInt64(), root.GetProperty("appliedRevision").GetInt64(), root.GetProperty("converged").GetBoolean()));
        Assert.Equal(RolloutReplica.Name, root.GetProperty("replica").GetString());
        Assert.Equal(host.StateDirectory, root.GetProperty("store").GetString());
        Assert.False(root.TryGetProperty("lastError", out _));
        var serving = root.GetProperty("serving");
        Assert.Equal(2, serving.GetProperty("revision").GetInt64());
        Assert.Equal("exp-7", serving.GetProperty("split").GetProperty("experiment").GetString());
        Assert.Equal("cand", Assert.Single(serving.GetProperty("variants").EnumerateArray()).GetProperty("name").GetString());
        Assert.True(File.Exists(Path.Combine(host.StateDirectory, "pump-anomaly", "rollout.json")));
    }

    [Fact]
    public async Task PutGuardrails_PartialBody_StoresEveryBoundForEveryReplicaAndDeleteReturnsToConfiguration()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client();

        (await Ok(await client.PutAsync("/admin/models/pump-anomaly/guardrails", Json("""{"enabled":true,"maxP99LatencyMs":250,"window":"00:02:00"}""")))).Dispose();
        var stored = host.Registry.Current.Rollout.Guardrails;
        (await Ok(await client.DeleteAsync("/admin/models/pump-anomaly/guardrails"))).Dispose();

        Assert.Equal(new GuardrailSettings(true, TimeSpan.FromMinutes(2), new GuardrailOptions().MinSamples, null, 250, null, null), stored);
        Assert.Null(host.Registry.Current.Rollout.Guardrails);
        Assert.Equal(2, host.Registry.Current.Version);
    }

    [Theory]
    [InlineData("""{"enabled":true}""", "guardrails: expected at least one bound when Enabled is true, actual none")]
    [InlineData("""{"maxErrorRate":2}""", "guardrails.maxErrorRate: expected 0..1, actual 2")]
    [InlineData("""{"minSamples":0,"maxP99LatencyMs":5}""", "guardrails.minSamples: expected >= 1, actual 0")]
    [InlineData("""{"maxErrorRat":0.1}""", "maxErrorRat")]
    public async Task PutGuardrails_BadBody_Returns400NamingTheFieldAndWritesNothing(string body, string expectedInError)
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client();

        using var response = await client.PutAsync("/admin/models/pump-anomaly/guardrails", Json(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expectedInError, await Error(response));
        Assert.False(Directory.Exists(Path.Combine(host.StateDirectory, "pump-anomaly")));
    }

    [Fact]
    public async Task PutSplit_StateStoreCannotBeWritten_Returns503AndTheServedSplitStays()
    {
        await using var host = await AdminTestHost.StartAsync();
        using var client = host.Client();
        // A file where the model's directory would go: the store can read (nothing) but not write.
        await File.WriteAllTextAsync(Path.Combine(host.StateDirectory, "pump-anomaly"), "");
        var served = host.Registry.Current;

        using var response = await client.PutAsync("/admin/models/pump-anomaly/split", Json("""{"weights":{"dense":1},"experiment":"x"}"""));

        var error = await Error(response);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("rollout state of model 'pump-anomaly'", error);
        Assert.Contains("nothing changed", error);
        Assert.Same(served, host.Registry.Current);
    }

    [Fact]
    public void TokensEqual_ComparesWholeTokens()
    {
        Assert.True(AdminAuthorization.TokensEqual("abc-token-123456", "abc-token-123456"));
        Assert.False(AdminAuthorization.TokensEqual("abc-token-123456", "abc-token-1234567"));
        Assert.False(AdminAuthorization.TokensEqual("", "abc-token-123456"));
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task<string> Error(HttpResponseMessage response)
    {
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return body.GetProperty("error").GetString()!;
    }

    private static async Task<JsonDocument> Ok(HttpResponseMessage response)
    {
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {text}");
            return JsonDocument.Parse(text);
        }
    }
}
