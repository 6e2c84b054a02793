using SparseInference.Models;

namespace SparseInference.Serving.Variants.Comparison;

/// <summary>How far a candidate's output is from the primary's on one shadowed request.</summary>
/// <param name="FlagAgreements">Elements where both or neither exceed the threshold (0 when no threshold).</param>
/// <param name="FlagTotal">Elements compared for flags (0 when no threshold).</param>
public readonly record struct ComparisonSample(double MeanAbsoluteError, double MaxError, long FlagAgreements, long FlagTotal)
{
    public double? FlagAgreementRatio => FlagTotal == 0 ? null : (double)FlagAgreements / FlagTotal;
}

public static class OutputComparer
{
    /// <summary>
    /// Element-wise comparison of two outputs of the same shape. A value above <paramref name="flagThreshold"/>
    /// is an anomaly flag; agreement counts elements where both variants flag or both do not.
    /// </summary>
    public static ComparisonSample Compare(ForwardResult primary, ForwardResult candidate, double? flagThreshold)
    {
        if (!primary.Shape.AsSpan().SequenceEqual(candidate.Shape) || primary.Output.Length != candidate.Output.Length)
        {
            throw new InvalidOperationException(
                $"shadow output shape: expected [{string.Join(", ", primary.Shape)}] like the primary, actual [{string.Join(", ", candidate.Shape)}]");
        }

        var p = primary.Output;
        var c = candidate.Output;
        double sum = 0, max = 0;
        long agree = 0;
        for (var i = 0; i < p.Length; i++)
        {
            double error = Math.Abs((double)p[i] - c[i]);
            if (double.IsNaN(error))
            {
                error = double.PositiveInfinity;
            }

            sum += error;
            if (error > max)
            {
                max = error;
            }

            if (flagThreshold is { } t && (p[i] > t) == (c[i] > t))
            {
                agree++;
            }
        }

        return new ComparisonSample(p.Length == 0 ? 0 : sum / p.Length, max, agree, flagThreshold is null ? 0 : p.Length);
    }
}
