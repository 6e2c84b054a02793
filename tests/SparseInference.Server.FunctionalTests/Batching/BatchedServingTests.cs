using System.Net;
using System.Text;
using Google.Protobuf;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Batching;

[Collection(ServerCollection.Name)]
public sealed class BatchedServingTests(ServerFixture server)
{
    private const string Model = ServerFixture.BatchedName;
    private const int C = ServerFixture.BatchedChannels;

    [Fact]
    public async Task Infer_ConcurrentRequests_AreBatchedAndEachEqualsItsUnbatchedOutput()
    {
        var inputs = Enumerable.Range(0, 8).Select(i => (Time: 16 + i, Values: SensorWindows.Make(1, 16 + i, C, seed: 100 + i))).ToArray();
        var alone = new List<float[]>();
        foreach (var (time, values) in inputs)
        {
            var reply = await InferClient.InferAsync(server.Rest, Model, values, [1, time, C]);
            Assert.Equal(HttpStatusCode.OK, reply.Status);
            alone.Add(reply.Output);
        }

        var before = await InferClient.StatsAsync(server.Rest, Model);
        var replies = await Task.WhenAll(inputs.Select(i => InferClient.InferAsync(server.Rest, Model, i.Values, [1, i.Time, C])));
        var after = await InferClient.StatsAsync(server.Rest, Model);

        for (var r = 0; r < replies.Length; r++)
        {
            Assert.Equal(HttpStatusCode.OK, replies[r].Status);
            Assert.Equal("dense", replies[r].VariantHeader);
            Assert.Equal("dense", replies[r].Variant);
            InferClient.AssertClose(alone[r], replies[r].Output);
            Assert.Equal(2L * 2 * inputs[r].Time * inputs[r].Time, replies[r].DensePairs);
        }

        var executions = after["execution_count"]!.GetValue<long>() - before["execution_count"]!.GetValue<long>();
        var inferences = after["inference_count"]!.GetValue<long>() - before["inference_count"]!.GetValue<long>();
        Assert.Equal(8, inferences);
        Assert.True(executions < 8, $"8 concurrent requests ran as {executions} executions");
        Assert.Contains(after["batch_stats"]!.AsArray(), b => b!["batch_size"]!.GetValue<long>() > 1);
    }

