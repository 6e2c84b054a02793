using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Reliability;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Protocol;

/// <summary>
/// Finite inputs can overflow inside the model (a squared error beyond the FP32 maximum). Such values are results, the
/// same on both protocols: REST JSON carries them as the strings "NaN", "Infinity", "-Infinity", gRPC as their IEEE 754
/// bits, and the request counts as a success.
/// </summary>
[Collection(HostileServerCollection.Name)]
public sealed class NonFiniteOutputTests(HostileServer server)
{
    private const int T = 16;
    private const int C = HostileServer.Channels;

    [Theory]
    [InlineData(1e20f)] // the output stays finite, the score (its squared error) overflows to +Infinity
    [InlineData(3e38f)] // the model's activations overflow: NaN outputs and scores
    public async Task Infer_FiniteInputsOverflowingInTheModel_RestAndGrpcReturnTheSameValuesCountedAsSuccess(float level)
    {
        var values = Enumerable.Repeat(level, T * C).ToArray();
        var before = await server.ScrapeAsync();

        var body = SensorWindows.InferBody("[" + string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]", 1, T, C);
        using var response = await server.Rest.PostAsync($"/v2/models/{HostileServer.Model}/infer", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {text}");
        var outputs = JsonNode.Parse(text)!["outputs"]!.AsArray();
        var restScore = Values(outputs.Single(o => o!["name"]!.GetValue<string>() == "score")!["data"]!);
        Assert.Contains(restScore, v => !float.IsFinite(v));
        var anomaly = outputs.Single(o => o!["name"]!.GetValue<string>() == "anomaly")!["data"]!.AsArray().Select(v => v!.GetValue<bool>()).ToArray();
        Assert.All(anomaly.Where((_, i) => !float.IsFinite(restScore[i])), Assert.True);

        var request = GrpcProtocolTests.RawRequest(values, 1, T);
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "score" });
        var grpc = await server.Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser);
        Assert.True(grpc.Status == GrpcStatusCode.OK, $"{grpc.Status} {grpc.Message}");
        var raw = grpc.Single().RawOutputContents[0].ToByteArray();
        var grpcScore = Enumerable.Range(0, raw.Length / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan(i * 4))).ToArray();
        Assert.Equal(restScore, grpcScore);

        var after = await server.ScrapeAsync();
        double Count(Observability.MetricsExposition m, string protocol, string outcome) =>
            m.Sum("sparseinference_requests_total", ("model", HostileServer.Model), ("protocol", protocol), ("outcome", outcome));
        Assert.Equal(1, Count(after, "rest", "success") - Count(before, "rest", "success"));
        Assert.Equal(1, Count(after, "grpc", "success") - Count(before, "grpc", "success"));
        Assert.Equal(0, Count(after, "rest", "error") - Count(before, "rest", "error"));
    }

    /// <summary>JSON numbers, or the named non-finite strings.</summary>
    private static float[] Values(JsonNode data) => [.. data.AsArray().Select(v => v!.GetValueKind() == System.Text.Json.JsonValueKind.String
        ? v.GetValue<string>() switch
        {
            "NaN" => float.NaN,
            "Infinity" => float.PositiveInfinity,
            "-Infinity" => float.NegativeInfinity,
            var other => throw new FormatException($"score value '{other}' is neither a number nor a named non-finite value"),
        }
        : v.GetValue<float>())];
}
