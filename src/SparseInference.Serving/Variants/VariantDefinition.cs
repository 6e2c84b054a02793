using SparseInference.Models;

namespace SparseInference.Serving.Variants;

/// <summary>
/// What an operator asks for: a named attention pattern and sparsity level on the model's default
/// weights, or on weights of its own when <see cref="WeightsDirectory"/> is set.
/// </summary>
public sealed record VariantDefinition(
    string Name,
    string Pattern,
    double Sparsity = 0.0,
    int BlockSize = 16,
    int GlobalBlocks = 1,
    ulong Seed = 0,
    string? WeightsDirectory = null)
{
    public const int MaxNameLength = 64;

    /// <summary>Upper bound of block size (tokens per attention block).</summary>
    public const int MaxBlockSize = 4096;

    /// <summary>Upper bound of global blocks; more than a model's sequence holds only makes attention dense.</summary>
    public const int MaxGlobalBlocks = 4096;

    public AttentionSpec ToAttentionSpec() => new(Pattern, Sparsity, BlockSize, GlobalBlocks, Seed);

    /// <summary>Checks every field; each error names the field, what was expected and what was given.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!IsValidName(Name))
        {
            errors.Add($"name: expected 1-{MaxNameLength} characters of [a-z0-9._-], actual '{Name}'");
        }

        if (!AttentionSpec.KnownPatterns.Contains(Pattern))
        {
            errors.Add($"pattern: expected one of [{string.Join(", ", AttentionSpec.KnownPatterns)}], actual '{Pattern}'");
        }

        if (!double.IsFinite(Sparsity) || Sparsity < 0.0 || Sparsity >= 1.0)
        {
            errors.Add($"sparsity: expected a number in [0, 1), actual {Sparsity}");
        }
        else if (Pattern == "dense" && Sparsity != 0.0)
        {
            errors.Add($"sparsity: expected 0 for pattern 'dense', actual {Sparsity}");
        }

        if (BlockSize < 1 || BlockSize > MaxBlockSize)
        {
            errors.Add($"blockSize: expected an integer in [1, {MaxBlockSize}], actual {BlockSize}");
        }

        if (GlobalBlocks < 0 || GlobalBlocks > MaxGlobalBlocks)
        {
            errors.Add($"globalBlocks: expected an integer in [0, {MaxGlobalBlocks}], actual {GlobalBlocks}");
        }

        if (WeightsDirectory is not null && string.IsNullOrWhiteSpace(WeightsDirectory))
        {
            errors.Add("weights: expected a directory path or no value, actual an empty string");
        }

        return errors;
    }

    /// <summary>Variant names travel in URLs, metric labels and response parameters, so they stay plain.</summary>
    public static bool IsValidName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxNameLength)
        {
            return false;
        }

        foreach (var c in name)
        {
            var ok = c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '_' or '-';
            if (!ok)
            {
                return false;
            }
        }

        return true;
    }
}
