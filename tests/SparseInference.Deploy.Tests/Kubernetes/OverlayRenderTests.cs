namespace SparseInference.Deploy.Tests.Kubernetes;

public sealed class OverlayRenderTests
{
    public static TheoryData<string> Overlays => new(RenderedOverlay.Names);

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Render_Overlay_ProducesEveryResourceOfTheDeployment(string overlay)
    {
        var rendered = RenderedOverlay.Get(overlay);

        var kinds = rendered.Manifests.Select(m => $"{m["kind"]}/{m["metadata"]!["name"]}").Order().ToList();

        // Generated ConfigMap and Secret names carry a content hash suffix.
        Assert.Contains(kinds, k => k.StartsWith("ConfigMap/sparseinference-config-", StringComparison.Ordinal));
        Assert.Contains(kinds, k => k.StartsWith("Secret/sparseinference-admin-", StringComparison.Ordinal));
        Assert.Equal(
            [
                "Deployment/sparseinference", "HorizontalPodAutoscaler/sparseinference", "NetworkPolicy/sparseinference",
                "PersistentVolumeClaim/sparseinference-state", "PodDisruptionBudget/sparseinference", "Service/sparseinference", "Service/sparseinference-admin", "Service/sparseinference-headless",
                "ServiceAccount/sparseinference", "ServiceMonitor/sparseinference",
            ],
            kinds.Where(k => !k.StartsWith("ConfigMap/", StringComparison.Ordinal) && !k.StartsWith("Secret/", StringComparison.Ordinal)));
        Assert.All(rendered.Manifests, m => Assert.Equal("sparseinference", (string?)m["metadata"]!["namespace"]));
    }

    [Fact]
    public void Render_GpuOverlay_RequestsOneGpuAndTheCudaImage()
    {
        var server = RenderedOverlay.Get("gpu").ServerContainer;

        Assert.Equal(1L, (long?)server["resources"]!["limits"]!["nvidia.com/gpu"]);
        Assert.Equal("sparseinference-server:cuda", (string?)server["image"]);
        Assert.Contains(server["env"]!.AsArray(), e => (string?)e!["name"] == "SparseInference__Device" && (string?)e["value"] == "cuda");
        var tolerations = RenderedOverlay.Get("gpu").Deployment["spec"]!["template"]!["spec"]!["tolerations"]!.AsArray();
        Assert.Contains(tolerations, t => (string?)t!["key"] == "nvidia.com/gpu");
    }

    [Fact]
    public void Render_CpuOverlay_RequestsNoGpuAndTheCpuImage()
    {
        var rendered = RenderedOverlay.Get("cpu");

        Assert.DoesNotContain("nvidia.com/gpu", rendered.Yaml, StringComparison.Ordinal);
        Assert.Equal("sparseinference-server:cpu", (string?)rendered.ServerContainer["image"]);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Render_Overlay_InitContainerUsesTheServerImage(string overlay)
    {
        var rendered = RenderedOverlay.Get(overlay);
        var init = rendered.Deployment["spec"]!["template"]!["spec"]!["initContainers"]!.AsArray().Single()!;

        // The seeded models must come from the image that serves them.
        Assert.Equal((string?)rendered.ServerContainer["image"], (string?)init["image"]);
    }
}
