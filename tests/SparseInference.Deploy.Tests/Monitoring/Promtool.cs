using System.Text;
using SparseInference.Deploy.Tests.Infrastructure;

namespace SparseInference.Deploy.Tests.Monitoring;

/// <summary>Prometheus' own checker: expressions through a temporary rules file, configs as they are.</summary>
public static class Promtool
{
    public static ToolResult CheckExpressions(IReadOnlyList<string> expressions)
    {
        var rules = new StringBuilder("groups:\n  - name: dashboard-expressions\n    rules:\n");
        for (var i = 0; i < expressions.Count; i++)
        {
            // Block scalars keep quotes and braces of the expression out of YAML's way.
            rules.Append("      - record: dashboard:expression_").Append(i).Append('\n')
                 .Append("        expr: |-\n          ").Append(expressions[i].ReplaceLineEndings(" ")).Append('\n');
        }

        Validators.EnsureInstalled();
        var file = Path.Combine(Path.GetTempPath(), $"dashboard-rules-{Guid.NewGuid():N}.yml");
        File.WriteAllText(file, rules.ToString());
        try
        {
            return ExternalTool.Run("promtool", ["check", "rules", file]);
        }
        finally
        {
            File.Delete(file);
        }
    }

    public static ToolResult CheckConfig(string path)
    {
        Validators.EnsureInstalled();
        return ExternalTool.Run("promtool", ["check", "config", "--syntax-only", path]);
    }
}
