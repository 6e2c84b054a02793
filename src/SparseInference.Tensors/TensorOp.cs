namespace SparseInference.Tensors;

/// <summary>The ops of <see cref="IComputeBackend"/>, for <see cref="IComputeBackend.Supports"/>.</summary>
public enum TensorOp
{
    /// <summary>Device-to-device copy of equal-sized tensors.</summary>
    Copy,
    /// <summary>Element type conversion (F16/BF16/F32 → F32 and back).</summary>
    Convert,
    /// <summary>C = act(alpha·op(A)·op(B) + beta·C + bias).</summary>
    MatMul,
    /// <summary>Row-broadcast bias add.</summary>
    BiasAdd,
    /// <summary>Element-wise sum (residual).</summary>
    Add,
    /// <summary>Element-wise multiply by a scalar.</summary>
    Scale,
    /// <summary>LayerNorm over the last axis.</summary>
    LayerNorm,
    /// <summary>Exact (erf) GELU.</summary>
    Gelu,
    /// <summary>Logistic sigmoid.</summary>
    Sigmoid,
    /// <summary>Softmax over the last axis.</summary>
    Softmax,
    /// <summary>Embedding lookup.</summary>
    Embedding,
    /// <summary>Rows of a tensor by index.</summary>
    Gather,
    /// <summary>Adds (optionally scaled) rows into a tensor at given row indices.</summary>
    ScatterAddRows,
    /// <summary>Per-row top-k values and indices.</summary>
    TopK,
    /// <summary>Block-sparse (or dense) flash-style attention.</summary>
    Attention,
    /// <summary>Token-level top-k attention.</summary>
    TopKAttention,
}
