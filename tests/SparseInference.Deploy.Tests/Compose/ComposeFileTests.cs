using System.Text.Json.Nodes;
using SparseInference.Deploy.Tests.Infrastructure;

namespace SparseInference.Deploy.Tests.Compose;

/// <summary>docker-compose.yml against the Compose specification schema and the server's defaults.</summary>
public sealed class ComposeFileTests
{
    private static readonly string ComposePath = RepositoryLayout.PathOf("docker-compose.yml");

    private static JsonNode Compose => YamlDocuments.ParseSingle(File.ReadAllText(ComposePath));

    [Fact]
    public void Validate_ComposeFile_MatchesTheComposeSpecification()
    {
        var findings = Validators.Compose(ComposePath);

        Assert.True(findings.Count == 0, string.Join('\n', findings));
    }

    [Fact]
    public void Validate_MalformedDuration_IsReported()
    {
        var broken = Path.Combine(Path.GetTempPath(), $"compose-{Guid.NewGuid():N}.yml");
        File.WriteAllText(broken, File.ReadAllText(ComposePath).Replace("stop_grace_period: 45s", "stop_grace_period: 45 seconds", StringComparison.Ordinal));
        try
        {
            var findings = Validators.Compose(broken);

            Assert.Contains(findings, f => f.Path.EndsWith("/stop_grace_period", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(broken);
        }
    }

    [Fact]
    public void Config_ComposeImplementation_AcceptsTheFileWithTheGpuProfile()
    {
        var result = ComposeCommand(["--profile", "gpu", "config", "--services"]);

        Assert.True(result.ExitCode == 0, result.Describe());
        Assert.Equal(["grafana", "prometheus", "sparseinference", "sparseinference-gpu"],
            result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Order());
    }

    [Fact]
    public void Config_ComposeImplementation_RejectsAnUnknownServiceKey()
    {
        var broken = Path.Combine(Path.GetTempPath(), $"compose-{Guid.NewGuid():N}.yml");
        File.WriteAllText(broken, File.ReadAllText(ComposePath).Replace("\n  read_only: true\n", "\n  read_onyl: true\n", StringComparison.Ordinal));
        try
        {
            var result = ComposeCommand(["--file", broken, "config", "--quiet"]);

            Assert.True(result.ExitCode != 0, result.Describe());
            Assert.Contains("read_onyl", result.StandardOutput + result.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(broken);
        }
    }

    [Fact]
    public void Services_ComposeFile_RunServicePrometheusAndGrafanaWithGpuInItsProfile()
    {
        var services = Compose["services"]!.AsObject();

        Assert.Equal(["grafana", "prometheus", "sparseinference", "sparseinference-gpu"], services.Select(s => s.Key).Order());
        Assert.Null(services["sparseinference"]!["profiles"]);
        Assert.Equal(["gpu"], services["sparseinference-gpu"]!["profiles"]!.AsArray().Select(p => (string)p!));
        var device = services["sparseinference-gpu"]!["deploy"]!["resources"]!["reservations"]!["devices"]!.AsArray().Single()!;
        Assert.Equal("nvidia", (string?)device["driver"]);
        Assert.Equal(["gpu"], device["capabilities"]!.AsArray().Select(c => (string)c!));
        Assert.Equal("deploy/docker/Dockerfile.cuda", (string?)services["sparseinference-gpu"]!["build"]!["dockerfile"]);
        Assert.Equal("deploy/docker/Dockerfile.cpu", (string?)services["sparseinference"]!["build"]!["dockerfile"]);
    }

    [Theory]
    [InlineData("sparseinference", "cpu")]
    [InlineData("sparseinference-gpu", "cuda")]
    public void ServerService_ComposeFile_PublishesServerPortsWithReadOnlyModelsAStateVolumeAndEnoughGrace(string name, string device)
    {
        var defaults = ServiceDefaults.Current;
        var service = Compose["services"]![name]!;

        var containerPorts = service["ports"]!.AsArray().Select(p => int.Parse(((string)p!).Split(':')[^1], System.Globalization.CultureInfo.InvariantCulture)).Order();
        Assert.Equal(defaults.AllPorts.Order(), containerPorts);
        var admin = service["ports"]!.AsArray().Select(p => (string)p!).Single(p => p.EndsWith($":{defaults.AdminPort}", StringComparison.Ordinal));
        Assert.StartsWith("127.0.0.1:", admin, StringComparison.Ordinal);
        Assert.Equal(device, (string?)service["environment"]!["SparseInference__Device"]);
        Assert.True((bool)service["read_only"]!);
        // SOURCE:TARGET[:MODE], where the source may be ${VARIABLE:-default} (a colon of its own).
        var volumes = service["volumes"]!.AsArray().Select(v => ((string)v!).Split(':')).ToList();
        static string Target(string[] volume) => volume[^1] is "ro" or "rw" ? volume[^2] : volume[^1];
        var models = volumes.Single(v => Target(v) == (string?)service["environment"]!["SparseInference__ModelRepository"]);
        Assert.Equal("ro", models[^1]);
        // The rollout state: a named volume where the image keeps it (the root file system is read-only).
        var dockerfile = File.ReadAllText(RepositoryLayout.PathOf((string)service["build"]!["dockerfile"]!));
        var stateDirectory = System.Text.RegularExpressions.Regex.Match(dockerfile, @"SparseInference__State__Directory=(\S+)").Groups[1].Value;
        var state = volumes.Single(v => Target(v) == stateDirectory);
        Assert.Equal(2, state.Length);
        Assert.True(Compose["volumes"]!.AsObject().ContainsKey(state[0]), $"{name}: the state volume '{state[0]}' is not a named volume");
        Assert.Equal(2, volumes.Count);
        var grace = TimeSpan.FromSeconds(int.Parse(((string)service["stop_grace_period"]!).TrimEnd('s'), System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(grace > TimeSpan.FromSeconds(defaults.DrainDelaySeconds + defaults.ShutdownTimeoutSeconds),
            $"stop_grace_period {grace} must exceed drain + shutdown timeout ({defaults.Source})");
    }

    /// <summary>The Compose v2 plugin when the Docker client has it, else the standalone docker-compose.</summary>
    private static ToolResult ComposeCommand(IReadOnlyList<string> arguments)
    {
        Validators.EnsureInstalled();
        var withFile = arguments.Contains("--file") ? arguments : ["--file", ComposePath, .. arguments];
        var plugin = ExternalTool.Run("bash", ["-c", "docker compose version"]);
        return plugin.ExitCode == 0
            ? ExternalTool.Run("docker", ["compose", .. withFile])
            : ExternalTool.Run("docker-compose", withFile);
    }

    [Fact]
    public void StateVolumes_ComposeFile_CpuAndGpuServicesKeepStatesApart()
    {
        var services = Compose["services"]!.AsObject();
        string StateVolume(string name) => services[name]!["volumes"]!.AsArray().Select(v => (string)v!).Single(v => v.Contains(":/var/lib/sparseinference/state", StringComparison.Ordinal)).Split(':')[0];

        Assert.NotEqual(StateVolume("sparseinference"), StateVolume("sparseinference-gpu"));
    }

    [Fact]
    public void Mounts_ComposeFile_PointAtFilesInTheRepository()
    {
        var services = Compose["services"]!.AsObject();
        var binds = services.SelectMany(s => s.Value!["volumes"]?.AsArray() ?? [])
            .OfType<JsonValue>()
            .Select(v => ((string)v!).Split(':')[0])
            .Where(source => source.StartsWith("./", StringComparison.Ordinal));

        Assert.All(binds, source => Assert.True(
            File.Exists(RepositoryLayout.PathOf(source)) || Directory.Exists(RepositoryLayout.PathOf(source)), $"bind source {source} is missing"));
        Assert.Contains("./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro",
            services["grafana"]!["volumes"]!.AsArray().Select(v => (string?)v));
    }
}
