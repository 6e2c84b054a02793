using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging;
using SparseInference.Serving.Health;
using SparseInference.Tensors;
using SparseInference.Serving.Protocol.Grpc;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Protocol;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// Engine faults through the real server: an exception in a batch fails only the request that caused it, with
/// 500 / INTERNAL and a trace id that the error log line carries too; transient device errors leave liveness alone.
/// </summary>
public sealed class EngineFaultTests(FaultInjectionServerFixture server) : IClassFixture<FaultInjectionServerFixture>
{
    private const int Time = 16;
    private const int Channels = ServerFixture.BatchedChannels;
    private static readonly long[] Shape = [1, Time, Channels];

    [Fact]
    public async Task Infer_EngineThrowsInABatch_OnlyThePoisonedRequestFailsWith500AndTraceIdInLog()
    {
        var good = Enumerable.Range(0, 5).Select(i => SensorWindows.Make(1, Time, Channels, seed: 40 + i)).ToArray();
        var expected = new float[good.Length][];
        for (var i = 0; i < good.Length; i++)
        {
            expected[i] = (await InferClient.InferAsync(server.Rest, ServerFixture.BatchedName, good[i], Shape)).Output;
        }

        var poison = SensorWindows.Make(1, Time, Channels, seed: 99);
        poison[0] = FaultInjectionServerFixture.PoisonValue;
        var traceId = ActivityTraceId.CreateRandom().ToHexString();
        var traceparent = new Dictionary<string, string> { ["traceparent"] = $"00-{traceId}-{ActivitySpanId.CreateRandom().ToHexString()}-01" };
        var retriesBefore = server.Logs.Entries.Count(e => e.EventId.Id == 3001);

        // Sent together, they meet in one batch (the model's queue waits 100 ms): that batch's forward throws.
        var goodCalls = good.Select(v => InferClient.InferAsync(server.Rest, ServerFixture.BatchedName, v, Shape)).ToArray();
        var poisonCall = InferClient.InferAsync(server.Rest, ServerFixture.BatchedName, poison, Shape, headers: traceparent);
        await Task.WhenAll([.. goodCalls, poisonCall]);

        var failed = await poisonCall;
        Assert.Equal(HttpStatusCode.InternalServerError, failed.Status);
        Assert.Contains($"trace id {traceId}", failed.Error);
        Assert.Contains(nameof(InvalidOperationException), failed.Error);
        Assert.DoesNotContain("poisoned row", failed.Error); // internals stay in the log
        for (var i = 0; i < good.Length; i++)
        {
            var reply = await goodCalls[i];
            Assert.True(reply.Status == HttpStatusCode.OK, $"request {i}: {(int)reply.Status} {reply.Error}");
            InferClient.AssertClose(expected[i], reply.Output);
        }

        Assert.True(server.Logs.Entries.Count(e => e.EventId.Id == 3001) > retriesBefore, "the poisoned request did not share a batch");
        var line = Assert.Single(server.Logs.Entries, e => e.EventId.Id == UnhandledFaults.EventId && e.Message.Contains(traceId, StringComparison.Ordinal));
        Assert.Equal(LogLevel.Error, line.Level);
        Assert.Contains($"/v2/models/{ServerFixture.BatchedName}/infer", line.Message);
        Assert.Equal(HttpStatusCode.OK, (await server.Rest.GetAsync("/v2/health/live")).StatusCode);
    }

    [Fact]
    public async Task ModelInfer_EngineThrows_InternalWithTraceIdInMessageAndLog()
    {
        var poison = SensorWindows.Make(1, Time, Channels, seed: 98);
        poison[0] = FaultInjectionServerFixture.PoisonValue;
        var request = GrpcProtocolTests.RawRequest(poison, 1, Time, channels: Channels, model: ServerFixture.BatchedName);
        var traceId = ActivityTraceId.CreateRandom().ToHexString();
        var headers = new Dictionary<string, string> { ["traceparent"] = $"00-{traceId}-{ActivitySpanId.CreateRandom().ToHexString()}-01" };

        var result = await server.Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser, headers);

        Assert.Equal(GrpcStatusCode.Internal, result.Status);
        Assert.Contains($"trace id {traceId}", result.Message);
        Assert.Contains(server.Logs.Entries, e => e.EventId.Id == UnhandledFaults.EventId && e.Level == LogLevel.Error && e.Message.Contains(traceId, StringComparison.Ordinal));
        var good = await server.Grpc.UnaryAsync("ModelInfer", GrpcProtocolTests.RawRequest(SensorWindows.Make(1, Time, Channels, seed: 3), 1, Time, channels: Channels, model: ServerFixture.BatchedName), ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.OK, good.Status);
    }

    [Fact]
    public async Task Live_DeviceFaultsBelowThresholdBetweenSuccesses_StaysLive()
    {
        var values = SensorWindows.Make(1, Time, Channels, seed: 7);
        for (var round = 0; round < 3; round++)
        {
            server.ArmDeviceFaults(FaultInjectionServerFixture.DeviceFaultThreshold - 1);
            for (var i = 0; i < FaultInjectionServerFixture.DeviceFaultThreshold - 1; i++)
            {
                Assert.Equal(HttpStatusCode.InternalServerError, (await InferClient.InferAsync(server.Rest, ServerFixture.BatchedName, values, Shape)).Status);
            }

            Assert.Equal(HttpStatusCode.OK, (await InferClient.InferAsync(server.Rest, ServerFixture.BatchedName, values, Shape)).Status);
        }

        Assert.Equal(HttpStatusCode.OK, (await server.Rest.GetAsync("/v2/health/live")).StatusCode);
        Assert.True((await server.Grpc.UnaryAsync("ServerLive", new ServerLiveRequest(), ServerLiveResponse.Parser)).Single().Live);
    }
}

/// <summary>A device that keeps failing: after the threshold, liveness fails over REST and gRPC so the pod gets restarted.</summary>
public sealed class PersistentDeviceFaultTests(FaultInjectionServerFixture server) : IClassFixture<FaultInjectionServerFixture>
{
    [Fact]
    public async Task Live_DeviceKeepsFailing_LivenessFailsAfterThresholdOnBothProtocols()
    {
        const int time = 16;
        var values = SensorWindows.Make(1, time, ServerFixture.BatchedChannels, seed: 5);
        long[] shape = [1, time, ServerFixture.BatchedChannels];
        Assert.Equal(HttpStatusCode.OK, (await server.Rest.GetAsync("/v2/health/live")).StatusCode);
        server.ArmDeviceFaults(-1);

        for (var i = 0; i < FaultInjectionServerFixture.DeviceFaultThreshold - 1; i++)
        {
            Assert.Equal(HttpStatusCode.InternalServerError, (await InferClient.InferAsync(server.Rest, ServerFixture.BatchedName, values, shape)).Status);
        }

        Assert.Equal(HttpStatusCode.OK, (await server.Rest.GetAsync("/v2/health/live")).StatusCode);
        var last = await InferClient.InferAsync(server.Rest, ServerFixture.BatchedName, values, shape);
        Assert.Equal(HttpStatusCode.InternalServerError, last.Status);
        Assert.Contains(nameof(DeviceFaultException), last.Error);

        var live = await server.Rest.GetAsync("/v2/health/live");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, live.StatusCode);
        Assert.Contains("\"live\":false", await live.Content.ReadAsStringAsync());
        Assert.False((await server.Grpc.UnaryAsync("ServerLive", new ServerLiveRequest(), ServerLiveResponse.Parser)).Single().Live);
        Assert.Contains(server.Logs.Entries, e => e.EventId.Id == 61 && e.Level == LogLevel.Critical);
    }
}
