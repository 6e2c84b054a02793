namespace SparseInference.Models.Attention;

/// <summary>
/// <c>gated</c> (sparse modular activation): the <c>m = clamp(round((1 − s) · L), 1, L)</c> tokens with the largest gate
/// attend densely among themselves and add <c>g_t · Attention(h)_t</c>; the rest skip the attention sub-layer.
/// </summary>
internal sealed class GatedPattern : IAttentionPattern
{
    public string Name => AttentionPatterns.Gated;

    public AttentionPatternKind Kind => AttentionPatternKind.Gated;
}
