namespace SparseInference.Tensors;

/// <summary>What an attention call computed.</summary>
/// <param name="ComputedPairs">
/// (query, key) pairs, both valid, whose score was computed and used, summed over sequences and heads.
/// </param>
/// <param name="DensePairs">Σ_b heads·L_b², the pairs dense attention would compute.</param>
public readonly record struct AttentionResult(long ComputedPairs, long DensePairs)
{
    /// <summary>ComputedPairs / DensePairs (1 when nothing is valid).</summary>
    public double Density => DensePairs == 0 ? 1.0 : (double)ComputedPairs / DensePairs;
}
