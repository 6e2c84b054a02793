using System.Buffers.Binary;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Protocol;

[Collection(ServerCollection.Name)]
public sealed class GrpcProtocolTests(ServerFixture server)
{
    private const string Model = ServerFixture.ModelName;
    private const int C = ServerFixture.Channels;

    private GrpcTestClient Grpc => server.Grpc;

    [Fact]
    public async Task ServerLive_Call_ReturnsLiveWithOkTrailers()
    {
        var result = await Grpc.CallAsync(GrpcTestClient.Service + "ServerLive", GrpcTestClient.Frame(new ServerLiveRequest().ToByteArray()), ServerLiveResponse.Parser);
        Assert.Equal(HttpStatusCode.OK, result.HttpStatus);
        Assert.Equal("application/grpc", result.ContentType);
        Assert.False(result.TrailersOnly);
        Assert.Equal(GrpcStatusCode.OK, result.Status);
        Assert.True(result.Single().Live);
        Assert.True((await Grpc.UnaryAsync("ServerLive", new ServerLiveRequest(), ServerLiveResponse.Parser)).Single().Live);
    }

    [Fact]
    public async Task ServerReady_Call_ReturnsReady()
    {
        Assert.True((await Grpc.UnaryAsync("ServerReady", new ServerReadyRequest(), ServerReadyResponse.Parser)).Single().Ready);
    }

    [Fact]
    public async Task ServerMetadata_Call_ListsExtensions()
    {
        var metadata = (await Grpc.UnaryAsync("ServerMetadata", new ServerMetadataRequest(), ServerMetadataResponse.Parser)).Single();
        Assert.Equal("sparseinference", metadata.Name);
        Assert.Contains("binary_tensor_data", metadata.Extensions);
    }

    [Fact]
    public async Task ModelReady_KnownAndUnknown_ReadyOrNotFound()
    {
        Assert.True((await Grpc.UnaryAsync("ModelReady", new ModelReadyRequest { Name = Model, Version = "1" }, ModelReadyResponse.Parser)).Single().Ready);
        var missing = await Grpc.UnaryAsync("ModelReady", new ModelReadyRequest { Name = "nosuch" }, ModelReadyResponse.Parser);
        Assert.Equal(GrpcStatusCode.NotFound, missing.Status);
        Assert.Contains("'nosuch'", missing.Message);
    }

    [Fact]
    public async Task ModelMetadata_DefaultModel_MatchesRestMetadata()
    {
        var metadata = (await Grpc.UnaryAsync("ModelMetadata", new ModelMetadataRequest { Name = Model }, ModelMetadataResponse.Parser)).Single();
        var rest = JsonNode.Parse(await server.Rest.GetStringAsync($"/v2/models/{Model}"))!;
        Assert.Equal(rest["versions"]!.AsArray().Select(v => v!.GetValue<string>()), metadata.Versions);
        Assert.Equal("input", metadata.Inputs.Single().Name);
        Assert.Equal([-1L, -1L, C], metadata.Inputs.Single().Shape);
        Assert.Equal(rest["outputs"]!.AsArray().Select(o => o!["name"]!.GetValue<string>()), metadata.Outputs.Select(o => o.Name));
    }

