using System.Text.Json;

namespace SparseInference.Deploy.Tests.Infrastructure;

/// <summary>One problem reported by deploy/ci/validate.mjs.</summary>
public sealed record Finding(string Document, string Path, string Message)
{
    public override string ToString() => $"{Document} {Path}: {Message}";
}

/// <summary>
/// The offline schema validators in deploy/ci (Kubernetes and prometheus-operator schemas, the Compose
/// specification, Dockerfile lint), installed on first use by deploy/ci/install-validators.sh.
/// </summary>
public static class Validators
{
    private static readonly Lazy<string> Script = new(Install);

    /// <summary>Runs the install script once per test run, so kubectl, promtool and Compose are there too.</summary>
    public static void EnsureInstalled() => _ = Script.Value;

    public static IReadOnlyList<Finding> Kubernetes(string renderedYaml) => Validate(["k8s"], renderedYaml);

    public static IReadOnlyList<Finding> Compose(string path) => Validate(["compose", path], null);

    public static IReadOnlyList<Finding> Dockerfile(string path) => Validate(["dockerfile", path], null);

    private static IReadOnlyList<Finding> Validate(string[] arguments, string? input)
    {
        var result = ExternalTool.Run("node", [Script.Value, .. arguments], input);
        if (result.ExitCode is not (0 or 1))
        {
            throw new InvalidOperationException($"validate.mjs {string.Join(' ', arguments)} failed: {result.Describe()}");
        }

        return JsonSerializer.Deserialize<List<Finding>>(result.StandardOutput, new JsonSerializerOptions(JsonSerializerDefaults.Web))
            ?? throw new InvalidOperationException($"validate.mjs printed no findings array: {result.Describe()}");
    }

    private static string Install()
    {
        var ci = RepositoryLayout.PathOf("deploy", "ci");
        var install = ExternalTool.Run("bash", [Path.Combine(ci, "install-validators.sh")], timeout: TimeSpan.FromMinutes(10));
        if (install.ExitCode != 0)
        {
            throw new InvalidOperationException($"deploy/ci/install-validators.sh failed: {install.Describe()}");
        }

        return Path.Combine(ci, "validate.mjs");
    }
}
