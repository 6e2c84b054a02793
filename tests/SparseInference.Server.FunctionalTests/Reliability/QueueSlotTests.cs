using System.Net;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Protocol;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>A request's queue slot is given back on every path out of admission: no client can fill a queue for good.</summary>
[Collection(HostileServerCollection.Name)]
public sealed class QueueSlotTests(HostileServer server)
{
    private const int T = 16;
    private const int C = HostileServer.Channels;

    [Fact]
    public async Task Infer_TimeoutOfAQuintillionMicroseconds_RefusedNamingTheBoundAndTheQueueStaysFree()
    {
        const string name = HostileServer.Throttled;
        var values = SensorWindows.Make(1, T, C);
        var grpcRequest = GrpcProtocolTests.RawRequest(values, 1, T, model: name);
        grpcRequest.Parameters["timeout"] = new InferParameter { Int64Param = 1_000_000_000_000_000_000 };

        // Three times the queue's two slots, over both protocols.
        for (var i = 0; i < 3; i++)
        {
            var rest = await InferClient.InferAsync(server.Rest, name, values, [1, T, C], "\"timeout\":1000000000000000000");
            Assert.True(rest.Status == HttpStatusCode.BadRequest, $"REST: {(int)rest.Status} {rest.Error}");
            Assert.Contains("'timeout'", rest.Error);
            Assert.Contains("3600000000", rest.Error);

            var grpc = await server.Grpc.UnaryAsync("ModelInfer", grpcRequest, ModelInferResponse.Parser);
            Assert.True(grpc.Status == GrpcStatusCode.InvalidArgument, $"gRPC: {grpc.Status} {grpc.Message}");
            Assert.Contains("'timeout'", grpc.Message);
        }

        // Nothing is held: a plain request is served at once, the queue gauge reads 0, and the model unloads promptly.
        var served = await InferClient.InferAsync(server.Rest, name, values, [1, T, C]);
        Assert.True(served.Status == HttpStatusCode.OK, $"after the refused requests: {(int)served.Status} {served.Error}");
        Assert.True(await server.SettlesAsync(TimeSpan.FromSeconds(10)), "the queue depth or in-flight memory did not return to 0");

        using var unloading = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        Assert.Equal(HttpStatusCode.OK, (await server.Admin.PostAsync($"/v2/repository/models/{name}/unload", null, unloading.Token)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.Admin.PostAsync($"/v2/repository/models/{name}/load", null, unloading.Token)).StatusCode);
    }

    [Fact]
    public async Task Infer_FullQueueThenTimeouts_EveryRefusalFreesItsSlot()
    {
        const string name = HostileServer.Throttled;
        var values = SensorWindows.Make(1, HostileServer.MaxSeqLen, C);
        var burst = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ =>
            InferClient.InferAsync(server.Rest, name, values, [1, HostileServer.MaxSeqLen, C], "\"timeout\":1")));
        Assert.All(burst, r => Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests or HttpStatusCode.GatewayTimeout, $"{(int)r.Status} {r.Error}"));

        Assert.True(await server.SettlesAsync(TimeSpan.FromSeconds(10)), "the queue depth or in-flight memory did not return to 0");
        var served = await InferClient.InferAsync(server.Rest, name, values, [1, HostileServer.MaxSeqLen, C]);
        Assert.True(served.Status == HttpStatusCode.OK, $"{(int)served.Status} {served.Error}");
    }
}
