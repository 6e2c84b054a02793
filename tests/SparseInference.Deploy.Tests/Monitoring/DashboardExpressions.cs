using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SparseInference.Deploy.Tests.Infrastructure;

namespace SparseInference.Deploy.Tests.Monitoring;

/// <summary>One PromQL query of a dashboard panel.</summary>
/// <param name="Template">The query as stored, with Grafana variables.</param>
/// <param name="Expression">The query with variables replaced, ready for Prometheus.</param>
public sealed record DashboardExpression(string Dashboard, string Panel, string RefId, string Template, string Expression)
{
    public override string ToString() => $"{Dashboard} / {Panel} / {RefId}: {Expression}";
}

/// <summary>
/// Every PromQL expression of the Grafana dashboards in deploy/grafana/dashboards, with Grafana's
/// variables substituted so that Prometheus can parse and evaluate them: interval variables become
/// <see cref="DefaultRange"/>, template variables (used as <c>=~"$model"</c>) become <c>.*</c>.
/// Used by the syntax check here and by end-to-end checks that evaluate them against a live Prometheus.
/// </summary>
public static partial class DashboardExpressions
{
    public const string DefaultRange = "5m";

    public static string DashboardDirectory => RepositoryLayout.PathOf("deploy", "grafana", "dashboards");

    public static IReadOnlyList<DashboardExpression> All() =>
        Directory.EnumerateFiles(DashboardDirectory, "*.json").Order(StringComparer.Ordinal).SelectMany(Extract).ToList();

    public static IReadOnlyList<DashboardExpression> Extract(string dashboardPath)
    {
        var dashboard = JsonNode.Parse(File.ReadAllText(dashboardPath))
            ?? throw new InvalidDataException($"{dashboardPath}: expected a dashboard object, actual null");
        var name = (string?)dashboard["title"] ?? Path.GetFileName(dashboardPath);
        var result = new List<DashboardExpression>();
        foreach (var panel in Panels(dashboard["panels"]?.AsArray()))
        {
            foreach (var target in panel["targets"]?.AsArray() ?? [])
            {
                if (target?["expr"] is { } expr)
                {
                    var template = (string)expr!;
                    result.Add(new DashboardExpression(name, (string?)panel["title"] ?? "", (string?)target["refId"] ?? "", template, Substitute(template)));
                }
            }
        }

        return result;
    }

    public static string Substitute(string template)
    {
        var withRanges = IntervalVariable().Replace(template, DefaultRange);
        return TemplateVariable().Replace(withRanges, ".*");
    }

    /// <summary>Panels, including those nested in collapsed rows.</summary>
    private static IEnumerable<JsonNode> Panels(JsonArray? panels)
    {
        foreach (var panel in panels ?? [])
        {
            if (panel is null)
            {
                continue;
            }

            yield return panel;
            foreach (var nested in Panels(panel["panels"]?.AsArray()))
            {
                yield return nested;
            }
        }
    }

    [GeneratedRegex(@"\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval|range)\}")]
    private static partial Regex IntervalVariable();

    [GeneratedRegex(@"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")]
    private static partial Regex TemplateVariable();
}
