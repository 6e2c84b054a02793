using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SparseInference.Deploy.Tests.Infrastructure;

namespace SparseInference.Deploy.Tests.Monitoring;

public sealed partial class DashboardTests
{
    [Fact]
    public void Extract_Dashboards_FindsTheThreeDashboardsQueries()
    {
        var expressions = DashboardExpressions.All();

        Assert.Equal(
            ["SparseInference / Dense vs sparse", "SparseInference / Memory", "SparseInference / Service overview"],
            expressions.Select(e => e.Dashboard).Distinct().Order());
        Assert.All(expressions, e => Assert.DoesNotContain("$", e.Expression, StringComparison.Ordinal));
        Assert.Contains(expressions, e => e.Expression.StartsWith("histogram_quantile(0.99, sum by (le, model) (rate(sparseinference_request_duration_seconds_bucket", StringComparison.Ordinal));
    }

    [Fact]
    public void Substitute_GrafanaVariables_BecomeRangeAndMatchAll()
    {
        var expression = DashboardExpressions.Substitute("""rate(x{model=~"$model", variant=~"${variant}"}[$__rate_interval])""");

        Assert.Equal("""rate(x{model=~".*", variant=~".*"}[5m])""", expression);
    }

    [Fact]
    public void CheckRules_EveryDashboardExpression_ParsesInPromtool()
    {
        var expressions = DashboardExpressions.All();

        var result = Promtool.CheckExpressions(expressions.Select(e => e.Expression).ToList());

        Assert.True(result.ExitCode == 0, $"{result.Describe()}\n{string.Join('\n', expressions.Select((e, i) => $"#{i} {e}"))}");
        Assert.Contains($"SUCCESS: {expressions.Count} rules found", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckRules_BrokenExpression_IsRejected()
    {
        var result = Promtool.CheckExpressions(["sum by (model) (rate(sparseinference_requests_total[5m])"]);

        Assert.NotEqual(0, result.ExitCode);
    }

    [Fact]
    public void Metrics_EveryDashboardExpression_UsesOnlyKnownMetricNames()
    {
        var unknown = DashboardExpressions.All()
            .SelectMany(e => MetricNames(e.Expression).Select(m => (Metric: m, Where: e)))
            .Where(x => !AssumedMetrics.SeriesNames.Contains(x.Metric))
            .Select(x => $"{x.Metric} in {x.Where}")
            .ToList();

        Assert.True(unknown.Count == 0, string.Join('\n', unknown));
    }

    [Fact]
    public void MetricNames_ExpressionWithFunctionsMatchersAndOperators_FindsOnlyTheMetrics()
    {
        var names = MetricNames("""(sum by (model) (rate(a_total{outcome!="x or y", le="1"}[5m])) or 0 * max without (pod) (b_bytes)) / on (model) histogram_quantile(0.9, c_bucket)""");

        Assert.Equal(["a_total", "b_bytes", "c_bucket"], names.Order());
    }

    [Fact]
    public void Panels_EveryDashboard_UseTheProvisionedDatasourceAndUniqueIds()
    {
        var datasource = YamlDocuments.ParseSingle(File.ReadAllText(RepositoryLayout.PathOf("deploy", "grafana", "provisioning", "datasources", "prometheus.yml")));
        var uid = (string?)datasource["datasources"]![0]!["uid"];
        var uids = new HashSet<string>();

        foreach (var file in Directory.EnumerateFiles(DashboardExpressions.DashboardDirectory, "*.json"))
        {
            var dashboard = JsonNode.Parse(File.ReadAllText(file))!;
            Assert.True(uids.Add((string)dashboard["uid"]!), $"{file}: duplicate dashboard uid");
            var panels = dashboard["panels"]!.AsArray().Where(p => (string?)p!["type"] != "row").ToList();
            Assert.NotEmpty(panels);
            Assert.Equal(panels.Count, panels.Select(p => (int)p!["id"]!).Distinct().Count());
            Assert.All(panels, p => Assert.Equal(uid, (string?)p!["datasource"]!["uid"]));
            Assert.All(panels.SelectMany(p => p!["targets"]!.AsArray()), t => Assert.Equal(uid, (string?)t!["datasource"]!["uid"]));
        }
    }

    [Fact]
    public void Provider_DashboardProvisioning_PointsWhereComposeMountsTheDashboards()
    {
        var provider = YamlDocuments.ParseSingle(File.ReadAllText(RepositoryLayout.PathOf("deploy", "grafana", "provisioning", "dashboards", "sparseinference.yml")));
        var compose = YamlDocuments.ParseSingle(File.ReadAllText(RepositoryLayout.PathOf("docker-compose.yml")));

        var path = (string?)provider["providers"]![0]!["options"]!["path"];
        Assert.Contains($"./deploy/grafana/dashboards:{path}:ro", compose["services"]!["grafana"]!["volumes"]!.AsArray().Select(v => (string?)v));
    }

    /// <summary>PromQL words that are not metrics (operators, modifiers, special numbers).</summary>
    private static readonly HashSet<string> Keywords = new(StringComparer.OrdinalIgnoreCase)
    {
        "and", "or", "unless", "bool", "on", "ignoring", "group_left", "group_right", "offset", "inf", "nan",
    };

    /// <summary>Identifiers in metric position: not functions, keywords, label names or strings.</summary>
    internal static IEnumerable<string> MetricNames(string expression)
    {
        var withoutStrings = QuotedString().Replace(expression, "\"\"");
        var withoutMatchers = LabelMatchers().Replace(withoutStrings, "{}");
        var withoutGrouping = Grouping().Replace(withoutMatchers, "");
        return Identifier().Matches(withoutGrouping)
            .Where(m => !IsFollowedByParenthesis(withoutGrouping, m))
            .Select(m => m.Value)
            .Where(v => !Keywords.Contains(v));
    }

    private static bool IsFollowedByParenthesis(string text, Match match)
    {
        var rest = text[(match.Index + match.Length)..].TrimStart();
        return rest.StartsWith('(');
    }

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"")]
    private static partial Regex QuotedString();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex LabelMatchers();

    [GeneratedRegex(@"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")]
    private static partial Regex Grouping();

    [GeneratedRegex(@"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*(?![\w.])")]
    private static partial Regex Identifier();
}
