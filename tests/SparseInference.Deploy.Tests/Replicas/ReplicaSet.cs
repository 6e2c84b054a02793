using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using SparseInference.Deploy.Tests.Infrastructure;
using SparseInference.Deploy.Tests.LiveServer;

namespace SparseInference.Deploy.Tests.Replicas;

/// <summary>
/// Several real server processes on loopback, each started as a pod of the Deployment is: the same
/// settings file (the ConfigMap: routing options, admin token, shutdown timing) and the same model
/// repository (the published <c>models/</c> with <c>skab-pump</c> and its <c>serving.json</c>), differing
/// only in their free ports. Every process is killed in <see cref="Dispose"/>, whatever happened before.
/// </summary>
public sealed class ReplicaSet : IDisposable
{
    public const string Model = "skab-pump";

    private const string AdminToken = "replica-set-admin-token-0123456789";

    private readonly List<Replica> _replicas = [];

    // Every process started, ready or not, so that Dispose kills those of a failed start too.
    private readonly List<ServerProcess> _starting = [];
    private readonly string _models = Directory.CreateTempSubdirectory("sparseinference-replica-models-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };

    private ReplicaSet()
    {
    }

    public IReadOnlyList<Replica> Replicas => _replicas;

    /// <summary>Starts <paramref name="count"/> replicas at once and waits until every one reports ready.</summary>
    public static async Task<ReplicaSet> StartAsync(int count, TimeSpan startupBudget)
    {
        var set = new ReplicaSet();
        try
        {
            SeedModels(set._models);
            var replicas = await Task.WhenAll(Enumerable.Range(0, count).Select(i => set.StartReplicaAsync(i, startupBudget)));
            set._replicas.AddRange(replicas.OrderBy(r => r.Index));
            return set;
        }
        catch
        {
            set.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts one replica on free ports and waits until its model is ready. A free port can be taken by another
    /// process between the probe and the server's bind; that start is repeated on other ports.
    /// </summary>
    private async Task<Replica> StartReplicaAsync(int index, TimeSpan budget)
    {
        for (var attempt = 1; ; attempt++)
        {
            var ports = new[] { "Rest", "Grpc", "Metrics", "Admin" }.ToDictionary(p => p, _ => ServerProcess.FreePort());
            var environment = new Dictionary<string, string> { ["SparseInference__ModelRepository"] = _models };
            var replica = new Replica(index, ServerProcess.Start(SharedSettings(ports), environment), ports["Rest"], ports["Admin"]);
            lock (_starting)
            {
                _starting.Add(replica.Process);
            }

            if (await WaitForReadyAsync(replica, budget))
            {
                return replica;
            }

            if (attempt == 3 || !replica.Process.Log.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                throw new Xunit.Sdk.XunitException($"replica {index} exited with {replica.Process.ExitCode} before it was ready:\n{replica.Process.Log}");
            }
        }
    }

    /// <summary>
    /// Applies the same split to every replica through its admin API, then reads each replica's table back
    /// and checks that all of them hold the same weights and experiment.
    /// </summary>
    public async Task ApplySplitEverywhereAsync(IReadOnlyList<(string Variant, double Weight)> weights, string experiment)
    {
        var body = new JsonObject
        {
            ["weights"] = new JsonObject(weights.Select(w => KeyValuePair.Create(w.Variant, (JsonNode?)w.Weight))),
            ["experiment"] = experiment,
        };
        foreach (var replica in _replicas)
        {
            using var request = AdminRequest(HttpMethod.Put, replica, $"/admin/models/{Model}/split");
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
            using var response = await _http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"replica {replica.Index}: PUT split: {(int)response.StatusCode} {text}");
        }

        foreach (var replica in _replicas)
        {
            using var request = AdminRequest(HttpMethod.Get, replica, $"/admin/models/{Model}/variants");
            using var response = await _http.SendAsync(request);
            var table = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            var split = table["split"]!;
            Assert.Equal(experiment, (string?)split["experiment"]);
            foreach (var (variant, weight) in weights)
            {
                Assert.Equal(weight, (double)split["weights"]![variant]!);
            }
        }
    }

    /// <summary>SIGKILL: the process gets no chance to drain, as with an OOM kill or a node failure.</summary>
    public static void Kill(Replica replica) => Signal(replica, "KILL");

    /// <summary>SIGTERM: the kubelet's stop after the preStop hook; the server drains and exits.</summary>
    public static void Terminate(Replica replica) => Signal(replica, "TERM");

    public void Dispose()
    {
        lock (_starting)
        {
            foreach (var process in _starting)
            {
                // ServerProcess.Dispose kills the process tree when it still runs.
                process.Dispose();
            }
        }

        _http.Dispose();
        try
        {
            Directory.Delete(_models, recursive: true);
        }
        catch (IOException)
        {
            // A temp directory left behind is harmless.
        }
    }

    private static void Signal(Replica replica, string signal)
    {
        var result = ExternalTool.Run("bash", ["-c", $"kill -{signal} {replica.Process.ProcessId.ToString(CultureInfo.InvariantCulture)}"]);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {replica.Process.ProcessId}: {result.Describe()}");
        }
    }

    /// <summary>The ConfigMap's settings file with this replica's ports: everything else is identical on every replica.</summary>
    private static string SharedSettings(IReadOnlyDictionary<string, int> ports)
    {
        var settings = JsonNode.Parse(File.ReadAllText(RepositoryLayout.PathOf("k8s", "base", "config", "appsettings.Production.json")))!;
        var section = settings["SparseInference"]!.AsObject();
        var portSection = section["Ports"]!.AsObject();
        foreach (var (name, port) in ports)
        {
            portSection[name] = port;
        }

        section["Admin"] = new JsonObject { ["Token"] = AdminToken };
        return settings.ToJsonString();
    }

    /// <summary>One model repository for all replicas, seeded from the published models/ as the init container does.</summary>
    private static void SeedModels(string target)
    {
        var published = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(ServerProcess.ServerAssembly))!, "models");
        if (!File.Exists(Path.Combine(published, Model, "serving.json")))
        {
            throw new FileNotFoundException($"models: expected {Model}/serving.json in the published output {published}, actual missing");
        }

        foreach (var file in Directory.EnumerateFiles(published, "*", SearchOption.AllDirectories))
        {
            var destination = Path.Combine(target, Path.GetRelativePath(published, file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }
    }

    private static HttpRequestMessage AdminRequest(HttpMethod method, Replica replica, string path)
    {
        var request = new HttpRequestMessage(method, new Uri($"http://127.0.0.1:{replica.AdminPort}{path}"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        return request;
    }

    /// <summary>True once the model is ready; false when the process exited first.</summary>
    private async Task<bool> WaitForReadyAsync(Replica replica, TimeSpan budget)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < budget)
        {
            if (replica.Process.HasExited)
            {
                return false;
            }

            try
            {
                using var response = await _http.GetAsync(new Uri($"http://127.0.0.1:{replica.RestPort}/v2/models/{Model}/ready"));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return true;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet: models load before the listeners open.
            }
            catch (TaskCanceledException)
            {
                // A slow answer under parallel start-up; ask again.
            }

            await Task.Delay(100);
        }

        throw new Xunit.Sdk.XunitException($"replica {replica.Index}: {Model} not ready within {budget}:\n{replica.Process.Log}");
    }
}

/// <summary>One replica: its process and the ports it was given.</summary>
public sealed record Replica(int Index, ServerProcess Process, int RestPort, int AdminPort)
{
    public IPEndPoint RestEndpoint => new(IPAddress.Loopback, RestPort);
}
