using SparseInference.Deploy.Tests.Infrastructure;

namespace SparseInference.Deploy.Tests.Monitoring;

public sealed class PrometheusConfigTests
{
    private static readonly string ConfigPath = RepositoryLayout.PathOf("deploy", "prometheus", "prometheus.yml");

    [Fact]
    public void CheckConfig_ComposePrometheus_IsValid()
    {
        var result = Promtool.CheckConfig(ConfigPath);

        Assert.True(result.ExitCode == 0, result.Describe());
    }

    [Fact]
    public void ScrapeTargets_ComposePrometheus_UseTheServerMetricsPortOfEveryServerService()
    {
        var config = YamlDocuments.ParseSingle(File.ReadAllText(ConfigPath));
        var compose = YamlDocuments.ParseSingle(File.ReadAllText(RepositoryLayout.PathOf("docker-compose.yml")));

        var job = config["scrape_configs"]!.AsArray().Single(j => (string?)j!["job_name"] == "sparseinference")!;
        var targets = job["static_configs"]!.AsArray().SelectMany(s => s!["targets"]!.AsArray()).Select(t => (string)t!).Order().ToList();

        var servers = compose["services"]!.AsObject().Where(s => s.Value!["build"] is not null).Select(s => s.Key);
        Assert.Equal(servers.Select(s => $"{s}:{ServiceDefaults.Current.MetricsPort}").Order(), targets);
        Assert.Equal("/metrics", (string?)job["metrics_path"]);
    }

    [Fact]
    public void AdapterRule_QueueDepth_ServesTheMetricTheAutoscalerUses()
    {
        var rules = YamlDocuments.ParseSingle(File.ReadAllText(RepositoryLayout.PathOf("deploy", "prometheus", "prometheus-adapter-rules.yaml")));
        var hpa = YamlDocuments.ParseSingle(File.ReadAllText(RepositoryLayout.PathOf("k8s", "base", "horizontalpodautoscaler.yaml")));

        var served = rules["rules"]!.AsArray().Select(r => (string?)r!["name"]!["as"]).ToList();
        var used = hpa["spec"]!["metrics"]!.AsArray().Where(m => (string?)m!["type"] == "Pods").Select(m => (string?)m!["pods"]!["metric"]!["name"]);
        Assert.All(used, name => Assert.Contains(name, served));
        var rule = rules["rules"]!.AsArray().Single()!;
        var overrides = rule["resources"]!["overrides"]!.AsObject();
        Assert.Equal("pod", (string?)overrides["pod"]!["resource"]);
        Assert.Equal("namespace", (string?)overrides["namespace"]!["resource"]);
    }
}
