namespace SparseInference.Models.Attention;

/// <summary>
/// <c>sampled</c>: per head, <c>qb</c> itself plus <c>K − 1</c> other blocks drawn without replacement with probability
/// ∝ <c>exp(S)</c>, as Gumbel top-k: the largest <c>S(qb, kb) + g(seed, layer, head, qb, kb)</c>.
/// </summary>
internal sealed class SampledPattern : IDynamicBlockPattern
{
    public string Name => AttentionPatterns.Sampled;

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
            if (k == 1)
            {
                return;
            }

            for (int kb = 0; kb < n; kb++)
            {
                row[kb] = scores[qb * n + kb] + PatternMath.Gumbel(spec.Seed, layer, head, qb, kb);
            }

            TopSelection.MarkLargest(row, mask, k - 1);
        });
    }
}
