namespace SparseInference.Models.Attention;

/// <summary><c>dense</c>: every key block for every query block; sparsity is ignored.</summary>
internal sealed class DensePattern : IStaticBlockPattern
{
    public string Name => AttentionPatterns.Dense;

    public AttentionPatternKind Kind => AttentionPatternKind.Dense;

    public bool DependsOnLayer => false;

    public KeyBlockSelection Select(BlockGeometry geometry, AttentionSpec spec, int layer)
        => KeyBlockSelection.Build(geometry, (_, mask) => mask.Fill(true));
}
