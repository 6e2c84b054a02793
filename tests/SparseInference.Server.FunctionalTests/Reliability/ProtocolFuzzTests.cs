using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Protocol;
using SparseInference.Serving.Protocol.Grpc;
using SparseInference.Server.Tests.Reliability;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// Seeded fuzzing of the real server over real sockets: mutated REST JSON and binary-extension bodies, and mutated
/// gRPC frames and protobuf payloads. Every answer must be a documented status, nothing may log an error, the
/// server must still be live afterwards, and memory must stay bounded. A failure names its iteration; the same
/// seed and iteration reproduce it.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ProtocolFuzzTests(ServerFixture server)
{
    private const int Seed = 20261122;
    private const int Iterations = 600;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(10);

    /// <summary>Working-set growth allowed across one fuzz run (the server runs in this process).</summary>
    private const long WorkingSetBoundBytes = 256L << 20;

    /// <summary>Managed-heap growth (after full collections) allowed across one fuzz run.</summary>
    private const long HeapBoundBytes = 32L << 20;

    private static readonly HashSet<HttpStatusCode> DocumentedRest =
    [
        HttpStatusCode.OK, HttpStatusCode.BadRequest, HttpStatusCode.NotFound, HttpStatusCode.RequestEntityTooLarge, HttpStatusCode.ServiceUnavailable,
    ];

    private static readonly HashSet<GrpcStatusCode> DocumentedGrpc =
    [
        GrpcStatusCode.OK, GrpcStatusCode.InvalidArgument, GrpcStatusCode.NotFound, GrpcStatusCode.Unavailable, GrpcStatusCode.ResourceExhausted,
        GrpcStatusCode.Unimplemented, GrpcStatusCode.Internal,
    ];

    [Fact]
    public async Task RestInfer_MutatedJsonAndBinaryBodies_OnlyDocumentedStatusesAndServerSurvives()
    {
        const int T = 4;
        var values = SensorWindows.Make(1, T, ServerFixture.Channels, seed: 9);
        var binaryHeader = Encoding.UTF8.GetBytes(
            $$$"""{"id":"f","parameters":{"binary_data_output":true},"inputs":[{"name":"input","shape":[1,{{{T}}},{{{ServerFixture.Channels}}}],"datatype":"FP32","parameters":{"binary_data_size":{{{values.Length * 4}}}}}],"outputs":[{"name":"score","parameters":{"binary_data":true}}]}""");
        var raw = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(i * 4), values[i]);
        }

        byte[][] jsonSeeds =
        [
            Encoding.UTF8.GetBytes(SensorWindows.InferBody(SensorWindows.Json(values), 1, T, ServerFixture.Channels)),
            Encoding.UTF8.GetBytes(SensorWindows.InferBody(SensorWindows.NestedJson(values, 1, T, ServerFixture.Channels), 1, T, ServerFixture.Channels,
                extra: "\"parameters\":{\"variant\":\"dense\"},")),
            Encoding.UTF8.GetBytes("""{"inputs":[{"name":"input_ids","shape":[1,4],"datatype":"INT64","data":[1,2,3,4]}]}"""),
        ];
        string[] paths =
        [
            $"/v2/models/{ServerFixture.ModelName}/infer", $"/v2/models/{ServerFixture.VersionedName}/versions/1/infer",
            $"/v2/models/{ServerFixture.ClassifierName}/infer", "/v2/models/broken/infer",
        ];

        var statuses = new Dictionary<HttpStatusCode, int>();
        var run = await FuzzAsync(async (random, iteration) =>
        {
            var path = paths[random.Next(paths.Length)];
            ByteArrayContent content;
            if (random.Next(2) == 0)
            {
                content = new ByteArrayContent(FuzzMutator.Mutate(jsonSeeds[random.Next(jsonSeeds.Length)], random));
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            }
            else
            {
                var header = random.Next(3) == 0 ? binaryHeader : FuzzMutator.Mutate(binaryHeader, random);
                var data = random.Next(3) == 0 ? raw : FuzzMutator.Mutate(raw, random);
                byte[] body = [.. header, .. data];
                content = new ByteArrayContent(body);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                var headerLength = random.Next(6) switch
                {
                    0 => (random.Next(-8, body.Length + 64)).ToString(),
                    1 => "abc",
                    2 => "99999999999999999999",
                    3 => null,
                    _ => header.Length.ToString(),
                };
                if (headerLength is not null)
                {
                    content.Headers.TryAddWithoutValidation("Inference-Header-Content-Length", headerLength);
                }
            }

            using var response = await server.Rest.PostAsync(path, content);
            var text = await response.Content.ReadAsStringAsync();
            statuses[response.StatusCode] = statuses.GetValueOrDefault(response.StatusCode) + 1;
            Assert.True(DocumentedRest.Contains(response.StatusCode), $"iteration {iteration} ({path}): undocumented status {(int)response.StatusCode}: {text}");
            if (response.StatusCode != HttpStatusCode.OK)
            {
                Assert.True(JsonNode.Parse(text)?["error"]?.GetValue<string>() is { Length: > 0 }, $"iteration {iteration}: error body without a message: {text}");
            }
        });

        Assert.True(statuses.GetValueOrDefault(HttpStatusCode.BadRequest) > run / 4, $"the mutations rarely reached validation: {Describe(statuses)}");
        Assert.True(statuses.GetValueOrDefault(HttpStatusCode.OK) > 0, $"no mutated request succeeded: {Describe(statuses)}");
    }

    [Fact]
    public async Task GrpcInfer_MutatedFramesAndPayloads_OnlyDocumentedStatusesAndServerSurvives()
    {
        var valid = GrpcProtocolTests.RawRequest(SensorWindows.Make(1, 4, ServerFixture.Channels, seed: 4), 1, 4).ToByteArray();
        var typed = new ModelInferRequest
        {
            ModelName = ServerFixture.ModelName,
            Inputs = { new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32", Shape = { 1, 2, ServerFixture.Channels }, Contents = new InferTensorContents { Fp32Contents = { new float[2 * ServerFixture.Channels] } } } },
        }.ToByteArray();
        byte[][] seeds = [valid, typed];

        var statuses = new Dictionary<GrpcStatusCode, int>();
        var run = await FuzzAsync(async (random, iteration) =>
        {
            var payload = random.Next(4) == 0 ? seeds[random.Next(seeds.Length)] : FuzzMutator.Mutate(seeds[random.Next(seeds.Length)], random);
            Dictionary<string, string>? headers = null;
            byte[] body;
            var shape = random.Next(9);
            switch (shape)
            {
                case 0: // truncated length prefix
                    body = GrpcTestClient.Frame(payload)[..random.Next(1, 5)];
                    break;
                case 1: // huge declared length, small payload
                    body = GrpcTestClient.Frame(payload);
                    BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(1), random.Next(2) == 0 ? uint.MaxValue : 0x7FFFFFFF);
                    break;
                case 2: // compressed flag without an encoding
                    body = GrpcTestClient.Frame(payload);
                    body[0] = 1;
                    break;
                case 3: // gzip declared, payload not gzip
                    body = GrpcTestClient.Frame(payload);
                    body[0] = 1;
                    headers = new() { ["grpc-encoding"] = "gzip" };
                    break;
                case 4: // valid gzip of the (mutated) payload, or a decompression bomb past the limit
                    body = GrpcTestClient.FrameGzip(random.Next(4) == 0 ? new byte[ServerFixture.MaxGrpcMessageBytes * 2] : payload);
                    headers = new() { ["grpc-encoding"] = "gzip" };
                    break;
                case 5: // garbage
                    body = new byte[random.Next(0, 64)];
                    random.NextBytes(body);
                    break;
                case 6: // two messages in a unary call, or an empty one
                    body = random.Next(2) == 0 ? GrpcTestClient.Frame(payload, payload) : GrpcTestClient.Frame([]);
                    break;
                default:
                    body = GrpcTestClient.Frame(payload);
                    break;
            }

            var method = random.Next(10) switch
            {
                0 => "ModelStreamInfer",
                1 => "ModelMetadata",
                _ => "ModelInfer",
            };
            GrpcStatusCode status;
            string message;
            HttpStatusCode http;
            if (method == "ModelStreamInfer")
            {
                var result = await server.Grpc.CallAsync(GrpcTestClient.Service + method, body, ModelStreamInferResponse.Parser, headers);
                (status, message, http) = (result.Status, result.Message, result.HttpStatus);
            }
            else if (method == "ModelMetadata")
            {
                var result = await server.Grpc.CallAsync(GrpcTestClient.Service + method, body, ModelMetadataResponse.Parser, headers);
                (status, message, http) = (result.Status, result.Message, result.HttpStatus);
            }
            else
            {
                var result = await server.Grpc.CallAsync(GrpcTestClient.Service + method, body, ModelInferResponse.Parser, headers);
                (status, message, http) = (result.Status, result.Message, result.HttpStatus);
            }

            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            Assert.True(http == HttpStatusCode.OK, $"iteration {iteration} (frame shape {shape}, {method}): HTTP {(int)http}");
            Assert.True(DocumentedGrpc.Contains(status), $"iteration {iteration} (frame shape {shape}, {method}): undocumented status {status}: {message}");
            Assert.False(message.StartsWith("the server failed to handle the call", StringComparison.Ordinal), $"iteration {iteration} (frame shape {shape}, {method}): crash: {message}");
        });

        Assert.True(statuses.GetValueOrDefault(GrpcStatusCode.InvalidArgument) > 0 && statuses.GetValueOrDefault(GrpcStatusCode.Internal) > 0
            && statuses.GetValueOrDefault(GrpcStatusCode.ResourceExhausted) > 0 && statuses.GetValueOrDefault(GrpcStatusCode.OK) > 0,
            $"the fuzz did not reach every outcome in {run} iterations: {Describe(statuses)}");
    }

    [Fact]
    public async Task GrpcInfer_PackedFieldDeclaringIntMaxValueElements_InternalNamingMessageNotACrash()
    {
        var payload = Convert.FromHexString("0A016D1A01672A260A05696E7075741204465033321A030102022A120AFFFFFFFF0732100000803F000000400000404000008040");
        var result = await server.Grpc.CallAsync(GrpcTestClient.Service + "ModelInfer", GrpcTestClient.Frame(payload), ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.Internal, result.Status);
        Assert.Contains("malformed protobuf message ModelInferRequest", result.Message);
    }

    /// <summary>Runs the iterations (seeded per iteration, within the time budget), then checks liveness, logs and memory.</summary>
    private async Task<int> FuzzAsync(Func<Random, int, Task> iteration)
    {
        await server.Rest.GetAsync("/v2/health/live");
        var heapBefore = FullCollectHeapBytes();
        var workingSetBefore = WorkingSet();
        var errorsBefore = server.Logs.Entries.Count(e => e.Level >= LogLevel.Error);

        var clock = Stopwatch.StartNew();
        var run = 0;
        for (; run < Iterations && clock.Elapsed < Budget; run++)
        {
            await iteration(new Random(unchecked((Seed * 1_000_003) + run)), run);
        }

        Assert.True(run >= 100, $"only {run} iterations within {Budget.TotalSeconds} s");
        Assert.Equal(HttpStatusCode.OK, (await server.Rest.GetAsync("/v2/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.Rest.GetAsync("/v2/health/ready")).StatusCode);
        Assert.Equal(GrpcStatusCode.OK, (await server.Grpc.UnaryAsync("ServerLive", new ServerLiveRequest(), ServerLiveResponse.Parser)).Status);

        var errors = server.Logs.Entries.Where(e => e.Level >= LogLevel.Error).Skip(errorsBefore).ToList();
        Assert.True(errors.Count == 0, "the server logged errors: " + string.Join(" | ", errors.Take(3).Select(e => $"{e.Category}: {e.Message}")));

        var heapGrowth = FullCollectHeapBytes() - heapBefore;
        var workingSetGrowth = WorkingSet() - workingSetBefore;
        Assert.True(heapGrowth < HeapBoundBytes, $"managed heap grew {heapGrowth / 1048576.0:F1} MiB over {run} iterations");
        Assert.True(workingSetGrowth < WorkingSetBoundBytes, $"working set grew {workingSetGrowth / 1048576.0:F1} MiB over {run} iterations");
        return run;
    }

    private static long WorkingSet()
    {
        using var process = Process.GetCurrentProcess();
        return process.WorkingSet64;
    }

    private static long FullCollectHeapBytes()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static string Describe<T>(Dictionary<T, int> counts)
        where T : notnull => string.Join(", ", counts.OrderByDescending(p => p.Value).Select(p => $"{p.Key}={p.Value}"));
}
