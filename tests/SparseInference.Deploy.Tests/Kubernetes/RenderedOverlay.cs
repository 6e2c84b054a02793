using System.Text.Json.Nodes;
using SparseInference.Deploy.Tests.Infrastructure;

namespace SparseInference.Deploy.Tests.Kubernetes;

/// <summary>One overlay rendered by <c>kubectl kustomize</c>, as text and as parsed manifests.</summary>
public sealed class RenderedOverlay
{
    private static readonly Dictionary<string, Lazy<RenderedOverlay>> Cache = new()
    {
        ["cpu"] = new(() => Render("cpu")),
        ["gpu"] = new(() => Render("gpu")),
    };

    private RenderedOverlay(string name, string yaml)
    {
        Name = name;
        Yaml = yaml;
        Manifests = YamlDocuments.Parse(yaml).Cast<JsonObject>().ToList();
    }

    public static IEnumerable<string> Names => Cache.Keys;

    public string Name { get; }

    public string Yaml { get; }

    public IReadOnlyList<JsonObject> Manifests { get; }

    public static RenderedOverlay Get(string name) => Cache[name].Value;

    public IEnumerable<JsonObject> OfKind(string kind) => Manifests.Where(m => (string?)m["kind"] == kind);

    public JsonObject Single(string kind, string? name = null)
    {
        var matches = OfKind(kind).Where(m => name is null || (string?)m["metadata"]?["name"] == name).ToList();
        return matches.Count == 1
            ? matches[0]
            : throw new InvalidDataException($"overlay {Name}: expected one {kind} {name}, actual {matches.Count}");
    }

    public JsonObject Deployment => Single("Deployment", "sparseinference");

    public JsonObject ServerContainer =>
        Deployment["spec"]!["template"]!["spec"]!["containers"]!.AsArray().Cast<JsonObject>()
            .Single(c => (string?)c["name"] == "server");

    public static RenderedOverlay Render(string name)
    {
        Validators.EnsureInstalled();
        var result = ExternalTool.Run("kubectl", ["kustomize", RepositoryLayout.PathOf("k8s", "overlays", name)]);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"kubectl kustomize k8s/overlays/{name}: {result.Describe()}");
        }

        return new RenderedOverlay(name, result.StandardOutput);
    }
}
