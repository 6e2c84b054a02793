using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Factorization;
using SparseInference.Serving.Baselines;

namespace SparseInference.Evaluate;

/// <summary>
/// The classical detectors reported beside every variant (tools/train/skab_baseline.py <c>hotelling_points</c>,
/// <c>pca_points</c>), with the same per-line onboarding and the model's rule: fitted on the line's onboarding rows
/// (standardized as the model's input is), a statistic per row, its mean over the last <see cref="BaselineRule.Positions"/>
/// rows, flagged above margin × the (1 − false-alarm rate) quantile of that mean over the onboarding rows
/// [window − 1, onboarding end).
/// </summary>
public static class ClassicalDetectors
{
    public const string Hotelling = "hotelling-t2";
    public const string PcaT2Q = "pca-t2q";

    /// <summary>Share of the onboarding variance the PCA keeps.</summary>
    public const double PcaVariance = 0.9;

    public static IReadOnlyList<string> Names { get; } = [Hotelling, PcaT2Q];

    /// <summary>The test rows' flags of one line.</summary>
    public static bool[] Flags(string detector, SkabExperiment line, SkabDetector protocol, BaselineRule rule)
    {
        var z = Rows(line);
        var onboarding = z.SubMatrix(0, SkabData.TrainRows, 0, z.ColumnCount);
        var mean = onboarding.ColumnSums() / onboarding.RowCount;
        var centred = z - Matrix<double>.Build.Dense(z.RowCount, z.ColumnCount, (_, c) => mean[c]);
        var centredOnboarding = centred.SubMatrix(0, SkabData.TrainRows, 0, z.ColumnCount);
        var covariance = centredOnboarding.TransposeThisAndMultiply(centredOnboarding) / onboarding.RowCount;
        IEnumerable<double[]> statistics = detector switch
        {
            Hotelling => [HotellingT2(centred, covariance)],
            PcaT2Q => PcaStatistics(centred, covariance),
            _ => throw new ArgumentException($"unknown detector '{detector}'; expected one of [{string.Join(", ", Names)}].", nameof(detector)),
        };
        var flags = new bool[line.Rows - protocol.FirstTestRow];
        foreach (var statistic in statistics)
        {
            var points = TrailingMean(statistic, rule.Positions);
            var threshold = rule.Margin * BaselineCalibrator.Quantile(points[(protocol.Window - 1)..SkabData.TrainRows], 1.0 - rule.FalseAlarmRate);
            for (var t = 0; t < flags.Length; t++)
                flags[t] |= points[protocol.FirstTestRow + t] > threshold;
        }

        return flags;
    }

    private static Matrix<double> Rows(SkabExperiment line)
    {
        var channels = SkabData.Features.Count;
        return Matrix<double>.Build.Dense(line.Rows, channels, (r, c) => line.Standardized[(r * channels) + c]);
    }

    /// <summary>d' Σ⁻¹ d per row, divided by the channel count (the model score's scale).</summary>
    private static double[] HotellingT2(Matrix<double> centred, Matrix<double> covariance)
    {
        var regularized = covariance + (1e-9 * Matrix<double>.Build.DenseIdentity(covariance.RowCount));
        var scaled = centred * regularized.Inverse();
        var t2 = new double[centred.RowCount];
        for (var r = 0; r < t2.Length; r++)
            t2[r] = scaled.Row(r).DotProduct(centred.Row(r)) / centred.ColumnCount;
        return t2;
    }

    /// <summary>T² on the components that keep <see cref="PcaVariance"/> of the variance (divided by their count), and Q, the squared residual off them.</summary>
    private static double[][] PcaStatistics(Matrix<double> centred, Matrix<double> covariance)
    {
        var evd = covariance.Evd(Symmetricity.Symmetric);
        var order = Enumerable.Range(0, covariance.RowCount).OrderByDescending(i => evd.EigenValues[i].Real).ToArray();
        var values = order.Select(i => evd.EigenValues[i].Real).ToArray();
        var total = values.Sum();
        var keep = 0;
        for (double cumulative = 0; keep < values.Length;)
        {
            cumulative += values[keep++];
            if (cumulative / total >= PcaVariance)
                break;
        }

        var basis = Matrix<double>.Build.Dense(covariance.RowCount, keep, (r, c) => evd.EigenVectors[r, order[c]]);
        var scores = centred * basis;
        var residual = centred - scores.TransposeAndMultiply(basis);
        var t2 = new double[centred.RowCount];
        var q = new double[centred.RowCount];
        for (var r = 0; r < t2.Length; r++)
        {
            for (var c = 0; c < keep; c++)
                t2[r] += scores[r, c] * scores[r, c] / values[c];
            t2[r] /= keep;
            q[r] = residual.Row(r).DotProduct(residual.Row(r));
        }

        return [t2, q];
    }

    /// <summary>mean of x[t − k + 1 .. t] (fewer at the start).</summary>
    private static double[] TrailingMean(double[] x, int k)
    {
        var result = new double[x.Length];
        double sum = 0;
        for (var t = 0; t < x.Length; t++)
        {
            sum += x[t];
            if (t >= k)
                sum -= x[t - k];
            result[t] = sum / Math.Min(t + 1, k);
        }

        return result;
    }
}
