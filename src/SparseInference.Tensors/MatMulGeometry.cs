namespace SparseInference.Tensors;

/// <summary>
/// The GEMMs a <see cref="IComputeBackend.MatMul"/> call stands for, resolved from the shapes: <see cref="Batch"/>
/// products of M×K by K×N, operand strides in elements (0 = broadcast). Backends share this so that every
/// backend accepts and rejects exactly the same shapes.
/// </summary>
public readonly record struct MatMulGeometry(int Batch, int M, int N, int K, long StrideA, long StrideB, long StrideC)
{
    /// <summary>Resolves and checks shapes; throws <see cref="ArgumentException"/> naming the operand at fault.</summary>
    public static MatMulGeometry Resolve(Tensor a, Tensor b, Tensor c, MatMulOptions options, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(c);
        if (a.Rank < 2) throw new ArgumentException($"a: expected rank ≥ 2, got {a.Shape}.", nameof(a));
        if (b.Rank < 2) throw new ArgumentException($"b: expected rank ≥ 2, got {b.Shape}.", nameof(b));
        if (c.Rank < 2) throw new ArgumentException($"c: expected rank ≥ 2, got {c.Shape}.", nameof(c));
        int m = options.TransposeA ? a.Dim(-1) : a.Dim(-2);
        int k = options.TransposeA ? a.Dim(-2) : a.Dim(-1);
        int kb = options.TransposeB ? b.Dim(-1) : b.Dim(-2);
        int n = options.TransposeB ? b.Dim(-2) : b.Dim(-1);
        if (kb != k)
        {
            throw new ArgumentException(
                $"b: expected inner dimension K = {k} (from a {a.Shape}{(options.TransposeA ? "ᵀ" : "")}), got {kb} (b {b.Shape}{(options.TransposeB ? "ᵀ" : "")}).", nameof(b));
        }
        if (bias is not null && (bias.Rank != 1 || bias.Dim(0) != n))
        {
            throw new ArgumentException($"bias: expected shape [{n}], got {bias.Shape}.", nameof(bias));
        }
        var batchA = a.Shape.ProductOf(0, a.Rank - 2);
        var batchB = b.Shape.ProductOf(0, b.Rank - 2);

        // Rank-2 B (weights) with a plain A: the batch folds into M, one large GEMM.
        if (b.Rank == 2 && !options.TransposeA)
        {
            var expected = new Shape([.. a.Shape.Dims[..^1], n]);
            if (c.Shape != expected) throw new ArgumentException($"c: expected shape {expected}, got {c.Shape}.", nameof(c));
            var rows = checked((int)(batchA * m));
            return new MatMulGeometry(1, rows, n, k, 0, 0, 0);
        }

        ReadOnlySpan<int> lead;
        if (a.Rank > 2 && b.Rank > 2)
        {
            if (!a.Shape.Dims[..^2].SequenceEqual(b.Shape.Dims[..^2]))
            {
                throw new ArgumentException($"b: expected batch dimensions equal to a's ({a.Shape}), got {b.Shape}.", nameof(b));
            }
            lead = a.Shape.Dims[..^2];
        }
        else
        {
            lead = a.Rank > 2 ? a.Shape.Dims[..^2] : b.Shape.Dims[..^2];
        }
        var expectedC = new Shape([.. lead, m, n]);
        if (c.Shape != expectedC) throw new ArgumentException($"c: expected shape {expectedC}, got {c.Shape}.", nameof(c));
        var batch = checked((int)Math.Max(batchA, batchB));
        return new MatMulGeometry(
            batch, m, n, k,
            a.Rank > 2 ? (long)m * k : 0,
            b.Rank > 2 ? (long)k * n : 0,
            (long)m * n);
    }

    /// <summary>Floating-point operations of the call (2·Batch·M·N·K).</summary>
    public double Flops => 2.0 * Batch * M * N * K;
}
