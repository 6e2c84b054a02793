using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Baselines;

/// <summary>
/// How a model's scores are calibrated per line, as its <c>config.json</c> states under <c>metadata.line_baseline</c>
/// (written by tools/train/train_skab.py, which validated these values): the window a score is computed on, how many
/// of its last positions a flag averages, the false-alarm rate the threshold is set for on the onboarding stretch and
/// the margin over it, the floor of a channel's residual deviation, and the fewest onboarding rows accepted.
/// </summary>
public sealed record BaselineRule
{
    public const string MetadataKey = "line_baseline";

    /// <summary>Rows per window: the onboarding stretch is scored as the windows of this length ending at each of its rows.</summary>
    public required int Window { get; init; }

    /// <summary>A row is flagged on the mean per-timestep score over the last this many positions up to it.</summary>
    public required int Positions { get; init; }

    /// <summary>Threshold = <see cref="Margin"/> × the (1 − this) quantile of the onboarding windows' point scores.</summary>
    public required double FalseAlarmRate { get; init; }

    public required double Margin { get; init; }

    /// <summary>Smallest residual deviation a channel is divided by, in standardized input units.</summary>
    public required double ResidualStdFloor { get; init; }

    /// <summary>Fewest onboarding rows accepted; the rule was validated with <see cref="ValidatedRows"/>.</summary>
    public required int MinimumRows { get; init; }

    public required int ValidatedRows { get; init; }

    /// <summary>Channel names in input order, when the model's metadata lists them (<c>features</c>); empty otherwise.</summary>
    public ImmutableArray<string> Channels { get; init; } = [];

    /// <summary>Checks the values a rule must hold; the message names the field, expected and actual value.</summary>
    public void Validate(string source)
    {
        static string Text(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        if (Window < 1)
            throw new InvalidDataException($"{source}: window must be at least 1, got {Window}.");
        if (Positions < 1 || Positions > Window)
            throw new InvalidDataException($"{source}: positions must be between 1 and window {Window}, got {Positions}.");
        if (!(FalseAlarmRate >= 0 && FalseAlarmRate < 1))
            throw new InvalidDataException($"{source}: false_alarm_rate must be in [0, 1), got {Text(FalseAlarmRate)}.");
        if (!(Margin > 0) || !double.IsFinite(Margin))
            throw new InvalidDataException($"{source}: margin must be a positive number, got {Text(Margin)}.");
        if (!(ResidualStdFloor > 0) || !double.IsFinite(ResidualStdFloor))
            throw new InvalidDataException($"{source}: residual_std_floor must be a positive number, got {Text(ResidualStdFloor)}.");
        if (MinimumRows < Window)
            throw new InvalidDataException($"{source}: minimum_rows must be at least window {Window}, got {MinimumRows}.");
        if (ValidatedRows < MinimumRows)
            throw new InvalidDataException($"{source}: validated_rows must be at least minimum_rows {MinimumRows}, got {ValidatedRows}.");
    }

    /// <summary>
    /// The rule of a model from its configuration's metadata; null when the model states none (it cannot be
    /// onboarded). Malformed metadata is an <see cref="InvalidDataException"/> naming the field.
    /// </summary>
    public static BaselineRule? FromConfiguration(ModelConfiguration configuration, string source)
    {
        if (configuration.Metadata is not { ValueKind: JsonValueKind.Object } metadata
            || !metadata.TryGetProperty(MetadataKey, out var rule))
        {
            return null;
        }

        var at = $"{source}: metadata.{MetadataKey}";
        if (rule.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{at} must be an object, got {rule.ValueKind}.");
        var channels = ImmutableArray<string>.Empty;
        if (metadata.TryGetProperty("features", out var features) && features.ValueKind == JsonValueKind.Array)
        {
            channels = [.. features.EnumerateArray().Select(f => f.GetString() ?? "")];
            if (channels.Length != configuration.InputChannels)
                throw new InvalidDataException($"{source}: metadata.features lists {channels.Length} names, expected input_channels {configuration.InputChannels}.");
        }

        var result = new BaselineRule
        {
            Window = Int(rule, "window", at),
            Positions = Int(rule, "positions", at),
            FalseAlarmRate = Number(rule, "false_alarm_rate", at),
            Margin = Number(rule, "margin", at),
            ResidualStdFloor = Number(rule, "residual_std_floor", at),
            MinimumRows = Int(rule, "minimum_rows", at),
            ValidatedRows = Int(rule, "validated_rows", at),
            Channels = channels,
        };
        result.Validate(at);
        if (result.Window > configuration.MaxSeqLen)
            throw new InvalidDataException($"{at}.window must be at most max_seq_len {configuration.MaxSeqLen}, got {result.Window}.");
        return result;
    }

    /// <summary>The name of channel <paramref name="c"/> for messages: <c>2 ('Current')</c>, or the index alone.</summary>
    public string ChannelName(int c) =>
        c < Channels.Length && Channels[c].Length > 0 ? $"{c} ('{Channels[c]}')" : c.ToString(CultureInfo.InvariantCulture);

    private static int Int(JsonElement rule, string name, string at) =>
        rule.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var n)
            ? n
            : throw new InvalidDataException($"{at}.{name} must be an integer.");

    private static double Number(JsonElement rule, string name, string at) =>
        rule.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number
            ? v.GetDouble()
            : throw new InvalidDataException($"{at}.{name} must be a number.");
}
