using System.Text.Json;
using System.Text.Json.Nodes;
using SparseInference.Deploy.Tests.Infrastructure;

namespace SparseInference.Deploy.Tests.Kubernetes;

/// <summary>The manifests agree with the server's defaults: ports, health endpoints, shutdown timing.</summary>
public sealed class ServiceContractTests
{
    private static readonly ServiceDefaults Defaults = ServiceDefaults.Current;

    public static TheoryData<string> Overlays => new(RenderedOverlay.Names);

    [Theory]
    [MemberData(nameof(Overlays))]
    public void ContainerPorts_Overlay_MatchServerDefaults(string overlay)
    {
        var ports = NamedPorts(RenderedOverlay.Get(overlay).ServerContainer);

        Assert.Equal(
            new Dictionary<string, int>
            {
                ["rest"] = Defaults.RestPort, ["grpc"] = Defaults.GrpcPort,
                ["metrics"] = Defaults.MetricsPort, ["admin"] = Defaults.AdminPort,
            },
            ports);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Probes_Overlay_LivenessOnTheRestPortReadinessThroughGrpcHealth(string overlay)
    {
        var server = RenderedOverlay.Get(overlay).ServerContainer;
        var ports = NamedPorts(server);

        foreach (var probe in new[] { "startupProbe", "livenessProbe" })
        {
            var httpGet = server[probe]?["httpGet"] ?? throw new Xunit.Sdk.XunitException($"{overlay}: {probe} with httpGet expected, actual none");
            Assert.Equal("/v2/health/live", (string?)httpGet["path"]);
            Assert.Equal(Defaults.RestPort, ResolvePort(httpGet["port"]!, ports));
        }

        // grpc.health.v1 on the gRPC port, overall status (no service name): the server answers it from readiness.
        var grpc = server["readinessProbe"]?["grpc"] ?? throw new Xunit.Sdk.XunitException($"{overlay}: readinessProbe with grpc expected, actual none");
        Assert.Equal(Defaults.GrpcPort, (long)grpc["port"]!);
        Assert.True(grpc["service"] is null || (string?)grpc["service"] == "", $"{overlay}: readinessProbe grpc.service: expected the overall status, actual '{grpc["service"]}'");
        Assert.Null(server["readinessProbe"]!["httpGet"]);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void TerminationGracePeriod_Overlay_ExceedsPreStopPlusDrainPlusShutdownTimeout(string overlay)
    {
        var rendered = RenderedOverlay.Get(overlay);
        var grace = (long)rendered.Deployment["spec"]!["template"]!["spec"]!["terminationGracePeriodSeconds"]!;
        var preStop = rendered.ServerContainer["lifecycle"]!["preStop"]!["exec"]!["command"]!.AsArray().Select(c => (string)c!).ToList();

        Assert.Equal("sleep", preStop[0]);
        var preStopSeconds = int.Parse(preStop[1], System.Globalization.CultureInfo.InvariantCulture);
        var needed = preStopSeconds + ServiceSetting(rendered, "Shutdown", "DrainDelaySeconds") + ServiceSetting(rendered, "Shutdown", "TimeoutSeconds");
        Assert.True(grace > needed,
            $"{overlay}: terminationGracePeriodSeconds {grace} must exceed preStop {preStopSeconds} + drain + shutdown timeout = {needed} ({Defaults.Source})");
        Assert.True(Defaults.DrainDelaySeconds + Defaults.ShutdownTimeoutSeconds + preStopSeconds < grace,
            $"{overlay}: the server defaults ({Defaults.Source}) need more than {grace}s");
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void ConfigMap_Overlay_RepeatsTheServerPortsAndShutdownDefaults(string overlay)
    {
        var rendered = RenderedOverlay.Get(overlay);

        Assert.Equal(Defaults.RestPort, ServiceSetting(rendered, "Ports", "Rest"));
        Assert.Equal(Defaults.GrpcPort, ServiceSetting(rendered, "Ports", "Grpc"));
        Assert.Equal(Defaults.MetricsPort, ServiceSetting(rendered, "Ports", "Metrics"));
        Assert.Equal(Defaults.AdminPort, ServiceSetting(rendered, "Ports", "Admin"));
        Assert.Equal(Defaults.DrainDelaySeconds, ServiceSetting(rendered, "Shutdown", "DrainDelaySeconds"));
        Assert.Equal(Defaults.ShutdownTimeoutSeconds, ServiceSetting(rendered, "Shutdown", "TimeoutSeconds"));
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Services_Overlay_ExposeInferenceAndMetricsApartFromAdmin(string overlay)
    {
        var rendered = RenderedOverlay.Get(overlay);
        var ports = NamedPorts(rendered.ServerContainer);

        var main = ServicePorts(rendered.Single("Service", "sparseinference"), ports);
        var admin = ServicePorts(rendered.Single("Service", "sparseinference-admin"), ports);

        Assert.Equal([Defaults.RestPort, Defaults.GrpcPort, Defaults.MetricsPort], main.Order());
        Assert.Equal([Defaults.AdminPort], admin);
        var headless = rendered.Single("Service", "sparseinference-headless");
        Assert.Equal("None", (string?)headless["spec"]!["clusterIP"]);
        Assert.DoesNotContain(Defaults.AdminPort, ServicePorts(headless, ports));
        Assert.Equal("ClusterIP", (string?)rendered.Single("Service", "sparseinference-admin")["spec"]!["type"]);
        var grpc = rendered.Single("Service", "sparseinference")["spec"]!["ports"]!.AsArray().Single(p => (string?)p!["name"] == "grpc")!;
        Assert.Equal("kubernetes.io/h2c", (string?)grpc["appProtocol"]);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Selectors_Overlay_SelectTheServerPods(string overlay)
    {
        var rendered = RenderedOverlay.Get(overlay);
        var podLabels = rendered.Deployment["spec"]!["template"]!["metadata"]!["labels"]!.AsObject();

        var selectors = new Dictionary<string, JsonNode?>
        {
            ["Deployment"] = rendered.Deployment["spec"]!["selector"]!["matchLabels"],
            ["Service/sparseinference"] = rendered.Single("Service", "sparseinference")["spec"]!["selector"],
            ["Service/sparseinference-admin"] = rendered.Single("Service", "sparseinference-admin")["spec"]!["selector"],
            ["Service/sparseinference-headless"] = rendered.Single("Service", "sparseinference-headless")["spec"]!["selector"],
            ["PodDisruptionBudget"] = rendered.Single("PodDisruptionBudget")["spec"]!["selector"]!["matchLabels"],
            ["NetworkPolicy"] = rendered.Single("NetworkPolicy")["spec"]!["podSelector"]!["matchLabels"],
        };
        foreach (var (owner, selector) in selectors)
        {
            Assert.NotNull(selector);
            foreach (var (key, value) in selector!.AsObject())
            {
                Assert.True(podLabels.TryGetPropertyValue(key, out var podValue) && (string?)podValue == (string?)value,
                    $"{overlay} {owner}: selector {key}={value} does not match the pod labels {podLabels.ToJsonString()}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void ServiceMonitor_Overlay_ScrapesTheMetricsPort(string overlay)
    {
        var rendered = RenderedOverlay.Get(overlay);
        var monitor = rendered.Single("ServiceMonitor");
        var endpoint = monitor["spec"]!["endpoints"]!.AsArray().Single()!;
        var servicePort = rendered.Single("Service", "sparseinference")["spec"]!["ports"]!.AsArray()
            .Single(p => (string?)p!["name"] == (string?)endpoint["port"])!;

        Assert.Equal("/metrics", (string?)endpoint["path"]);
        Assert.Equal(Defaults.MetricsPort, ResolvePort(servicePort["targetPort"]!, NamedPorts(rendered.ServerContainer)));
        foreach (var (key, value) in monitor["spec"]!["selector"]!["matchLabels"]!.AsObject())
        {
            Assert.Equal((string?)value, (string?)rendered.Single("Service", "sparseinference")["metadata"]!["labels"]![key]);
        }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void NetworkPolicy_Overlay_AdmitsAdminOnlyFromTheNamespaceOrOperators(string overlay)
    {
        var rendered = RenderedOverlay.Get(overlay);
        var ports = NamedPorts(rendered.ServerContainer);
        var rules = rendered.Single("NetworkPolicy")["spec"]!["ingress"]!.AsArray().Select(r => r!).ToList();

        var adminRules = rules.Where(r => r["ports"]!.AsArray().Any(p => ResolvePort(p!["port"]!, ports) == Defaults.AdminPort)).ToList();

        var adminRule = Assert.Single(adminRules);
        var sources = adminRule["from"]?.AsArray() ?? throw new Xunit.Sdk.XunitException("admin rule without 'from' admits everyone");
        Assert.All(sources, s => Assert.True(s!["podSelector"] is not null || s["namespaceSelector"]?["matchLabels"]?.AsObject().Count > 0,
            $"admin source {s!.ToJsonString()} must be this namespace's pods or labelled operator namespaces"));
        Assert.DoesNotContain(sources, s => s!["ipBlock"] is not null);
        Assert.Single(adminRule["ports"]!.AsArray());
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void HorizontalPodAutoscaler_Overlay_ScalesOnQueueDepthWithCpuFallback(string overlay)
    {
        var rendered = RenderedOverlay.Get(overlay);
        var spec = rendered.Single("HorizontalPodAutoscaler")["spec"]!;
        var metrics = spec["metrics"]!.AsArray().Select(m => m!).ToList();

        Assert.Equal("sparseinference", (string?)spec["scaleTargetRef"]!["name"]);
        Assert.Equal("Deployment", (string?)spec["scaleTargetRef"]!["kind"]);
        Assert.Contains(metrics, m => (string?)m["type"] == "Pods" && (string?)m["pods"]!["metric"]!["name"] == "sparseinference_queue_depth");
        Assert.Contains(metrics, m => (string?)m["type"] == "Resource" && (string?)m["resource"]!["name"] == "cpu");
        var min = (long)spec["minReplicas"]!;
        var maxUnavailable = (long)rendered.Single("PodDisruptionBudget")["spec"]!["maxUnavailable"]!;
        Assert.True(min > maxUnavailable, $"{overlay}: minReplicas {min} must exceed the disruption budget {maxUnavailable} so a drain keeps one replica serving");
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void PodSecurity_Overlay_RunsNonRootWithReadOnlyRootAndReadOnlyModels(string overlay)
    {
        var rendered = RenderedOverlay.Get(overlay);
        var pod = rendered.Deployment["spec"]!["template"]!["spec"]!;
        var server = rendered.ServerContainer;

        Assert.True((bool)pod["securityContext"]!["runAsNonRoot"]!);
        Assert.NotEqual(0L, (long)pod["securityContext"]!["runAsUser"]!);
        Assert.True((bool)server["securityContext"]!["readOnlyRootFilesystem"]!);
        Assert.False((bool)server["securityContext"]!["allowPrivilegeEscalation"]!);
        var models = server["volumeMounts"]!.AsArray().Single(v => (string?)v!["name"] == "models")!;
        Assert.True((bool)models["readOnly"]!);
        var repository = server["env"]!.AsArray().Single(e => (string?)e!["name"] == "SparseInference__ModelRepository")!;
        Assert.Equal((string?)models["mountPath"], (string?)repository["value"]);
        var token = server["env"]!.AsArray().Single(e => (string?)e!["name"] == "SparseInference__Admin__Token")!;
        Assert.StartsWith("sparseinference-admin-", (string?)token["valueFrom"]!["secretKeyRef"]!["name"], StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void StateVolume_Overlay_IsOneReadWriteManyClaimMountedWritableWhereTheServerKeepsItsState(string overlay)
    {
        var rendered = RenderedOverlay.Get(overlay);
        var pod = rendered.Deployment["spec"]!["template"]!["spec"]!;
        var server = rendered.ServerContainer;

        var directory = (string?)server["env"]!.AsArray().Single(e => (string?)e!["name"] == "SparseInference__State__Directory")!["value"];
        var mount = server["volumeMounts"]!.AsArray().Single(v => (string?)v!["mountPath"] == directory)!;
        Assert.NotEqual(true, (bool?)mount["readOnly"]);
        var volume = pod["volumes"]!.AsArray().Single(v => (string?)v!["name"] == (string?)mount["name"])!;
        var claimName = (string?)volume["persistentVolumeClaim"]!["claimName"];
        var claim = rendered.Single("PersistentVolumeClaim", claimName);
        // Every replica reads and writes the same documents: one claim, shared by all pods of the Deployment.
        Assert.Equal(["ReadWriteMany"], claim["spec"]!["accessModes"]!.AsArray().Select(m => (string?)m));
        // The server reads no Kubernetes API for it: no token in the pod, no RBAC objects.
        Assert.False((bool)pod["automountServiceAccountToken"]!);
        Assert.DoesNotContain(rendered.Manifests, m => ((string?)m["apiVersion"])?.StartsWith("rbac.authorization.k8s.io", StringComparison.Ordinal) == true);
    }

    private static Dictionary<string, int> NamedPorts(JsonNode container) =>
        container["ports"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => (int)(long)p!["containerPort"]!);

    private static int ResolvePort(JsonNode port, IReadOnlyDictionary<string, int> named) =>
        port.GetValueKind() == JsonValueKind.Number
            ? (int)(long)port
            : named.TryGetValue((string)port!, out var number)
                ? number
                : throw new Xunit.Sdk.XunitException($"port '{port}': expected one of the container's named ports [{string.Join(", ", named.Keys)}]");

    private static List<int> ServicePorts(JsonObject service, IReadOnlyDictionary<string, int> named) =>
        service["spec"]!["ports"]!.AsArray().Select(p =>
        {
            var target = ResolvePort(p!["targetPort"]!, named);
            Assert.Equal(target, (int)(long)p["port"]!);
            return target;
        }).ToList();

    private static int ServiceSetting(RenderedOverlay rendered, string section, string key)
    {
        var configMap = rendered.OfKind("ConfigMap").Single();
        var json = JsonNode.Parse((string)configMap["data"]!["appsettings.Production.json"]!)!;
        return (int)json["SparseInference"]![section]![key]!;
    }
}
