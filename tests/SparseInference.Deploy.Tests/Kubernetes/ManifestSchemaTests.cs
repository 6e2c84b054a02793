using SparseInference.Deploy.Tests.Infrastructure;

namespace SparseInference.Deploy.Tests.Kubernetes;

/// <summary>
/// Rendered manifests against the Kubernetes OpenAPI schemas (kubernetes-models) and the prometheus-operator
/// CRD schema, offline: types, formats, enums, required fields and undeclared fields.
/// </summary>
public sealed class ManifestSchemaTests
{
    public static TheoryData<string> Overlays => new(RenderedOverlay.Names);

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Validate_RenderedOverlay_HasNoSchemaFindings(string overlay)
    {
        var findings = Validators.Kubernetes(RenderedOverlay.Get(overlay).Yaml);

        Assert.True(findings.Count == 0, $"overlay {overlay}:\n{string.Join('\n', findings)}");
    }

    [Fact]
    public void Validate_MisspelledProbeField_IsReported()
    {
        var yaml = RenderedOverlay.Get("cpu").Yaml.Replace("readinessProbe:", "readinesProbe:", StringComparison.Ordinal);

        var findings = Validators.Kubernetes(yaml);

        Assert.Contains(findings, f => f.Path == "/spec/template/spec/containers/0/readinesProbe");
    }

    [Fact]
    public void Validate_ServiceMonitorUnknownField_IsReported()
    {
        var yaml = RenderedOverlay.Get("cpu").Yaml.Replace("scrapeTimeout:", "scrapeTimout:", StringComparison.Ordinal);

        var findings = Validators.Kubernetes(yaml);

        Assert.Contains(findings, f => f.Document == "ServiceMonitor/sparseinference" && f.Path.EndsWith("/scrapeTimout", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_StringWhereIntegerExpected_IsReported()
    {
        var yaml = RenderedOverlay.Get("cpu").Yaml.Replace("maxReplicas: 10", "maxReplicas: ten", StringComparison.Ordinal);

        var findings = Validators.Kubernetes(yaml);

        Assert.Contains(findings, f => f.Document == "HorizontalPodAutoscaler/sparseinference" && f.Path == "/spec/maxReplicas");
    }

    [Fact]
    public void Validate_MissingRequiredField_IsReported()
    {
        const string yaml = """
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: broken
            spec:
              selector:
                matchLabels: {app: x}
            """;

        var findings = Validators.Kubernetes(yaml);

        Assert.Contains(findings, f => f.Document == "Deployment/broken" && f.Message.Contains("template", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_KindWithoutRegisteredSchema_IsReported()
    {
        const string yaml = """
            apiVersion: example.com/v1
            kind: Widget
            metadata:
              name: w
            """;

        var findings = Validators.Kubernetes(yaml);

        Assert.Contains(findings, f => f.Message.Contains("no schema registered for example.com/v1/Widget", StringComparison.Ordinal));
    }
}
