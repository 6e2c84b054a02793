using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SparseInference.Models.Compute;

/// <summary>
/// Vectorised exp and erf in FP32. The exp polynomial is the Cephes expf one (about 1 ulp);
/// erf uses Abramowitz–Stegun 7.1.26 (absolute error below 1.5e-7), ample for exact GELU in FP32.
/// </summary>
internal static unsafe class VectorMath
{
    private const float Log2E = 1.44269504088896341f;
    private const float Ln2Hi = 0.693359375f;
    private const float Ln2Lo = -2.12194440e-4f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        if (Fma.IsSupported && Avx2.IsSupported)
        {
            // Same polynomial through the x86 intrinsics directly (see Simd for why).
            x = Avx.Min(Avx.Max(x, Vector256.Create(-87.3f)), Vector256.Create(88.3f));
            var f = Avx.RoundToNegativeInfinity(Fma.MultiplyAdd(x, Vector256.Create(Log2E), Vector256.Create(0.5f)));
            x = Fma.MultiplyAddNegated(f, Vector256.Create(Ln2Hi), x);
            x = Fma.MultiplyAddNegated(f, Vector256.Create(Ln2Lo), x);
            var p = Fma.MultiplyAdd(Vector256.Create(1.9875691500E-4f), x, Vector256.Create(1.3981999507E-3f));
            p = Fma.MultiplyAdd(p, x, Vector256.Create(8.3334519073E-3f));
            p = Fma.MultiplyAdd(p, x, Vector256.Create(4.1665795894E-2f));
            p = Fma.MultiplyAdd(p, x, Vector256.Create(1.6666665459E-1f));
            p = Fma.MultiplyAdd(p, x, Vector256.Create(5.0000001201E-1f));
            p = Avx.Add(Fma.MultiplyAdd(p, Avx.Multiply(x, x), x), Vector256.Create(1f));
            var e = Avx2.ShiftLeftLogical(Avx2.Add(Avx.ConvertToVector256Int32(f), Vector256.Create(127)), 23);
            return Avx.Multiply(p, e.AsSingle());
        }

        x = Vector256.Min(Vector256.Max(x, Vector256.Create(-87.3f)), Vector256.Create(88.3f));
        var fx = Vector256.Floor(Vector256.FusedMultiplyAdd(x, Vector256.Create(Log2E), Vector256.Create(0.5f)));
        x = Vector256.FusedMultiplyAdd(fx, Vector256.Create(-Ln2Hi), x);
        x = Vector256.FusedMultiplyAdd(fx, Vector256.Create(-Ln2Lo), x);
        var y = Vector256.Create(1.9875691500E-4f);
        y = Vector256.FusedMultiplyAdd(y, x, Vector256.Create(1.3981999507E-3f));
        y = Vector256.FusedMultiplyAdd(y, x, Vector256.Create(8.3334519073E-3f));
        y = Vector256.FusedMultiplyAdd(y, x, Vector256.Create(4.1665795894E-2f));
        y = Vector256.FusedMultiplyAdd(y, x, Vector256.Create(1.6666665459E-1f));
        y = Vector256.FusedMultiplyAdd(y, x, Vector256.Create(5.0000001201E-1f));
        y = Vector256.FusedMultiplyAdd(y, x * x, x) + Vector256<float>.One;
        var n = Vector256.ConvertToInt32(fx);
        var pow2n = Vector256.ShiftLeft(n + Vector256.Create(127), 23).AsSingle();
        return y * pow2n;
    }

    /// <summary>
    /// 2^x for x ≤ 0 (softmax in the log2 domain), clamped at −125 where the result is negligible. Degree-6 Taylor
    /// polynomial of 2^r on r ∈ [−½, ½] (relative error about 1.3e-7); the scale 2^n goes straight into the exponent.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp2NonPositive(Vector256<float> x)
    {
        if (Fma.IsSupported && Avx2.IsSupported)
        {
            x = Avx.Max(x, Vector256.Create(-125f));
            var n = Avx.RoundToNearestInteger(x);
            var r = Avx.Subtract(x, n);
            var p = Fma.MultiplyAdd(Vector256.Create(1.5403530393381608e-4f), r, Vector256.Create(1.3333558146428443e-3f));
            p = Fma.MultiplyAdd(p, r, Vector256.Create(9.618129107628477e-3f));
            p = Fma.MultiplyAdd(p, r, Vector256.Create(5.550410866482158e-2f));
            p = Fma.MultiplyAdd(p, r, Vector256.Create(0.2402265069591007f));
            p = Fma.MultiplyAdd(p, r, Vector256.Create(0.6931471805599453f));
            p = Fma.MultiplyAdd(p, r, Vector256.Create(1f));
            var e = Avx2.ShiftLeftLogical(Avx.ConvertToVector256Int32(n), 23);
            return Avx2.Add(p.AsInt32(), e).AsSingle();
        }

        return Exp(Vector256.Max(x, Vector256.Create(-125f)) * Vector256.Create(0.6931471805599453f));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Erf(Vector256<float> x)
    {
        var ax = Vector256.Abs(x);
        var t = Vector256<float>.One / Simd.Fmadd(ax, Vector256.Create(0.3275911f), Vector256<float>.One);
        var p = Vector256.Create(1.061405429f);
        p = Simd.Fmadd(p, t, Vector256.Create(-1.453152027f));
        p = Simd.Fmadd(p, t, Vector256.Create(1.421413741f));
        p = Simd.Fmadd(p, t, Vector256.Create(-0.284496736f));
        p = Simd.Fmadd(p, t, Vector256.Create(0.254829592f));
        p *= t;
        var y = Vector256<float>.One - p * Exp(-(ax * ax));
        // Restore the sign of x on the result.
        var sign = x.AsUInt32() & Vector256.Create(0x80000000u);
        return (y.AsUInt32() | sign).AsSingle();
    }

    private const float InvSqrt2 = 0.70710678118654752f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Gelu(Vector256<float> z)
        => Vector256.Create(0.5f) * z * (Vector256<float>.One + Erf(z * Vector256.Create(InvSqrt2)));
}
