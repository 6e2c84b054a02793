using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SparseInference.Server.FunctionalTests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Observability;

/// <summary>One panel query of a Grafana dashboard, with Grafana's variables replaced so Prometheus can run it.</summary>
public sealed record DashboardQuery(string Dashboard, string Panel, string RefId, string Expression)
{
    public override string ToString() => $"{Dashboard} / {Panel} / {RefId}: {Expression}";
}

/// <summary>Every PromQL expression of deploy/grafana/dashboards/*.json: ranges become 1m, template variables <c>.*</c>.</summary>
public static partial class DashboardQueries
{
    public static IReadOnlyList<DashboardQuery> All()
    {
        var directory = Path.Combine(RepositoryPaths.Root, "deploy", "grafana", "dashboards");
        var result = new List<DashboardQuery>();
        foreach (var path in Directory.EnumerateFiles(directory, "*.json").Order(StringComparer.Ordinal))
        {
            var dashboard = JsonNode.Parse(File.ReadAllText(path))!;
            var name = (string?)dashboard["title"] ?? Path.GetFileName(path);
            foreach (var panel in Panels(dashboard["panels"]?.AsArray()))
            {
                foreach (var target in panel["targets"]?.AsArray() ?? [])
                {
                    if (target?["expr"] is { } expr)
                    {
                        result.Add(new DashboardQuery(name, (string?)panel["title"] ?? "", (string?)target["refId"] ?? "", Substitute((string)expr!)));
                    }
                }
            }
        }

        return result;
    }

    // A short range keeps rate() over the few seconds of traffic a test drives; 5m in a panel shows the same series.
    private static string Substitute(string template) =>
        TemplateVariable().Replace(FixedRange().Replace(IntervalVariable().Replace(template, "1m"), "[1m]"), ".*");

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

    [GeneratedRegex(@"\[\d+[smh]\]")]
    private static partial Regex FixedRange();

    [GeneratedRegex(@"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")]
    private static partial Regex TemplateVariable();
}
