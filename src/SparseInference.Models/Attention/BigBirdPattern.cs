namespace SparseInference.Models.Attention;

/// <summary>
/// <c>bigbird</c>: window <c>|kb − qb| ≤ 1</c>, global blocks <c>0 … G−1</c> (global query blocks select all), plus
/// <c>R = max(0, K − |window ∪ global|)</c> random blocks: the unselected ones with the smallest <c>u(seed, layer, 0, qb, kb)</c>.
/// </summary>
internal sealed class BigBirdPattern : IStaticBlockPattern
{
    public string Name => AttentionPatterns.BigBird;

    public AttentionPatternKind Kind => AttentionPatternKind.StaticBlocks;

    public bool DependsOnLayer => true;

    public KeyBlockSelection Select(BlockGeometry geometry, AttentionSpec spec, int layer)
    {
        int n = geometry.Blocks;
        int k = PatternMath.Budget(spec.Sparsity, n);
        int g = Math.Min(spec.GlobalBlocks, n);
        var keys = new double[n];
        return KeyBlockSelection.Build(geometry, (qb, mask) =>
        {
            if (qb < g)
            {
                mask.Fill(true);
                return;
            }

            WindowPattern.MarkBand(mask, qb, 1);
            mask[..g].Fill(true);
            int already = 0;
            foreach (bool m in mask)
            {
                already += m ? 1 : 0;
            }

            int random = Math.Max(0, k - already);
            if (random == 0)
            {
                return;
            }

            // Smallest u first: select the largest −u.
            for (int kb = 0; kb < n; kb++)
            {
                keys[kb] = -PatternMath.Uniform(spec.Seed, layer, 0, qb, kb);
            }

            TopSelection.MarkLargest(keys, mask, random);
        });
    }
}
