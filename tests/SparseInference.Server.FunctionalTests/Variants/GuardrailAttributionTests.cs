using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Reliability;

namespace SparseInference.Server.FunctionalTests.Variants;

/// <summary>Guardrails judge a candidate by the failures the server caused, so no client can roll a rollout back.</summary>
[Collection(HostileServerCollection.Name)]
public sealed class GuardrailAttributionTests(HostileServer server)
{
    private const string Model = HostileServer.Guarded;
    private const string Candidate = "window-0.75";

    [Fact]
    public async Task Infer_CandidatePinnedWithAOneMicrosecondTimeout_FailsForTheClientButTheSplitStays()
    {
        await PutSplitAsync("""{"weights":{"dense":100}}""");
        await PutSplitAsync($$$"""{"weights":{"dense":50,"{{{Candidate}}}":50}}""");

        // Three times the guardrails' minimum sample count, all failing because the client allowed 1 µs in the queue.
        var values = SensorWindows.Make(1, 64, HostileServer.Channels);
        var replies = new List<InferReply>();
        for (var i = 0; i < 60; i++)
        {
            replies.Add(await InferClient.InferAsync(server.Rest, Model, values, [1, 64, HostileServer.Channels], $"\"variant\":\"{Candidate}\",\"timeout\":1"));
        }

        Assert.All(replies, r => Assert.True(r.Status is HttpStatusCode.GatewayTimeout or HttpStatusCode.OK, $"{(int)r.Status} {r.Error}"));
        Assert.True(replies.Count(r => r.Status == HttpStatusCode.GatewayTimeout) >= 40, "the 1 µs timeout rarely expired");

        // Evaluations run every 200 ms; give them ten chances to (wrongly) roll back.
        await Task.Delay(TimeSpan.FromSeconds(2));
        var split = JsonNode.Parse(await server.Admin.GetStringAsync($"/admin/models/{Model}/variants"))!["split"]!;
        Assert.Equal(50, split["weights"]![Candidate]?.GetValue<double>());
        var trips = (await server.ScrapeAsync()).Sum("sparseinference_variant_guardrail_trips_total", ("model", Model));
        Assert.Equal(0, trips);
    }

    private async Task PutSplitAsync(string body)
    {
        using var response = await server.Admin.PutAsync($"/admin/models/{Model}/split", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }
}
