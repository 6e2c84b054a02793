namespace SparseInference.CudaSelfTest;

/// <summary>BF16 on the host: round to nearest even, as the device's cvt.rn does.</summary>
internal static class Bf16
{
    public static ushort FromFloat(float f)
    {
        var bits = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f))
        {
            return 0x7FC0;
        }

        var rounding = 0x7FFFu + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    public static float ToFloat(ushort h) => BitConverter.UInt32BitsToSingle((uint)h << 16);

    /// <summary>Random BF16 values in [-scale, scale) and their exact float values.</summary>
    public static (ushort[] Bits, float[] Values) Random(Random rng, long n, float scale)
    {
        var bits = new ushort[n];
        var values = new float[n];
        for (long i = 0; i < n; i++)
        {
            bits[i] = FromFloat(((rng.NextSingle() * 2) - 1) * scale);
            values[i] = ToFloat(bits[i]);
        }

        return (bits, values);
    }

    public static ushort[] FromFloats(ReadOnlySpan<float> x)
    {
        var r = new ushort[x.Length];
        for (var i = 0; i < x.Length; i++)
        {
            r[i] = FromFloat(x[i]);
        }

        return r;
    }

    public static float[] ToFloats(ReadOnlySpan<ushort> x)
    {
        var r = new float[x.Length];
        for (var i = 0; i < x.Length; i++)
        {
            r[i] = ToFloat(x[i]);
        }

        return r;
    }
}
