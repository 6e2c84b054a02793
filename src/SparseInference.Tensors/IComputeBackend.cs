namespace SparseInference.Tensors;

/// <summary>
/// A compute backend: owns tensor storage and runs the ops on it. Every op takes its output tensor
/// (allocated by the caller on the same backend), so a forward pass can reuse buffers. Ops compute in F32;
/// ids and indices are I32. Shapes are checked and a mismatch throws <see cref="ArgumentException"/> naming the
/// argument, expected and actual value. Element-wise ops accept output == input (in place). Data tensors are F32, except
/// the residual stream of a backend whose <see cref="ResidualDType"/> is BF16.
/// Call <see cref="Supports"/> before an op a backend may lack; an unsupported call throws <see cref="NotSupportedException"/>.
/// </summary>
public interface IComputeBackend : IDisposable
{
    /// <summary>Short name for logs and metrics ("cpu", "cuda:0").</summary>
    string Name { get; }

    /// <summary>Where this backend's buffers live.</summary>
    DeviceKind Device { get; }

    /// <summary>Whether <paramref name="op"/> runs with operands of <paramref name="dtype"/> (the data dtype; indices are always I32).</summary>
    bool Supports(TensorOp op, DType dtype);

    /// <summary>
    /// The dtype in which a model keeps its residual stream on this backend: the activations summed across layers
    /// (the input projection's or embedding's output, the positions added to it, the C of the accumulating products,
    /// LayerNorm's input, the gated pattern's scatter-add destination). <see cref="DType.F32"/>, the reference and the
    /// default, or <see cref="DType.BF16"/>: then the backend also takes BF16 tensors in exactly those places (Add's
    /// operands and output, LayerNorm's x and output, MatMul's C, Embedding's output, ScatterAddRows' destination,
    /// Copy, Convert) and reports <see cref="Supports"/> true for them with BF16. Every op still computes in FP32: BF16
    /// values are widened when read and results rounded to nearest-even BF16 when stored. The tolerance this buys
    /// against the F32 reference is written in docs/model-format.md ("Precision").
    /// </summary>
    DType ResidualDType => DType.F32;

    /// <summary>Allocates a tensor on this backend, zero-filled when <paramref name="zeroed"/>.</summary>
    Tensor Allocate(Shape shape, DType dtype, bool zeroed = true);

    /// <summary>Copies host bytes (exactly destination.SizeInBytes) into <paramref name="destination"/>.</summary>
    void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination);

    /// <summary>Copies <paramref name="source"/>'s bytes (exactly source.SizeInBytes) to host memory.</summary>
    void CopyToHost(Tensor source, Span<byte> destination);

    /// <summary>Copies between two tensors of this backend with the same dtype and element count.</summary>
    void Copy(Tensor source, Tensor destination);

    /// <summary>Converts element types (F32/F16/BF16 ↔ F32) between equal-count tensors; optional.</summary>
    void Convert(Tensor source, Tensor destination);

    /// <summary>
    /// C = act(alpha·op(A)·op(B) + beta·C + bias). A [..., M, K] (or [..., K, M] transposed), B [..., K, N]
    /// (or [..., N, K] transposed), C [..., M, N], bias [N] or null. Leading (batch) dims of A and B are equal, or one
    /// of them is rank 2 and broadcast; when B is rank 2 the leading dims of A fold into M.
    /// </summary>
    void MatMul(Tensor a, Tensor b, Tensor c, MatMulOptions options, Tensor? bias = null);

    /// <summary>
    /// Optional: declares <paramref name="weight"/> (rank 2) a constant right-hand operand of later <see cref="MatMul"/>
    /// calls with TransposeB = <paramref name="transposed"/> (a Linear weight: <c>true</c>), so that the backend may lay
    /// it out for its GEMM once instead of on every call. The weight must not be written afterwards (copies into it
    /// drop the prepared layout; other writes are not seen). Results are the same with or without it. Default: nothing,
    /// for backends whose GEMM reads B as stored.
    /// </summary>
    void PrepareWeight(Tensor weight, bool transposed)
    {
    }

    /// <summary>output = x + bias, bias [N] broadcast over the rows of x [..., N].</summary>
    void BiasAdd(Tensor x, Tensor bias, Tensor output);

    /// <summary>output = a + b, same shapes (the residual connection).</summary>
    void Add(Tensor a, Tensor b, Tensor output);

    /// <summary>output = alpha·x.</summary>
    void Scale(Tensor x, float alpha, Tensor output);

    /// <summary>LayerNorm over the last axis with biased variance: (x − mean)/√(var + eps)·gamma + beta, gamma/beta [N].</summary>
    void LayerNorm(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor output);

    /// <summary>Exact GELU, 0.5·z·(1 + erf(z/√2)).</summary>
    void Gelu(Tensor x, Tensor output);

    /// <summary>Logistic sigmoid 1/(1 + e^−z).</summary>
    void Sigmoid(Tensor x, Tensor output);

    /// <summary>Softmax over the last axis.</summary>
    void Softmax(Tensor x, Tensor output);

    /// <summary>output[..., :] = table[ids[...], :]; table [V, D], ids I32 of any shape, output [ids..., D]; ids checked &lt; V.</summary>
    void Embedding(Tensor table, Tensor ids, Tensor output);

    /// <summary>output[i] = source[indices[i]] along the first axis; source [N, ...], indices I32 [M], output [M, ...].</summary>
    void Gather(Tensor source, Tensor indices, Tensor output);

    /// <summary>destination[indices[i]] += scale[i]·source[i] along the first axis; scale [M] or null (1); indices distinct.</summary>
    void ScatterAddRows(Tensor source, Tensor indices, Tensor destination, Tensor? rowScale = null);

    /// <summary>Per row of x [..., N]: the k largest values (descending; ties → lower index first) and their indices (I32), both [..., k].</summary>
    void TopK(Tensor x, int k, Tensor values, Tensor indices);

    /// <summary>
    /// Flash-style block-sparse attention, softmax(q·kᵀ/√d_head)·v over the key blocks <paramref name="layout"/> lists
    /// per (sequence, head, query block); null layout = dense. Keys ≥ validLengths[b] are excluded, queries ≥ it give
    /// zeros; empty <paramref name="validLengths"/> means every sequence is T long. Returns the pairs it computed.
    /// </summary>
    AttentionResult Attention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, BlockLayout? layout);

    /// <summary>
    /// Token-level top-k attention: each valid query keeps the keysPerQuery[b] highest-scoring valid keys
    /// (ties → lower key index) and softmaxes over those only. Returns Σ_b H·L_b·k_b computed pairs.
    /// </summary>
    AttentionResult TopKAttention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, ReadOnlySpan<int> keysPerQuery);
}
