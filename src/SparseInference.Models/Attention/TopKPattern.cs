namespace SparseInference.Models.Attention;

/// <summary><c>topk</c>: token level, per head, each query keeps its <c>k = clamp(round((1 − s) · L), 1, L)</c> best-scoring keys (ties: lower key).</summary>
internal sealed class TopKPattern : IAttentionPattern
{
    public string Name => AttentionPatterns.TopK;

    public AttentionPatternKind Kind => AttentionPatternKind.TokenTopK;
}
