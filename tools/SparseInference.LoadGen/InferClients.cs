using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.LoadGen;

/// <summary>How one call ended: success, or a short status such as <c>http_429</c> or <c>grpc_8</c>.</summary>
public readonly record struct CallOutcome(bool Success, string Status)
{
    public static readonly CallOutcome Ok = new(true, "ok");
}

/// <summary>Sends one inference request for one sensor window.</summary>
public interface IInferClient : IDisposable
{
    Task<CallOutcome> InferAsync(string requestId, string lineId, ReadOnlyMemory<float> window, CancellationToken cancellationToken);
}

/// <summary>What every client needs to know about the target model.</summary>
public sealed record InferTarget(string Model, string? Version, string InputName, int Channels, IReadOnlyDictionary<string, string> Parameters)
{
    public string ModelPath => Version is null ? $"/v2/models/{Uri.EscapeDataString(Model)}" : $"/v2/models/{Uri.EscapeDataString(Model)}/versions/{Uri.EscapeDataString(Version)}";
}

/// <summary>Pieces of the Open Inference Protocol JSON request body that every REST client here writes alike.</summary>
public static class InferRequestJson
{
    /// <summary>
    /// One FP32 input: name, shape, datatype, and either the values inline or, when they follow the JSON as binary
    /// tensor data, their <c>binary_data_size</c>.
    /// </summary>
    public static void WriteFp32Input(Utf8JsonWriter writer, string name, ReadOnlySpan<int> shape, ReadOnlySpan<float> values, bool binary)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteString("name", name);
        writer.WriteStartArray("shape");
        foreach (var dim in shape)
            writer.WriteNumberValue(dim);
        writer.WriteEndArray();
        writer.WriteString("datatype", "FP32");
        if (binary)
        {
            writer.WriteStartObject("parameters");
            writer.WriteNumber("binary_data_size", values.Length * sizeof(float));
            writer.WriteEndObject();
        }
        else
        {
            writer.WriteStartArray("data");
            foreach (var value in values)
                writer.WriteNumberValue(value);
            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }
}

/// <summary>REST <c>POST /v2/models/{m}/infer</c>, with JSON tensor data or the binary tensor data extension.</summary>
public sealed class RestInferClient(HttpClient http, InferTarget target, bool binary) : IInferClient
{
    public const string HeaderLengthHeader = "Inference-Header-Content-Length";

    public async Task<CallOutcome> InferAsync(string requestId, string lineId, ReadOnlyMemory<float> window, CancellationToken cancellationToken)
    {
        var time = window.Length / target.Channels;
        var json = BuildJson(requestId, lineId, window, time);
        HttpContent content;
        if (binary)
        {
            var bytes = new byte[json.Length + (window.Length * sizeof(float))];
            json.Span.CopyTo(bytes);
            WriteLittleEndian(window.Span, bytes.AsSpan(json.Length));
            content = new ByteArrayContent(bytes);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            content.Headers.TryAddWithoutValidation(HeaderLengthHeader, json.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        else
        {
            content = new ByteArrayContent(json.ToArray());
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        using (content)
        using (var response = await http.PostAsync(target.ModelPath + "/infer", content, cancellationToken).ConfigureAwait(false))
        {
            // Read the whole body: its transfer is part of the latency a client sees.
            await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            return response.StatusCode == HttpStatusCode.OK ? CallOutcome.Ok : new CallOutcome(false, $"http_{(int)response.StatusCode}");
        }
    }

    public void Dispose()
    {
    }

    private ReadOnlyMemory<byte> BuildJson(string requestId, string lineId, ReadOnlyMemory<float> window, int time)
    {
        var buffer = new ArrayBufferWriter<byte>(binary ? 256 : 256 + (window.Length * 12));
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("id", requestId);
            writer.WriteStartObject("parameters");
            writer.WriteString("line_id", lineId);
            foreach (var (key, value) in target.Parameters)
                writer.WriteString(key, value);
            if (binary)
                writer.WriteBoolean("binary_data_output", true);
            writer.WriteEndObject();
            writer.WriteStartArray("inputs");
            InferRequestJson.WriteFp32Input(writer, target.InputName, [1, time, target.Channels], window.Span, binary);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        return buffer.WrittenMemory;
    }

    internal static void WriteLittleEndian(ReadOnlySpan<float> values, Span<byte> destination)
    {
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(values).CopyTo(destination);
            return;
        }
        for (var i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(destination[(i * 4)..], values[i]);
    }
}

/// <summary>gRPC <c>inference.GRPCInferenceService/ModelInfer</c> through grpc-dotnet's client (Grpc.Net.Client).</summary>
public sealed class GrpcInferClient(GrpcChannel channel, InferTarget target) : IInferClient
{
    private readonly CallInvoker _invoker = channel.CreateCallInvoker();

    public async Task<CallOutcome> InferAsync(string requestId, string lineId, ReadOnlyMemory<float> window, CancellationToken cancellationToken)
    {
        var time = window.Length / target.Channels;
        var message = new ModelInferRequest { ModelName = target.Model, ModelVersion = target.Version ?? string.Empty, Id = requestId };
        message.Parameters["line_id"] = new InferParameter { StringParam = lineId };
        foreach (var (key, value) in target.Parameters)
            message.Parameters[key] = new InferParameter { StringParam = value };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = target.InputName, Datatype = "FP32" };
        input.Shape.Add([1, time, target.Channels]);
        message.Inputs.Add(input);
        var raw = new byte[window.Length * sizeof(float)];
        RestInferClient.WriteLittleEndian(window.Span, raw);
        message.RawInputContents.Add(UnsafeByteOperations.UnsafeWrap(raw));

        try
        {
            using var call = _invoker.AsyncUnaryCall(OipGrpc.ModelInfer, null, new CallOptions(cancellationToken: cancellationToken), message);
            await call.ResponseAsync.ConfigureAwait(false);
            return CallOutcome.Ok;
        }
        catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
        {
            return new CallOutcome(false, $"grpc_{(int)ex.StatusCode}");
        }
    }

    public void Dispose()
    {
    }
}
