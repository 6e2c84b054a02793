using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using SparseInference.Serving;
using SparseInference.Serving.Protocol;

namespace SparseInference.Server.Rest;

/// <summary>
/// Writes an infer response: JSON, followed by binary tensor data for outputs that asked for it.
/// Non-finite FP32 values (a score that overflowed) are written as the JSON strings <c>"NaN"</c>, <c>"Infinity"</c> and
/// <c>"-Infinity"</c>, the named literals Python's <c>float()</c>, NumPy and System.Text.Json read back; JSON numbers
/// cannot hold them, and binary tensor data and gRPC carry the same values as IEEE 754 bits.
/// </summary>
internal static class RestInferenceResponseWriter
{
    public const string HeaderLengthHeader = "Inference-Header-Content-Length";
    public const string VariantHeader = "X-SparseInference-Variant";

    public const string NaN = "NaN";
    public const string PositiveInfinity = "Infinity";
    public const string NegativeInfinity = "-Infinity";

    /// <summary>Above this many values written as JSON text, the response is streamed rather than buffered whole.</summary>
    internal const long StreamAboveValues = 64 * 1024;

    /// <summary>JSON text buffered before it is handed to the connection while streaming.</summary>
    private const int FlushBytes = 64 * 1024;

    public static async Task WriteAsync(HttpContext context, InferenceResponse response)
    {
        var binaryLength = 0L;
        var textValues = 0L;
        foreach (var output in response.Outputs)
        {
            if (output.Binary)
            {
                binaryLength += output.ByteLength;
            }
            else
            {
                textValues += output.Count;
            }
        }

        var http = context.Response;
        http.StatusCode = StatusCodes.Status200OK;
        http.Headers[VariantHeader] = response.Variant;
        var body = http.BodyWriter;
        if (binaryLength == 0 && textValues > StreamAboveValues)
        {
            // Chunked: the JSON text of a large output (tens of bytes per value) is never held whole in memory.
            http.ContentType = "application/json";
            using var streamed = new Utf8JsonWriter(body);
            await WriteJsonAsync(streamed, response, body, context.RequestAborted).ConfigureAwait(false);
            streamed.Flush();
            await body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
            return;
        }

        var json = new ArrayBufferWriter<byte>(4096);
        using (var writer = new Utf8JsonWriter(json))
        {
            await WriteJsonAsync(writer, response, null, context.RequestAborted).ConfigureAwait(false);
        }

        if (binaryLength > 0)
        {
            http.ContentType = "application/octet-stream";
            http.Headers[HeaderLengthHeader] = json.WrittenCount.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        else
        {
            http.ContentType = "application/json";
        }

        http.ContentLength = json.WrittenCount + binaryLength;
        body.Write(json.WrittenSpan);
        foreach (var output in response.Outputs)
        {
            if (output.Binary && output.ByteLength > 0)
            {
                var span = body.GetSpan(output.ByteLength)[..output.ByteLength];
                output.CopyBytesTo(span);
                body.Advance(output.ByteLength);
            }
        }

        await body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Writes the response JSON; with <paramref name="flushTo"/>, hands it over in chunks as it grows.</summary>
    internal static async ValueTask WriteJsonAsync(Utf8JsonWriter writer, InferenceResponse response, PipeWriter? flushTo, CancellationToken cancellationToken)
    {
        writer.WriteStartObject();
        writer.WriteString("model_name", response.ModelName);
        writer.WriteString("model_version", response.ModelVersion);
        if (response.Id is not null)
        {
            writer.WriteString("id", response.Id);
        }

        writer.WriteStartObject("parameters");
        foreach (var (name, value) in response.Parameters)
        {
            WriteParameter(writer, name, value);
        }

        writer.WriteEndObject();
        writer.WriteStartArray("outputs");
        foreach (var output in response.Outputs)
        {
            writer.WriteStartObject();
            writer.WriteString("name", output.Name);
            writer.WriteString("datatype", output.Datatype);
            writer.WriteStartArray("shape");
            foreach (var d in output.Shape)
            {
                writer.WriteNumberValue(d);
            }

            writer.WriteEndArray();
            if (output.Binary)
            {
                writer.WriteStartObject("parameters");
                writer.WriteNumber(RestInferenceRequestReader.BinaryDataSize, output.ByteLength);
                writer.WriteEndObject();
            }
            else
            {
                writer.WriteStartArray("data");
                for (var i = 0; i < output.Count; i++)
                {
                    if (output.Float32 is { } values)
                    {
                        WriteFloat(writer, values[i]);
                    }
                    else
                    {
                        writer.WriteBooleanValue(output.Bool![i]);
                    }

                    if (flushTo is not null && writer.BytesPending >= FlushBytes)
                    {
                        writer.Flush();
                        await flushTo.FlushAsync(cancellationToken).ConfigureAwait(false);
                    }
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    /// <summary>A finite value as a JSON number; NaN and the infinities as their named strings (see the type's remarks).</summary>
    internal static void WriteFloat(Utf8JsonWriter writer, float value)
    {
        if (float.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            writer.WriteStringValue(float.IsNaN(value) ? NaN : value > 0 ? PositiveInfinity : NegativeInfinity);
        }
    }

    private static void WriteParameter(Utf8JsonWriter writer, string name, InferenceParameter value)
    {
        switch (value.Value)
        {
            case string s:
                writer.WriteString(name, s);
                break;
            case bool b:
                writer.WriteBoolean(name, b);
                break;
            case long l:
                writer.WriteNumber(name, l);
                break;
            case double d when double.IsFinite(d):
                writer.WriteNumber(name, d);
                break;
            case double d:
                writer.WriteString(name, double.IsNaN(d) ? NaN : d > 0 ? PositiveInfinity : NegativeInfinity);
                break;
        }
    }
}
