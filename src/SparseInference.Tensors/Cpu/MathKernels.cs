using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SparseInference.Tensors.Cpu;

/// <summary>
/// erf and the exact GELU. erf uses Abramowitz &amp; Stegun 7.1.26 (|error| ≤ 1.5e-7):
/// erfc(|x|) ≈ t·(a1 + t·(a2 + t·(a3 + t·(a4 + t·a5))))·e^(−x²), t = 1/(1 + p·|x|). GELU takes 1 + erf(x) from
/// the erfc form for x &lt; 0, so it does not lose digits to cancellation in the negative tail.
/// </summary>
public static class MathKernels
{
    private const float P = 0.3275911f;
    private const float A1 = 0.254829592f;
    private const float A2 = -0.284496736f;
    private const float A3 = 1.421413741f;
    private const float A4 = -1.453152027f;
    private const float A5 = 1.061405429f;
    private const float InvSqrt2 = 0.70710678118654752f;
    private const float Log2E = 1.44269504088896341f;

    // Degree-6 Taylor coefficients of 2^r on r ∈ [−½, ½]: (ln 2)^k / k!.
    private const float E6 = 1.5403530393381608e-4f;
    private const float E5 = 1.3333558146428443e-3f;
    private const float E4 = 9.618129107628477e-3f;
    private const float E3 = 5.550410866482158e-2f;
    private const float E2 = 0.2402265069591007f;
    private const float E1 = 0.6931471805599453f;

    /// <summary>erf(x) in single precision, absolute error &lt; 1e-6.</summary>
    public static float Erf(float x)
    {
        var e = ErfcAbs(MathF.Abs(x));
        var r = 1f - e;
        return x < 0 ? -r : r;
    }

    /// <summary>Exact GELU of one value.</summary>
    public static float Gelu(float z)
    {
        var x = z * InvSqrt2;
        var e = ErfcAbs(MathF.Abs(x));
        var onePlusErf = x < 0 ? e : 2f - e;
        return 0.5f * z * onePlusErf;
    }

    /// <summary>erf over a span (in place allowed).</summary>
    public static void Erf(ReadOnlySpan<float> x, Span<float> destination)
    {
        for (var i = 0; i < x.Length; i++) destination[i] = Erf(x[i]);
    }

    /// <summary>Exact GELU over a span (in place allowed), vectorised with Vector512 or Vector256.</summary>
    public static unsafe void Gelu(ReadOnlySpan<float> x, Span<float> destination)
    {
        if (destination.Length < x.Length) throw new ArgumentException("destination: shorter than x.", nameof(destination));
        var n = x.Length;
        var i = 0;
        fixed (float* px = x, pd = destination)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                for (; i + 16 <= n; i += 16) Vector512.Store(Gelu(Vector512.Load(px + i)), pd + i);
            }
            if (Vector256.IsHardwareAccelerated)
            {
                for (; i + 8 <= n; i += 8) Vector256.Store(Gelu(Vector256.Load(px + i)), pd + i);
            }
            for (; i < n; i++) pd[i] = Gelu(px[i]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ErfcAbs(float ax)
    {
        var t = 1f / (1f + P * ax);
        var poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
        return poly * MathF.Exp(-ax * ax);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Gelu(Vector512<float> z)
    {
        var x = z * Vector512.Create(InvSqrt2);
        var ax = Vector512.Abs(x);
        var t = Vector512<float>.One / (Vector512<float>.One + Vector512.Create(P) * ax);
        var poly = Vector512.FusedMultiplyAdd(t, Vector512.Create(A5), Vector512.Create(A4));
        poly = Vector512.FusedMultiplyAdd(t, poly, Vector512.Create(A3));
        poly = Vector512.FusedMultiplyAdd(t, poly, Vector512.Create(A2));
        poly = Vector512.FusedMultiplyAdd(t, poly, Vector512.Create(A1));
        var e = t * poly * Exp2NonPositive(-(ax * ax) * Vector512.Create(Log2E));
        var onePlusErf = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512<float>.Zero), e, Vector512.Create(2f) - e);
        return Vector512.Create(0.5f) * z * onePlusErf;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Gelu(Vector256<float> z)
    {
        var x = z * Vector256.Create(InvSqrt2);
        var ax = Vector256.Abs(x);
        var t = Vector256<float>.One / (Vector256<float>.One + Vector256.Create(P) * ax);
        var poly = Vector256.FusedMultiplyAdd(t, Vector256.Create(A5), Vector256.Create(A4));
        poly = Vector256.FusedMultiplyAdd(t, poly, Vector256.Create(A3));
        poly = Vector256.FusedMultiplyAdd(t, poly, Vector256.Create(A2));
        poly = Vector256.FusedMultiplyAdd(t, poly, Vector256.Create(A1));
        var e = t * poly * Exp2NonPositive(-(ax * ax) * Vector256.Create(Log2E));
        var onePlusErf = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<float>.Zero), e, Vector256.Create(2f) - e);
        return Vector256.Create(0.5f) * z * onePlusErf;
    }

    /// <summary>
    /// 2^x for x ≤ 0, clamped at −125 where the result is negligible: 2^n·p(r) with n = round(x), r = x − n, p the
    /// degree-6 Taylor polynomial (relative error about 1.3e-7); 2^n goes straight into the exponent bits.
    /// Cheaper than Vector512.Exp, which also handles the positive range.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Exp2NonPositive(Vector512<float> x)
    {
        x = Vector512.Max(x, Vector512.Create(-125f));
        var n = Vector512.Round(x);
        var r = x - n;
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(E6), r, Vector512.Create(E5));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(E1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        var scale = Vector512.ShiftLeft(Vector512.ConvertToInt32(n), 23);
        return (p.AsInt32() + scale).AsSingle();
    }

    /// <inheritdoc cref="Exp2NonPositive(Vector512{float})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Exp2NonPositive(Vector256<float> x)
    {
        x = Vector256.Max(x, Vector256.Create(-125f));
        var n = Vector256.Round(x);
        var r = x - n;
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(E6), r, Vector256.Create(E5));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(E1));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        var scale = Vector256.ShiftLeft(Vector256.ConvertToInt32(n), 23);
        return (p.AsInt32() + scale).AsSingle();
    }
}