    [Fact]
    public async Task ModelInfer_RawInput_EqualsRestOutputs()
    {
        const int B = 2, T = 16;
        var values = SensorWindows.Make(B, T, C, seed: 7);
        var response = (await Grpc.UnaryAsync("ModelInfer", RawRequest(values, B, T), ModelInferResponse.Parser)).Single();
        Assert.Equal("g-1", response.Id);
        Assert.Equal("dense", response.Parameters["variant"].StringParam);
        Assert.Equal(response.Outputs.Count, response.RawOutputContents.Count);

        var rest = JsonNode.Parse(await (await server.Rest.PostAsync(
            $"/v2/models/{Model}/infer",
            new StringContent(SensorWindows.InferBody(SensorWindows.Json(values), B, T, C), Encoding.UTF8, "application/json"))).Content.ReadAsStringAsync())!;
        foreach (var restOutput in rest["outputs"]!.AsArray())
        {
            var name = restOutput!["name"]!.GetValue<string>();
            var index = response.Outputs.ToList().FindIndex(o => o.Name == name);
            Assert.True(index >= 0, $"gRPC response lacks output '{name}'");
            Assert.Equal(restOutput["shape"]!.AsArray().Select(d => d!.GetValue<long>()), response.Outputs[index].Shape);
            var raw = response.RawOutputContents[index].ToByteArray();
            if (response.Outputs[index].Datatype == "BOOL")
            {
                Assert.Equal(restOutput["data"]!.AsArray().Select(d => d!.GetValue<bool>()), raw.Select(b => b != 0));
            }
            else
            {
                Assert.Equal(SensorWindows.Floats(restOutput["data"]), Floats(raw));
            }
        }
    }

    [Fact]
    public async Task ModelInfer_TypedContents_EqualsRawContents()
    {
        const int T = 10;
        var values = SensorWindows.Make(1, T, C, seed: 9);
        var typed = RawRequest(values, 1, T);
        typed.RawInputContents.Clear();
        typed.Inputs[0].Contents = new InferTensorContents();
        typed.Inputs[0].Contents.Fp32Contents.AddRange(values);
        var fromTyped = (await Grpc.UnaryAsync("ModelInfer", typed, ModelInferResponse.Parser)).Single();
        var fromRaw = (await Grpc.UnaryAsync("ModelInfer", RawRequest(values, 1, T), ModelInferResponse.Parser)).Single();
        Assert.Equal(fromRaw.RawOutputContents, fromTyped.RawOutputContents);
    }

