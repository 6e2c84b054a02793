namespace SparseInference.Models.Attention;

/// <summary>
/// <c>strided</c>: <c>|kb − qb| ≤ r</c> (<c>r = 1</c> if <c>K ≥ 3</c> else 0) or summary blocks <c>kb mod S = S − 1</c>,
/// <c>S = max(1, ceil(n / max(1, K − (2r + 1))))</c>.
/// </summary>
internal sealed class StridedPattern : IStaticBlockPattern
{
    public string Name => AttentionPatterns.Strided;

    public AttentionPatternKind Kind => AttentionPatternKind.StaticBlocks;

    public bool DependsOnLayer => false;

    public KeyBlockSelection Select(BlockGeometry geometry, AttentionSpec spec, int layer)
    {
        int n = geometry.Blocks;
        int k = PatternMath.Budget(spec.Sparsity, n);
        int r = k >= 3 ? 1 : 0;
        int divisor = Math.Max(1, k - (2 * r + 1));
        int stride = Math.Max(1, (n + divisor - 1) / divisor);
        return KeyBlockSelection.Build(geometry, (qb, mask) =>
        {
            WindowPattern.MarkBand(mask, qb, r);
            for (int kb = stride - 1; kb < n; kb += stride)
            {
                mask[kb] = true;
            }
        });
    }
}
