namespace SparseInference.Serving.Protocol;

/// <summary>Open Inference Protocol tensor datatype names and their element sizes.</summary>
public static class TensorDatatypes
{
    public const string Bool = "BOOL";
    public const string UInt8 = "UINT8";
    public const string UInt16 = "UINT16";
    public const string UInt32 = "UINT32";
    public const string UInt64 = "UINT64";
    public const string Int8 = "INT8";
    public const string Int16 = "INT16";
    public const string Int32 = "INT32";
    public const string Int64 = "INT64";
    public const string Fp16 = "FP16";
    public const string Bf16 = "BF16";
    public const string Fp32 = "FP32";
    public const string Fp64 = "FP64";
    public const string Bytes = "BYTES";

    /// <summary>Bytes per element, or 0 for BYTES and unknown names.</summary>
    public static int ElementSize(string datatype) => datatype switch
    {
        Bool or UInt8 or Int8 => 1,
        UInt16 or Int16 or Fp16 or Bf16 => 2,
        UInt32 or Int32 or Fp32 => 4,
        UInt64 or Int64 or Fp64 => 8,
        _ => 0,
    };

    public static bool IsKnown(string datatype) => ElementSize(datatype) > 0 || datatype == Bytes;
}
