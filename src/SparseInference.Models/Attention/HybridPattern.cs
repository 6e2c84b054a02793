namespace SparseInference.Models.Attention;

/// <summary><c>hybrid</c>: per head, the window <c>|kb − qb| ≤ 1</c> plus the <c>max(0, K − |window|)</c> other blocks with the largest pooled score.</summary>
internal sealed class HybridPattern : IDynamicBlockPattern
{
    public string Name => AttentionPatterns.Hybrid;

    public AttentionPatternKind Kind => AttentionPatternKind.DynamicBlocks;

    public KeyBlockSelection Select(BlockGeometry geometry, AttentionSpec spec, int layer, int head, ReadOnlySpan<float> pooledScores)
    {
        int n = geometry.Blocks;
        int k = PatternMath.Budget(spec.Sparsity, n);
        var scores = pooledScores.ToArray();
        var row = new double[n];
        return KeyBlockSelection.Build(geometry, (qb, mask) =>
        {
            WindowPattern.MarkBand(mask, qb, 1);
            int window = Math.Min(n - 1, qb + 1) - Math.Max(0, qb - 1) + 1;
            int extra = Math.Max(0, k - window);
            if (extra == 0)
            {
                return;
            }

            for (int kb = 0; kb < n; kb++)
            {
                row[kb] = scores[qb * n + kb];
            }

            TopSelection.MarkLargest(row, mask, extra);
        });
    }
}
