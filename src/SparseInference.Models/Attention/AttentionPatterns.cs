using System.Collections.Frozen;

namespace SparseInference.Models.Attention;

/// <summary>The registry of attention patterns by contract name.</summary>
public static class AttentionPatterns
{
    public const string Dense = "dense";
    public const string Window = "window";
    public const string Longformer = "longformer";
    public const string BigBird = "bigbird";
    public const string Strided = "strided";
    public const string TopK = "topk";
    public const string BlockTopK = "block-topk";
    public const string Hybrid = "hybrid";
    public const string Sampled = "sampled";
    public const string Gated = "gated";

    private static readonly FrozenDictionary<string, IAttentionPattern> Registry = new IAttentionPattern[]
    {
        new DensePattern(), new WindowPattern(), new LongformerPattern(), new BigBirdPattern(), new StridedPattern(),
        new TopKPattern(), new BlockTopKPattern(), new HybridPattern(), new SampledPattern(), new GatedPattern(),
    }.ToFrozenDictionary(p => p.Name, StringComparer.Ordinal);

    /// <summary>Pattern names in contract order.</summary>
    public static IReadOnlyList<string> Names => AttentionSpec.KnownPatterns;

    public static bool TryGet(string name, out IAttentionPattern pattern) => Registry.TryGetValue(name, out pattern!);

    /// <summary>The pattern named <paramref name="name"/>, or an error listing the known ones.</summary>
    public static IAttentionPattern Get(string name)
        => TryGet(name, out var pattern)
            ? pattern
            : throw new ArgumentException($"Unknown attention pattern '{name}'; known patterns: {string.Join(", ", Names)}.", nameof(name));

    /// <summary>Checks a spec's fields, naming the field, expected and actual value.</summary>
    public static void Validate(AttentionSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Get(spec.Pattern);
        if (!(spec.Sparsity >= 0.0 && spec.Sparsity < 1.0))
        {
            throw new ArgumentException($"attention.sparsity must be in [0, 1); got {spec.Sparsity}.", nameof(spec));
        }

        if (spec.BlockSize < 1)
        {
            throw new ArgumentException($"attention.block_size must be ≥ 1; got {spec.BlockSize}.", nameof(spec));
        }

        if (spec.GlobalBlocks < 0)
        {
            throw new ArgumentException($"attention.global_blocks must be ≥ 0; got {spec.GlobalBlocks}.", nameof(spec));
        }
    }
}
