namespace SparseInference.Tensors;

/// <summary>
/// One attention operand as a strided view: element (b, h, t, i) lies at
/// <c>Offset + b·BatchStride + h·HeadStride + t·TokenStride + i</c> (elements, F32) in <see cref="Tensor"/>.
/// </summary>
public readonly record struct AttentionOperand(Tensor Tensor, long Offset, long BatchStride, long HeadStride, long TokenStride);

/// <summary>
/// q, k, v of an attention call and their geometry. Three layouts, all F32:
/// <list type="bullet">
/// <item><b>Heads-major</b>: q, k, v each [B, H, T, d_head]; the output is [B, H, T, d_head].</item>
/// <item><b>Token-major</b>: q, k, v each [B, T, H·d_head], head h in columns h·d_head … (h+1)·d_head−1
/// (what a Linear produces, no transpose needed); the output is [B, T, H·d_head], ready for the output projection.</item>
/// <item><b>Packed</b>: one [B, T, 3·H·d_head] tensor holding q, then k, then v per token (the fused qkv Linear of the
/// model format); the output is [B, T, H·d_head].</item>
/// </list>
/// </summary>
public sealed class AttentionInputs
{
    private AttentionInputs(AttentionOperand q, AttentionOperand k, AttentionOperand v, int batch, int heads, int seqLen, int headDim, bool headsMajor)
    {
        Query = q;
        Key = k;
        Value = v;
        Batch = batch;
        Heads = heads;
        SeqLen = seqLen;
        HeadDim = headDim;
        HeadsMajor = headsMajor;
    }

    public AttentionOperand Query { get; }
    public AttentionOperand Key { get; }
    public AttentionOperand Value { get; }

    /// <summary>Sequences B.</summary>
    public int Batch { get; }

    /// <summary>Heads H.</summary>
    public int Heads { get; }

    /// <summary>Padded sequence length T.</summary>
    public int SeqLen { get; }

    /// <summary>d_head; the score scale is 1/√d_head.</summary>
    public int HeadDim { get; }

    /// <summary>True when the output is [B, H, T, d_head]; false when it is [B, T, H·d_head].</summary>
    public bool HeadsMajor { get; }

    /// <summary>The shape the output tensor must have.</summary>
    public Shape OutputShape => HeadsMajor ? new Shape(Batch, Heads, SeqLen, HeadDim) : new Shape(Batch, SeqLen, Heads * HeadDim);

    /// <summary>The output described as an operand of the same geometry.</summary>
    public AttentionOperand OutputOperand(Tensor output)
    {
        if (output.Shape != OutputShape)
        {
            throw new ArgumentException($"output: expected shape {OutputShape}, got {output.Shape}.", nameof(output));
        }
        if (output.DType != DType.F32) throw new ArgumentException($"output: expected F32, got {output.DType}.", nameof(output));
        return HeadsMajor
            ? new AttentionOperand(output, 0, (long)Heads * SeqLen * HeadDim, (long)SeqLen * HeadDim, HeadDim)
            : new AttentionOperand(output, 0, (long)SeqLen * Heads * HeadDim, HeadDim, (long)Heads * HeadDim);
    }

    /// <summary>Heads-major [B, H, T, d_head] or token-major [B, T, H·d_head] q, k, v (all the same shape).</summary>
    public static AttentionInputs Separate(Tensor q, Tensor k, Tensor v, int heads)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        CheckF32(q, nameof(q));
        CheckF32(k, nameof(k));
        CheckF32(v, nameof(v));
        if (k.Shape != q.Shape) throw new ArgumentException($"k: expected the shape of q {q.Shape}, got {k.Shape}.", nameof(k));
        if (v.Shape != q.Shape) throw new ArgumentException($"v: expected the shape of q {q.Shape}, got {v.Shape}.", nameof(v));
        if (q.Rank == 4)
        {
            int b = q.Dim(0), h = q.Dim(1), t = q.Dim(2), d = q.Dim(3);
            if (h != heads) throw new ArgumentException($"q: expected {heads} heads in dimension 1 of [B, H, T, d_head], got {h}.", nameof(q));
            AttentionOperand Op(Tensor x) => new(x, 0, (long)h * t * d, (long)t * d, d);
            return new AttentionInputs(Op(q), Op(k), Op(v), b, h, t, d, headsMajor: true);
        }
        if (q.Rank == 3)
        {
            int b = q.Dim(0), t = q.Dim(1), width = q.Dim(2);
            var d = HeadDimOf(width, heads, "q");
            AttentionOperand Op(Tensor x) => new(x, 0, (long)t * width, d, width);
            return new AttentionInputs(Op(q), Op(k), Op(v), b, heads, t, d, headsMajor: false);
        }
        throw new ArgumentException($"q: expected rank 4 [B, H, T, d_head] or rank 3 [B, T, H·d_head], got {q.Shape}.", nameof(q));
    }

    /// <summary>A fused [B, T, 3·H·d_head] qkv tensor: per token q (H·d_head), then k, then v.</summary>
    public static AttentionInputs Packed(Tensor qkv, int heads)
    {
        ArgumentNullException.ThrowIfNull(qkv);
        CheckF32(qkv, nameof(qkv));
        if (qkv.Rank != 3) throw new ArgumentException($"qkv: expected rank 3 [B, T, 3·H·d_head], got {qkv.Shape}.", nameof(qkv));
        int b = qkv.Dim(0), t = qkv.Dim(1), width3 = qkv.Dim(2);
        if (width3 % 3 != 0) throw new ArgumentException($"qkv: expected the last dimension to be 3·H·d_head, got {width3}.", nameof(qkv));
        var width = width3 / 3;
        var d = HeadDimOf(width, heads, "qkv");
        AttentionOperand Op(int part) => new(qkv, (long)part * width, (long)t * width3, d, width3);
        return new AttentionInputs(Op(0), Op(1), Op(2), b, heads, t, d, headsMajor: false);
    }

    private static int HeadDimOf(int width, int heads, string name)
    {
        if (heads <= 0) throw new ArgumentOutOfRangeException(nameof(heads), heads, "heads: expected > 0.");
        if (width % heads != 0 || width == 0)
        {
            throw new ArgumentException($"{name}: expected the model width to be a positive multiple of heads = {heads}, got {width}.", name);
        }
        return width / heads;
    }

    private static void CheckF32(Tensor x, string name)
    {
        if (x.DType != DType.F32) throw new ArgumentException($"{name}: expected F32, got {x.DType}.", name);
    }
}
