using System.Collections.Immutable;
using System.Globalization;
using SparseInference.Models;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Baselines;

/// <summary>Onboarding was refused; the message names the problem (and the row and channel where there is one). Nothing was changed.</summary>
public sealed class OnboardingException(string message) : Exception(message);

/// <summary>One variant a baseline is calibrated for: its name, the weights it runs on and its attention.</summary>
public sealed record CalibrationVariant(string Name, IInferenceModel Model, AttentionSpec Attention);

/// <summary>The model version a baseline is computed with: its identity, score rule and the variants it serves.</summary>
public sealed record CalibrationTarget(string Model, string ModelVersion, BaselineRule Rule, int Channels, IReadOnlyList<CalibrationVariant> Variants)
{
    /// <summary>
    /// Every variant of a loaded version, on the version's weights. A version without <c>metadata.line_baseline</c>, or
    /// with a variant that runs on weights of its own (pass those through <see cref="For(ModelVersion, IReadOnlyList{CalibrationVariant})"/>),
    /// cannot be onboarded.
    /// </summary>
    public static CalibrationTarget For(ModelVersion version)
    {
        ArgumentNullException.ThrowIfNull(version);
        var rule = RuleOf(version);
        var ownWeights = version.Manifest.Variants.FirstOrDefault(v => v.Weights is not null);
        if (ownWeights is not null)
            throw new InvalidOperationException($"{Source(version)}: variant '{ownWeights.Name}' runs on weights of its own; list its model in the calibration target.");
        return new CalibrationTarget(
            version.ModelName,
            version.Version,
            rule,
            version.Configuration.InputChannels,
            [.. version.Variants.Select(v => new CalibrationVariant(v.Key, version.Model, v.Value))]);
    }

    /// <summary>
    /// The given <paramref name="variants"/> of a loaded version (e.g. those a server serves now, run-time ones and
    /// those on weights of their own included), with the version's rule. A version without <c>metadata.line_baseline</c>
    /// cannot be onboarded.
    /// </summary>
    public static CalibrationTarget For(ModelVersion version, IReadOnlyList<CalibrationVariant> variants)
    {
        ArgumentNullException.ThrowIfNull(version);
        return new CalibrationTarget(version.ModelName, version.Version, RuleOf(version), version.Configuration.InputChannels, variants);
    }

    private static BaselineRule RuleOf(ModelVersion version)
    {
        BaselineRule? rule;
        try
        {
            rule = BaselineRule.FromConfiguration(version.Configuration, $"{Source(version)} config.json");
        }
        catch (InvalidDataException ex)
        {
            throw new OnboardingException($"{ex.Message} It cannot be onboarded.");
        }

        if (rule is null || !ModelTensorContract.HasScore(version.Configuration))
            throw new OnboardingException($"{Source(version)} states no metadata.{BaselineRule.MetadataKey} (a reconstruction model on continuous input): it cannot be onboarded.");
        return rule;
    }

    private static string Source(ModelVersion version) => $"model '{version.ModelName}' version {version.Version}";
}

/// <summary>
/// Computes a line's <see cref="LineBaseline"/> from a stretch of its raw normal rows by running the real model on it
/// (docs/baselines.md; the offline reference is tools/train/skab_baseline.py <c>fit_line</c>):
/// standardize with the stretch's own mean and deviation; run every window of <see cref="BaselineRule.Window"/> rows
/// ending at each row through each variant; residual statistics over the last <see cref="BaselineRule.Positions"/>
/// positions; threshold = margin × the (1 − false-alarm rate) quantile of the windows' point scores.
/// </summary>
public sealed class BaselineCalibrator(TimeProvider time)
{
    /// <summary>Windows per forward while calibrating.</summary>
    public const int ForwardBatch = 64;

    /// <summary>
    /// The baseline of <paramref name="line"/> from <paramref name="rows"/> (raw readings, one array per row, channels in the
    /// model's input order). Bad data is an <see cref="OnboardingException"/> naming the problem.
    /// </summary>
    public LineBaseline Calibrate(string line, CalibrationTarget target, IReadOnlyList<double[]> rows)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(rows);
        if (LineBaseline.LineProblem(line) is { } problem)
            throw new OnboardingException($"line {problem}");
        if (target.Variants.Count == 0)
            throw new OnboardingException($"model '{target.Model}' version {target.ModelVersion} serves no variant to calibrate.");
        var rule = target.Rule;
        var channels = target.Channels;
        Check(rows, rule, channels);

        var n = rows.Count;
        var mean = new double[channels];
        var std = new double[channels];
        for (var c = 0; c < channels; c++)
        {
            double sum = 0;
            for (var r = 0; r < n; r++)
                sum += rows[r][c];
            mean[c] = sum / n;
            double squares = 0;
            for (var r = 0; r < n; r++)
            {
                var d = rows[r][c] - mean[c];
                squares += d * d;
            }

            std[c] = Math.Sqrt(squares / n);
        }

        var z = new float[n * channels];
        for (var r = 0; r < n; r++)
        {
            for (var c = 0; c < channels; c++)
                z[(r * channels) + c] = (float)((rows[r][c] - mean[c]) / std[c]);
        }

