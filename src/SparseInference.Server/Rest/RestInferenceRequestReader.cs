using System.Text.Json;
using SparseInference.Serving;
using SparseInference.Serving.Protocol;

namespace SparseInference.Server.Rest;

/// <summary>
/// Parses a REST infer body: the JSON request, optionally followed by binary tensor data whose JSON part is
/// <c>Inference-Header-Content-Length</c> bytes long. Tensor <c>data</c> is only delimited here, never copied.
/// </summary>
internal static class RestInferenceRequestReader
{
    public const string BinaryDataSize = "binary_data_size";
    public const string BinaryData = "binary_data";
    public const string BinaryDataOutput = "binary_data_output";

    public static InferenceRequest Parse(ReadOnlyMemory<byte> body, int? headerLength, string modelName, string? modelVersion)
    {
        var jsonLength = headerLength ?? body.Length;
        if (jsonLength < 0 || jsonLength > body.Length)
        {
            throw InferenceException.Invalid(
                $"header Inference-Header-Content-Length must be in 0..{body.Length} (the body length), got {jsonLength}.");
        }

        var json = body[..jsonLength];
        var binary = body[jsonLength..];
        try
        {
            return ParseJson(json, binary, modelName, modelVersion);
        }
        catch (JsonException ex)
        {
            throw InferenceException.Invalid($"malformed JSON request body: {ex.Message}");
        }
        catch (InvalidOperationException ex)
        {
            // Utf8JsonReader.GetString on a string holding invalid UTF-8 or an escaped lone surrogate ("\ud800").
            throw InferenceException.Invalid($"malformed JSON request body: {ex.Message}");
        }
    }

