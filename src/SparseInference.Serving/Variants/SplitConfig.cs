using System.Collections.Immutable;

namespace SparseInference.Serving.Variants;

/// <summary>One variant's share of live traffic; weights are relative and normalised when routing.</summary>
public sealed record SplitWeight(string Variant, double Weight);

/// <summary>Mirror <see cref="Percent"/> % of requests to <see cref="Variant"/>; only the primary answers.</summary>
/// <param name="FlagThreshold">When set, outputs above it count as anomaly flags and flag agreement is recorded.</param>
public sealed record ShadowConfig(string Variant, double Percent, double? FlagThreshold = null);

/// <summary>
/// How traffic is divided: weights over variants, an optional shadow, and the experiment name that salts
/// sticky assignment (changing it reshuffles keys; keeping it keeps every key where it was).
/// </summary>
public sealed record SplitConfig(ImmutableArray<SplitWeight> Weights, ShadowConfig? Shadow = null, string? Experiment = null)
{
    public static SplitConfig Single(string variant) => new([new SplitWeight(variant, 1.0)]);

    public double WeightOf(string variant)
    {
        double total = 0, mine = 0;
        foreach (var w in Weights)
        {
            total += w.Weight;
            if (w.Variant == variant)
            {
                mine += w.Weight;
            }
        }

        return total > 0 ? mine / total : 0;
    }

    /// <summary>Checks the split against the variants that exist; each error names field, expected and actual.</summary>
    public IReadOnlyList<string> Validate<TVariant>(IReadOnlyDictionary<string, TVariant> variants)
    {
        var errors = new List<string>();
        var known = string.Join(", ", variants.Keys.Order(StringComparer.Ordinal));
        if (Weights.IsDefaultOrEmpty)
        {
            errors.Add("weights: expected at least one variant with a weight, actual none");
            return errors;
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        double total = 0;
        foreach (var w in Weights)
        {
            if (!variants.ContainsKey(w.Variant))
            {
                errors.Add($"weights.{w.Variant}: expected a defined variant [{known}], actual '{w.Variant}'");
            }

            if (!seen.Add(w.Variant))
            {
                errors.Add($"weights.{w.Variant}: expected each variant once, actual it appears twice");
            }

            if (!double.IsFinite(w.Weight) || w.Weight < 0)
            {
                errors.Add($"weights.{w.Variant}: expected a finite number >= 0, actual {w.Weight}");
            }
            else
            {
                total += w.Weight;
            }
        }

        if (total <= 0 && errors.Count == 0)
        {
            errors.Add("weights: expected a positive total, actual 0");
        }
        else if (!double.IsFinite(total))
        {
            // Each weight finite but their sum not: every share would come out 0 or NaN and routing would pick one variant.
            errors.Add($"weights: expected a finite total (weights are relative: 90 and 10 split like 0.9 and 0.1), actual {total}");
        }

        if (Shadow is { } shadow)
        {
            if (!variants.ContainsKey(shadow.Variant))
            {
                errors.Add($"shadow.variant: expected a defined variant [{known}], actual '{shadow.Variant}'");
            }

            if (!double.IsFinite(shadow.Percent) || shadow.Percent < 0 || shadow.Percent > 100)
            {
                errors.Add($"shadow.percent: expected a number in [0, 100], actual {shadow.Percent}");
            }

            if (shadow.FlagThreshold is { } t && !double.IsFinite(t))
            {
                errors.Add($"shadow.flagThreshold: expected a finite number, actual {t}");
            }
        }

        if (Experiment is not null && (Experiment.Length == 0 || Experiment.Length > 128))
        {
            errors.Add($"experiment: expected 1-128 characters, actual {Experiment.Length}");
        }

        return errors;
    }
}
