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

/// <summary>One request: a batch of windows [batch, time, channels] for a variant, and what to ask for besides the <c>score</c> output.</summary>
public sealed record ScoreRequest(string Id, string Variant, float[] Windows, int Batch)
{
    /// <summary>Also ask for the <c>output</c> (reconstruction) tensor.</summary>
    public bool WithOutput { get; init; }

    /// <summary>Also ask for the <c>anomaly</c> flags.</summary>
    public bool WithAnomaly { get; init; }

    /// <summary>The line's key, sent as <c>line_id</c>: the service scores the raw windows with the line's baseline.</summary>
    public string? Line { get; init; }
}

/// <summary>
/// What the service returned for one batch of windows: the <c>score</c> tensor, the <c>output</c> and <c>anomaly</c> tensors
/// when they were asked for, and the line whose baseline scored the request (null when none did).
/// </summary>
public sealed record ScoreBatch(float[] Scores, float[]? Output, long ComputedPairs, long DensePairs, string Variant)
{
    public bool[]? Anomaly { get; init; }

    public string? BaselineLine { get; init; }
}

/// <summary>The service answered with something other than a score tensor.</summary>
public sealed class ServiceCallException(string message) : Exception(message);

/// <summary>
/// Sends a batch of windows [batch, time, channels] with a variant and returns the service's per-timestep <c>score</c>
/// output, and the other outputs the request asks for.
/// </summary>
public interface IScoreClient
{
    Task<ScoreBatch> ScoreAsync(ScoreRequest request, CancellationToken cancellationToken);
}

public static class ScoreClients
{
    public const string ScoreOutput = "score";
    public const string ReconstructionOutput = "output";
    public const string AnomalyOutput = "anomaly";
    public const string VariantParameter = "variant";

    /// <summary>The request parameter carrying the line's key (the server's <c>Variants:RoutingKeyParameter</c>, default).</summary>
    public const string LineParameter = "line_id";

    /// <summary>Response parameters naming the baseline that scored a request (docs/baselines.md).</summary>
    public const string BaselineParameter = "baseline";
    public const string BaselineLineParameter = "baseline_line";
    public const string LineBaselineApplied = "line";

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

    internal static IReadOnlyList<string> Outputs(ScoreRequest request)
    {
        var outputs = new List<string> { ScoreOutput };
        if (request.WithOutput)
            outputs.Add(ReconstructionOutput);
        if (request.WithAnomaly)
            outputs.Add(AnomalyOutput);
        return outputs;
    }

    /// <summary>The request's parameters: the variant, the target's fixed ones, and the line's key when it names one.</summary>
    internal static IEnumerable<KeyValuePair<string, string>> Parameters(ScoreRequest request, InferTarget target)
    {
        yield return new(VariantParameter, request.Variant);
        foreach (var parameter in target.Parameters)
            yield return parameter;
        if (request.Line is { } line)
            yield return new(LineParameter, line);
    }

    /// <summary>The line named by the response when a line baseline scored the request.</summary>
    internal static string? BaselineLine(string? baseline, string? line) => baseline == LineBaselineApplied ? line : null;
}

/// <summary>REST <c>POST /v2/models/{m}/infer</c> asking for the <c>score</c> output (and the others the request wants).</summary>
public sealed class RestScoreClient(HttpClient http, InferTarget target, int time, bool binary) : IScoreClient
{
    public async Task<ScoreBatch> ScoreAsync(ScoreRequest request, CancellationToken cancellationToken)
    {
        var json = RequestJson(request);
        HttpContent content;
        if (binary)
        {
            var data = ScoreClients.LittleEndianBytes(request.Windows);
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
                throw new ServiceCallException($"REST infer (variant '{request.Variant}', {request.Batch} windows) returned HTTP {(int)response.StatusCode}: {Encoding.UTF8.GetString(bytes)}");
            var headerLength = bytes.Length;
            if (response.Headers.TryGetValues(RestInferClient.HeaderLengthHeader, out var values))
                headerLength = int.Parse(values.First(), NumberStyles.None, CultureInfo.InvariantCulture);
            return Parse(bytes, headerLength, request);
        }
    }

