using System.Globalization;
using System.Text.Json;
using nietras.SeparatedValues;

namespace SparseInference.Serving.Baselines;

/// <summary>
/// A line's onboarding rows as callers send them (docs/baselines.md, <i>Admin API</i>): JSON <c>{"rows": [[x₁, …, x_C], …]}</c>
/// in the model's channel order, or CSV with a header row naming the channels (the model's <c>metadata.features</c>; other
/// columns are ignored, the separator is detected: <c>;</c> as SKAB writes it, <c>,</c>, tab or <c>|</c>). Shared by the admin
/// API and the offline onboarding tool. Problems are <see cref="OnboardingException"/>s naming the line, column and value;
/// the data's content (NaN, constant channels, too few rows) is the calibrator's to judge.
/// </summary>
public static class OnboardingData
{
    /// <summary>Raw rows as JSON: <c>{"rows": [[…], …], "channels"?: [names]}</c>.</summary>
    public const string JsonMediaType = "application/json";

    /// <summary>Raw rows as CSV with a header row.</summary>
    public const string CsvMediaType = "text/csv";

    /// <summary>A baseline computed elsewhere (<see cref="LineBaseline.ToJson"/>, the offline tool), stored as it is.</summary>
    public const string BaselineMediaType = "application/vnd.sparseinference.line-baseline+json";

    /// <summary>
    /// The channel columns of a CSV (by the header's names, in <paramref name="channels"/> order) of every data row; at most
    /// <paramref name="maxRows"/> rows. <paramref name="channels"/> empty (a model without <c>metadata.features</c>) is refused:
    /// columns cannot be matched by name, the caller sends JSON rows instead.
    /// </summary>
    public static IReadOnlyList<double[]> ReadCsv(TextReader reader, IReadOnlyList<string> channels, int maxRows)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(channels);
        if (channels.Count == 0)
            throw new OnboardingException("onboarding data: the model names no channels (metadata.features), so CSV columns cannot be matched; send JSON rows in the model's channel order.");
        var rows = new List<double[]>();
        try
        {
            using var csv = Sep.Reader(o => o with { Unescape = true, Trim = SepTrim.Outer, DisableColCountCheck = true }).From(reader);
            if (csv.Header.IsEmpty)
                throw new OnboardingException($"onboarding data: the CSV is empty; expected a header row naming the channels [{string.Join(", ", channels)}], then one row per reading.");
            var names = csv.Header.ColNames;
            var columns = new int[channels.Count];
            var missing = new List<string>();
            for (var c = 0; c < channels.Count; c++)
            {
                columns[c] = IndexOf(names, channels[c]);
                if (columns[c] < 0)
                    missing.Add(channels[c]);
            }

            if (missing.Count > 0)
            {
                throw new OnboardingException(
                    $"onboarding data: the CSV header lacks channel{(missing.Count > 1 ? "s" : "")} [{string.Join(", ", missing)}]; expected columns [{string.Join(", ", channels)}] (others are ignored), got [{string.Join(", ", names)}].");
            }

            foreach (var row in csv)
            {
                if (rows.Count == maxRows)
                    throw TooMany(maxRows);
                var line = row.LineNumberFrom;
                var values = new double[channels.Count];
                for (var c = 0; c < channels.Count; c++)
                {
                    if (columns[c] >= row.ColCount)
                        throw new OnboardingException($"onboarding data: CSV line {line} has {row.ColCount} fields, expected {names.Count} as the header.");
                    var cell = row[columns[c]].Span;
                    if (!double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out values[c]))
                        throw new OnboardingException($"onboarding data: CSV line {line} column '{channels[c]}': expected a number, got '{cell}'.");
                }

                rows.Add(values);
            }
        }
        catch (InvalidDataException ex)
        {
            // Sep's own refusals (e.g. an unterminated quote).
            throw new OnboardingException($"onboarding data: not a readable CSV: {ex.Message}");
        }

        return rows;
    }

    /// <summary>
    /// The rows of a JSON body <c>{"rows": [[…], …]}</c>: numbers, or the strings <c>"NaN"</c> and <c>"Infinity"</c> (refused
    /// by the calibrator by row and channel). When the body names its <c>channels</c>, they must be the model's, in order.
    /// </summary>
    public static IReadOnlyList<double[]> ReadJson(ReadOnlySpan<byte> json, IReadOnlyList<string> channels, int maxRows)
    {
        ArgumentNullException.ThrowIfNull(channels);
        OnboardingRowsBody? body;
        try
        {
            body = JsonSerializer.Deserialize(json, OnboardingJsonContext.Default.OnboardingRowsBody);
        }
        catch (JsonException ex)
        {
            throw new OnboardingException($"onboarding data: expected {{\"rows\": [[number, …], …]}} with one array per reading holding {Count(channels)}, got invalid JSON: {ex.Message}");
        }

        if (body?.Rows is not { } rows)
            throw new OnboardingException($"onboarding data: expected {{\"rows\": [[number, …], …]}} with one array per reading holding {Count(channels)}, got no 'rows'.");
        if (rows.Length > maxRows)
            throw TooMany(maxRows);
        if (body.Channels is { } named && channels.Count > 0 && !named.SequenceEqual(channels, StringComparer.Ordinal))
            throw new OnboardingException($"onboarding data: channels must be the model's, in its order: [{string.Join(", ", channels)}], got [{string.Join(", ", named)}].");
        return rows;
    }

    private static string Count(IReadOnlyList<string> channels) =>
        channels.Count == 0 ? "one number per channel" : $"{channels.Count} numbers ({string.Join(", ", channels)})";

    private static OnboardingException TooMany(int maxRows) =>
        new($"onboarding data: more than {maxRows} rows; send at most {maxRows} (the rule was validated on a few hundred rows of normal operation).");

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (var i = 0; i < names.Count; i++)
        {
            if (string.Equals(names[i], name, StringComparison.Ordinal))
                return i;
        }

        return -1;
    }
}

/// <summary>The JSON body of an onboarding request.</summary>
internal sealed class OnboardingRowsBody
{
    public double[][]? Rows { get; set; }

    /// <summary>Optional: the channel names of the rows' columns, checked against the model's.</summary>
    public string[]? Channels { get; set; }
}
