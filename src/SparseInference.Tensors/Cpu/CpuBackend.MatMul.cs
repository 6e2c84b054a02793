namespace SparseInference.Tensors.Cpu;

// Matrix multiply: C = act(alpha·op(A)·op(B) + beta·C + bias), batched, on the packed GEMM in Gemm.cs.
public sealed unsafe partial class CpuBackend
{
    public void MatMul(Tensor a, Tensor b, Tensor c, MatMulOptions options, Tensor? bias = null)
    {
        float* pa = F32(a, nameof(a)), pb = F32(b, nameof(b)), pc = F32(c, nameof(c));
        float* pbias = bias is null ? null : F32(bias, nameof(bias));
        ArgumentNullException.ThrowIfNull(options);
        var g = MatMulGeometry.Resolve(a, b, c, options, bias);
        // Row-major leading dimensions of the stored operands.
        var lda = options.TransposeA ? g.M : g.K;
        var ldb = options.TransposeB ? g.K : g.N;
        for (var i = 0; i < g.Batch; i++)
        {
            Gemm.Run(
                _parallel, options.TransposeA, options.TransposeB, g.M, g.N, g.K, options.Alpha,
                pa + i * g.StrideA, lda, pb + i * g.StrideB, ldb, options.Beta, pc + i * g.StrideC, g.N,
                pbias, options.Activation);
        }
        GC.KeepAlive(a);
        GC.KeepAlive(b);
        GC.KeepAlive(c);
        GC.KeepAlive(bias);
    }
}
