using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace SparseInference.Serving.Protocol.Rest;

/// <summary>Writes an infer response: JSON, followed by binary tensor data for outputs that asked for it.</summary>
internal static class RestInferenceResponseWriter
{
    public const string HeaderLengthHeader = "Inference-Header-Content-Length";
    public const string VariantHeader = "X-SparseInference-Variant";

    public static async Task WriteAsync(HttpContext context, InferenceResponse response)
    {
        var json = new ArrayBufferWriter<byte>(4096);
        using (var writer = new Utf8JsonWriter(json))
        {
            WriteJson(writer, response);
        }

        var binaryLength = 0L;
        foreach (var output in response.Outputs)
        {
            if (output.Binary)
            {
                binaryLength += output.ByteLength;
            }
        }

        var http = context.Response;
        http.StatusCode = StatusCodes.Status200OK;
        http.Headers[VariantHeader] = response.Variant;
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
        var body = http.BodyWriter;
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

    internal static void WriteJson(Utf8JsonWriter writer, InferenceResponse response)
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
                if (output.Float32 is { } values)
                {
                    foreach (var v in values)
                    {
                        writer.WriteNumberValue(v);
                    }
                }
                else if (output.Bool is { } flags)
                {
                    foreach (var f in flags)
                    {
                        writer.WriteBooleanValue(f);
                    }
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
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
            case double d:
                writer.WriteNumber(name, d);
                break;
        }
    }
}
