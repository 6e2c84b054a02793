using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace SparseInference.Serving.Baselines;

/// <summary>
/// What one line's scores are calibrated with (docs/baselines.md): the per-channel mean and deviation that standardize
/// its raw readings into the model's input, and for every variant of the model version it was computed with, the
/// per-channel mean and deviation of that variant's reconstruction residuals on the line's onboarding stretch and the
/// threshold its flags use. Immutable; <see cref="BaselineCalibrator"/> makes one, <see cref="LineScoring"/> applies it.
/// </summary>
public sealed record LineBaseline
{
    public const string FormatName = "sparseinference-line-baseline";
    public const int CurrentFormatVersion = 1;
    public const int MaxLineLength = 256;

    [JsonPropertyOrder(-2)]
    public string Format { get; init; } = FormatName;

    [JsonPropertyOrder(-1)]
    public int FormatVersion { get; init; } = CurrentFormatVersion;

    /// <summary>The line's key: the routing key its requests carry (<c>line_id</c>).</summary>
    public required string Line { get; init; }

    /// <summary>Assigned by the store that keeps the baseline: 1 for a line's first, one more per replacement; 0 before.</summary>
    public long Revision { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>The model and version whose weights computed the residual statistics.</summary>
    public required string Model { get; init; }

    public required string ModelVersion { get; init; }

    /// <summary>How many onboarding rows it was computed from.</summary>
    public required int Rows { get; init; }

    /// <summary>The score rule of the model (its <c>metadata.line_baseline</c>) at calibration time.</summary>
    public required BaselineRule Rule { get; init; }

    /// <summary>Per channel: the onboarding rows' mean, in raw units.</summary>
    public required ImmutableArray<double> InputMean { get; init; }

    /// <summary>Per channel: the onboarding rows' population standard deviation, in raw units (never 0).</summary>
    public required ImmutableArray<double> InputStd { get; init; }

    /// <summary>Per variant name: the residual statistics and threshold of that variant on this line.</summary>
    public required ImmutableSortedDictionary<string, VariantBaseline> Variants { get; init; }

    [JsonIgnore]
    public int Channels => InputMean.Length;

    /// <summary>The threshold's nominal false-alarm rate on the onboarding stretch (before the margin).</summary>
    [JsonIgnore]
    public double FalseAlarmRate => Rule.FalseAlarmRate;

    public string ToJson() => JsonSerializer.Serialize(this, BaselineJsonContext.Default.LineBaseline);

    /// <summary>Reads a baseline written by <see cref="ToJson"/>; anything inconsistent is an <see cref="InvalidDataException"/> naming the field.</summary>
    public static LineBaseline FromJson(ReadOnlySpan<byte> json, string source)
    {
        LineBaseline? baseline;
        try
        {
            baseline = JsonSerializer.Deserialize(json, BaselineJsonContext.Default.LineBaseline);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{source}: not a line baseline: {ex.Message}", ex);
        }

        if (baseline is null)
            throw new InvalidDataException($"{source}: expected a JSON object, got null.");
        baseline.Validate(source);
        return baseline;
    }

    /// <summary>Checks what a baseline must hold to be applied; the message names the field, expected and actual value.</summary>
    public void Validate(string source)
    {
        if (Format != FormatName)
            throw new InvalidDataException($"{source}: format must be '{FormatName}', got '{Format}'.");
        if (FormatVersion != CurrentFormatVersion)
            throw new InvalidDataException($"{source}: format_version must be {CurrentFormatVersion}, got {FormatVersion}.");
        if (LineProblem(Line) is { } problem)
            throw new InvalidDataException($"{source}: line {problem}");
        if (string.IsNullOrEmpty(Model) || string.IsNullOrEmpty(ModelVersion))
            throw new InvalidDataException($"{source}: model and model_version must be non-empty.");
        if (Revision < 0)
            throw new InvalidDataException($"{source}: revision must be non-negative, got {Revision}.");
        if (Rule is null)
            throw new InvalidDataException($"{source}: rule is missing.");
        Rule.Validate($"{source}: rule");
        if (Rows < Rule.MinimumRows)
            throw new InvalidDataException($"{source}: rows must be at least the rule's minimum_rows {Rule.MinimumRows}, got {Rows}.");
        var channels = InputMean.IsDefault ? 0 : InputMean.Length;
        if (channels == 0)
            throw new InvalidDataException($"{source}: input_mean must list one value per channel, got none.");
        CheckValues(InputMean, channels, $"{source}: input_mean", positive: false);
        CheckValues(InputStd, channels, $"{source}: input_std", positive: true);
        if (Variants is null || Variants.Count == 0)
            throw new InvalidDataException($"{source}: variants must hold at least one variant.");
        foreach (var (name, variant) in Variants)
        {
            var at = $"{source}: variants.{name}";
            if (variant is null)
                throw new InvalidDataException($"{at} is null.");
            CheckValues(variant.ResidualMean, channels, $"{at}.residual_mean", positive: false);
            CheckValues(variant.ResidualStd, channels, $"{at}.residual_std", positive: true);
            if (!double.IsFinite(variant.Threshold) || variant.Threshold <= 0)
                throw new InvalidDataException($"{at}.threshold must be a positive number, got {variant.Threshold.ToString("R", CultureInfo.InvariantCulture)}.");
        }
    }

    /// <summary>Why <paramref name="line"/> cannot key a baseline (non-empty, at most <see cref="MaxLineLength"/> characters, no control characters); null when it can.</summary>
    public static string? LineProblem(string? line) =>
        string.IsNullOrWhiteSpace(line) ? "must be a non-empty string."
        : line.Length > MaxLineLength ? $"must be at most {MaxLineLength} characters, got {line.Length}."
        : line.Any(char.IsControl) ? "must not hold control characters."
        : null;

    private static void CheckValues(ImmutableArray<double> values, int channels, string what, bool positive)
    {
        var count = values.IsDefault ? 0 : values.Length;
        if (count != channels)
            throw new InvalidDataException($"{what} must list {channels} values (one per channel), got {count}.");
        for (var c = 0; c < channels; c++)
        {
            if (!double.IsFinite(values[c]) || (positive && values[c] <= 0))
                throw new InvalidDataException($"{what}[{c}] must be a {(positive ? "positive" : "finite")} number, got {values[c].ToString("R", CultureInfo.InvariantCulture)}.");
        }
    }
}

/// <summary>One variant's calibration on a line: its residual statistics on the onboarding stretch and its threshold.</summary>
public sealed record VariantBaseline
{
    /// <summary>The attention the variant ran with when it was calibrated (pattern and sparsity), for the record.</summary>
    public required string Pattern { get; init; }

    public required double Sparsity { get; init; }

    /// <summary>Per channel: mean of the residual (output − standardized input) over the scored positions of the onboarding windows.</summary>
    public required ImmutableArray<double> ResidualMean { get; init; }

    /// <summary>Per channel: population deviation of that residual, floored at the rule's <c>residual_std_floor</c>.</summary>
    public required ImmutableArray<double> ResidualStd { get; init; }

    /// <summary>The (1 − false_alarm_rate) quantile of the onboarding windows' point scores.</summary>
    public required double OnboardingQuantile { get; init; }

    /// <summary>Margin × <see cref="OnboardingQuantile"/>: a row is flagged when its point score exceeds it.</summary>
    public required double Threshold { get; init; }
}
