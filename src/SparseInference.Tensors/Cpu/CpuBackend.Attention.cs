namespace SparseInference.Tensors.Cpu;

// Attention: block-sparse flash-style (dense = all blocks) and token-level top-k.
public sealed unsafe partial class CpuBackend
{
    /// <summary>Query/key tile used when no layout is given (dense attention).</summary>
    internal const int DenseTile = 64;

    public AttentionResult Attention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, BlockLayout? layout)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var geometry = ResolveAttention(inputs, output, validLengths, out var lengths);
        if (layout is not null)
        {
            var n = BlockLayout.BlocksFor(inputs.SeqLen, layout.BlockSize);
            if (layout.Batch != inputs.Batch) throw new ArgumentException($"layout: expected Batch = {inputs.Batch}, got {layout.Batch}.", nameof(layout));
            if (layout.Heads != inputs.Heads) throw new ArgumentException($"layout: expected Heads = {inputs.Heads}, got {layout.Heads}.", nameof(layout));
            if (layout.QueryBlocks != n)
            {
                throw new ArgumentException(
                    $"layout: expected QueryBlocks = ceil(T / BlockSize) = {n} for T = {inputs.SeqLen}, got {layout.QueryBlocks}.", nameof(layout));
            }
        }
        var tile = layout?.BlockSize ?? DenseTile;
        var pairs = AttentionKernels.BlockSparse(_parallel, geometry, lengths, layout, tile);
        KeepAlive(inputs, output);
        return new AttentionResult(pairs, DensePairs(inputs.Heads, lengths));
    }

    public AttentionResult TopKAttention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, ReadOnlySpan<int> keysPerQuery)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var geometry = ResolveAttention(inputs, output, validLengths, out var lengths);
        if (keysPerQuery.Length != inputs.Batch)
        {
            throw new ArgumentException($"keysPerQuery: expected {inputs.Batch} entries (one per sequence), got {keysPerQuery.Length}.", nameof(keysPerQuery));
        }
        var keep = keysPerQuery.ToArray();
        for (var b = 0; b < keep.Length; b++)
        {
            if (keep[b] < 1 && lengths[b] > 0 || keep[b] > lengths[b])
            {
                throw new ArgumentOutOfRangeException(nameof(keysPerQuery), $"keysPerQuery[{b}]: expected 1 ≤ k ≤ L = {lengths[b]}, got {keep[b]}.");
            }
        }
        var pairs = AttentionKernels.TopK(_parallel, geometry, lengths, keep);
        KeepAlive(inputs, output);
        return new AttentionResult(pairs, DensePairs(inputs.Heads, lengths));
    }

    private AttentionGeometry ResolveAttention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, out int[] lengths)
    {
        var o = inputs.OutputOperand(output);
        if (validLengths.Length != 0 && validLengths.Length != inputs.Batch)
        {
            throw new ArgumentException($"validLengths: expected {inputs.Batch} entries (one per sequence) or none, got {validLengths.Length}.", nameof(validLengths));
        }
        lengths = new int[inputs.Batch];
        for (var b = 0; b < inputs.Batch; b++)
        {
            var l = validLengths.Length == 0 ? inputs.SeqLen : validLengths[b];
            if (l < 0 || l > inputs.SeqLen)
            {
                throw new ArgumentOutOfRangeException(nameof(validLengths), $"validLengths[{b}]: expected 0 ≤ L ≤ T = {inputs.SeqLen}, got {l}.");
            }
            lengths[b] = l;
        }
        return new AttentionGeometry(
            Operand(inputs.Query, "q"), Operand(inputs.Key, "k"), Operand(inputs.Value, "v"), Operand(o, nameof(output)),
            inputs.Batch, inputs.Heads, inputs.SeqLen, inputs.HeadDim);
    }

    private StridedF32 Operand(AttentionOperand op, string name) =>
        new(F32(op.Tensor, name) + op.Offset, op.BatchStride, op.HeadStride, op.TokenStride);

    private static long DensePairs(int heads, int[] lengths)
    {
        long total = 0;
        foreach (var l in lengths) total += (long)l * l;
        return total * heads;
    }

    private static void KeepAlive(AttentionInputs inputs, Tensor output)
    {
        GC.KeepAlive(inputs.Query.Tensor);
        GC.KeepAlive(inputs.Key.Tensor);
        GC.KeepAlive(inputs.Value.Tensor);
        GC.KeepAlive(output);
    }
}

/// <summary>Raw strided F32 view: element (b, h, t, i) at Base + b·BatchStride + h·HeadStride + t·TokenStride + i.</summary>
internal readonly unsafe struct StridedF32(float* basePtr, long batchStride, long headStride, long tokenStride)
{
    public readonly float* Base = basePtr;
    public readonly long BatchStride = batchStride;
    public readonly long HeadStride = headStride;
    public readonly long TokenStride = tokenStride;

    public float* Token(int b, int h, int t) => Base + b * BatchStride + h * HeadStride + t * TokenStride;
}

internal readonly struct AttentionGeometry(StridedF32 q, StridedF32 k, StridedF32 v, StridedF32 o, int batch, int heads, int seqLen, int headDim)
{
    public readonly StridedF32 Q = q;
    public readonly StridedF32 K = k;
    public readonly StridedF32 V = v;
    public readonly StridedF32 O = o;
    public readonly int Batch = batch;
    public readonly int Heads = heads;
    public readonly int SeqLen = seqLen;
    public readonly int HeadDim = headDim;
}
