using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

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
            for (var r = s; r < e; r++) LayerNormRow(px + r * n, pg, pb, n, epsilon, po + r * n);
        });
        GC.KeepAlive(x);
        GC.KeepAlive(gamma);
        GC.KeepAlive(beta);
        GC.KeepAlive(output);
    }

    /// <summary>
    /// One row in three vector passes: sum, centred squares (two-pass variance, so large offsets do not cancel),
    /// then (x − mean)·inv·gamma + beta. Rows of a small model are a few vectors long: no per-pass call overhead.
    /// </summary>
    private static void LayerNormRow(float* x, float* gamma, float* beta, int n, float epsilon, float* y)
    {
        var i = 0;
        var acc = Vector512<float>.Zero;
        for (; i <= n - 16; i += 16) acc += Vector512.Load(x + i);
        var sum = Vector512.Sum(acc);
        for (; i < n; i++) sum += x[i];
        var mean = sum / n;
        var vm = Vector512.Create(mean);
        acc = Vector512<float>.Zero;
        var sq = 0f;
        for (i = 0; i <= n - 16; i += 16)
        {
            var c = Vector512.Load(x + i) - vm;
            acc = Vector512.FusedMultiplyAdd(c, c, acc);
        }
        for (; i < n; i++)
        {
            var c = x[i] - mean;
            sq += c * c;
        }
        var inv = 1f / MathF.Sqrt((Vector512.Sum(acc) + sq) / n + epsilon);
        var vi = Vector512.Create(inv);
        for (i = 0; i <= n - 16; i += 16)
        {
            var c = (Vector512.Load(x + i) - vm) * vi;
            Vector512.FusedMultiplyAdd(c, Vector512.Load(gamma + i), Vector512.Load(beta + i)).Store(y + i);
        }
        for (; i < n; i++) y[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
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
