using SparseInference.Tensors.Cuda.Kernels;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

// Fused small layers: a small model's encoder layer in two launches (fused_layer.cu), when CudaBackendOptions.FusedLayers.
public sealed partial class CudaComputeBackend : IFusedEncoderLayer
{
    /// <summary>Longest sequence a fused layer takes: its attention walks a row's keys on one thread per (row, head).</summary>
    public const int FusedLayerMaxSeqLen = 256;

    /// <inheritdoc/>
    public bool SupportsFusedLayer(int dModel, int heads, int dFf, int seqLen) =>
        Options.FusedLayers && seqLen is > 0 and <= FusedLayerMaxSeqLen && FusedLayerKernels.Takes(dModel, heads, dFf);

    /// <inheritdoc/>
    public AttentionResult EncoderLayer(EncoderLayerWeights weights, Tensor x, AttentionInputs qkv, ReadOnlySpan<int> validLengths, BlockLayout? layout, float epsilon)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(qkv);
        RequireFloat(x, nameof(x));
        int batch = qkv.Batch, seqLen = qkv.SeqLen, heads = qkv.Heads, dModel = qkv.Heads * qkv.HeadDim, dFf = weights.Ff1Weight.Dim(0);
        if (!SupportsFusedLayer(dModel, heads, dFf, seqLen))
        {
            throw new NotSupportedException($"Backend '{Name}' has no fused layer for d_model {dModel}, {heads} heads, d_ff {dFf}, sequence length {seqLen}; check SupportsFusedLayer first.");
        }

        if (x.Rank != 2 || x.Dim(0) != batch * seqLen || x.Dim(1) != dModel)
        {
            throw new ArgumentException($"x: expected shape [{batch * seqLen}, {dModel}], got {x.Shape}.", nameof(x));
        }

        var packed = qkv.Query.Tensor;
        if (!ReferenceEquals(packed, qkv.Key.Tensor) || !ReferenceEquals(packed, qkv.Value.Tensor) || packed.DType != DType.F32
            || qkv.Query.Offset != 0 || qkv.Key.Offset != dModel || qkv.Value.Offset != 2 * dModel
            || qkv.Query.TokenStride != 3 * dModel || packed.ElementCount != 3L * batch * seqLen * dModel)
        {
            throw new ArgumentException($"qkv: expected the packed projection [{batch}, {seqLen}, {3 * dModel}] F32 (AttentionInputs.Packed).", nameof(qkv));
        }

        CheckLengths(validLengths, batch, seqLen);
        if (layout is not null && (layout.Batch != batch || (layout.Heads != heads && !layout.SharedAcrossHeads)
            || layout.QueryBlocks != BlockLayout.BlocksFor(seqLen, layout.BlockSize)))
        {
            throw new ArgumentException(
                $"layout: expected batch {batch}, {heads} heads (or shared) and {BlockLayout.BlocksFor(seqLen, layout.BlockSize)} query blocks, got batch {layout.Batch}, {layout.Heads} heads, {layout.QueryBlocks} query blocks.",
                nameof(layout));
        }
        var w = new FusedLayerKernels.LayerWeights(
            View(weights.Ln1Weight, nameof(weights)), View(weights.Ln1Bias, nameof(weights)), TransposedOf(weights.QkvWeight, nameof(weights)),
            View(weights.QkvBias, nameof(weights)), TransposedOf(weights.OutWeight, nameof(weights)), View(weights.OutBias, nameof(weights)),
            View(weights.Ln2Weight, nameof(weights)), View(weights.Ln2Bias, nameof(weights)), TransposedOf(weights.Ff1Weight, nameof(weights)),
            View(weights.Ff1Bias, nameof(weights)), TransposedOf(weights.Ff2Weight, nameof(weights)), View(weights.Ff2Bias, nameof(weights)));
        var deviceLayout = layout is null ? null : Retained(attentionCache.Layout(layout)).Value;
        var lengths = validLengths.IsEmpty ? null : Retained(attentionCache.Lengths(validLengths)).Value;
        var scratch = Output(packed, nameof(qkv));
        var residual = Output(x, nameof(x), reads: true);
        Gpu.FusedLayers.EncoderLayer(w, residual, x.DType == DType.BF16, scratch, batch, seqLen, dModel, heads, dFf, lengths, deviceLayout, epsilon);
        return CountPairs(qkv, validLengths, layout);
    }

    /// <inheritdoc/>
    public void LayerNormLinear(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor weight, Tensor bias, Tensor output)
    {
        RequireFloat(x, nameof(x));
        RequireF32(weight, nameof(weight));
        RequireF32(output, nameof(output));
        var cols = x.Dim(-1);
        var rows = checked((int)x.Shape.LeadingCount);
        if (weight.Rank != 2 || weight.Dim(1) != cols)
        {
            throw new ArgumentException($"weight: expected shape [n, {cols}], got {weight.Shape}.", nameof(weight));
        }

        var n = weight.Dim(0);
        if (output.ElementCount != (long)rows * n)
        {
            throw new ArgumentException($"output: expected {rows}×{n} elements, got {output.Shape}.", nameof(output));
        }

        Gpu.FusedLayers.LayerNormLinear(View(x, nameof(x)), x.DType == DType.BF16, View(gamma, nameof(gamma)), View(beta, nameof(beta)),
            TransposedOf(weight, nameof(weight)), View(bias, nameof(bias)), Output(output, nameof(output)), rows, cols, n, epsilon);
    }

    /// <summary>Linear weights this small get their transposed copy at load (<see cref="PrepareWeight"/>).</summary>
    private bool FusedLayerWeight(Tensor weight) =>
        Options.FusedLayers && weight.Rank == 2 && weight.DType == DType.F32 && weight.ByteOffset == 0
        && weight.Dim(0) <= 3 * FusedLayerKernels.MaxDModel && weight.Dim(1) <= FusedLayerKernels.MaxDFf;

    /// <summary>
    /// A rank-2 F32 weight [out, in] as the fused kernels read it, [in, out]: the copy kept with the tensor (made at load by
    /// <see cref="PrepareWeight"/>, or now), dropped when the tensor is written.
    /// </summary>
    private CudaBuffer TransposedOf(Tensor weight, string name)
    {
        var view = View(weight, name);
        if (weight.Rank != 2 || weight.DType != DType.F32 || weight.ByteOffset != 0)
        {
            throw new ArgumentException($"{name}: expected a whole rank-2 F32 weight, got {weight.Shape} {weight.DType}.", name);
        }

        var buffer = (CudaTensorBuffer)weight.Buffer;
        if (buffer.Transposed is { } kept && kept.Bytes == view.Bytes)
        {
            return kept;
        }

        var transposed = Gpu.Allocate(view.Bytes, MemoryCategory.Weights);
        Gpu.FusedLayers.Transpose(view, transposed, weight.Dim(0), weight.Dim(1));
        buffer.KeepTransposed(transposed);
        recording?.NewCopies.Add(buffer);
        return transposed;
    }
}
