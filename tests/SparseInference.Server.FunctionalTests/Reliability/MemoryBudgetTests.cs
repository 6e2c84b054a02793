using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// Requests in flight are admitted against a memory budget (here 32 MiB): whatever their batch size, batched or run
/// alone, over REST or gRPC, a request that does not fit is refused before it is computed, and the process stays
/// within the budget.
/// </summary>
[Collection(HostileServerCollection.Name)]
public sealed class MemoryBudgetTests(HostileServer server)
{
    private const int C = HostileServer.Channels;

    /// <summary>Short windows keep the forwards cheap; the batch sizes make the memory.</summary>
    private const int T = 64;

    /// <summary>What the process may grow beyond its resident size before the burst: the budget, plus the runtime's own slack.</summary>
    private const long AllowedGrowthBytes = HostileServer.InFlightBudgetBytes + (128L << 20);

    [Fact]
    public async Task Infer_BatchLargerThanTheWholeBudget_Refused413AndResourceExhaustedBeforeComputing()
    {
        const int batch = 1000;
        var rest = await PostBinaryAsync(HostileServer.Model, batch);
        Assert.True(rest.Status == HttpStatusCode.RequestEntityTooLarge, $"{(int)rest.Status} {rest.Error}");
        Assert.Contains("in-flight budget of 32 MiB", rest.Error);
        Assert.Contains($"{batch} x {T}", rest.Error);

        var grpc = await server.Grpc.UnaryAsync("ModelInfer", GrpcRequest(HostileServer.Model, batch), ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.ResourceExhausted, grpc.Status);
        Assert.Contains("in-flight budget", grpc.Message);
        Assert.True(await server.SettlesAsync(TimeSpan.FromSeconds(10)));
    }

    [Theory]
    [InlineData(HostileServer.Model)] // 240 sequences: more than the model's batch of 8, run alone
    [InlineData(HostileServer.WideBatches)] // batches up to 1024: the same requests go through the batcher
    public async Task Infer_ConcurrentRequestsOverTheBudget_ExtraOnesGet429WithRetryAfterAndMemoryStaysBounded(string model)
    {
        // Each [240, 64, 8] window needs well over half the budget: two cannot run at once.
        const int batch = 240;
        Assert.Equal(HttpStatusCode.OK, (await PostBinaryAsync(model, batch)).Status);
        Assert.True(await server.SettlesAsync(TimeSpan.FromSeconds(10)));
        var baseline = server.Process.ResidentBytes();
        server.Process.ResetPeakResident();

        var replies = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => PostBinaryAsync(model, batch)));

        Assert.All(replies, r => Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"{(int)r.Status} {r.Error}"));
        Assert.Contains(replies, r => r.Status == HttpStatusCode.OK);
        var refused = replies.Where(r => r.Status == HttpStatusCode.TooManyRequests).ToList();
        Assert.NotEmpty(refused);
        Assert.All(refused, r => Assert.True(int.Parse(r.RetryAfter!) >= 1, $"Retry-After '{r.RetryAfter}'"));
        Assert.All(refused, r => Assert.Contains("of the 32 MiB budget", r.Error));

        var growth = server.Process.PeakResidentBytes() - baseline;
        Assert.True(growth < AllowedGrowthBytes, $"resident memory grew {growth >> 20} MiB during the burst (budget {HostileServer.InFlightBudgetBytes >> 20} MiB)");
        Assert.True(await server.SettlesAsync(TimeSpan.FromSeconds(10)), "the in-flight memory did not return to 0");
    }

    [Fact]
    public async Task GrpcInfer_ConcurrentRequestsOverTheBudget_ExtraOnesGetResourceExhausted()
    {
        var request = GrpcRequest(HostileServer.Model, 240);
        var replies = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => server.Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser)));
        Assert.All(replies, r => Assert.True(r.Status is GrpcStatusCode.OK or GrpcStatusCode.ResourceExhausted, $"{r.Status} {r.Message}"));
        Assert.Contains(replies, r => r.Status == GrpcStatusCode.OK);
        Assert.Contains(replies, r => r.Status == GrpcStatusCode.ResourceExhausted && r.Message.Contains("budget", StringComparison.Ordinal));
        Assert.True(await server.SettlesAsync(TimeSpan.FromSeconds(10)));
    }

    private static float[] Window(int batch) => SensorWindows.Make(batch, T, C, seed: 5);

    /// <summary>A [batch, 64, 8] window as binary tensor data.</summary>
    private async Task<InferReply> PostBinaryAsync(string model, int batch)
    {
        var values = Window(batch);
        var header = Encoding.UTF8.GetBytes(
            $$$"""{"inputs":[{"name":"input","shape":[{{{batch}}},{{{T}}},{{{C}}}],"datatype":"FP32","parameters":{"binary_data_size":{{{values.Length * 4}}}}}],"outputs":[{"name":"score","parameters":{"binary_data":true}}]}""");
        var body = new byte[header.Length + (values.Length * 4)];
        header.CopyTo(body, 0);
        MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(body.AsSpan(header.Length));
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", header.Length.ToString());
        using var response = await server.Rest.PostAsync($"/v2/models/{model}/infer", content);
        var retry = response.Headers.TryGetValues("Retry-After", out var r) ? r.Single() : null;
        var error = response.StatusCode == HttpStatusCode.OK ? null : JsonNode.Parse(await response.Content.ReadAsStringAsync());
        return new InferReply(response.StatusCode, null, retry, error);
    }

    private static ModelInferRequest GrpcRequest(string model, int batch)
    {
        var values = Window(batch);
        var request = new ModelInferRequest { ModelName = model };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32" };
        input.Shape.AddRange([batch, T, C]);
        request.Inputs.Add(input);
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "score" });
        request.RawInputContents.Add(ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())));
        return request;
    }
}
