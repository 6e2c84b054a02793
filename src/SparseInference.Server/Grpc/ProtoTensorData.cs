using SparseInference.Serving;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Protocol.Grpc;
using SparseInference.Server.Rest;

namespace SparseInference.Server.Grpc;

/// <summary>Typed gRPC <c>contents</c> of an input: <c>fp32_contents</c>, <c>int_contents</c> or <c>int64_contents</c>.</summary>
internal sealed class ProtoTensorData(InferTensorContents contents) : TensorData
{
    public override float[] ReadFloat32(InferenceInput input, int expectedCount)
    {
        var values = contents.Fp32Contents;
        if (values.Count != expectedCount)
        {
            throw Mismatch(input, values.Count, expectedCount, "fp32_contents");
        }

        var result = new float[expectedCount];
        values.CopyTo(result, 0);
        return result;
    }

    public override long[] ReadIntegers(InferenceInput input, int expectedCount)
    {
        var result = new long[expectedCount];
        if (input.Datatype == TensorDatatypes.Int32)
        {
            if (contents.IntContents.Count != expectedCount)
            {
                throw Mismatch(input, contents.IntContents.Count, expectedCount, "int_contents");
            }

            for (var i = 0; i < expectedCount; i++)
            {
                result[i] = contents.IntContents[i];
            }
        }
        else
        {
            if (contents.Int64Contents.Count != expectedCount)
            {
                throw Mismatch(input, contents.Int64Contents.Count, expectedCount, "int64_contents");
            }

            contents.Int64Contents.CopyTo(result, 0);
        }

        return result;
    }

    private static InferenceException Mismatch(InferenceInput input, int actual, int expected, string field) =>
        InferenceException.Invalid(
            $"input '{input.Name}': contents.{field} holds {actual} elements, expected {expected} (the product of shape {FormatShape(input.Shape)}).");
}
