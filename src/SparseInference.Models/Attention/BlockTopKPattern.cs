namespace SparseInference.Models.Attention;

/// <summary><c>block-topk</c>: per head, <c>qb</c> itself plus the <c>K − 1</c> other blocks with the largest pooled score (ties: lower kb).</summary>
internal sealed class BlockTopKPattern : IDynamicBlockPattern
{
    public string Name => AttentionPatterns.BlockTopK;

    public AttentionPatternKind Kind => AttentionPatternKind.DynamicBlocks;

    public KeyBlockSelection Select(BlockGeometry geometry, AttentionSpec spec, int layer, int head, ReadOnlySpan<float> pooledScores)
    {
        int n = geometry.Blocks;
        int k = PatternMath.Budget(spec.Sparsity, n);
        var scores = pooledScores.ToArray();
        var row = new double[n];
        return KeyBlockSelection.Build(geometry, (qb, mask) =>
        {
            mask[qb] = true;
            for (int kb = 0; kb < n; kb++)
            {
                row[kb] = scores[qb * n + kb];
            }

            TopSelection.MarkLargest(row, mask, k - 1);
        });
    }
}
