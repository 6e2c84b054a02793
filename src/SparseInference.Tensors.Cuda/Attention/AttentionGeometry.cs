namespace SparseInference.Tensors.Cuda.Attention;

/// <summary>Element strides of a [batch, head, token, dim] view; dim is contiguous.</summary>
public readonly record struct TensorStrides(long Batch, long Head, long Token)
{
    /// <summary>A contiguous [batch, heads, seqLen, headDim] tensor.</summary>
    public static TensorStrides BatchHeadToken(int heads, int seqLen, int headDim) =>
        new((long)heads * seqLen * headDim, (long)seqLen * headDim, headDim);

    /// <summary>A [batch, seqLen, heads·headDim] tensor (heads side by side in each token row).</summary>
    public static TensorStrides BatchTokenHead(int heads, int seqLen, int headDim) =>
        new((long)seqLen * heads * headDim, headDim, (long)heads * headDim);

    /// <summary>One of q, k, v inside a packed [batch, seqLen, 3·heads·headDim] projection.</summary>
    public static TensorStrides PackedQkv(int heads, int seqLen, int headDim) =>
        new(3L * seqLen * heads * headDim, headDim, 3L * heads * headDim);
}

/// <summary>Sizes and strides of one attention call.</summary>
public sealed record AttentionGeometry(int Batch, int Heads, int SeqLen, int HeadDim, TensorStrides Q, TensorStrides K, TensorStrides V, TensorStrides O)
{
    /// <summary>All four tensors contiguous [batch, heads, seqLen, headDim].</summary>
    public static AttentionGeometry Contiguous(int batch, int heads, int seqLen, int headDim)
    {
        var s = TensorStrides.BatchHeadToken(heads, seqLen, headDim);
        return new AttentionGeometry(batch, heads, seqLen, headDim, s, s, s, s);
    }

    /// <summary>Elements a contiguous tensor of this geometry holds.</summary>
    public long Elements => (long)Batch * Heads * SeqLen * HeadDim;
}