        var variants = ImmutableSortedDictionary.CreateBuilder<string, VariantBaseline>(StringComparer.Ordinal);
        foreach (var variant in target.Variants)
            variants[variant.Name] = CalibrateVariant(variant, rule, z, n, channels);

        return new LineBaseline
        {
            Line = line,
            CreatedAt = time.GetUtcNow(),
            Model = target.Model,
            ModelVersion = target.ModelVersion,
            Rows = n,
            Rule = rule,
            InputMean = [.. mean],
            InputStd = [.. std],
            Variants = variants.ToImmutable(),
        };
    }

    private static void Check(IReadOnlyList<double[]> rows, BaselineRule rule, int channels)
    {
        if (rows.Count < rule.MinimumRows)
        {
            throw new OnboardingException(
                $"onboarding data: {rows.Count} rows, expected at least {rule.MinimumRows} (the model scores windows of {rule.Window} rows; its rule was validated with {rule.ValidatedRows}).");
        }

        for (var r = 0; r < rows.Count; r++)
        {
            var row = rows[r] ?? throw new OnboardingException($"onboarding data: row {r} is missing.");
            if (row.Length != channels)
                throw new OnboardingException($"onboarding data: row {r} has {row.Length} values, expected {channels} (one per channel{ChannelList(rule)}).");
            for (var c = 0; c < channels; c++)
            {
                if (!double.IsFinite(row[c]))
                    throw new OnboardingException($"onboarding data: row {r} channel {rule.ChannelName(c)} is {row[c].ToString(CultureInfo.InvariantCulture)}; every value must be a finite number.");
            }
        }

        for (var c = 0; c < channels; c++)
        {
            var first = rows[0][c];
            var constant = true;
            for (var r = 1; r < rows.Count && constant; r++)
                constant = rows[r][c] == first;
            if (constant)
            {
                throw new OnboardingException(
                    $"onboarding data: channel {rule.ChannelName(c)} is constant ({first.ToString("R", CultureInfo.InvariantCulture)} in all {rows.Count} rows); a baseline divides by each channel's deviation, so every channel must vary.");
            }
        }
    }

    private static string ChannelList(BaselineRule rule) => rule.Channels.Length == 0 ? "" : ": " + string.Join(", ", rule.Channels);

    private static VariantBaseline CalibrateVariant(CalibrationVariant variant, BaselineRule rule, float[] z, int rows, int channels)
    {
        var window = rule.Window;
        var positions = rule.Positions;
        var windows = rows - window + 1;
        // residuals (output − input) of the last `positions` positions of every window ending at rows [window − 1, rows)
        var residuals = new double[windows * positions * channels];
        var valuesPerWindow = window * channels;
        for (var first = 0; first < windows; first += ForwardBatch)
        {
            var count = Math.Min(ForwardBatch, windows - first);
            var input = new float[count * valuesPerWindow];
            for (var i = 0; i < count; i++)
                Array.Copy(z, (first + i) * channels, input, i * valuesPerWindow, valuesPerWindow);
            var result = variant.Model.Forward(new ForwardInput { Batch = count, Time = window, Values = input }, variant.Attention);
            if (result.Output.Length != input.Length)
            {
                throw new InvalidOperationException(
                    $"variant '{variant.Name}' returned {result.Output.Length} values for {count} windows of {window}×{channels}; a line baseline needs a reconstruction output.");
            }

            for (var i = 0; i < count; i++)
            {
                var from = (i * valuesPerWindow) + ((window - positions) * channels);
                var to = (first + i) * positions * channels;
                for (var j = 0; j < positions * channels; j++)
                    residuals[to + j] = result.Output[from + j] - input[from + j];
            }
        }

        var samples = windows * positions;
        var mean = new double[channels];
        var std = new double[channels];
        for (var c = 0; c < channels; c++)
        {
            double sum = 0;
            for (var s = 0; s < samples; s++)
                sum += residuals[(s * channels) + c];
            mean[c] = sum / samples;
            double squares = 0;
            for (var s = 0; s < samples; s++)
            {
                var d = residuals[(s * channels) + c] - mean[c];
                squares += d * d;
            }

            std[c] = Math.Max(Math.Sqrt(squares / samples), rule.ResidualStdFloor);
        }

        var points = new double[windows];
        for (var w = 0; w < windows; w++)
        {
            double sum = 0;
            for (var p = 0; p < positions; p++)
                sum += LineScoring.TimestepScore(residuals.AsSpan(((w * positions) + p) * channels, channels), mean, std);
            points[w] = sum / positions;
        }

        var quantile = Quantile(points, 1.0 - rule.FalseAlarmRate);
        return new VariantBaseline
        {
            Pattern = variant.Attention.Pattern,
            Sparsity = variant.Attention.Sparsity,
            ResidualMean = [.. mean],
            ResidualStd = [.. std],
            OnboardingQuantile = quantile,
            Threshold = rule.Margin * quantile,
        };
    }

    /// <summary>The q quantile with linear interpolation between closest ranks (NumPy's default).</summary>
    public static double Quantile(IEnumerable<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        var h = (sorted.Length - 1) * q;
        var lo = (int)Math.Floor(h);
        var hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + ((h - lo) * (sorted[hi] - sorted[lo]));
    }
}
