using System.Diagnostics.Metrics;
using System.Text;

namespace SparseInference.Server.Observability.Metrics;

/// <summary>
/// The Prometheus name of a <see cref="System.Diagnostics.Metrics"/> instrument, following OpenTelemetry's Prometheus
/// compatibility rules: dots become underscores, the unit becomes a suffix (<c>s</c> → <c>_seconds</c>, <c>By</c> →
/// <c>_bytes</c>, <c>1</c> on a gauge → <c>_ratio</c>), counters end in <c>_total</c>. These names are the contract the
/// dashboards, alert rules and adapter rules read.
/// </summary>
public static class PrometheusNames
{
    /// <summary>Replaces characters outside <c>[a-zA-Z0-9_:]</c> by '_', collapses repeats and keeps the first character legal.</summary>
    public static string SanitizeMetricName(string name) => Sanitize(name, allowColon: true);

    /// <summary>Replaces characters outside <c>[a-zA-Z0-9_]</c> by '_' and keeps the first character legal.</summary>
    public static string SanitizeLabelName(string name) => Sanitize(name, allowColon: false);

    /// <summary>The Prometheus name of an instrument: sanitised, unit appended, <c>_total</c> on monotonic counters.</summary>
    public static string MetricName(Instrument instrument, PrometheusType type)
    {
        ArgumentNullException.ThrowIfNull(instrument);
        var name = SanitizeMetricName(instrument.Name);
        var suffix = UnitSuffix(instrument.Unit, type);
        if (suffix.Length > 0 && !name.EndsWith("_" + suffix, StringComparison.Ordinal))
        {
            // Keep "_total" last: strip it before the unit and put it back after.
            var hadTotal = type == PrometheusType.Counter && name.EndsWith("_total", StringComparison.Ordinal);
            if (hadTotal)
                name = name[..^"_total".Length];
            name = name + "_" + suffix;
        }
        if (type == PrometheusType.Counter && !name.EndsWith("_total", StringComparison.Ordinal))
            name += "_total";
        return name;
    }

    /// <summary>Suffix for a UCUM unit: base units spelled out, annotations such as <c>{request}</c> dropped.</summary>
    public static string UnitSuffix(string? unit, PrometheusType type)
    {
        if (string.IsNullOrWhiteSpace(unit))
            return string.Empty;
        // Annotations in braces carry no unit.
        var withoutAnnotations = new StringBuilder(unit.Length);
        var depth = 0;
        foreach (var c in unit)
        {
            if (c == '{')
                depth++;
            else if (c == '}')
                depth = Math.Max(0, depth - 1);
            else if (depth == 0)
                withoutAnnotations.Append(c);
        }
        var bare = withoutAnnotations.ToString().Trim();
        return bare switch
        {
            "" => string.Empty,
            "1" => type == PrometheusType.Gauge ? "ratio" : string.Empty,
            "s" => "seconds",
            "ms" => "milliseconds",
            "us" => "microseconds",
            "ns" => "nanoseconds",
            "min" => "minutes",
            "h" => "hours",
            "d" => "days",
            "By" => "bytes",
            "KiBy" => "kibibytes",
            "MiBy" => "mebibytes",
            "GiBy" => "gibibytes",
            "KBy" => "kilobytes",
            "MBy" => "megabytes",
            "GBy" => "gigabytes",
            "%" => "percent",
            "Hz" => "hertz",
            "m" => "meters",
            "V" => "volts",
            "W" => "watts",
            "A" => "amperes",
            "Cel" => "celsius",
            _ when bare.Contains('/') => UnitSuffix(bare[..bare.IndexOf('/')], PrometheusType.Untyped) + "_per_" + PerUnit(bare[(bare.IndexOf('/') + 1)..]),
            _ => SanitizeLabelName(bare).Trim('_'),
        };
    }

    private static string PerUnit(string unit) => unit switch
    {
        "s" => "second",
        "min" => "minute",
        "h" => "hour",
        "d" => "day",
        _ => SanitizeLabelName(unit).Trim('_'),
    };

    private static string Sanitize(string name, bool allowColon)
    {
        if (string.IsNullOrEmpty(name))
            return "_";
        var builder = new StringBuilder(name.Length + 1);
        var previousUnderscore = false;
        foreach (var c in name)
        {
            var legal = c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_' || (allowColon && c == ':');
            var next = legal ? c : '_';
            if (next == '_' && previousUnderscore)
                continue;
            builder.Append(next);
            previousUnderscore = next == '_';
        }
        if (char.IsAsciiDigit(builder[0]))
            builder.Insert(0, '_');
        return builder.ToString();
    }
}

/// <summary>Prometheus metric family types.</summary>
public enum PrometheusType
{
    Counter,
    Gauge,
    Histogram,
    Untyped,
}
