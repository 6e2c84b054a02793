using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using SparseInference.Server.FunctionalTests.Reliability;

namespace SparseInference.Server.FunctionalTests.Variants;

/// <summary>A split is checked as a whole: weights that are each finite must also add up to a finite total.</summary>
[Collection(HostileServerCollection.Name)]
public sealed class SplitValidationTests(HostileServer server)
{
    [Fact]
    public async Task PutSplit_WeightsSummingToInfinity_Refused400AndTheSplitStays()
    {
        const string model = HostileServer.Split;
        var before = JsonNode.Parse(await server.Admin.GetStringAsync($"/admin/models/{model}/variants"))!["split"]!.ToJsonString();

        using var response = await server.Admin.PutAsync(
            $"/admin/models/{model}/split", new StringContent("""{"weights":{"dense":1e308,"window-0.75":1e308}}""", Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode} {text}");
        Assert.Contains("finite total", JsonNode.Parse(text)!["error"]!.GetValue<string>());
        Assert.Equal(before, JsonNode.Parse(await server.Admin.GetStringAsync($"/admin/models/{model}/variants"))!["split"]!.ToJsonString());
    }
}
