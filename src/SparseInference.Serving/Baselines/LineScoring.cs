using System.Globalization;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Baselines;

/// <summary>
/// How one request's readings become model input and its outputs become <c>score</c> and <c>anomaly</c>, with or
/// without a line baseline (docs/baselines.md):
/// <list type="bullet">
/// <item>Without one (no line key, or a line never onboarded): as before baselines existed — the input is taken as
/// already standardized, <c>score</c> is the mean over channels of the squared residual, <c>anomaly</c> compares each
/// score with the model's <c>anomaly_threshold</c>; the response says <c>baseline: "none"</c>.</item>
/// <item>With one: the input is raw readings, standardized with the line's mean and deviation; <c>output</c> is the
/// reconstruction in raw units; <c>score</c> is the calibrated per-timestep score (mean over channels of the squared
/// residual normalized by the line's residual statistics for the variant that ran); <c>anomaly</c> at position t is
/// the mean score over the last <see cref="BaselineRule.Positions"/> positions up to t (fewer at the window's start)
/// above the line's threshold; the response names the baseline applied.</item>
/// </list>
/// </summary>
public sealed class LineScoring
{
    /// <summary>
    /// Response parameter: <c>"none"</c> or <c>"line"</c> (a line baseline was applied). As a request parameter,
    /// <c>"none"</c> asks to ignore the line's baseline (input already standardized, as without one) and <c>"line"</c>
    /// (the default) to apply it when the line has one.
    /// </summary>
    public const string BaselineParameter = "baseline";
    public const string BaselineNone = "none";
    public const string BaselineApplied = "line";

    /// <summary>Response parameters present when a baseline was applied.</summary>
    public const string LineParameter = "baseline_line";
    public const string RevisionParameter = "baseline_revision";
    public const string CreatedAtParameter = "baseline_created_at";

    /// <summary>Response parameter, with a baseline: the line's threshold the <c>anomaly</c> output was computed with.</summary>
    public const string ThresholdParameter = "anomaly_threshold";

    private static readonly InferenceParameter NoneParameter = InferenceParameter.Of(BaselineNone);

    private readonly int _channels;
    private readonly double? _threshold;
    private readonly VariantBaseline? _variant;

    private LineScoring(int channels, double? threshold, LineBaseline? baseline, VariantBaseline? variant)
    {
        _channels = channels;
        _threshold = threshold;
        Baseline = baseline;
        _variant = variant;
    }

    /// <summary>The baseline applied; null when none was.</summary>
    public LineBaseline? Baseline { get; }

    /// <summary>The threshold <see cref="Anomaly"/> compares with; null when the model has none and no baseline applies.</summary>
    public double? Threshold => _threshold;

    /// <summary>
    /// Whether the request lets a line baseline apply: true unless its <c>baseline</c> parameter is <c>"none"</c>. Any
    /// other value than <c>"line"</c> or <c>"none"</c> is an invalid-argument <see cref="InferenceException"/>.
    /// </summary>
    public static bool BaselineAllowed(IReadOnlyDictionary<string, InferenceParameter> requestParameters)
    {
        if (!requestParameters.TryGetValue(BaselineParameter, out var parameter))
            return true;
        return parameter.Value switch
        {
            BaselineApplied => true,
            BaselineNone => false,
            _ => throw InferenceException.Invalid($"parameter '{BaselineParameter}' must be the string '{BaselineApplied}' or '{BaselineNone}', got {parameter.KindName} {parameter}."),
        };
    }

    /// <summary>No baseline: the model's behaviour as configured.</summary>
    public static LineScoring WithoutBaseline(ModelConfiguration configuration) =>
        new(configuration.InputChannels, configuration.AnomalyThreshold, null, null);

    /// <summary>
    /// The line's baseline, for a request served by <paramref name="model"/> version <paramref name="version"/> through
    /// <paramref name="variant"/>. A baseline computed with another model, version or channel count, or without that
    /// variant, would give meaningless scores: that is an invalid-argument <see cref="InferenceException"/> telling
    /// the caller to onboard the line again.
    /// </summary>
    public static LineScoring With(LineBaseline baseline, string model, string version, string variant, ModelConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(baseline);
        var which = $"the baseline of line '{baseline.Line}' (revision {baseline.Revision}, created {Created(baseline)})";
        if (baseline.Model != model || baseline.ModelVersion != version)
        {
            throw InferenceException.Invalid(
                $"{which} was computed with model '{baseline.Model}' version {baseline.ModelVersion}, but model '{model}' version {version} serves this request: onboard the line again for it.");
        }

        if (baseline.Channels != configuration.InputChannels)
            throw InferenceException.Invalid($"{which} has {baseline.Channels} channels, but model '{model}' takes {configuration.InputChannels}: onboard the line again.");
        if (!baseline.Variants.TryGetValue(variant, out var calibration))
        {
            throw InferenceException.Invalid(
                $"{which} holds variants [{string.Join(", ", baseline.Variants.Keys)}], not variant '{variant}' that serves this request: onboard the line again to calibrate it.");
        }

        return new LineScoring(configuration.InputChannels, calibration.Threshold, baseline, calibration);
    }

