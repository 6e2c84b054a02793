namespace SparseInference.Models.Attention;

/// <summary>
/// <c>longformer</c>: global blocks <c>0 … G−1</c> (<c>G = min(global_blocks, n)</c>) attend and are attended by all;
/// other query blocks add <c>|kb − qb| ≤ r</c>, <c>r = max(0, K − G − 1) div 2</c>.
/// </summary>
internal sealed class LongformerPattern : IStaticBlockPattern
{
    public string Name => AttentionPatterns.Longformer;

    public AttentionPatternKind Kind => AttentionPatternKind.StaticBlocks;

    public bool DependsOnLayer => false;

    public KeyBlockSelection Select(BlockGeometry geometry, AttentionSpec spec, int layer)
    {
        int n = geometry.Blocks;
        int k = PatternMath.Budget(spec.Sparsity, n);
        int g = Math.Min(spec.GlobalBlocks, n);
        int r = Math.Max(0, k - g - 1) / 2;
        return KeyBlockSelection.Build(geometry, (qb, mask) =>
        {
            if (qb < g)
            {
                mask.Fill(true);
                return;
            }

            mask[..g].Fill(true);
            WindowPattern.MarkBand(mask, qb, r);
        });
    }
}
