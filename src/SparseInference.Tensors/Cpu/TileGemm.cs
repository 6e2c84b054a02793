using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SparseInference.Tensors.Cpu;

/// <summary>
/// Serial FP32 micro-GEMM for the small products inside attention (a query tile times a key chunk, scores times
/// values): up to 6 rows of A times one 16-column panel of a row-major B, no packing. B is read 16 floats wide per
/// row (callers pad B so those reads stay inside the buffer); only the valid columns of C are written.
/// </summary>
internal static unsafe class TileGemm
{
    public const int MR = 6;
    public const int NR = 16;

    /// <summary>
    /// C[m, n] = A[m, k] · B[k, n] (or += when <paramref name="accumulate"/>) for a row-major B with row stride
    /// <paramref name="ldb"/>. B must stay readable 16 floats past column n − 1 of every row.
    /// </summary>
    public static void Multiply(int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, bool accumulate)
    {
        float* acc = stackalloc float[MR * NR];
        for (int j = 0; j < n; j += NR)
        {
            int cols = Math.Min(NR, n - j);
            for (int i = 0; i < m; i += MR)
            {
                int rows = Math.Min(MR, m - i);
                Accumulate(rows, k, a + (long)i * lda, lda, b + j, ldb, acc);
                Store(acc, rows, cols, c + (long)i * ldc + j, ldc, accumulate);
            }
        }
    }

    private static void Store(float* acc, int rows, int cols, float* c, int ldc, bool accumulate)
    {
        for (int r = 0; r < rows; r++)
        {
            float* cr = c + (long)r * ldc;
            float* ar = acc + r * NR;
            if (cols == NR)
            {
                var v0 = Vector256.Load(ar);
                var v1 = Vector256.Load(ar + 8);
                if (accumulate)
                {
                    v0 += Vector256.Load(cr);
                    v1 += Vector256.Load(cr + 8);
                }

                v0.Store(cr);
                v1.Store(cr + 8);
            }
            else if (accumulate)
            {
                for (int j = 0; j < cols; j++) cr[j] += ar[j];
            }
            else
            {
                for (int j = 0; j < cols; j++) cr[j] = ar[j];
            }
        }
    }

    /// <summary>
    /// The FMA loop in its own method, on the x86 intrinsics where present: on .NET 10 the portable
    /// Vector256.FusedMultiplyAdd / Vector256.Create(float) pair measured about 3× slower here than vfmadd with a
    /// memory broadcast, and inlined next to the store the JIT spilled accumulators.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
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
            var x = Broadcast(a0 + p);
            c00 = Fmadd(x, b0, c00);
            c01 = Fmadd(x, b1, c01);
            x = Broadcast(a1 + p);
            c10 = Fmadd(x, b0, c10);
            c11 = Fmadd(x, b1, c11);
            x = Broadcast(a2 + p);
            c20 = Fmadd(x, b0, c20);
            c21 = Fmadd(x, b1, c21);
            x = Broadcast(a3 + p);
            c30 = Fmadd(x, b0, c30);
            c31 = Fmadd(x, b1, c31);
            x = Broadcast(a4 + p);
            c40 = Fmadd(x, b0, c40);
            c41 = Fmadd(x, b1, c41);
            x = Broadcast(a5 + p);
            c50 = Fmadd(x, b0, c50);
            c51 = Fmadd(x, b1, c51);
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
    private static Vector256<float> Fmadd(Vector256<float> a, Vector256<float> b, Vector256<float> c)
        => Fma.IsSupported ? Fma.MultiplyAdd(a, b, c) : Vector256.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Broadcast(float* p)
        => Avx.IsSupported ? Avx.BroadcastScalarToVector256(p) : Vector256.Create(*p);
}
