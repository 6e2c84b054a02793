using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace SparseInference.Testing;

/// <summary>An HTTP answer: status, the JSON body (null when empty) and the entity tag.</summary>
internal sealed record JsonReply(HttpStatusCode Status, JsonNode? Body, string? ETag)
{
    public string Error => Body?["error"]?.GetValue<string>() ?? "";

    public long Revision => Body!["revision"]!.GetValue<long>();

    public override string ToString() => $"{(int)Status} {Body?.ToJsonString()}";
}

/// <summary>What a scored inference answer holds: <c>score</c>, <c>anomaly</c>, <c>output</c> and the response parameters.</summary>
internal sealed record ScoredReply(HttpStatusCode Status, JsonNode? Body)
{
    public string Error => Body?["error"]?.GetValue<string>() ?? "";

    public JsonNode Parameters => Body!["parameters"]!;

    public string Baseline => Parameters["baseline"]!.GetValue<string>();

    public float[] Score => Output("score").Select(v => v!.GetValue<float>()).ToArray();

    public bool[] Anomaly => Output("anomaly").Select(v => v!.GetValue<bool>()).ToArray();

    public float[] Reconstruction => Output("output").Select(v => v!.GetValue<float>()).ToArray();

    public override string ToString() => $"{(int)Status} {Body?.ToJsonString()}";

    private JsonArray Output(string name) =>
        Body!["outputs"]!.AsArray().Single(o => o!["name"]!.GetValue<string>() == name)!["data"]!.AsArray();
}

/// <summary>
/// The line-baseline admin API and line-keyed inference over REST, as a client calls them (docs/baselines.md). The
/// admin client must carry the admin bearer token and point at the admin port.
/// </summary>
internal static class LineBaselineRequests
{
    /// <summary>The admin path of a line's baseline: each segment of the line escaped, its '/' kept.</summary>
    public static string PathOf(string model, string line) =>
        $"/admin/models/{model}/baselines/{string.Join('/', line.Split('/').Select(Uri.EscapeDataString))}";

    public static Task<JsonReply> PutAsync(HttpClient admin, string model, string line, string body, string mediaType, string? ifMatch = null, string? query = null) =>
        SendAsync(admin, HttpMethod.Put, PathOf(model, line) + (query is null ? "" : "?" + query), new StringContent(body, Encoding.UTF8, mediaType), ifMatch);

    public static Task<JsonReply> PutCsvAsync(HttpClient admin, string model, string line, string csv) => PutAsync(admin, model, line, csv, "text/csv");

    public static Task<JsonReply> GetAsync(HttpClient admin, string model, string line) => SendAsync(admin, HttpMethod.Get, PathOf(model, line), null);

    public static Task<JsonReply> ListAsync(HttpClient admin, string model) => SendAsync(admin, HttpMethod.Get, $"/admin/models/{model}/baselines", null);

    public static Task<JsonReply> DeleteAsync(HttpClient admin, string model, string line, string? ifMatch = null) =>
        SendAsync(admin, HttpMethod.Delete, PathOf(model, line), null, ifMatch);

    public static async Task<JsonReply> SendAsync(HttpClient client, HttpMethod method, string path, HttpContent? content, string? ifMatch = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        if (ifMatch is not null)
            request.Headers.IfMatch.Add(new EntityTagHeaderValue(ifMatch));
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return new JsonReply(response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text), response.Headers.ETag?.Tag);
    }

    /// <summary>
    /// POSTs raw windows [batch, time, channels] to the REST infer endpoint with <c>line_id</c> (when given) and extra
    /// parameters (JSON members), asking for <c>score</c>, <c>anomaly</c> and <c>output</c>.
    /// </summary>
    public static async Task<ScoredReply> InferAsync(HttpClient rest, string model, float[] values, int batch, int time, string? line, string extraParameters = "")
    {
        var channels = values.Length / (batch * time);
        var parameters = new List<string>();
        if (line is not null)
            parameters.Add($"\"line_id\":{JsonValue.Create(line).ToJsonString()}");
        if (extraParameters.Length > 0)
            parameters.Add(extraParameters);
        var data = string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
        var body = $$"""{"parameters":{{{string.Join(",", parameters)}}},"inputs":[{"name":"input","shape":[{{batch}},{{time}},{{channels}}],"datatype":"FP32","data":[{{data}}]}],"outputs":[{"name":"score"},{"name":"anomaly"},{"name":"output"}]}""";
        using var response = await rest.PostAsync($"/v2/models/{model}/infer", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        return new ScoredReply(response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }
}
