using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using SparseInference.LoadGen;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Evaluate;

/// <summary>How requests reach the service.</summary>
public enum Transport
{
    /// <summary>REST with tensor data as JSON numbers.</summary>
    RestJson,

    /// <summary>REST with Triton's binary tensor data extension, in and out.</summary>
    RestBinary,

    /// <summary>gRPC ModelInfer over cleartext HTTP/2, raw tensor contents.</summary>
    Grpc,
}

/// <summary>What the service returned for one batch of windows: the <c>score</c> tensor, and the <c>output</c> (reconstruction) tensor when it was asked for.</summary>
public sealed record ScoreBatch(float[] Scores, float[]? Output, long ComputedPairs, long DensePairs, string Variant);

/// <summary>The service answered with something other than a score tensor.</summary>
public sealed class ServiceCallException(string message) : Exception(message);

/// <summary>
/// Sends a batch of windows [batch, time, channels] with a variant and returns the service's per-timestep <c>score</c>
/// output, and its <c>output</c> tensor [batch, time, channels] when <paramref name="withOutput"/> is set.
/// </summary>
public interface IScoreClient
{
    Task<ScoreBatch> ScoreAsync(string requestId, string variant, float[] windows, int batch, bool withOutput, CancellationToken cancellationToken);
}

public static class ScoreClients
{
    public const string ScoreOutput = "score";
    public const string ReconstructionOutput = "output";
    public const string VariantParameter = "variant";

    public static IScoreClient Create(Transport transport, HttpClient rest, GrpcChannel grpc, InferTarget target, int time) => transport switch
    {
        Transport.Grpc => new GrpcScoreClient(grpc, target, time),
        _ => new RestScoreClient(rest, target, time, transport == Transport.RestBinary),
    };

    public static string Name(Transport transport) => transport switch
    {
        Transport.RestJson => "rest-json",
        Transport.RestBinary => "rest-binary",
        _ => "grpc",
    };

    public static Transport Parse(string name) => name switch
    {
        "rest-json" or "rest" => Transport.RestJson,
        "rest-binary" => Transport.RestBinary,
        "grpc" => Transport.Grpc,
        _ => throw new ArgumentException($"--protocol: expected rest-json, rest-binary or grpc, got '{name}'."),
    };

    internal static byte[] LittleEndianBytes(ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(values).CopyTo(bytes);
        }
        else
        {
            for (var i = 0; i < values.Length; i++)
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }
        return bytes;
    }

    internal static float[] FloatsFromLittleEndian(ReadOnlySpan<byte> bytes)
    {
        var values = new float[bytes.Length / sizeof(float)];
        for (var i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]);
        return values;
    }

    internal static void CheckShape(string name, IReadOnlyList<long> shape, IReadOnlyList<long> expected, int length)
    {
        if (!shape.SequenceEqual(expected) || length != expected.Aggregate(1L, (a, b) => a * b))
            throw new ServiceCallException($"output '{name}': expected shape [{string.Join(", ", expected)}] with {expected.Aggregate(1L, (a, b) => a * b)} values, got [{string.Join(", ", shape)}] with {length}.");
    }

    internal static IReadOnlyList<string> Outputs(bool withOutput) => withOutput ? [ScoreOutput, ReconstructionOutput] : [ScoreOutput];
}

/// <summary>REST <c>POST /v2/models/{m}/infer</c> asking for the <c>score</c> output (and <c>output</c> when wanted).</summary>
public sealed class RestScoreClient(HttpClient http, InferTarget target, int time, bool binary) : IScoreClient
{
    public async Task<ScoreBatch> ScoreAsync(string requestId, string variant, float[] windows, int batch, bool withOutput, CancellationToken cancellationToken)
    {
        var json = RequestJson(requestId, variant, windows, batch, withOutput);
        HttpContent content;
        if (binary)
        {
            var data = ScoreClients.LittleEndianBytes(windows);
            var body = new byte[json.Length + data.Length];
            json.CopyTo(body, 0);
            data.CopyTo(body, json.Length);
            content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            content.Headers.TryAddWithoutValidation(RestInferClient.HeaderLengthHeader, json.Length.ToString(CultureInfo.InvariantCulture));
        }
        else
        {
            content = new ByteArrayContent(json);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        using (content)
        using (var response = await http.PostAsync(target.ModelPath + "/infer", content, cancellationToken).ConfigureAwait(false))
        {
            var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.OK)
                throw new ServiceCallException($"REST infer (variant '{variant}', {batch} windows) returned HTTP {(int)response.StatusCode}: {Encoding.UTF8.GetString(bytes)}");
            var headerLength = bytes.Length;
            if (response.Headers.TryGetValues(RestInferClient.HeaderLengthHeader, out var values))
                headerLength = int.Parse(values.First(), NumberStyles.None, CultureInfo.InvariantCulture);
            return Parse(bytes, headerLength, variant, batch, withOutput);
        }
    }

