namespace SparseInference.Tensors;

/// <summary>The tensors of one pre-LN encoder layer (docs/model-format.md, Weights), as a fused layer reads them.</summary>
public sealed record EncoderLayerWeights(
    Tensor Ln1Weight, Tensor Ln1Bias, Tensor QkvWeight, Tensor QkvBias, Tensor OutWeight, Tensor OutBias,
    Tensor Ln2Weight, Tensor Ln2Bias, Tensor Ff1Weight, Tensor Ff1Bias, Tensor Ff2Weight, Tensor Ff2Bias);

/// <summary>
/// Optional capability of a backend that runs a whole pre-LN encoder layer, and a LayerNorm followed by a Linear, each as
/// one op: for small models, where each op of a layer costs more to launch than to compute. Results are those of the op
/// sequence (LayerNorm, Linear, Attention, MatMul, LayerNorm, Linear + GELU, MatMul) within the backend's precision.
/// </summary>
public interface IFusedEncoderLayer
{
    /// <summary>Whether <see cref="EncoderLayer"/> and <see cref="LayerNormLinear"/> take a model of these sizes at this sequence length.</summary>
    bool SupportsFusedLayer(int dModel, int heads, int dFf, int seqLen);

    /// <summary>
    /// x ← x + Attention(LN1(x)·Wqkvᵀ + b)·Woutᵀ + bout, then x ← x + GELU(LN2(x)·W1ᵀ + b1)·W2ᵀ + b2, on x [B·T, d_model]
    /// (the backend's residual dtype). <paramref name="qkv"/> is the packed projection (<see cref="AttentionInputs.Packed"/>,
    /// [B, T, 3·d_model] F32), written as scratch. Attention as in <see cref="IComputeBackend.Attention"/>; returns its pairs.
    /// </summary>
    AttentionResult EncoderLayer(EncoderLayerWeights weights, Tensor x, AttentionInputs qkv, ReadOnlySpan<int> validLengths, BlockLayout? layout, float epsilon);

    /// <summary>output = LayerNorm(x)·weightᵀ + bias; x [rows, d] (the residual dtype), output [rows, n] F32.</summary>
    void LayerNormLinear(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor weight, Tensor bias, Tensor output);
}