    private ScoreBatch Parse(byte[] body, int headerLength, ScoreRequest request)
    {
        using var document = JsonDocument.Parse(body.AsMemory(0, headerLength));
        var root = document.RootElement;
        var parameters = root.GetProperty("parameters");
        string? Text(string name) => parameters.TryGetProperty(name, out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
        var computed = parameters.TryGetProperty("computed_pairs", out var c) ? c.GetInt64() : 0;
        var dense = parameters.TryGetProperty("dense_pairs", out var d) ? d.GetInt64() : 0;
        var wanted = ScoreClients.Outputs(request);
        var binaryOffset = headerLength;
        float[]? scores = null, reconstruction = null;
        bool[]? anomaly = null;
        foreach (var output in root.GetProperty("outputs").EnumerateArray())
        {
            var name = output.GetProperty("name").GetString();
            var shape = output.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToList();
            var isBinary = output.TryGetProperty("parameters", out var p) && p.TryGetProperty("binary_data_size", out _);
            var byteLength = isBinary ? p.GetProperty("binary_data_size").GetInt32() : 0;
            var bytes = body.AsSpan(binaryOffset, byteLength);
            if (name == ScoreClients.AnomalyOutput && wanted.Contains(name))
            {
                anomaly = isBinary ? [.. bytes.ToArray().Select(b => b != 0)] : [.. output.GetProperty("data").EnumerateArray().Select(e => e.GetBoolean())];
                ScoreClients.CheckShape(name, shape, [request.Batch, time], anomaly.Length);
            }
            else if (name is not null && wanted.Contains(name))
            {
                float[] values = isBinary ? ScoreClients.FloatsFromLittleEndian(bytes) : [.. output.GetProperty("data").EnumerateArray().Select(e => e.GetSingle())];
                if (name == ScoreClients.ScoreOutput)
                {
                    ScoreClients.CheckShape(name, shape, [request.Batch, time], values.Length);
                    scores = values;
                }
                else
                {
                    ScoreClients.CheckShape(name, shape, [request.Batch, time, target.Channels], values.Length);
                    reconstruction = values;
                }
            }

            binaryOffset += byteLength;
        }

        var missing = wanted.FirstOrDefault(n => n switch
        {
            ScoreClients.ScoreOutput => scores is null,
            ScoreClients.ReconstructionOutput => reconstruction is null,
            _ => anomaly is null,
        });
        if (missing is not null)
            throw new ServiceCallException($"REST infer (variant '{request.Variant}'): the response lacks output '{missing}'.");
        return new ScoreBatch(scores!, reconstruction, computed, dense, Text(ScoreClients.VariantParameter) ?? "")
        {
            Anomaly = anomaly,
            BaselineLine = ScoreClients.BaselineLine(Text(ScoreClients.BaselineParameter), Text(ScoreClients.BaselineLineParameter)),
        };
    }

    private byte[] RequestJson(ScoreRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>(binary ? 512 : 512 + (request.Windows.Length * 12));
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("id", request.Id);
            writer.WriteStartObject("parameters");
            foreach (var (key, value) in ScoreClients.Parameters(request, target))
                writer.WriteString(key, value);
            writer.WriteEndObject();
            writer.WriteStartArray("inputs");
            InferRequestJson.WriteFp32Input(writer, target.InputName, [request.Batch, time, target.Channels], request.Windows, binary);
            writer.WriteEndArray();
            writer.WriteStartArray("outputs");
            foreach (var name in ScoreClients.Outputs(request))
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

/// <summary>gRPC <c>ModelInfer</c> through grpc-dotnet's client; the outputs from <c>raw_output_contents</c>.</summary>
public sealed class GrpcScoreClient(GrpcChannel channel, InferTarget target, int time) : IScoreClient
{
    private readonly CallInvoker _invoker = channel.CreateCallInvoker();

    public async Task<ScoreBatch> ScoreAsync(ScoreRequest request, CancellationToken cancellationToken)
    {
        var message = new ModelInferRequest { ModelName = target.Model, ModelVersion = target.Version ?? string.Empty, Id = request.Id };
        foreach (var (key, value) in ScoreClients.Parameters(request, target))
            message.Parameters[key] = new InferParameter { StringParam = value };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = target.InputName, Datatype = "FP32" };
        input.Shape.Add([request.Batch, time, target.Channels]);
        message.Inputs.Add(input);
        foreach (var name in ScoreClients.Outputs(request))
            message.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = name });
        message.RawInputContents.Add(UnsafeByteOperations.UnsafeWrap(ScoreClients.LittleEndianBytes(request.Windows)));

        ModelInferResponse reply;
        try
        {
            using var call = _invoker.AsyncUnaryCall(OipGrpc.ModelInfer, null, new CallOptions(cancellationToken: cancellationToken), message);
            reply = await call.ResponseAsync.ConfigureAwait(false);
        }
        catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ServiceCallException($"gRPC ModelInfer (variant '{request.Variant}', {request.Batch} windows) failed with status {ex.StatusCode}: {ex.Status.Detail}");
        }

        ReadOnlySpan<byte> Raw(string name, long[] expected, int elementBytes)
        {
            var index = reply.Outputs.ToList().FindIndex(o => o.Name == name);
            if (index < 0 || index >= reply.RawOutputContents.Count)
                throw new ServiceCallException($"gRPC ModelInfer (variant '{request.Variant}'): the response has no raw '{name}' output.");
            var bytes = reply.RawOutputContents[index].Span;
            ScoreClients.CheckShape(name, reply.Outputs[index].Shape, expected, bytes.Length / elementBytes);
            return bytes;
        }

        string? Text(string name) => reply.Parameters.TryGetValue(name, out var p) ? p.StringParam : null;
        return new ScoreBatch(
            ScoreClients.FloatsFromLittleEndian(Raw(ScoreClients.ScoreOutput, [request.Batch, time], sizeof(float))),
            request.WithOutput ? ScoreClients.FloatsFromLittleEndian(Raw(ScoreClients.ReconstructionOutput, [request.Batch, time, target.Channels], sizeof(float))) : null,
            reply.Parameters.TryGetValue("computed_pairs", out var c) ? c.Int64Param : 0,
            reply.Parameters.TryGetValue("dense_pairs", out var d) ? d.Int64Param : 0,
            Text(ScoreClients.VariantParameter) ?? "")
        {
            Anomaly = request.WithAnomaly ? [.. Raw(ScoreClients.AnomalyOutput, [request.Batch, time], 1).ToArray().Select(b => b != 0)] : null,
            BaselineLine = ScoreClients.BaselineLine(Text(ScoreClients.BaselineParameter), Text(ScoreClients.BaselineLineParameter)),
        };
    }
}