    private ScoreBatch Parse(byte[] body, int headerLength, string variant, int batch, bool withOutput)
    {
        using var document = JsonDocument.Parse(body.AsMemory(0, headerLength));
        var root = document.RootElement;
        var parameters = root.GetProperty("parameters");
        var served = parameters.TryGetProperty(ScoreClients.VariantParameter, out var v) ? v.GetString() ?? "" : "";
        var computed = parameters.TryGetProperty("computed_pairs", out var c) ? c.GetInt64() : 0;
        var dense = parameters.TryGetProperty("dense_pairs", out var d) ? d.GetInt64() : 0;
        var binaryOffset = headerLength;
        float[]? scores = null, reconstruction = null;
        foreach (var output in root.GetProperty("outputs").EnumerateArray())
        {
            var name = output.GetProperty("name").GetString();
            var shape = output.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToList();
            var isBinary = output.TryGetProperty("parameters", out var p) && p.TryGetProperty("binary_data_size", out var size);
            var byteLength = isBinary ? p.GetProperty("binary_data_size").GetInt32() : 0;
            if (name == ScoreClients.ScoreOutput || (withOutput && name == ScoreClients.ReconstructionOutput))
            {
                float[] values = isBinary
                    ? ScoreClients.FloatsFromLittleEndian(body.AsSpan(binaryOffset, byteLength))
                    : [.. output.GetProperty("data").EnumerateArray().Select(e => e.GetSingle())];
                if (name == ScoreClients.ScoreOutput)
                {
                    ScoreClients.CheckShape(name, shape, [batch, time], values.Length);
                    scores = values;
                }
                else
                {
                    ScoreClients.CheckShape(name, shape, [batch, time, target.Channels], values.Length);
                    reconstruction = values;
                }
            }

            binaryOffset += byteLength;
        }

        if (scores is null || (withOutput && reconstruction is null))
            throw new ServiceCallException($"REST infer (variant '{variant}'): the response lacks output '{(scores is null ? ScoreClients.ScoreOutput : ScoreClients.ReconstructionOutput)}'.");
        return new ScoreBatch(scores, reconstruction, computed, dense, served);
    }

    private byte[] RequestJson(string requestId, string variant, float[] windows, int batch, bool withOutput)
    {
        var buffer = new ArrayBufferWriter<byte>(binary ? 512 : 512 + (windows.Length * 12));
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("id", requestId);
            writer.WriteStartObject("parameters");
            writer.WriteString(ScoreClients.VariantParameter, variant);
            foreach (var (key, value) in target.Parameters)
                writer.WriteString(key, value);
            writer.WriteEndObject();
            writer.WriteStartArray("inputs");
            InferRequestJson.WriteFp32Input(writer, target.InputName, [batch, time, target.Channels], windows, binary);
            writer.WriteEndArray();
            writer.WriteStartArray("outputs");
            foreach (var name in ScoreClients.Outputs(withOutput))
            {
                writer.WriteStartObject();
                writer.WriteString("name", name);
                writer.WriteStartObject("parameters");
                writer.WriteBoolean("binary_data", binary);
                writer.WriteEndObject();
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }
}

/// <summary>gRPC <c>ModelInfer</c> through grpc-dotnet's client; the score from <c>raw_output_contents</c>.</summary>
public sealed class GrpcScoreClient(GrpcChannel channel, InferTarget target, int time) : IScoreClient
{
    private readonly CallInvoker _invoker = channel.CreateCallInvoker();

    public async Task<ScoreBatch> ScoreAsync(string requestId, string variant, float[] windows, int batch, bool withOutput, CancellationToken cancellationToken)
    {
        var message = new ModelInferRequest { ModelName = target.Model, ModelVersion = target.Version ?? string.Empty, Id = requestId };
        message.Parameters[ScoreClients.VariantParameter] = new InferParameter { StringParam = variant };
        foreach (var (key, value) in target.Parameters)
            message.Parameters[key] = new InferParameter { StringParam = value };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = target.InputName, Datatype = "FP32" };
        input.Shape.Add([batch, time, target.Channels]);
        message.Inputs.Add(input);
        foreach (var name in ScoreClients.Outputs(withOutput))
            message.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = name });
        message.RawInputContents.Add(UnsafeByteOperations.UnsafeWrap(ScoreClients.LittleEndianBytes(windows)));

        ModelInferResponse reply;
        try
        {
            using var call = _invoker.AsyncUnaryCall(OipGrpc.ModelInfer, null, new CallOptions(cancellationToken: cancellationToken), message);
            reply = await call.ResponseAsync.ConfigureAwait(false);
        }
        catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ServiceCallException($"gRPC ModelInfer (variant '{variant}', {batch} windows) failed with status {ex.StatusCode}: {ex.Status.Detail}");
        }

        float[] Raw(string name, long[] expected)
        {
            var index = reply.Outputs.ToList().FindIndex(o => o.Name == name);
            if (index < 0 || index >= reply.RawOutputContents.Count)
                throw new ServiceCallException($"gRPC ModelInfer (variant '{variant}'): the response has no raw '{name}' output.");
            var values = ScoreClients.FloatsFromLittleEndian(reply.RawOutputContents[index].Span);
            ScoreClients.CheckShape(name, reply.Outputs[index].Shape, expected, values.Length);
            return values;
        }

        return new ScoreBatch(
            Raw(ScoreClients.ScoreOutput, [batch, time]),
            withOutput ? Raw(ScoreClients.ReconstructionOutput, [batch, time, target.Channels]) : null,
            reply.Parameters.TryGetValue("computed_pairs", out var c) ? c.Int64Param : 0,
            reply.Parameters.TryGetValue("dense_pairs", out var d) ? d.Int64Param : 0,
            reply.Parameters.TryGetValue(ScoreClients.VariantParameter, out var v) ? v.StringParam : "");
    }
}
