using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace SparseInference.Server.FunctionalTests.Infrastructure;

/// <summary>A REST inference answer: status, the variant header, body, and the first output's values and pair counts.</summary>
internal sealed record InferReply(HttpStatusCode Status, string? VariantHeader, string? RetryAfter, JsonNode? Body)
{
    public string Variant => Body!["parameters"]!["variant"]!.GetValue<string>();
    public long ComputedPairs => Body!["parameters"]!["computed_pairs"]!.GetValue<long>();
    public long DensePairs => Body!["parameters"]!["dense_pairs"]!.GetValue<long>();
    public float[] Output => SensorWindows.Floats(Body!["outputs"]![0]!["data"]);
    public string Error => Body?["error"]?.GetValue<string>() ?? "";
}

internal static class InferClient
{
    /// <summary>POSTs a continuous window [batch, time, channels] (JSON data) with extra request parameters (a JSON object's members).</summary>
    public static async Task<InferReply> InferAsync(
        HttpClient rest, string model, float[] values, long[] shape, string parameters = "", IReadOnlyDictionary<string, string>? headers = null)
    {
        var extra = parameters.Length == 0 ? "" : $"\"parameters\":{{{parameters}}},";
        var body = $$"""{"id":"t",{{extra}}"inputs":[{"name":"input","shape":[{{string.Join(",", shape)}}],"datatype":"FP32","data":{{SensorWindows.Json(values)}}}],"outputs":[{"name":"output"}]}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{model}/infer") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.Add(name, value);
        }

        using var response = await rest.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var variant = response.Headers.TryGetValues("X-SparseInference-Variant", out var v) ? v.Single() : null;
        var retry = response.Headers.TryGetValues("Retry-After", out var r) ? r.Single() : null;
        return new InferReply(response.StatusCode, variant, retry, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    public static async Task<JsonNode> StatsAsync(HttpClient rest, string model) =>
        JsonNode.Parse(await rest.GetStringAsync($"/v2/models/{model}/versions/1/stats"))!["model_stats"]![0]!;

    public static void AssertClose(float[] expected, float[] actual, float tolerance = 1e-5f)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"element {i}: expected {expected[i]}, got {actual[i]}");
        }
    }
}