    [Fact]
    public async Task Infer_QueueFull_Returns429WithRetryAfterAndGrpcResourceExhausted()
    {
        const string name = ServerFixture.ThrottledName;
        var config = """{"batching":{"max_batch_size":1,"max_queue_delay_microseconds":0,"default_queue_policy":{"max_queue_size":1}}}""";
        var load = new StringContent("{\"parameters\":{\"config\":" + System.Text.Json.JsonSerializer.Serialize(config) + "}}", Encoding.UTF8, "application/json");
        Assert.Equal(HttpStatusCode.OK, (await server.Admin.PostAsync($"/v2/repository/models/{name}/load", load)).StatusCode);
        try
        {
            var values = SensorWindows.Make(1, ServerFixture.MaxSeqLen, ServerFixture.Channels);
            var replies = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ =>
                InferClient.InferAsync(server.Rest, name, values, [1, ServerFixture.MaxSeqLen, ServerFixture.Channels])));
            Assert.All(replies, r => Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"got {r.Status}: {r.Error}"));
            var rejected = replies.Where(r => r.Status == HttpStatusCode.TooManyRequests).ToList();
            Assert.NotEmpty(rejected);
            Assert.Contains(replies, r => r.Status == HttpStatusCode.OK);
            Assert.All(rejected, r => Assert.True(int.Parse(r.RetryAfter!) >= 1));
            Assert.All(rejected, r => Assert.Contains("queue is full", r.Error));

            var request = GrpcRequest(name, values, [1, ServerFixture.MaxSeqLen, ServerFixture.Channels]);
            var grpc = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => server.Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser)));
            Assert.All(grpc, g => Assert.True(g.Status is GrpcStatusCode.OK or GrpcStatusCode.ResourceExhausted, $"got {g.Status}: {g.Message}"));
            Assert.Contains(grpc, g => g.Status == GrpcStatusCode.ResourceExhausted);
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await server.Admin.PostAsync($"/v2/repository/models/{name}/load", null)).StatusCode);
        }
    }

    [Fact]
    public async Task Infer_DefaultPolicyWithAQueueDelayConfigured_LoneRequestsAreNotHeldForIt()
    {
        const string name = ServerFixture.ThrottledName;
        // Two seconds of queue delay would hold every lone request that long under the delay policy.
        var config = """{"batching":{"max_batch_size":8,"max_queue_delay_microseconds":2000000}}""";
        var load = new StringContent("{\"parameters\":{\"config\":" + System.Text.Json.JsonSerializer.Serialize(config) + "}}", Encoding.UTF8, "application/json");
        Assert.Equal(HttpStatusCode.OK, (await server.Admin.PostAsync($"/v2/repository/models/{name}/load", load)).StatusCode);
        try
        {
            var values = SensorWindows.Make(1, 64, ServerFixture.Channels);
            var started = DateTime.UtcNow;
            for (var i = 0; i < 3; i++)
            {
                var reply = await InferClient.InferAsync(server.Rest, name, values, [1, 64, ServerFixture.Channels]);
                Assert.Equal(HttpStatusCode.OK, reply.Status);
            }
            var elapsed = DateTime.UtcNow - started;

            var queue = (await InferClient.StatsAsync(server.Rest, name))["inference_stats"]!["queue"]!;
            Assert.Equal(3, queue["count"]!.GetValue<long>());
            // Generous bounds for a loaded machine; the delay policy would need 6 s and report 2 s of queue per request.
            Assert.True(elapsed < TimeSpan.FromSeconds(5), $"three lone requests took {elapsed}");
            Assert.True(queue["ns"]!.GetValue<long>() < 3 * 1_000_000_000L, $"queue time {queue["ns"]} ns for three lone requests");
        }
        finally
        {
            Assert.Equal(HttpStatusCode.OK, (await server.Admin.PostAsync($"/v2/repository/models/{name}/load", null)).StatusCode);
        }
    }

    [Fact]
    public async Task Infer_TimeoutShorterThanQueueDelay_Returns504AndDeadlineExceededWithoutExecuting()
    {
        var values = SensorWindows.Make(1, 8, C);
        var before = await InferClient.StatsAsync(server.Rest, Model);

        var rest = await InferClient.InferAsync(server.Rest, Model, values, [1, 8, C], "\"timeout\":1000");
        var grpcParameter = GrpcRequest(Model, values, [1, 8, C]);
        grpcParameter.Parameters["timeout"] = new InferParameter { Int64Param = 1000 };
        var viaParameter = await server.Grpc.UnaryAsync("ModelInfer", grpcParameter, ModelInferResponse.Parser);
        var viaDeadline = await server.Grpc.UnaryAsync("ModelInfer", GrpcRequest(Model, values, [1, 8, C]), ModelInferResponse.Parser,
            deadline: DateTime.UtcNow.AddMilliseconds(20));

        var after = await InferClient.StatsAsync(server.Rest, Model);
        Assert.Equal(HttpStatusCode.GatewayTimeout, rest.Status);
        Assert.Contains("queue timeout", rest.Error);
        Assert.Equal(GrpcStatusCode.DeadlineExceeded, viaParameter.Status);
        Assert.Equal(GrpcStatusCode.DeadlineExceeded, viaDeadline.Status);
        Assert.Equal(before["execution_count"]!.GetValue<long>(), after["execution_count"]!.GetValue<long>());
        Assert.Equal(before["inference_count"]!.GetValue<long>(), after["inference_count"]!.GetValue<long>());
    }

    [Fact]
    public async Task Infer_BadShapeSentWithValidRequest_BadIs400GoodGetsExactlyItsOwnOutput()
    {
        var good = SensorWindows.Make(1, 8, C, seed: 7);
        var alone = await InferClient.InferAsync(server.Rest, Model, good, [1, 8, C]);

        var replies = await Task.WhenAll(
            InferClient.InferAsync(server.Rest, Model, SensorWindows.Make(1, 8, 8, seed: 8), [1, 8, 8]),
            InferClient.InferAsync(server.Rest, Model, SensorWindows.Make(1, 8, 8, seed: 9), [1, 8, C]),
            InferClient.InferAsync(server.Rest, Model, good, [1, 8, C]));

        Assert.Equal(HttpStatusCode.BadRequest, replies[0].Status);
        Assert.Contains("shape[2] must be 3", replies[0].Error);
        Assert.Equal(HttpStatusCode.BadRequest, replies[1].Status);
        Assert.Contains("input 'input'", replies[1].Error);
        Assert.Equal(HttpStatusCode.OK, replies[2].Status);
        Assert.Equal(alone.Output, replies[2].Output);
    }

    internal static ModelInferRequest GrpcRequest(string model, float[] values, long[] shape)
    {
        var request = new ModelInferRequest { ModelName = model, Id = "g" };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32" };
        input.Shape.AddRange(shape);
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        request.Inputs.Add(input);
        request.RawInputContents.Add(ByteString.CopyFrom(bytes));
        return request;
    }
}
