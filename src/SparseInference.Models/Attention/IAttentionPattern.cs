namespace SparseInference.Models.Attention;

/// <summary>How the engine executes a pattern.</summary>
public enum AttentionPatternKind
{
    /// <summary>Every query attends every valid key.</summary>
    Dense,
    /// <summary>Key blocks fixed by geometry and seed; the same for all heads, cached.</summary>
    StaticBlocks,
    /// <summary>Key blocks chosen per head from pooled block scores.</summary>
    DynamicBlocks,
    /// <summary>Each query keeps its k best-scoring keys.</summary>
    TokenTopK,
    /// <summary>A learned gate activates tokens; active tokens attend densely among themselves.</summary>
    Gated,
}

/// <summary>An attention pattern: a name from the model-format contract and how it is executed.</summary>
public interface IAttentionPattern
{
    string Name { get; }

    AttentionPatternKind Kind { get; }
}

/// <summary>A pattern whose key blocks depend only on geometry, sparsity, global blocks, seed and layer.</summary>
internal interface IStaticBlockPattern : IAttentionPattern
{
    /// <summary>True when the selection differs between layers (seeded patterns), which the cache key must then carry.</summary>
    bool DependsOnLayer { get; }

    KeyBlockSelection Select(BlockGeometry geometry, AttentionSpec spec, int layer);
}

/// <summary>A pattern whose key blocks are chosen per head from pooled scores <c>S(qb, kb) = q̄·k̄ / √d_head</c>.</summary>
internal interface IDynamicBlockPattern : IAttentionPattern
{
    /// <param name="pooledScores">Row-major [n, n] pooled scores of one head.</param>
    KeyBlockSelection Select(BlockGeometry geometry, AttentionSpec spec, int layer, int head, ReadOnlySpan<float> pooledScores);
}
