namespace SparseInference.Tensors;

/// <summary>Activation applied to a matmul result after the bias (an epilogue, fused where the backend can).</summary>
public enum Activation
{
    /// <summary>Identity.</summary>
    None,
    /// <summary>Exact GELU, 0.5·z·(1 + erf(z/√2)).</summary>
    Gelu,
}

/// <summary>
/// Options of <see cref="IComputeBackend.MatMul"/>: C = act(alpha·op(A)·op(B) + beta·C + bias),
/// op(X) = Xᵀ when the matching Transpose flag is set (transposing the last two axes).
/// </summary>
public sealed record MatMulOptions(
    bool TransposeA = false,
    bool TransposeB = false,
    float Alpha = 1f,
    float Beta = 0f,
    Activation Activation = Activation.None)
{
    /// <summary>Plain C = A·B. (A class, not a struct: default(struct) would carry Alpha = 0.)</summary>
    public static MatMulOptions Default => new();

    /// <summary>PyTorch Linear: y = x·Wᵀ (+ b), W stored [out, in].</summary>
    public static MatMulOptions Linear => new(TransposeB: true);
}