    private static InferenceRequest ParseJson(ReadOnlyMemory<byte> json, ReadOnlyMemory<byte> binary, string modelName, string? modelVersion)
    {
        var reader = new Utf8JsonReader(json.Span, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        Expect(ref reader, JsonTokenType.StartObject, "request body");
        string? id = null;
        Dictionary<string, InferenceParameter> parameters = new(StringComparer.Ordinal);
        List<PendingInput>? inputs = null;
        List<RequestedOutput>? outputs = null;
        List<(string Name, bool? Binary)>? outputSpecs = null;
        while (NextProperty(ref reader, out var property))
        {
            switch (property)
            {
                case "id":
                    reader.Read();
                    id = reader.TokenType == JsonTokenType.String
                        ? reader.GetString()
                        : throw InferenceException.Invalid($"field 'id' must be a string, got a JSON {Describe(reader.TokenType)}.");
                    break;
                case "parameters":
                    parameters = ReadParameters(ref reader, "parameters");
                    break;
                case "inputs":
                    inputs = ReadInputs(ref reader, json);
                    break;
                case "outputs":
                    outputSpecs = ReadOutputs(ref reader);
                    break;
                default:
                    reader.Read();
                    reader.Skip();
                    break;
            }
        }

        if (inputs is null || inputs.Count == 0)
        {
            throw InferenceException.Invalid("field 'inputs' must be a non-empty array, got none.");
        }

        var binaryByDefault = false;
        if (parameters.Remove(BinaryDataOutput, out var binaryOutput))
        {
            binaryByDefault = binaryOutput.Value is bool b
                ? b
                : throw InferenceException.Invalid($"parameter '{BinaryDataOutput}' must be a bool, got {binaryOutput.KindName} {binaryOutput}.");
        }

        if (outputSpecs is not null)
        {
            outputs = [.. outputSpecs.Select(o => new RequestedOutput(o.Name, o.Binary ?? binaryByDefault))];
        }

        // Binary sections follow the JSON in the order of the inputs that declare binary_data_size.
        var offset = 0;
        var built = new List<InferenceInput>(inputs.Count);
        foreach (var input in inputs)
        {
            TensorData data;
            if (input.BinarySize is long size)
            {
                if (!input.Json.IsEmpty)
                {
                    throw InferenceException.Invalid($"input '{input.Name}': give either 'data' or parameter '{BinaryDataSize}', not both.");
                }

                if (size < 0 || size > binary.Length - offset)
                {
                    throw InferenceException.Invalid(
                        $"input '{input.Name}': parameter '{BinaryDataSize}' is {size}, but only {binary.Length - offset} bytes of binary data remain after the JSON header.");
                }

                data = new RawTensorData(binary.Slice(offset, (int)size));
                offset += (int)size;
            }
            else if (!input.Json.IsEmpty)
            {
                data = new JsonTensorData(input.Json);
            }
            else
            {
                throw InferenceException.Invalid($"input '{input.Name}': field 'data' is missing (or give parameter '{BinaryDataSize}' with binary data).");
            }

            built.Add(new InferenceInput { Name = input.Name, Datatype = input.Datatype, Shape = input.Shape, Data = data });
        }

        if (offset != binary.Length)
        {
            throw InferenceException.Invalid(
                $"binary data after the JSON header is {binary.Length} bytes, but the inputs' '{BinaryDataSize}' parameters add up to {offset}.");
        }

        return new InferenceRequest
        {
            ModelName = modelName,
            ModelVersion = modelVersion,
            Id = id,
            Parameters = parameters,
            Inputs = built,
            Outputs = outputs ?? [],
            BinaryOutputByDefault = binaryByDefault,
        };
    }

    private sealed record PendingInput(string Name, string Datatype, long[] Shape, ReadOnlyMemory<byte> Json, long? BinarySize);

    private static List<PendingInput> ReadInputs(ref Utf8JsonReader reader, ReadOnlyMemory<byte> json)
    {
        reader.Read();
        Expect(ref reader, JsonTokenType.StartArray, "field 'inputs'");
        var inputs = new List<PendingInput>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var index = inputs.Count;
            Expect(ref reader, JsonTokenType.StartObject, $"inputs[{index}]");
            string? name = null;
            string? datatype = null;
            long[]? shape = null;
            ReadOnlyMemory<byte> data = default;
            long? binarySize = null;
            while (NextProperty(ref reader, out var property))
            {
                switch (property)
                {
                    case "name":
                        name = ReadString(ref reader, $"inputs[{index}].name");
                        break;
                    case "datatype":
                        datatype = ReadString(ref reader, $"inputs[{index}].datatype");
                        break;
                    case "shape":
                        shape = ReadShape(ref reader, $"inputs[{index}].shape");
                        break;
                    case "parameters":
                        var parameters = ReadParameters(ref reader, $"inputs[{index}].parameters");
                        if (parameters.TryGetValue(BinaryDataSize, out var size))
                        {
                            binarySize = size.Value is long l
                                ? l
                                : throw InferenceException.Invalid($"inputs[{index}].parameters.{BinaryDataSize} must be an integer, got {size.KindName} {size}.");
                        }

                        break;
                    case "data":
                        reader.Read();
                        if (reader.TokenType != JsonTokenType.StartArray)
                        {
                            throw InferenceException.Invalid($"inputs[{index}].data must be a JSON array, got a JSON {Describe(reader.TokenType)}.");
                        }

                        var start = (int)reader.TokenStartIndex;
                        reader.Skip();
                        data = json[start..(int)reader.BytesConsumed];
                        break;
                    default:
                        reader.Read();
                        reader.Skip();
                        break;
                }
            }

            if (name is null)
            {
                throw InferenceException.Invalid($"inputs[{index}].name is missing.");
            }

            if (datatype is null)
            {
                throw InferenceException.Invalid($"input '{name}': field 'datatype' is missing.");
            }

            if (!TensorDatatypes.IsKnown(datatype))
            {
                throw InferenceException.Invalid($"input '{name}': datatype '{datatype}' is not an Open Inference Protocol datatype.");
            }

            if (shape is null)
            {
                throw InferenceException.Invalid($"input '{name}': field 'shape' is missing.");
            }

            inputs.Add(new PendingInput(name, datatype, shape, data, binarySize));
        }

        return inputs;
    }

