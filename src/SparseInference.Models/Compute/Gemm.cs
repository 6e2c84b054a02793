using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SparseInference.Models.Compute;

/// <summary>What a GEMM tile does with its result.</summary>
internal enum GemmEpilogue
{
    /// <summary>C = A·B (+ bias).</summary>
    Store,
    /// <summary>C = GELU(A·B + bias).</summary>
    StoreGelu,
    /// <summary>C += A·B (+ bias): residual adds and attention accumulation.</summary>
    Accumulate,
}

/// <summary>
/// FP32 register-tiled GEMM micro-kernel: up to 6 rows of A times one 16-column panel of B.
/// B is read 16 floats wide per row (callers pad B so those reads stay inside the buffer);
/// only <c>cols</c> columns of C are written.
/// </summary>
internal static unsafe class Gemm
{
    public const int MR = 6;
    public const int NR = 16;

    /// <summary>C[rows, cols] ⊕= A[rows, k] · B[k, 0..16) with the chosen epilogue.</summary>
    [SkipLocalsInit]
    public static void Tile(int rows, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, int cols, float* bias, GemmEpilogue epilogue)
    {
        // The loop lives in its own small method: inlined next to the epilogue (GELU included) the JIT spilled
        // accumulators and ran at a third of the speed.
        float* acc = stackalloc float[MR * NR];
        Accumulate(rows, k, a, lda, b, ldb, acc);
        Vector256<float> bias0 = default, bias1 = default;
        if (bias != null)
        {
            if (cols == NR)
            {
                bias0 = Vector256.Load(bias);
                bias1 = Vector256.Load(bias + 8);
            }
            else
            {
                float* tmp = stackalloc float[NR];
                for (int j = 0; j < NR; j++)
                {
                    tmp[j] = j < cols ? bias[j] : 0f;
                }

                bias0 = Vector256.Load(tmp);
                bias1 = Vector256.Load(tmp + 8);
            }
        }

        for (int r = 0; r < rows; r++)
        {
            Store(c + (long)r * ldc, cols, Vector256.Load(acc + r * NR) + bias0, Vector256.Load(acc + r * NR + 8) + bias1, epilogue);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Accumulate(int rows, int k, float* a, int lda, float* b, int ldb, float* acc)
    {
        // Missing rows alias row 0: the work is done but never stored, keeping one code path.
        float* a0 = a;
        float* a1 = rows > 1 ? a + lda : a;
        float* a2 = rows > 2 ? a + 2 * lda : a;
        float* a3 = rows > 3 ? a + 3 * lda : a;
        float* a4 = rows > 4 ? a + 4 * lda : a;
        float* a5 = rows > 5 ? a + 5 * lda : a;
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < k; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            b += ldb;
            var x = Simd.Broadcast(a0 + p);
            c00 = Simd.Fmadd(x, b0, c00);
            c01 = Simd.Fmadd(x, b1, c01);
            x = Simd.Broadcast(a1 + p);
            c10 = Simd.Fmadd(x, b0, c10);
            c11 = Simd.Fmadd(x, b1, c11);
            x = Simd.Broadcast(a2 + p);
            c20 = Simd.Fmadd(x, b0, c20);
            c21 = Simd.Fmadd(x, b1, c21);
            x = Simd.Broadcast(a3 + p);
            c30 = Simd.Fmadd(x, b0, c30);
            c31 = Simd.Fmadd(x, b1, c31);
            x = Simd.Broadcast(a4 + p);
            c40 = Simd.Fmadd(x, b0, c40);
            c41 = Simd.Fmadd(x, b1, c41);
            x = Simd.Broadcast(a5 + p);
            c50 = Simd.Fmadd(x, b0, c50);
            c51 = Simd.Fmadd(x, b1, c51);
        }

        c00.Store(acc);
        c01.Store(acc + 8);
        c10.Store(acc + 16);
        c11.Store(acc + 24);
        c20.Store(acc + 32);
        c21.Store(acc + 40);
        c30.Store(acc + 48);
        c31.Store(acc + 56);
        c40.Store(acc + 64);
        c41.Store(acc + 72);
        c50.Store(acc + 80);
        c51.Store(acc + 88);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    [SkipLocalsInit]
    private static void Store(float* c, int cols, Vector256<float> v0, Vector256<float> v1, GemmEpilogue epilogue)
    {
        if (epilogue == GemmEpilogue.StoreGelu)
        {
            v0 = VectorMath.Gelu(v0);
            v1 = VectorMath.Gelu(v1);
        }

        if (cols == NR)
        {
            if (epilogue == GemmEpilogue.Accumulate)
            {
                v0 += Vector256.Load(c);
                v1 += Vector256.Load(c + 8);
            }

            v0.Store(c);
            v1.Store(c + 8);
            return;
        }

        float* tmp = stackalloc float[NR];
        v0.Store(tmp);
        v1.Store(tmp + 8);
        if (epilogue == GemmEpilogue.Accumulate)
        {
            for (int j = 0; j < cols; j++) c[j] += tmp[j];
        }
        else
        {
            for (int j = 0; j < cols; j++) c[j] = tmp[j];
        }
    }

    /// <summary>
    /// C[m, n] ⊕= A[m, k] · B[k, n] for a row-major B with row stride <paramref name="ldb"/>, serially.
    /// B must stay readable 16 floats past column n − 1 of every row.
    /// </summary>
    public static void Multiply(int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, GemmEpilogue epilogue)
    {
        for (int j = 0; j < n; j += NR)
        {
            int cols = Math.Min(NR, n - j);
            for (int i = 0; i < m; i += MR)
            {
                Tile(Math.Min(MR, m - i), k, a + (long)i * lda, lda, b + j, ldb, c + (long)i * ldc + j, ldc, cols, null, epilogue);
            }
        }
    }
}