    /// <summary>
    /// The model's input from the request's values [batch, time, channels]: with a baseline, the raw readings
    /// standardized with the line's mean and deviation (a new array); without, the values themselves.
    /// </summary>
    public float[] ModelInput(float[] values)
    {
        if (Baseline is null)
            return values;
        var mean = Baseline.InputMean;
        var std = Baseline.InputStd;
        var input = new float[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            var c = i % _channels;
            input[i] = (float)((values[i] - mean[c]) / std[c]);
        }

        return input;
    }

    /// <summary>The <c>output</c> tensor: with a baseline, the reconstruction mapped back to raw units (a new array); without, the model's output.</summary>
    public float[] Output(float[] output)
    {
        if (Baseline is null)
            return output;
        var mean = Baseline.InputMean;
        var std = Baseline.InputStd;
        var raw = new float[output.Length];
        for (var i = 0; i < output.Length; i++)
        {
            var c = i % _channels;
            raw[i] = (float)((output[i] * std[c]) + mean[c]);
        }

        return raw;
    }

    /// <summary>The per-timestep <c>score</c> [batch × time] from the model's input and output (both standardized when a baseline applies).</summary>
    public float[] Score(float[] input, float[] output)
    {
        if (_variant is null)
            return InferenceService.ReconstructionScore(input, output, _channels);
        var mean = _variant.ResidualMean.AsSpan();
        var std = _variant.ResidualStd.AsSpan();
        var steps = input.Length / _channels;
        var residual = new double[_channels];
        var score = new float[steps];
        for (var s = 0; s < steps; s++)
        {
            var offset = s * _channels;
            for (var c = 0; c < _channels; c++)
                residual[c] = output[offset + c] - input[offset + c];
            score[s] = (float)TimestepScore(residual, mean, std);
        }

        return score;
    }

    /// <summary>
    /// The <c>anomaly</c> flags [batch × time] from <see cref="Score"/>'s scores; null when there is no threshold. With a
    /// baseline, position t is flagged when the mean score over positions [max(0, t − positions + 1), t] of its sequence
    /// exceeds the threshold; without, when its own score does. A NaN score (the reconstruction overflowed) flags too: it
    /// is certainly not normal.
    /// </summary>
    public bool[]? Anomaly(float[] score, int time)
    {
        if (_threshold is not { } threshold)
            return null;
        var flags = new bool[score.Length];
        if (Baseline is null)
        {
            for (var i = 0; i < score.Length; i++)
                flags[i] = !(score[i] <= threshold);
            return flags;
        }

        var positions = Baseline.Rule.Positions;
        for (var start = 0; start < score.Length; start += time)
        {
            for (var t = 0; t < time; t++)
            {
                var from = Math.Max(0, t - positions + 1);
                double sum = 0;
                for (var p = from; p <= t; p++)
                    sum += score[start + p];
                flags[start + t] = !(sum / (t - from + 1) <= threshold);
            }
        }

        return flags;
    }

    /// <summary>What the response says about the baseline: <c>baseline</c>, and with one its line, revision, creation time and threshold.</summary>
    public IReadOnlyDictionary<string, InferenceParameter> ResponseParameters()
    {
        var parameters = new Dictionary<string, InferenceParameter>(StringComparer.Ordinal);
        AddResponseParameters(parameters);
        return parameters;
    }

    /// <summary>Adds <see cref="ResponseParameters"/> to a response's parameters.</summary>
    public void AddResponseParameters(IDictionary<string, InferenceParameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (Baseline is null)
        {
            parameters[BaselineParameter] = NoneParameter;
            return;
        }

        parameters[BaselineParameter] = InferenceParameter.Of(BaselineApplied);
        parameters[LineParameter] = InferenceParameter.Of(Baseline.Line);
        parameters[RevisionParameter] = InferenceParameter.Of(Baseline.Revision);
        parameters[CreatedAtParameter] = InferenceParameter.Of(Created(Baseline));
        parameters[ThresholdParameter] = InferenceParameter.Of(_threshold!.Value);
    }

    /// <summary>Mean over channels of ((residual − mean) / std)².</summary>
    internal static double TimestepScore(ReadOnlySpan<double> residual, ReadOnlySpan<double> mean, ReadOnlySpan<double> std)
    {
        double sum = 0;
        for (var c = 0; c < residual.Length; c++)
        {
            var d = (residual[c] - mean[c]) / std[c];
            sum += d * d;
        }

        return sum / residual.Length;
    }

    private static string Created(LineBaseline baseline) => baseline.CreatedAt.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);
}
