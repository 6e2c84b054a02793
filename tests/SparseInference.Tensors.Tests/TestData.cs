namespace SparseInference.Tensors.Tests;

/// <summary>Seeded random inputs and tolerance checks shared by the op tests.</summary>
internal static class TestData
{
    public static float[] Uniform(int seed, long count, float low = -1f, float high = 1f)
    {
        var rng = new Random(seed);
        var data = new float[count];
        for (long i = 0; i < count; i++) data[i] = low + (high - low) * rng.NextSingle();
        return data;
    }

    /// <summary>Asserts |actual − expected| ≤ atol + rtol·|expected| element-wise, reporting the first failure.</summary>
    public static void AssertClose(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, double atol, double rtol = 0, string what = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            var diff = Math.Abs(expected[i] - actual[i]);
            if (!(diff <= atol + rtol * Math.Abs(expected[i])))
            {
                Assert.Fail($"{what} element {i}: expected {expected[i]:R}, got {actual[i]:R} (|diff| = {diff:E3}, tolerance {atol + rtol * Math.Abs(expected[i]):E3}).");
            }
        }
    }

    /// <summary>Relative Frobenius error ‖actual − expected‖ / ‖expected‖.</summary>
    public static double RelativeError(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual)
    {
        double num = 0, den = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            var diff = expected[i] - actual[i];
            num += diff * diff;
            den += expected[i] * expected[i];
        }
        return den == 0 ? Math.Sqrt(num) : Math.Sqrt(num / den);
    }
}