    private static List<(string Name, bool? Binary)> ReadOutputs(ref Utf8JsonReader reader)
    {
        reader.Read();
        Expect(ref reader, JsonTokenType.StartArray, "field 'outputs'");
        var outputs = new List<(string, bool?)>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var index = outputs.Count;
            Expect(ref reader, JsonTokenType.StartObject, $"outputs[{index}]");
            string? name = null;
            bool? binary = null;
            while (NextProperty(ref reader, out var property))
            {
                switch (property)
                {
                    case "name":
                        name = ReadString(ref reader, $"outputs[{index}].name");
                        break;
                    case "parameters":
                        var parameters = ReadParameters(ref reader, $"outputs[{index}].parameters");
                        if (parameters.TryGetValue(BinaryData, out var flag))
                        {
                            binary = flag.Value is bool b
                                ? b
                                : throw InferenceException.Invalid($"outputs[{index}].parameters.{BinaryData} must be a bool, got {flag.KindName} {flag}.");
                        }

                        break;
                    default:
                        reader.Read();
                        reader.Skip();
                        break;
                }
            }

            outputs.Add((name ?? throw InferenceException.Invalid($"outputs[{index}].name is missing."), binary));
        }

        return outputs;
    }

    internal static Dictionary<string, InferenceParameter> ReadParameters(ref Utf8JsonReader reader, string field)
    {
        reader.Read();
        Expect(ref reader, JsonTokenType.StartObject, field);
        var parameters = new Dictionary<string, InferenceParameter>(StringComparer.Ordinal);
        while (NextProperty(ref reader, out var name))
        {
            reader.Read();
            parameters[name] = reader.TokenType switch
            {
                JsonTokenType.String => InferenceParameter.Of(reader.GetString()!),
                JsonTokenType.True => InferenceParameter.Of(true),
                JsonTokenType.False => InferenceParameter.Of(false),
                JsonTokenType.Number when reader.TryGetInt64(out var l) => InferenceParameter.Of(l),
                JsonTokenType.Number => InferenceParameter.Of(reader.GetDouble()),
                _ => throw InferenceException.Invalid($"{field}.{name} must be a string, bool or number, got a JSON {Describe(reader.TokenType)}."),
            };
        }

        return parameters;
    }

    private static long[] ReadShape(ref Utf8JsonReader reader, string field)
    {
        reader.Read();
        Expect(ref reader, JsonTokenType.StartArray, field);
        var shape = new List<long>(4);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var dim))
            {
                throw InferenceException.Invalid($"{field}[{shape.Count}] must be an integer, got a JSON {Describe(reader.TokenType)}.");
            }

            shape.Add(dim);
        }

        return [.. shape];
    }

    private static string ReadString(ref Utf8JsonReader reader, string field)
    {
        reader.Read();
        return reader.TokenType == JsonTokenType.String
            ? reader.GetString()!
            : throw InferenceException.Invalid($"{field} must be a string, got a JSON {Describe(reader.TokenType)}.");
    }

    /// <summary>Advances to the next property name of the current object; false at its end.</summary>
    private static bool NextProperty(ref Utf8JsonReader reader, out string name)
    {
        if (!reader.Read())
        {
            throw new JsonException("unexpected end of JSON.");
        }

        if (reader.TokenType == JsonTokenType.EndObject)
        {
            name = "";
            return false;
        }

        name = reader.GetString()!;
        return true;
    }

    private static void Expect(ref Utf8JsonReader reader, JsonTokenType expected, string field)
    {
        if (reader.TokenType == JsonTokenType.None && !reader.Read())
        {
            throw InferenceException.Invalid($"{field} is empty, expected a JSON {Describe(expected)}.");
        }

        if (reader.TokenType != expected)
        {
            throw InferenceException.Invalid($"{field} must be a JSON {Describe(expected)}, got a JSON {Describe(reader.TokenType)}.");
        }
    }

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "object",
        JsonTokenType.StartArray => "array",
        JsonTokenType.String => "string",
        JsonTokenType.Number => "number",
        JsonTokenType.True or JsonTokenType.False => "boolean",
        JsonTokenType.Null => "null",
        _ => token.ToString(),
    };
}
