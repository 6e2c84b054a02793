using System.Numerics.Tensors;

namespace SparseInference.Tensors.Cpu;

// Row-wise normalisations over the last axis: LayerNorm and softmax.
public sealed unsafe partial class CpuBackend
{
    public void LayerNorm(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor output)
    {
        float* px = F32(x, nameof(x)), pg = F32(gamma, nameof(gamma)), pb = F32(beta, nameof(beta)), po = F32(output, nameof(output));
        SameShape(x, nameof(x), output, nameof(output));
        var n = LastDim(x, nameof(x));
        if (gamma.Rank != 1 || gamma.Dim(0) != n) throw new ArgumentException($"gamma: expected shape [{n}], got {gamma.Shape}.", nameof(gamma));
        if (beta.Rank != 1 || beta.Dim(0) != n) throw new ArgumentException($"beta: expected shape [{n}], got {beta.Shape}.", nameof(beta));
        if (!(epsilon >= 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "epsilon: expected ≥ 0.");
        if (n == 0) return;
        _parallel.ForRange(x.Shape.LeadingCount, 4L * n, (s, e) =>
        {
            var g = new ReadOnlySpan<float>(pg, n);
            var b = new ReadOnlySpan<float>(pb, n);
            for (var r = s; r < e; r++)
            {
                var row = Row(px, r, n);
                var dst = Row(po, r, n);
                var mean = TensorPrimitives.Sum<float>(row) / n;
                // Two-pass variance: subtract the mean first so large offsets do not cancel.
                TensorPrimitives.Subtract(row, mean, dst);
                var variance = TensorPrimitives.SumOfSquares<float>(dst) / n;
                var inv = 1f / MathF.Sqrt(variance + epsilon);
                TensorPrimitives.Multiply(dst, inv, dst);
                TensorPrimitives.FusedMultiplyAdd(dst, g, b, dst);
            }
        });
        GC.KeepAlive(x);
        GC.KeepAlive(gamma);
        GC.KeepAlive(beta);
        GC.KeepAlive(output);
    }

    public void Softmax(Tensor x, Tensor output)
    {
        float* px = F32(x, nameof(x)), po = F32(output, nameof(output));
        SameShape(x, nameof(x), output, nameof(output));
        var n = LastDim(x, nameof(x));
        if (n == 0) return;
        _parallel.ForRange(x.Shape.LeadingCount, 8L * n, (s, e) =>
        {
            for (var r = s; r < e; r++) TensorPrimitives.SoftMax(Row(px, r, n), Row(po, r, n));
        });
        GC.KeepAlive(x);
        GC.KeepAlive(output);
    }
}
