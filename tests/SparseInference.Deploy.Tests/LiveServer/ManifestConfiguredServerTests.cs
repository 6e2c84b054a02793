using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using SparseInference.Deploy.Tests.Infrastructure;
using SparseInference.Deploy.Tests.Kubernetes;

namespace SparseInference.Deploy.Tests.LiveServer;

/// <summary>
/// The real server started with what the CPU overlay gives a pod: the ConfigMap's settings file and the
/// container's environment (Secret values resolved), its model directory seeded the way the init container
/// seeds the /models volume (a copy of the published models/). Two things differ from a pod, on purpose:
/// the four ports are free ports of this machine (other processes may hold 8000-8003 here), and the state
/// volume is a temporary directory.
/// </summary>
public sealed class ManifestConfiguredServerTests : IDisposable
{
    private static readonly TimeSpan StartupBudget = TimeSpan.FromSeconds(60);

    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };
    private readonly string _models = Directory.CreateTempSubdirectory("sparseinference-models-").FullName;
    private readonly string _state = Directory.CreateTempSubdirectory("sparseinference-state-").FullName;

    [Fact]
    public async Task Start_CpuOverlaySettings_ServesLiveAndReadyOnTheRestPort()
    {
        var (server, rest) = StartFromOverlay("cpu");
        using (server)
        {
            await WaitForStatusAsync(server, rest, "/v2/health/ready", HttpStatusCode.OK, StartupBudget);

            Assert.Equal(HttpStatusCode.OK, await StatusAsync(rest, "/v2/health/live"));
            // The default model travels in the published output, hence in the image and the seeded volume.
            Assert.True(Directory.Exists(Path.Combine(_models, "skab-pump")), $"models/skab-pump missing from the published output of {ServerProcess.ServerAssembly}");
            foreach (var model in Directory.EnumerateDirectories(_models).Select(Path.GetFileName))
            {
                Assert.Equal(HttpStatusCode.OK, await StatusAsync(rest, $"/v2/models/{model}/ready"));
            }

            var check = ExternalTool.Run("bash", [RepositoryLayout.PathOf("deploy", "docker", "healthcheck.sh")],
                environment: new Dictionary<string, string> { ["SparseInference__Ports__Rest"] = rest.ToString(CultureInfo.InvariantCulture) });
            Assert.True(check.ExitCode == 0, check.Describe());
            // The log is JSON lines: the rendered message quotes string values (escaped inside the JSON string).
            Assert.Matches(@"Hosting environment: (\\"")?Production", server.Log);
        }
    }

    [Fact]
    public async Task Terminate_CpuOverlaySettings_ReportsNotReadyWhileDrainingAndExitsWithinTheGracePeriod()
    {
        var rendered = RenderedOverlay.Get("cpu");
        var grace = TimeSpan.FromSeconds((long)rendered.Deployment["spec"]!["template"]!["spec"]!["terminationGracePeriodSeconds"]!);
        var preStop = TimeSpan.FromSeconds(int.Parse(
            (string)rendered.ServerContainer["lifecycle"]!["preStop"]!["exec"]!["command"]![1]!, CultureInfo.InvariantCulture));
        var (server, rest) = StartFromOverlay("cpu");
        using (server)
        {
            await WaitForStatusAsync(server, rest, "/v2/health/ready", HttpStatusCode.OK, StartupBudget);

            var clock = Stopwatch.StartNew();
            server.Terminate();
            await WaitForStatusAsync(server, rest, "/v2/health/ready", HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(3));
            var liveWhileDraining = await StatusAsync(rest, "/v2/health/live");
            var exited = server.WaitForExit(grace - preStop);
            clock.Stop();

            Assert.True(exited, $"the server was still running {grace - preStop} after SIGTERM (grace {grace} minus preStop {preStop}):\n{server.Log}");
            Assert.Equal(HttpStatusCode.OK, liveWhileDraining);
            Assert.True(server.ExitCode == 0, $"exit code {server.ExitCode}:\n{server.Log}");
            Assert.Contains("Draining", server.Log, StringComparison.Ordinal);
        }
    }

    public void Dispose()
    {
        _http.Dispose();
        Directory.Delete(_models, recursive: true);
        Directory.Delete(_state, recursive: true);
    }

    private (ServerProcess Server, int RestPort) StartFromOverlay(string overlay)
    {
        var rendered = RenderedOverlay.Get(overlay);
        var settings = JsonNode.Parse((string)rendered.OfKind("ConfigMap").Single()["data"]!["appsettings.Production.json"]!)!;
        var ports = new[] { "Rest", "Grpc", "Metrics", "Admin" }.ToDictionary(p => p, _ => ServerProcess.FreePort());
        var portSection = settings["SparseInference"]!["Ports"]!.AsObject();
        Assert.Equal(ports.Keys.Order(), portSection.Select(p => p.Key).Order());
        foreach (var (name, port) in ports)
        {
            portSection[name] = port;
        }

        SeedModels(_models);
        var environment = ContainerEnvironment(rendered);
        environment["SparseInference__ModelRepository"] = _models;
        // The state volume's mount path does not exist on this machine; the claim becomes a temporary directory.
        Assert.Equal("/var/lib/sparseinference/state", environment["SparseInference__State__Directory"]);
        environment["SparseInference__State__Directory"] = _state;
        return (ServerProcess.Start(settings.ToJsonString(), environment), ports["Rest"]);
    }

    /// <summary>What the init container does: <c>cp -R /app/models/. /models/</c> from the published output.</summary>
    private static void SeedModels(string target)
    {
        var published = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(ServerProcess.ServerAssembly))!, "models");
        if (!Directory.Exists(published))
        {
            return;
        }

        foreach (var file in Directory.EnumerateFiles(published, "*", SearchOption.AllDirectories))
        {
            var destination = Path.Combine(target, Path.GetRelativePath(published, file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }
    }

    /// <summary>The server container's env list with values and Secret references resolved.</summary>
    private static Dictionary<string, string> ContainerEnvironment(RenderedOverlay rendered)
    {
        var result = new Dictionary<string, string>();
        foreach (var entry in rendered.ServerContainer["env"]!.AsArray().Select(e => e!))
        {
            var name = (string)entry["name"]!;
            if (entry["value"] is { } value)
            {
                result[name] = (string)value!;
            }
            else if (entry["valueFrom"]?["secretKeyRef"] is { } reference)
            {
                var secret = rendered.Single("Secret", (string)reference["name"]!);
                var encoded = (string?)secret["data"]?[(string)reference["key"]!] ?? "";
                result[name] = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(encoded));
            }
            else
            {
                throw new Xunit.Sdk.XunitException($"env {name}: expected a value or a secretKeyRef, actual {entry.ToJsonString()}");
            }
        }

        return result;
    }

    private async Task WaitForStatusAsync(ServerProcess server, int port, string path, HttpStatusCode expected, TimeSpan budget)
    {
        var clock = Stopwatch.StartNew();
        HttpStatusCode? last = null;
        while (clock.Elapsed < budget)
        {
            if (server.HasExited && expected != HttpStatusCode.ServiceUnavailable)
            {
                throw new Xunit.Sdk.XunitException($"the server exited with {server.ExitCode} before {path} answered {expected}:\n{server.Log}");
            }

            last = await StatusAsync(port, path);
            if (last == expected)
            {
                return;
            }

            await Task.Delay(50);
        }

        throw new Xunit.Sdk.XunitException($"{path}: expected {expected} within {budget}, actual {last?.ToString() ?? "no answer"}:\n{server.Log}");
    }

    private async Task<HttpStatusCode?> StatusAsync(int port, string path)
    {
        try
        {
            using var response = await _http.GetAsync(new Uri($"http://127.0.0.1:{port}{path}"));
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
        catch (TaskCanceledException)
        {
            return null;
        }
    }
}
