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
        // A weight prepared at load is read as laid out then (one B for every batch entry).
        var packed = g.StrideB == 0 && ((CpuBuffer)b.Buffer).Packed is { } p && p.Matches(b.ByteOffset, options.TransposeB, g.K, g.N) ? p : null;
        var panels = packed is null ? null : packed.Panels;
        for (var i = 0; i < g.Batch; i++)
        {
            Gemm.Run(
                _parallel, options.TransposeA, options.TransposeB, g.M, g.N, g.K, options.Alpha,
                pa + i * g.StrideA, lda, pb + i * g.StrideB, ldb, options.Beta, pc + i * g.StrideC, g.N,
                pbias, options.Activation, panels);
        }
        GC.KeepAlive(a);
        GC.KeepAlive(b);
        GC.KeepAlive(c);
        GC.KeepAlive(bias);
        GC.KeepAlive(packed);
    }

    /// <summary>
    /// Lays out op(<paramref name="weight"/>) once as the GEMM's column panels and keeps them with the weight's buffer;
    /// later MatMul calls with that weight as B (same transpose flag) skip packing it. Preparing again replaces the layout.
    /// </summary>
    public void PrepareWeight(Tensor weight, bool transposed)
    {
        var pw = F32(weight, nameof(weight));
        if (weight.Rank != 2) throw new ArgumentException($"weight: expected rank 2, got {weight.Shape}.", nameof(weight));
        int k = transposed ? weight.Dim(1) : weight.Dim(0);
        int n = transposed ? weight.Dim(0) : weight.Dim(1);
        ((CpuBuffer)weight.Buffer).Packed = PackedWeight.Create(pw, weight.Dim(1), weight.ByteOffset, transposed, k, n);
        GC.KeepAlive(weight);
    }
}
