using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace SparseInference.Serving.Protocol;

/// <summary>
/// Tensor elements as a transport carries them, decoded only once the input has been checked against the model,
/// straight into the array the engine takes.
/// </summary>
public abstract class TensorData
{
    /// <summary>Decodes FP32 elements; throws when their count is not <paramref name="expectedCount"/>.</summary>
    public abstract float[] ReadFloat32(InferenceInput input, int expectedCount);

    /// <summary>Decodes INT32 or INT64 elements (per the input's datatype); throws when their count is not <paramref name="expectedCount"/>.</summary>
    public abstract long[] ReadIntegers(InferenceInput input, int expectedCount);

    protected static InferenceException CountMismatch(InferenceInput input, long actual, int expected) =>
        InferenceException.Invalid(
            $"input '{input.Name}': data holds {actual} elements, expected {expected} (the product of shape {FormatShape(input.Shape)}).");

    public static string FormatShape(ReadOnlySpan<long> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";
}

/// <summary>Little-endian element bytes: REST binary tensor data or gRPC <c>raw_input_contents</c>.</summary>
public sealed class RawTensorData(ReadOnlyMemory<byte> bytes) : TensorData
{
    public ReadOnlyMemory<byte> Bytes { get; } = bytes;

    public override float[] ReadFloat32(InferenceInput input, int expectedCount)
    {
        CheckLength(input, expectedCount, sizeof(float));
        var result = new float[expectedCount];
        var span = Bytes.Span;
        if (BitConverter.IsLittleEndian)
        {
            span.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
        }
        else
        {
            for (var i = 0; i < result.Length; i++)
            {
                result[i] = BinaryPrimitives.ReadSingleLittleEndian(span[(i * 4)..]);
            }
        }

        return result;
    }

    public override long[] ReadIntegers(InferenceInput input, int expectedCount)
    {
        var size = TensorDatatypes.ElementSize(input.Datatype);
        CheckLength(input, expectedCount, size);
        var result = new long[expectedCount];
        var span = Bytes.Span;
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = size == 4 ? BinaryPrimitives.ReadInt32LittleEndian(span[(i * 4)..]) : BinaryPrimitives.ReadInt64LittleEndian(span[(i * 8)..]);
        }

        return result;
    }

    private void CheckLength(InferenceInput input, int expectedCount, int elementSize)
    {
        var expectedBytes = (long)expectedCount * elementSize;
        if (Bytes.Length != expectedBytes)
        {
            throw InferenceException.Invalid(
                $"input '{input.Name}': raw data holds {Bytes.Length} bytes, expected {expectedBytes} (shape {FormatShape(input.Shape)} of {input.Datatype}, {elementSize} bytes each).");
        }
    }
}

/// <summary>
/// The UTF-8 JSON text of an input's <c>data</c> value: a flat or nested array in row-major order. It is walked
/// twice, once to count and once to fill, so no element is ever boxed or buffered.
/// </summary>
public sealed class JsonTensorData(ReadOnlyMemory<byte> json) : TensorData
{
    public override float[] ReadFloat32(InferenceInput input, int expectedCount)
    {
        CheckCount(input, expectedCount);
        var result = new float[expectedCount];
        var reader = new Utf8JsonReader(json.Span);
        var i = 0;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.Number)
            {
                if (!reader.TryGetDouble(out var value) || value is > float.MaxValue or < float.MinValue)
                {
                    throw InferenceException.Invalid($"input '{input.Name}': data[{i}] is out of the FP32 range.");
                }

                result[i++] = (float)value;
            }
        }

        return result;
    }

    public override long[] ReadIntegers(InferenceInput input, int expectedCount)
    {
        CheckCount(input, expectedCount);
        var result = new long[expectedCount];
        var reader = new Utf8JsonReader(json.Span);
        var i = 0;
        var isInt32 = input.Datatype == TensorDatatypes.Int32;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.Number)
            {
                if (!reader.TryGetInt64(out var value) || (isInt32 && value is > int.MaxValue or < int.MinValue))
                {
                    throw InferenceException.Invalid($"input '{input.Name}': data[{i}] is not an {input.Datatype} value.");
                }

                result[i++] = value;
            }
        }

        return result;
    }

    /// <summary>Counts number elements and rejects any other token, naming its flat index.</summary>
    private void CheckCount(InferenceInput input, int expectedCount)
    {
        var reader = new Utf8JsonReader(json.Span);
        long count = 0;
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartArray:
                case JsonTokenType.EndArray:
                    break;
                case JsonTokenType.Number:
                    count++;
                    break;
                default:
                    throw InferenceException.Invalid(
                        $"input '{input.Name}': data[{count}] is a JSON {DescribeToken(reader.TokenType)}, expected a number for datatype {input.Datatype}.");
            }
        }

        if (count != expectedCount)
        {
            throw CountMismatch(input, count, expectedCount);
        }
    }

    private static string DescribeToken(JsonTokenType token) => token switch
    {
        JsonTokenType.String => "string",
        JsonTokenType.True or JsonTokenType.False => "boolean",
        JsonTokenType.Null => "null",
        JsonTokenType.StartObject => "object",
        _ => token.ToString(),
    };
}
