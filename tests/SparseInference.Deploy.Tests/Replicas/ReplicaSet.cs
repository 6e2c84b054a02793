using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SparseInference.Deploy.Tests.Infrastructure;
using SparseInference.Deploy.Tests.LiveServer;

namespace SparseInference.Deploy.Tests.Replicas;

/// <summary>
/// Several real server processes on loopback, each started as a pod of the Deployment is: the same
/// settings file (the ConfigMap: routing options, admin token, shutdown timing), a model repository of its
/// own seeded from the published <c>models/</c> (the init container's copy into the pod's volume), and one
/// state directory shared by all (the ReadWriteMany volume that carries the rollout state), differing
/// otherwise only in their free ports. Every process is killed in <see cref="Dispose"/>, whatever happened before.
/// </summary>
public sealed partial class ReplicaSet : IDisposable
{
    public const string Model = "skab-pump";

    public const string AdminToken = "replica-set-admin-token-0123456789";

    private static readonly string[] PortNames = ["Rest", "Grpc", "Metrics", "Admin"];

    private readonly List<Replica> _replicas = [];

    // Every process started, ready or not, so that Dispose kills those of a failed start too.
    private readonly List<ServerProcess> _starting = [];
    private readonly string _root = Directory.CreateTempSubdirectory("sparseinference-replicas-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };
    private readonly ReplicaSetOptions _options;

    private ReplicaSet(ReplicaSetOptions options)
    {
        _options = options;
        StateDirectory = Directory.CreateDirectory(Path.Combine(_root, "state")).FullName;
    }

    public IReadOnlyList<Replica> Replicas
    {
        get
        {
            lock (_replicas)
            {
                return [.. _replicas];
            }
        }
    }

    /// <summary>The shared state directory (the ReadWriteMany volume).</summary>
    public string StateDirectory { get; }

    /// <summary>Starts <paramref name="count"/> replicas at once and waits until every one reports ready.</summary>
    public static async Task<ReplicaSet> StartAsync(int count, TimeSpan startupBudget, ReplicaSetOptions? options = null)
    {
        var set = new ReplicaSet(options ?? new ReplicaSetOptions());
        try
        {
            for (var i = 0; i < count; i++)
            {
                var models = set.ModelsOf(i);
                SeedModels(models);
                set._options.PrepareModels?.Invoke(i, models);
            }

            var replicas = await Task.WhenAll(Enumerable.Range(0, count).Select(i => set.StartReplicaAsync(i, startupBudget, ports: null)));
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
    /// Starts a replica again after its process ended, on the same ports and with the same volumes (a container
    /// restart in the same pod), and waits until it is ready. Its old process must have exited.
    /// </summary>
    public async Task<Replica> RestartAsync(Replica replica, TimeSpan budget)
    {
        if (!replica.Process.HasExited)
        {
            throw new InvalidOperationException($"replica {replica.Index}: expected its process to have exited before a restart, actual it still runs");
        }

        var restarted = await StartReplicaAsync(replica.Index, budget, replica.Ports);
        lock (_replicas)
        {
            _replicas[_replicas.FindIndex(r => r.Index == replica.Index)] = restarted;
        }

        return restarted;
    }

    /// <summary>
    /// Starts one replica and waits until its model is ready. On free ports, a port can be taken by another process
    /// between the probe and the server's bind; that start is repeated on other ports. A restart keeps its ports.
    /// </summary>
    private async Task<Replica> StartReplicaAsync(int index, TimeSpan budget, IReadOnlyDictionary<string, int>? ports)
    {
        for (var attempt = 1; ; attempt++)
        {
            var chosen = ports ?? PortNames.ToDictionary(p => p, _ => ServerProcess.FreePort());
            var environment = new Dictionary<string, string>(_options.Environment)
            {
                ["SparseInference__ModelRepository"] = ModelsOf(index),
                ["SparseInference__State__Directory"] = StateDirectory,
            };
            var replica = new Replica(index, ServerProcess.Start(SharedSettings(chosen), environment), chosen);
            lock (_starting)
            {
                _starting.Add(replica.Process);
            }

            if (await WaitForReadyAsync(replica, budget))
            {
                return replica;
            }

            var portTaken = replica.Process.Log.Contains("address already in use", StringComparison.OrdinalIgnoreCase);
            if (attempt == 3 || !portTaken)
            {
                throw new Xunit.Sdk.XunitException($"replica {index} exited with {replica.Process.ExitCode} before it was ready:\n{replica.Process.Log}");
            }

            if (ports is not null)
            {
                await Task.Delay(500);
            }
        }
    }

    /// <summary>
    /// Sets the split through one replica's admin API (the store then carries it to the others, as in the cluster
    /// through the admin Service), waits until every replica serves that revision, and returns the revision.
    /// </summary>
    public async Task<long> ApplySplitAsync(IReadOnlyList<(string Variant, double Weight)> weights, string experiment, TimeSpan budget)
    {
        var body = new JsonObject
        {
            ["weights"] = new JsonObject(weights.Select(w => KeyValuePair.Create(w.Variant, (JsonNode?)w.Weight))),
            ["experiment"] = experiment,
        };
        var (status, table) = await AdminAsync(Replicas[0], HttpMethod.Put, "split", body);
        Assert.True(status == HttpStatusCode.OK, $"replica 0: PUT split: {(int)status} {table}");
        var revision = (long)table!["version"]!;
        await WaitForRevisionAsync(revision, Replicas, budget);
        foreach (var replica in Replicas)
        {
            var (_, served) = await AdminAsync(replica, HttpMethod.Get, "variants");
            var split = served!["split"]!;
            Assert.Equal(experiment, (string?)split["experiment"]);
            foreach (var (variant, weight) in weights)
            {
                Assert.Equal(weight, (double)split["weights"]![variant]!);
            }
        }

        return revision;
    }

    /// <summary>
    /// Waits until each of <paramref name="replicas"/> serves <paramref name="revision"/> or a later one (a replica that
    /// polls may skip a revision that lasted less than a poll interval); returns how long each took from the call.
    /// </summary>
    public async Task<TimeSpan[]> WaitForRevisionAsync(long revision, IReadOnlyList<Replica> replicas, TimeSpan budget)
    {
        var clock = Stopwatch.StartNew();
        var reached = new TimeSpan?[replicas.Count];
        var last = new string?[replicas.Count];
        while (reached.Any(r => r is null))
        {
            if (clock.Elapsed > budget)
            {
                throw new Xunit.Sdk.XunitException(
                    $"revision {revision}: expected on every replica within {budget}, actual after {clock.Elapsed}:\n" +
                    string.Join("\n", replicas.Select((r, i) => $"replica {r.Index}: {last[i] ?? "no answer"}")));
            }

            await Task.WhenAll(replicas.Select(async (replica, i) =>
            {
                if (reached[i] is not null)
                {
                    return;
                }

                var rollout = await RolloutAsync(replica);
                last[i] = rollout?.ToJsonString();
                if (rollout is not null && (long)rollout["appliedRevision"]! >= revision)
                {
                    reached[i] = clock.Elapsed;
                }
            }));
            await Task.Delay(25);
        }

        return [.. reached.Select(r => r!.Value)];
    }

    /// <summary>GET /admin/models/{model}/rollout of one replica; null when it does not answer.</summary>
    public async Task<JsonNode?> RolloutAsync(Replica replica)
    {
        try
        {
            var (status, body) = await AdminAsync(replica, HttpMethod.Get, "rollout");
            return status == HttpStatusCode.OK ? body : null;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    /// <summary>Calls the model's admin API on one replica (<c>/admin/models/skab-pump/{path}</c>).</summary>
    public async Task<(HttpStatusCode Status, JsonNode? Body)> AdminAsync(Replica replica, HttpMethod method, string path, JsonNode? body = null)
    {
        using var request = new HttpRequestMessage(method, new Uri($"http://127.0.0.1:{replica.AdminPort}/admin/models/{Model}/{path}"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        }

        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    /// <summary>The value of the series <paramref name="name"/> with exactly <paramref name="labels"/> on a replica's metrics port; null when absent.</summary>
    public async Task<double?> MetricAsync(Replica replica, string name, params (string Name, string Value)[] labels)
    {
        var wanted = labels.ToDictionary(l => l.Name, l => l.Value);
        var text = await _http.GetStringAsync(new Uri($"http://127.0.0.1:{replica.MetricsPort}/metrics"));
        foreach (var line in text.Split('\n'))
        {
            var match = SampleLine().Match(line);
            if (!match.Success || match.Groups["name"].Value != name)
            {
                continue;
            }

            var found = LabelPair().Matches(match.Groups["labels"].Value).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
            if (found.Count == wanted.Count && wanted.All(w => found.GetValueOrDefault(w.Key) == w.Value))
            {
                return double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>\S+)""")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"(\w+)=""((?:[^""\\]|\\.)*)""")]
    private static partial Regex LabelPair();

    /// <summary>SIGKILL: the process gets no chance to drain, as with an OOM kill or a node failure.</summary>
    public static void Kill(Replica replica) => Signal(replica, "KILL");

    /// <summary>SIGTERM: the kubelet's stop after the preStop hook; the server drains and exits.</summary>
    public static void Terminate(Replica replica) => Signal(replica, "TERM");

    /// <summary>The name a replica gives itself in rollout documents (host/process id).</summary>
    public static string ReplicaName(Replica replica) => $"{Environment.MachineName}/{replica.Process.ProcessId.ToString(CultureInfo.InvariantCulture)}";

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
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // A temp directory left behind is harmless.
        }
    }

    /// <summary>A replica's own model repository (its pod's volume).</summary>
    public string ModelsOf(int index) => Path.Combine(_root, $"models-{index.ToString(CultureInfo.InvariantCulture)}");

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

    /// <summary>A model repository seeded from the published models/, as the init container seeds a pod's volume.</summary>
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

/// <summary>What a test varies between the replicas of one set.</summary>
public sealed record ReplicaSetOptions
{
    /// <summary>Environment variables every replica gets, on top of the model and state volumes.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>Called with each replica's index and model repository once seeded (a pod whose volume differs).</summary>
    public Action<int, string>? PrepareModels { get; init; }
}

/// <summary>One replica: its process and the ports it was given.</summary>
public sealed record Replica(int Index, ServerProcess Process, IReadOnlyDictionary<string, int> Ports)
{
    public int RestPort => Ports["Rest"];

    public int AdminPort => Ports["Admin"];

    public int MetricsPort => Ports["Metrics"];

    public IPEndPoint RestEndpoint => new(IPAddress.Loopback, RestPort);
}
