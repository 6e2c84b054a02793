using System.Numerics.Tensors;

namespace SparseInference.Tensors.Cpu;

/// <summary>Single-precision GEMM on row-major operands.</summary>
internal static unsafe class Gemm
{
    /// <summary>C[M×N] = act(alpha·op(A)·op(B) + beta·C + bias).</summary>
    public static void Run(
        CpuParallel parallel, bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc, float* bias, Activation activation)
    {
        if (m == 0 || n == 0) return;
        // Reference path: op(B) as row-major K×N, then rows of C as sums of scaled rows of op(B).
        float[]? bt = null;
        if (transB)
        {
            bt = new float[(long)k * n];
            for (var j = 0; j < n; j++)
            {
                for (var p = 0; p < k; p++) bt[(long)p * n + j] = b[(long)j * ldb + p];
            }
        }
        parallel.ForRange(m, 2L * n * k, (s, e) =>
        {
            for (var i = (int)s; i < e; i++)
            {
                var crow = new Span<float>(c + (long)i * ldc, n);
                if (beta == 0f) crow.Clear();
                else if (beta != 1f) TensorPrimitives.Multiply(crow, beta, crow);
                for (var p = 0; p < k; p++)
                {
                    var av = alpha * (transA ? a[(long)p * lda + i] : a[(long)i * lda + p]);
                    ReadOnlySpan<float> brow = bt is null ? new ReadOnlySpan<float>(b + (long)p * ldb, n) : bt.AsSpan(p * n, n);
                    TensorPrimitives.MultiplyAdd(brow, av, crow, crow);
                }
                Epilogue(crow, bias, activation);
            }
        });
    }

    /// <summary>Adds the bias and applies the activation to one row of C.</summary>
    public static void Epilogue(Span<float> row, float* bias, Activation activation)
    {
        if (bias != null) TensorPrimitives.Add(row, new ReadOnlySpan<float>(bias, row.Length), row);
        if (activation == Activation.Gelu) MathKernels.Gelu(row, row);
    }
}
