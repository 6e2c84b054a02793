using System.Runtime.Intrinsics;

namespace SparseInference.Models.Compute;

/// <summary>Row-wise FP32 operations on row-major activations.</summary>
internal static unsafe class RowOps
{
    /// <summary>LayerNorm of each row (biased variance), written to <paramref name="y"/>.</summary>
    public static void LayerNorm(float* x, int rows, int width, float* gamma, float* beta, float eps, float* y)
    {
        if (rows >= 256 && Environment.ProcessorCount > 1)
        {
            nint xp = (nint)x, yp = (nint)y, gp = (nint)gamma, bp = (nint)beta;
            const int chunk = 128;
            Parallel.For(0, (rows + chunk - 1) / chunk, c =>
            {
                int r0 = c * chunk, r1 = Math.Min(rows, r0 + chunk);
                for (int r = r0; r < r1; r++)
                {
                    LayerNormRow((float*)xp + (long)r * width, width, (float*)gp, (float*)bp, eps, (float*)yp + (long)r * width);
                }
            });
            return;
        }

        for (int r = 0; r < rows; r++)
        {
            LayerNormRow(x + (long)r * width, width, gamma, beta, eps, y + (long)r * width);
        }
    }

    public static void LayerNormRow(float* x, int width, float* gamma, float* beta, float eps, float* y)
    {
        float mean = Sum(x, width) / width;
        var vm = Vector256.Create(mean);
        var acc = Vector256<float>.Zero;
        int i = 0;
        for (; i <= width - 8; i += 8)
        {
            var d = Vector256.Load(x + i) - vm;
            acc = Simd.Fmadd(d, d, acc);
        }

        float variance = Vector256.Sum(acc);
        for (; i < width; i++)
        {
            float d = x[i] - mean;
            variance += d * d;
        }

        variance /= width;
        float inv = 1f / MathF.Sqrt(variance + eps);
        var vinv = Vector256.Create(inv);
        i = 0;
        for (; i <= width - 8; i += 8)
        {
            var v = (Vector256.Load(x + i) - vm) * vinv;
            Simd.Fmadd(v, Vector256.Load(gamma + i), Vector256.Load(beta + i)).Store(y + i);
        }

        for (; i < width; i++)
        {
            y[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
        }
    }

    public static float Sum(float* x, int n)
    {
        var acc = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            acc += Vector256.Load(x + i);
        }

        float s = Vector256.Sum(acc);
        for (; i < n; i++)
        {
            s += x[i];
        }

        return s;
    }

    public static float Max(float* x, int n)
    {
        float m = float.NegativeInfinity;
        int i = 0;
        if (n >= 8)
        {
            var acc = Vector256.Create(float.NegativeInfinity);
            for (; i <= n - 8; i += 8)
            {
                acc = Vector256.Max(acc, Vector256.Load(x + i));
            }

            for (int j = 0; j < 8; j++)
            {
                m = MathF.Max(m, acc[j]);
            }
        }

        for (; i < n; i++)
        {
            m = MathF.Max(m, x[i]);
        }

        return m;
    }

    /// <summary>x[i] = 2^(x[i] − shift) in place for x[i] ≤ shift; returns the sum.</summary>
    public static float Exp2ShiftSum(float* x, int n, float shift)
    {
        var vs = Vector256.Create(shift);
        var acc = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            var e = VectorMath.Exp2NonPositive(Vector256.Load(x + i) - vs);
            e.Store(x + i);
            acc += e;
        }

        float s = Vector256.Sum(acc);
        for (; i < n; i++)
        {
            float e = float.Exp2(x[i] - shift);
            x[i] = e;
            s += e;
        }

        return s;
    }

    /// <summary>y[i] = a · y[i].</summary>
    public static void Scale(float* y, int n, float a)
    {
        var va = Vector256.Create(a);
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            (Vector256.Load(y + i) * va).Store(y + i);
        }

        for (; i < n; i++)
        {
            y[i] *= a;
        }
    }

    /// <summary>y[i] += a · x[i].</summary>
    public static void AddScaled(float* y, float* x, int n, float a)
    {
        var va = Vector256.Create(a);
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            Simd.Fmadd(Vector256.Load(x + i), va, Vector256.Load(y + i)).Store(y + i);
        }

        for (; i < n; i++)
        {
            y[i] += a * x[i];
        }
    }

    public static float Dot(float* x, float* y, int n)
    {
        var acc = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            acc = Simd.Fmadd(Vector256.Load(x + i), Vector256.Load(y + i), acc);
        }

        float s = Vector256.Sum(acc);
        for (; i < n; i++)
        {
            s += x[i] * y[i];
        }

        return s;
    }
}
