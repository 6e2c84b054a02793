using System.Globalization;
using System.Text.RegularExpressions;

namespace SparseInference.Server.FunctionalTests.Observability;

/// <summary>One sample line of the Prometheus text format.</summary>
public sealed record MetricSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public bool Has(string label, string value) => Labels.TryGetValue(label, out var actual) && actual == value;
}

/// <summary>A parsed scrape of /metrics, for exact assertions on series values.</summary>
public sealed partial class MetricsExposition(IReadOnlyList<MetricSample> samples)
{
    public IReadOnlyList<MetricSample> Samples => samples;

    public static MetricsExposition Parse(string text)
    {
        var result = new List<MetricSample>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var match = SampleLine().Match(line);
            if (!match.Success)
            {
                throw new FormatException($"metrics line: expected 'name{{labels}} value', actual '{line}'");
            }

            var labels = LabelPair().Matches(match.Groups["labels"].Value)
                .ToDictionary(m => m.Groups["name"].Value, m => m.Groups["value"].Value.Replace("\\\"", "\"").Replace("\\\\", "\\"), StringComparer.Ordinal);
            result.Add(new MetricSample(match.Groups["name"].Value, labels, ParseValue(match.Groups["value"].Value)));
        }

        return new MetricsExposition(result);
    }

    /// <summary>Samples of <paramref name="name"/> whose labels include every pair of <paramref name="labels"/>.</summary>
    public IReadOnlyList<MetricSample> Where(string name, params (string Label, string Value)[] labels) =>
        samples.Where(s => s.Name == name && labels.All(l => s.Has(l.Label, l.Value))).ToList();

    /// <summary>The sum over the matching samples; 0 when none match.</summary>
    public double Sum(string name, params (string Label, string Value)[] labels) => Where(name, labels).Sum(s => s.Value);

    private static double ParseValue(string text) => text switch
    {
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        "NaN" => double.NaN,
        _ => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture),
    };

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})?\s+(?<value>\S+)(\s+\d+)?$")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"(?<name>[a-zA-Z_][a-zA-Z0-9_]*)=""(?<value>(\\.|[^""\\])*)""")]
    private static partial Regex LabelPair();
}
