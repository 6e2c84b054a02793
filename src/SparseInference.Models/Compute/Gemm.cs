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
            var x = Vector256.Create(a0[p]);
            c00 = Vector256.FusedMultiplyAdd(x, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
            x = Vector256.Create(a1[p]);
            c10 = Vector256.FusedMultiplyAdd(x, b0, c10);
            c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
            x = Vector256.Create(a2[p]);
            c20 = Vector256.FusedMultiplyAdd(x, b0, c20);
            c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
            x = Vector256.Create(a3[p]);
            c30 = Vector256.FusedMultiplyAdd(x, b0, c30);
            c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
            x = Vector256.Create(a4[p]);
            c40 = Vector256.FusedMultiplyAdd(x, b0, c40);
            c41 = Vector256.FusedMultiplyAdd(x, b1, c41);
            x = Vector256.Create(a5[p]);
            c50 = Vector256.FusedMultiplyAdd(x, b0, c50);
            c51 = Vector256.FusedMultiplyAdd(x, b1, c51);
        }

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

        Store(c, cols, c00 + bias0, c01 + bias1, epilogue);
        if (rows > 1) Store(c + ldc, cols, c10 + bias0, c11 + bias1, epilogue);
        if (rows > 2) Store(c + 2 * ldc, cols, c20 + bias0, c21 + bias1, epilogue);
        if (rows > 3) Store(c + 3 * ldc, cols, c30 + bias0, c31 + bias1, epilogue);
        if (rows > 4) Store(c + 4 * ldc, cols, c40 + bias0, c41 + bias1, epilogue);
        if (rows > 5) Store(c + 5 * ldc, cols, c50 + bias0, c51 + bias1, epilogue);
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
