namespace SparseInference.Tensors;

/// <summary>Element type of a tensor.</summary>
public enum DType
{
    /// <summary>IEEE 754 binary32; the type every op computes in.</summary>
    F32,
    /// <summary>IEEE 754 binary16; storage type for weights.</summary>
    F16,
    /// <summary>bfloat16 (the upper half of an F32); storage type for weights.</summary>
    BF16,
    /// <summary>32-bit signed integer; token ids and indices.</summary>
    I32,
}

/// <summary>Sizes and names of <see cref="DType"/> values.</summary>
public static class DTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int SizeInBytes(this DType dtype) => dtype switch
    {
        DType.F32 => 4,
        DType.F16 => 2,
        DType.BF16 => 2,
        DType.I32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
    };

    /// <summary>The safetensors spelling of the dtype ("F32", "F16", "BF16", "I32").</summary>
    public static string ToSafetensorsName(this DType dtype) => dtype switch
    {
        DType.F32 => "F32",
        DType.F16 => "F16",
        DType.BF16 => "BF16",
        DType.I32 => "I32",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
    };

    /// <summary>Parses a safetensors dtype name; throws naming the value when it is not one of ours.</summary>
    public static DType ParseSafetensorsName(string name) => name switch
    {
        "F32" => DType.F32,
        "F16" => DType.F16,
        "BF16" => DType.BF16,
        "I32" => DType.I32,
        _ => throw new ArgumentException($"dtype: expected one of F32, F16, BF16, I32, got '{name}'.", nameof(name)),
    };

    /// <summary>The dtype that stores the CLR type <typeparamref name="T"/> (float, Half, int).</summary>
    public static DType Of<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return DType.F32;
        if (typeof(T) == typeof(Half)) return DType.F16;
        if (typeof(T) == typeof(int)) return DType.I32;
        throw new ArgumentException($"T: expected float, Half or int, got {typeof(T).Name}.", nameof(T));
    }
}