    [Fact]
    public async Task ModelInfer_WindowVariant_NamesVariantInParameters()
    {
        var request = RawRequest(SensorWindows.Make(1, 64, C), 1, 64);
        request.Parameters["variant"] = new InferParameter { StringParam = "window-0.75" };
        var response = (await Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser)).Single();
        Assert.Equal("window-0.75", response.Parameters["variant"].StringParam);
        Assert.True(response.Parameters["computed_pairs"].Int64Param < response.Parameters["dense_pairs"].Int64Param);
    }

    [Fact]
    public async Task ModelInfer_WrongShape_InvalidArgumentNamingShapes()
    {
        var request = RawRequest(new float[8], 1, 2);
        request.Inputs[0].Shape.Clear();
        request.Inputs[0].Shape.AddRange([1, 2, 4]);
        var result = await Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.InvalidArgument, result.Status);
        Assert.Contains("shape[2] must be 8", result.Message);
        Assert.Contains("got 4", result.Message);
    }

    [Fact]
    public async Task ModelInfer_RawBytesNotMatchingShape_InvalidArgumentNamingByteCounts()
    {
        var request = RawRequest(new float[5], 1, 2);
        var result = await Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.InvalidArgument, result.Status);
        Assert.Contains("20 bytes", result.Message);
        Assert.Contains("expected 64", result.Message);
    }

    [Fact]
    public async Task ModelInfer_WrongDatatype_InvalidArgumentNamingDatatypes()
    {
        var request = RawRequest(new float[16], 1, 2);
        request.Inputs[0].Datatype = "FP16";
        var result = await Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.InvalidArgument, result.Status);
        Assert.Contains("FP32", result.Message);
        Assert.Contains("'FP16'", result.Message);
    }

    [Fact]
    public async Task ModelInfer_UnknownInputName_InvalidArgument()
    {
        var request = RawRequest(new float[16], 1, 2);
        request.Inputs[0].Name = "x";
        var result = await Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.InvalidArgument, result.Status);
        Assert.Contains("unknown input 'x'", result.Message);
    }

    [Fact]
    public async Task ModelInfer_UnknownModelAndVersion_NotFound()
    {
        var request = RawRequest(new float[16], 1, 2);
        request.ModelName = "nosuch";
        Assert.Equal(GrpcStatusCode.NotFound, (await Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser)).Status);
        request.ModelName = ServerFixture.VersionedName;
        request.ModelVersion = "7";
        var result = await Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.NotFound, result.Status);
        Assert.Contains("'7'", result.Message);
    }

    [Fact]
    public async Task ModelInfer_MalformedProtobuf_InternalNamingMessageWithoutErrorLog()
    {
        var errorsBefore = server.Logs.Entries.Count(e => e.Level >= LogLevel.Error);
        var result = await Grpc.CallAsync(GrpcTestClient.Service + "ModelInfer", GrpcTestClient.Frame([0x0A, 0xFF, 0x01, 0x02]), ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.Internal, result.Status);
        Assert.Contains("malformed protobuf message ModelInferRequest", result.Message);
        Assert.Equal(errorsBefore, server.Logs.Entries.Count(e => e.Level >= LogLevel.Error));
    }

    [Fact]
    public async Task ModelStreamInfer_MalformedProtobuf_InternalNamingMessage()
    {
        var body = GrpcTestClient.Frame(RawRequest(SensorWindows.Make(1, 8, C), 1, 8, id: "ok").ToByteArray(), [0x0A, 0xFF, 0x01, 0x02]);
        var result = await Grpc.CallAsync(GrpcTestClient.Service + "ModelStreamInfer", body, ModelStreamInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.Internal, result.Status);
        Assert.Contains("malformed protobuf message ModelInferRequest", result.Message);
        Assert.Equal("ok", Assert.Single(result.Messages).InferResponse.Id);
    }

    [Fact]
    public async Task ModelInfer_TruncatedFrame_Internal()
    {
        var frame = GrpcTestClient.Frame(RawRequest(new float[16], 1, 2).ToByteArray());
        var result = await Grpc.CallAsync(GrpcTestClient.Service + "ModelInfer", frame[..^3], ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.Internal, result.Status);
        Assert.Contains("Incomplete message", result.Message);
    }

    [Fact]
    public async Task ModelInfer_MessageOverLimit_ResourceExhausted()
    {
        var values = new float[(ServerFixture.MaxGrpcMessageBytes / 4) + 16];
        var result = await Grpc.UnaryAsync("ModelInfer", RawRequest(values, 1, values.Length / C), ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.ResourceExhausted, result.Status);
        Assert.Contains($"larger than the maximum of {ServerFixture.MaxGrpcMessageBytes} bytes", result.Message);
    }

    [Fact]
    public async Task ModelInfer_LengthPrefixClaimingTwoGigabytes_ResourceExhaustedWithoutErrorLog()
    {
        var errorsBefore = server.Logs.Entries.Count(e => e.Level >= LogLevel.Error);
        var body = GrpcTestClient.Frame(RawRequest(new float[16], 1, 2).ToByteArray());
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(1), int.MaxValue);
        var result = await Grpc.CallAsync(GrpcTestClient.Service + "ModelInfer", body, ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.ResourceExhausted, result.Status);
        Assert.Equal(errorsBefore, server.Logs.Entries.Count(e => e.Level >= LogLevel.Error));
    }

    [Fact]
    public async Task ModelInfer_GzipCompressedRequest_IsDecompressed()
    {
        var request = RawRequest(SensorWindows.Make(1, 8, C), 1, 8);
        var plain = (await Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser)).Single();
        var gzipped = await Grpc.CallAsync(
            GrpcTestClient.Service + "ModelInfer", GrpcTestClient.FrameGzip(request.ToByteArray()), ModelInferResponse.Parser,
            new Dictionary<string, string> { ["grpc-encoding"] = "gzip" });
        Assert.Equal(plain.RawOutputContents, gzipped.Single().RawOutputContents);
    }

    [Fact]
    public async Task ModelInfer_GzipFlagOnBytesThatAreNotGzip_InternalWithoutErrorLog()
    {
        var errorsBefore = server.Logs.Entries.Count(e => e.Level >= LogLevel.Error);
        var result = await Grpc.CallAsync(
            GrpcTestClient.Service + "ModelInfer", GrpcTestClient.FrameCompressed(RawRequest(new float[16], 1, 2).ToByteArray()), ModelInferResponse.Parser,
            new Dictionary<string, string> { ["grpc-encoding"] = "gzip" });
        Assert.Equal(GrpcStatusCode.Internal, result.Status);
        Assert.Contains("not valid gzip", result.Message);
        Assert.Equal(errorsBefore, server.Logs.Entries.Count(e => e.Level >= LogLevel.Error));
    }

    [Fact]
    public async Task ModelInfer_UnsupportedEncoding_Unimplemented()
    {
        var result = await Grpc.CallAsync(
            GrpcTestClient.Service + "ServerLive", GrpcTestClient.FrameCompressed([1, 2, 3]), ServerLiveResponse.Parser,
            new Dictionary<string, string> { ["grpc-encoding"] = "snappy" });
        Assert.Equal(GrpcStatusCode.Unimplemented, result.Status);
        Assert.Contains("snappy", result.Message);
    }

    [Fact]
    public async Task ModelInfer_ExpiredTimeout_DeadlineExceeded()
    {
        var result = await Grpc.CallAsync(
            GrpcTestClient.Service + "ModelInfer", GrpcTestClient.Frame(RawRequest(SensorWindows.Make(1, 8, C), 1, 8).ToByteArray()), ModelInferResponse.Parser,
            new Dictionary<string, string> { ["grpc-timeout"] = "1u" });
        Assert.Equal(GrpcStatusCode.DeadlineExceeded, result.Status);
        Assert.Empty(result.Messages);
    }

    [Fact]
    public async Task ModelInfer_GenerousTimeout_Succeeds()
    {
        var result = await Grpc.UnaryAsync(
            "ModelInfer", RawRequest(SensorWindows.Make(1, 8, C), 1, 8), ModelInferResponse.Parser, deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.Equal(GrpcStatusCode.OK, result.Status);
    }

    [Fact]
    public async Task ModelInfer_MalformedTimeout_ServedWithoutDeadlineAsGrpcCoreDoes()
    {
        var result = await Grpc.CallAsync(
            GrpcTestClient.Service + "ModelInfer", GrpcTestClient.Frame(RawRequest(SensorWindows.Make(1, 8, C), 1, 8).ToByteArray()), ModelInferResponse.Parser,
            new Dictionary<string, string> { ["grpc-timeout"] = "12X" });
        Assert.Equal(GrpcStatusCode.OK, result.Status);
        Assert.Equal("g-1", result.Single().Id);
    }

    [Fact]
    public async Task UnknownMethod_Call_UnimplementedTrailersOnly()
    {
        var result = await Grpc.CallAsync("/inference.GRPCInferenceService/ModelExplode", GrpcTestClient.Frame([]), ServerLiveResponse.Parser);
        Assert.Equal(HttpStatusCode.OK, result.HttpStatus);
        Assert.True(result.TrailersOnly);
        Assert.Equal(GrpcStatusCode.Unimplemented, result.Status);
        var unknownService = await Grpc.CallAsync("/inference.Nothing/ModelInfer", GrpcTestClient.Frame([]), ServerLiveResponse.Parser);
        Assert.Equal(GrpcStatusCode.Unimplemented, unknownService.Status);
    }

    [Fact]
    public async Task NonGrpcContentType_Call_Http415()
    {
        var result = await Grpc.CallAsync(GrpcTestClient.Service + "ServerLive", GrpcTestClient.Frame([]), ServerLiveResponse.Parser, contentType: "application/json");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, result.HttpStatus);
    }

    [Fact]
    public async Task StatusMessage_NonAscii_IsPercentEncoded()
    {
        var request = RawRequest(new float[16], 1, 2);
        request.Inputs[0].Name = "température";
        var result = await Grpc.UnaryAsync("ModelInfer", request, ModelInferResponse.Parser);
        Assert.Contains("'température'", result.Message);
    }

    [Fact]
    public async Task ModelStreamInfer_ThreeRequests_AnswersEachInOrderWithErrorsInline()
    {
        var good1 = RawRequest(SensorWindows.Make(1, 8, C, seed: 1), 1, 8, id: "a");
        var bad = RawRequest(new float[5], 1, 2, id: "b");
        var good2 = RawRequest(SensorWindows.Make(1, 8, C, seed: 2), 1, 8, id: "c");
        var result = await Grpc.DuplexAsync("ModelStreamInfer", [good1, bad, good2], ModelStreamInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.OK, result.Status);
        Assert.Equal(3, result.Messages.Count);
        Assert.Equal(["a", "b", "c"], result.Messages.Select(m => m.InferResponse.Id));
        Assert.Empty(result.Messages[0].ErrorMessage);
        Assert.Contains("expected 64", result.Messages[1].ErrorMessage);
        Assert.Empty(result.Messages[2].ErrorMessage);
        var unary = (await Grpc.UnaryAsync("ModelInfer", good2, ModelInferResponse.Parser)).Single();
        Assert.Equal(unary.RawOutputContents, result.Messages[2].InferResponse.RawOutputContents);
    }

    [Fact]
    public async Task Repository_IndexReadOnlyAndModelControlRefused_ModelStaysReady()
    {
        var index = (await Grpc.UnaryAsync("RepositoryIndex", new RepositoryIndexRequest(), RepositoryIndexResponse.Parser)).Single();
        Assert.Contains(index.Models, m => m.Name == Model && m.State == "READY");
        Assert.Contains(index.Models, m => m.Name == "broken" && m.State == "UNAVAILABLE" && m.Reason.Length > 0);

        // Model control needs the admin token on the admin port; over gRPC it is refused, and nothing changes.
        const string name = ServerFixture.ClassifierName;
        var unload = await Grpc.UnaryAsync("RepositoryModelUnload", new RepositoryModelUnloadRequest { ModelName = name }, RepositoryModelUnloadResponse.Parser);
        Assert.Equal(GrpcStatusCode.PermissionDenied, unload.Status);
        Assert.Contains("admin port", unload.Message);
        Assert.True((await Grpc.UnaryAsync("ModelReady", new ModelReadyRequest { Name = name }, ModelReadyResponse.Parser)).Single().Ready);
        var load = await Grpc.UnaryAsync("RepositoryModelLoad", new RepositoryModelLoadRequest { ModelName = "../etc" }, RepositoryModelLoadResponse.Parser);
        Assert.Equal(GrpcStatusCode.PermissionDenied, load.Status);
    }

    [Fact]
    public async Task GrpcRoutes_OnRestPort_AreNotServed()
    {
        var response = await server.Rest.PostAsync(GrpcTestClient.Service + "ServerLive", new ByteArrayContent(GrpcTestClient.Frame([])));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    internal static ModelInferRequest RawRequest(float[] values, int batch, int time, string id = "g-1", int channels = C, string model = Model)
    {
        var request = new ModelInferRequest { ModelName = model, Id = id };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32" };
        input.Shape.AddRange([batch, time, channels]);
        request.Inputs.Add(input);
        var bytes = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }

        request.RawInputContents.Add(ByteString.CopyFrom(bytes));
        return request;
    }

    private static float[] Floats(byte[] raw) => [.. Enumerable.Range(0, raw.Length / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan(i * 4)))];
}
