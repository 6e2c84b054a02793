using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Protocol;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// The error contract over both protocols where the protocol suites leave gaps: non-finite values, models that are
/// not ready, sequences over max_seq_len on gRPC, and declared shapes far beyond the data, which must be refused
/// before anything of their size is allocated.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ErrorContractTests(ServerFixture server)
{
    private const string Model = ServerFixture.ModelName;
    private const int C = ServerFixture.Channels;

    public static TheoryData<float, string> NonFinite => new() { { float.NaN, "NaN" }, { float.PositiveInfinity, "got Infinity" }, { float.NegativeInfinity, "got -Infinity" } };

    [Theory]
    [MemberData(nameof(NonFinite))]
    public async Task RestInfer_NonFiniteBinaryValue_Returns400NamingInputAndIndex(float bad, string shown)
    {
        var values = SensorWindows.Make(1, 2, C);
        values[5] = bad;
        var response = await server.Rest.PostAsync($"/v2/models/{Model}/infer", BinaryBody(values, [1, 2, C], values.Length * 4));
        var error = await ErrorText(response, HttpStatusCode.BadRequest);
        Assert.Contains("input 'input'", error);
        Assert.Contains("data[5]", error);
        Assert.Contains("finite", error);
        Assert.Contains(shown, error);
    }

    [Theory]
    [MemberData(nameof(NonFinite))]
    public async Task GrpcInfer_NonFiniteRawValue_InvalidArgumentNamingInput(float bad, string shown)
    {
        var values = SensorWindows.Make(1, 2, C);
        values[3] = bad;
        var result = await server.Grpc.UnaryAsync("ModelInfer", GrpcProtocolTests.RawRequest(values, 1, 2), ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.InvalidArgument, result.Status);
        Assert.Contains("input 'input'", result.Message);
        Assert.Contains("data[3]", result.Message);
        Assert.Contains(shown, result.Message);
    }

    [Fact]
    public async Task Infer_ModelNotReady_Rest503AndGrpcUnavailableNamingModel()
    {
        var body = SensorWindows.InferBody(SensorWindows.Json(new float[2 * C]), 1, 2, C);
        var error = await ErrorText(await server.Rest.PostAsync("/v2/models/broken/infer", new StringContent(body, Encoding.UTF8, "application/json")), HttpStatusCode.ServiceUnavailable);
        Assert.Contains("model 'broken' is not ready", error);

        var request = GrpcProtocolTests.RawRequest(new float[2 * C], 1, 2);
        request.ModelName = "broken";
        var result = await server.Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.Unavailable, result.Status);
        Assert.Contains("model 'broken' is not ready", result.Message);
    }

    [Fact]
    public async Task GrpcInfer_SequenceLongerThanMaxSeqLen_InvalidArgumentNamingLimit()
    {
        const int T = ServerFixture.MaxSeqLen + 1;
        var result = await server.Grpc.UnaryAsync("ModelInfer", GrpcProtocolTests.RawRequest(new float[T * C], 1, T), ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.InvalidArgument, result.Status);
        Assert.Contains("max_seq_len 512", result.Message);
        Assert.Contains($"got {T}", result.Message);
    }

    /// <summary>Batch sizes whose tensor is 256 MiB (under the element cap) and 1 TiB (over it), with 16 values sent.</summary>
    [Theory]
    [InlineData(1L << 20)]
    [InlineData(1L << 34)]
    public async Task Infer_DeclaredShapeFarBeyondData_Refused400FastWithoutAllocatingIt(long batch)
    {
        long[] shape = [batch, 8, C];
        var declaredBytes = batch * 8 * C * 4;
        var values = new float[16];

        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();

        var json = $$"""{"inputs":[{"name":"input","shape":[{{string.Join(",", shape)}}],"datatype":"FP32","data":{{SensorWindows.Json(values)}}}]}""";
        var jsonError = await ErrorText(await server.Rest.PostAsync($"/v2/models/{Model}/infer", new StringContent(json, Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest);
        Assert.Contains("input 'input'", jsonError);

        var binaryError = await ErrorText(await server.Rest.PostAsync($"/v2/models/{Model}/infer", BinaryBody(values, shape, values.Length * 4)), HttpStatusCode.BadRequest);
        Assert.Contains("input 'input'", binaryError);

        // binary_data_size claiming the whole declared tensor, beyond the body.
        var claimError = await ErrorText(await server.Rest.PostAsync($"/v2/models/{Model}/infer", BinaryBody(values, shape, declaredBytes)), HttpStatusCode.BadRequest);
        Assert.Contains("binary_data_size", claimError);

        var request = GrpcProtocolTests.RawRequest(values, 1, 2);
        request.Inputs[0].Shape.Clear();
        request.Inputs[0].Shape.AddRange(shape);
        var grpc = await server.Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.InvalidArgument, grpc.Status);
        Assert.Contains("input 'input'", grpc.Message);

        var elapsed = clock.Elapsed;
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        // The process (server and this test) allocated far less than one declared tensor; concurrent tests add noise well under the bound.
        Assert.True(allocated < Math.Min(declaredBytes / 4, 64L << 20), $"allocated {allocated / 1048576.0:F1} MiB while refusing a {declaredBytes / 1048576.0:F0} MiB declared tensor");
        Assert.True(elapsed < TimeSpan.FromSeconds(5), $"four refusals took {elapsed.TotalMilliseconds:F0} ms");
    }

    private static ByteArrayContent BinaryBody(float[] values, long[] shape, long binaryDataSize)
    {
        var header = Encoding.UTF8.GetBytes(
            $$$"""{"inputs":[{"name":"input","shape":[{{{string.Join(",", shape)}}}],"datatype":"FP32","parameters":{"binary_data_size":{{{binaryDataSize}}}}}]}""");
        var raw = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(i * 4), values[i]);
        }

        var content = new ByteArrayContent([.. header, .. raw]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", header.Length.ToString());
        return content;
    }

    private static async Task<string> ErrorText(HttpResponseMessage response, HttpStatusCode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"expected {(int)expected}, got {(int)response.StatusCode}: {text}");
        return JsonNode.Parse(text)!["error"]!.GetValue<string>();
    }
}
