using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Kernels;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda;

// Attention: the contract's call on the attention kernels, with layouts and lengths from the device cache.
public sealed partial class CudaComputeBackend
{
    public AttentionResult TopKAttention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, ReadOnlySpan<int> keysPerQuery) =>
        throw Unsupported(TensorOp.TopKAttention);

    /// <summary>
    /// Whether <see cref="Attention"/> runs this call's geometry and layout (head dim 16/32/64/128, block size
    /// 16/32/64/128, 16-byte aligned rows); otherwise the caller falls back.
    /// </summary>
    public static bool SupportsAttention(AttentionInputs inputs, BlockLayout? layout, out string? why)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        return AttentionKernels.Supports(Geometry(inputs), layout is null ? null : ToCsr(layout), out why);
    }

    public AttentionResult Attention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, BlockLayout? layout)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var outOperand = inputs.OutputOperand(output);
        CheckLengths(validLengths, inputs.Batch, inputs.SeqLen);

        var geometry = Geometry(inputs, outOperand);
        var deviceLayout = layout is null ? null : Retained(attentionCache.Layout(layout)).Value;
        if (!AttentionKernels.Supports(geometry, deviceLayout?.Layout, out var why))
        {
            throw new NotSupportedException($"Backend '{Name}' cannot run this attention call: {why}.");
        }

        // The kernel reads BF16: each distinct operand tensor's BF16 copy (converted once, kept until it is written).
        CudaBuffer At(AttentionOperand op) => CudaBuffer.View(Bf16Of(op.Tensor, "inputs"), op.Offset * 2, (op.Tensor.ElementCount - op.Offset) * 2);

        var q = At(inputs.Query);
        var k = At(inputs.Key);
        var v = At(inputs.Value);
        Output(output, nameof(output), reads: false);
        var out16 = Gpu.Allocate(Math.Max(2, output.ElementCount * 2), MemoryCategory.Workspace);
        try
        {
            var lengths = validLengths.IsEmpty ? null : Retained(attentionCache.Lengths(validLengths)).Value;
            Gpu.Attention.Run(q, k, v, out16, geometry, deviceLayout, lengths);
        }
        catch
        {
            out16.Dispose();
            throw;
        }

        // The kernel's output is BF16, so the FP32 output is exactly that copy widened: it is widened on the first
        // FP32 read, and the product that reads the output next takes the copy as it is. No synchronisation: the
        // stream orders every later use of these buffers.
        SetBf16Copy(output, out16, fp32Pending: true);
        return CountPairs(inputs, validLengths, layout);
    }

    private static void CheckLengths(ReadOnlySpan<int> validLengths, int batch, int seqLen)
    {
        if (!validLengths.IsEmpty && validLengths.Length != batch)
        {
            throw new ArgumentException($"validLengths: expected {batch} entries (one per sequence) or none, got {validLengths.Length}.", nameof(validLengths));
        }

        foreach (var len in validLengths)
        {
            if (len < 0 || len > seqLen)
            {
                throw new ArgumentException($"validLengths: expected values in [0, {seqLen}], got {len}.", nameof(validLengths));
            }
        }
    }

    /// <summary>Pairs computed: every valid (query, key) pair of each selected block, or Σ_b H·L_b² when dense.</summary>
    internal static AttentionResult CountPairs(AttentionInputs inputs, ReadOnlySpan<int> validLengths, BlockLayout? layout)
    {
        long computed = 0, dense = 0;
        for (var b = 0; b < inputs.Batch; b++)
        {
            long len = validLengths.IsEmpty ? inputs.SeqLen : validLengths[b];
            dense += inputs.Heads * len * len;
            if (layout is null)
            {
                computed += inputs.Heads * len * len;
                continue;
            }

            var bs = layout.BlockSize;
            for (var h = 0; h < inputs.Heads; h++)
            {
                for (var qb = 0; qb < layout.QueryBlocks; qb++)
                {
                    var queries = Math.Clamp(len - ((long)qb * bs), 0, bs);
                    if (queries == 0)
                    {
                        continue;
                    }

                    foreach (var kb in layout.KeyBlocksOf(b, h, qb))
                    {
                        computed += queries * Math.Clamp(len - ((long)kb * bs), 0, bs);
                    }
                }
            }
        }

        return new AttentionResult(computed, dense);
    }

    /// <summary>The contract's layout as the kernel sees it (one row per head, or one shared row); no copy.</summary>
    internal static CsrBlockLayout ToCsr(BlockLayout layout) => new(layout);

    private static AttentionGeometry Geometry(AttentionInputs inputs, AttentionOperand? output = null)
    {
        static TensorStrides S(AttentionOperand op) => new(op.BatchStride, op.HeadStride, op.TokenStride);
        var o = output is { } op
            ? S(op)
            : inputs.HeadsMajor
                ? TensorStrides.BatchHeadToken(inputs.Heads, inputs.SeqLen, inputs.HeadDim)
                : TensorStrides.BatchTokenHead(inputs.Heads, inputs.SeqLen, inputs.HeadDim);
        return new AttentionGeometry(inputs.Batch, inputs.Heads, inputs.SeqLen, inputs.HeadDim, S(inputs.Query), S(inputs.Key), S(inputs.Value), o);
    }
}
