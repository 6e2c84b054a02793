using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using SparseInference.Serving.Protocol;
using SparseInference.Server.Rest;

namespace SparseInference.Server.Tests.Rest;

public sealed class RestInferenceResponseWriterTests
{
    private static InferenceResponse Response(params float[] values) => new()
    {
        ModelName = "m",
        ModelVersion = "1",
        Variant = "dense",
        Parameters = new Dictionary<string, InferenceParameter>(),
        Outputs = [new InferenceOutput { Name = "score", Datatype = "FP32", Shape = [1, values.Length], Float32 = values }],
    };

    private static async Task<(JsonNode Body, HttpResponse Response)> WriteAsync(InferenceResponse response)
    {
        var context = new DefaultHttpContext();
        var body = new MemoryStream();
        context.Response.Body = body;
        await RestInferenceResponseWriter.WriteAsync(context, response);
        return (JsonNode.Parse(body.ToArray())!, context.Response);
    }

    [Fact]
    public async Task WriteAsync_NonFiniteValues_WrittenAsNamedStrings()
    {
        var (body, _) = await WriteAsync(Response(1.5f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue));
        var data = body["outputs"]![0]!["data"]!.AsArray();
        Assert.Equal(1.5f, data[0]!.GetValue<float>());
        Assert.Equal("NaN", data[1]!.GetValue<string>());
        Assert.Equal("Infinity", data[2]!.GetValue<string>());
        Assert.Equal("-Infinity", data[3]!.GetValue<string>());
        Assert.Equal(float.MaxValue, data[4]!.GetValue<float>());

        // The convention System.Text.Json reads back as numbers, as Python's float() and NumPy do.
        var options = new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };
        var values = data.Deserialize<float[]>(options)!;
        Assert.True(float.IsNaN(values[1]) && float.IsPositiveInfinity(values[2]) && float.IsNegativeInfinity(values[3]));
    }

    [Fact]
    public async Task WriteAsync_OutputLargerThanTheStreamingThreshold_StreamedWithTheSameJson()
    {
        var small = Enumerable.Range(0, 1000).Select(i => i * 0.25f).ToArray();
        var large = Enumerable.Range(0, (int)RestInferenceResponseWriter.StreamAboveValues + 1000).Select(i => i * 0.25f).ToArray();
        large[17] = float.NaN;

        var (smallBody, smallResponse) = await WriteAsync(Response(small));
        Assert.NotNull(smallResponse.ContentLength);
        Assert.Equal(small, smallBody["outputs"]![0]!["data"]!.AsArray().Select(v => v!.GetValue<float>()));

        var (largeBody, largeResponse) = await WriteAsync(Response(large));
        Assert.Null(largeResponse.ContentLength);
        Assert.Equal("application/json", largeResponse.ContentType);
        var data = largeBody["outputs"]![0]!["data"]!.AsArray();
        Assert.Equal(large.Length, data.Count);
        Assert.Equal("NaN", data[17]!.GetValue<string>());
        Assert.Equal(large[^1], data[^1]!.GetValue<float>());
    }
}
