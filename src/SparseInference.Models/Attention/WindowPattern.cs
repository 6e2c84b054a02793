namespace SparseInference.Models.Attention;

/// <summary><c>window</c>: <c>|kb − qb| ≤ r</c> with <c>r = (K − 1) div 2</c>.</summary>
internal sealed class WindowPattern : IStaticBlockPattern
{
    public string Name => AttentionPatterns.Window;

    public AttentionPatternKind Kind => AttentionPatternKind.StaticBlocks;

    public bool DependsOnLayer => false;

    public KeyBlockSelection Select(BlockGeometry geometry, AttentionSpec spec, int layer)
    {
        int n = geometry.Blocks;
        int r = (PatternMath.Budget(spec.Sparsity, n) - 1) / 2;
        return KeyBlockSelection.Build(geometry, (qb, mask) => MarkBand(mask, qb, r));
    }

    internal static void MarkBand(Span<bool> mask, int qb, int radius)
    {
        int from = Math.Max(0, qb - radius), to = Math.Min(mask.Length - 1, qb + radius);
        for (int kb = from; kb <= to; kb++)
        {
            mask[kb] = true;
        }
    }
}
