using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using Google.Protobuf;
using Microsoft.FSharp.Core;
using Xunit.Abstractions;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Observability;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// A generated hostile client (FsCheck) against the real server process: bursts of concurrent inferences over REST and
/// gRPC with any shape, values and parameters, variant admin calls and model control with or without credentials and
/// with any override. Asserted are the invariants, not examples: every request gets a correct result or a 4xx/5xx that
/// names a problem it has (never a 500); afterwards the queues are empty and no memory is admitted, readiness tells the
/// truth for every model, the process stayed within its memory budget, nothing was logged as an error, and SIGTERM
/// completes within its timeout. A failure prints the burst and the FsCheck replay seed that reproduce it.
/// </summary>
public sealed class HostileClientFuzzTests(ITestOutputHelper output)
{
    /// <summary>Overridable with SI_FUZZ_SEED to explore further; fixed in CI so a failure reproduces.</summary>
    private static readonly ulong Seed = ulong.TryParse(Environment.GetEnvironmentVariable("SI_FUZZ_SEED"), out var seed) ? seed : 20261206;

    private const int MaxBursts = 400;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(50);

    private const long InFlightBudgetBytes = 24L << 20;

    /// <summary>
    /// Resident growth allowed beyond the budget, for memory that outlives requests: each served model's workspace pool
    /// keeps up to two workspaces as large as the largest admitted forward (3 models × 2 × 24 MiB here), the GC keeps freed
    /// heap committed, connections keep their buffers.
    /// </summary>
    private const long ResidentSlackBytes = 256L << 20;

    private const int DrainDelaySeconds = 1;
    private const int ShutdownTimeoutSeconds = 10;

    private static readonly HashSet<HttpStatusCode> InferStatuses =
    [
        HttpStatusCode.OK, HttpStatusCode.BadRequest, HttpStatusCode.NotFound, HttpStatusCode.RequestEntityTooLarge,
        HttpStatusCode.TooManyRequests, HttpStatusCode.ServiceUnavailable, HttpStatusCode.GatewayTimeout,
    ];

    private static readonly HashSet<GrpcStatusCode> GrpcInferStatuses =
    [
        GrpcStatusCode.OK, GrpcStatusCode.InvalidArgument, GrpcStatusCode.NotFound, GrpcStatusCode.ResourceExhausted,
        GrpcStatusCode.Unavailable, GrpcStatusCode.DeadlineExceeded,
    ];

    [Fact]
    public async Task HostileClient_GeneratedBursts_EveryAnswerCorrectOrNamedAndTheServerStaysWhole()
    {
        using var server = LiveServerProcess.Start(
            new Dictionary<string, string>
            {
                ["SparseInference__Admin__Token"] = HostileServer.AdminToken,
                ["SparseInference__Limits__InFlightMemoryBytes"] = InFlightBudgetBytes.ToString(CultureInfo.InvariantCulture),
                ["SparseInference__Shutdown__DrainDelaySeconds"] = DrainDelaySeconds.ToString(CultureInfo.InvariantCulture),
                ["SparseInference__Shutdown__TimeoutSeconds"] = ShutdownTimeoutSeconds.ToString(CultureInfo.InvariantCulture),
                ["SparseInference__Variants__Guardrails__Enabled"] = "true",
                ["SparseInference__Variants__Guardrails__MinSamples"] = "10",
                ["SparseInference__Variants__Guardrails__MaxErrorRate"] = "0.1",
                ["SparseInference__Variants__Guardrails__EvaluationInterval"] = "00:00:00.200",
            },
            PrepareRepository);
        await server.WaitReadyAsync(TimeSpan.FromSeconds(90));
        using var clients = new Clients(server);

        // Warm every path once, then measure the resident set the burst may grow from.
        await clients.Rest.PostAsync($"/v2/models/{HostileServer.Model}/infer", HostileProbes.RestBody(Plain(HostileServer.Model)));
        var baseline = server.ResidentBytes();
        server.ResetPeakResident();

        var clock = Stopwatch.StartNew();
        var bursts = 0;
        var outcomes = new Dictionary<string, int>();
        var property = Prop.ForAll(HostileProbes.Bursts.ToArbitrary(), async burst =>
        {
            if (clock.Elapsed > Budget)
            {
                return;
            }

            bursts++;
            var results = await Task.WhenAll(burst.Select(probe => SendAsync(clients, probe)));
            lock (outcomes)
            {
                foreach (var outcome in results)
                {
                    outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
                }
            }
        });
        property.Check(Config.QuickThrowOnFailure
            .WithMaxTest(MaxBursts)
            .WithQuietOnSuccess(true)
            .WithReplay(FSharpOption<Replay>.Some(new Replay(new Rnd(Seed), FSharpOption<int>.None))));
        var summary = string.Join(", ", outcomes.OrderByDescending(o => o.Value).Select(o => $"{o.Key}={o.Value}"));
        Assert.True(bursts >= 30, $"only {bursts} bursts ran in {Budget.TotalSeconds} s: {summary}");
        Assert.True(outcomes.Keys.Count(k => k.EndsWith(" 200", StringComparison.Ordinal) || k.EndsWith(" OK", StringComparison.Ordinal)) > 0, $"nothing succeeded: {summary}");

        // Afterwards: nothing queued, no memory admitted, and every model's readiness is the truth.
        Assert.True(await clients.SettlesAsync(TimeSpan.FromSeconds(20)), "queue depth or in-flight memory did not return to 0");
        Assert.Equal(HttpStatusCode.OK, (await clients.Rest.GetAsync("/v2/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await clients.Rest.GetAsync("/v2/health/ready")).StatusCode);
        await AssertReadinessIsTheTruthAsync(clients);

        // The server caused no failure (no 500 above), so guardrails had nothing to roll back.
        var trips = MetricsExposition.Parse(await clients.Metrics.GetStringAsync("/metrics")).Sum("sparseinference_variant_guardrail_trips_total");
        Assert.True(trips == 0, $"guardrails rolled back {trips} times although the server caused no failure");

        var growth = server.PeakResidentBytes() - baseline;
        output.WriteLine($"{bursts} bursts (seed {Seed}) in {clock.Elapsed.TotalSeconds:F0} s: {summary}; resident peak {growth >> 20} MiB above the {baseline >> 20} MiB baseline");
        Assert.True(growth < InFlightBudgetBytes + ResidentSlackBytes,
            $"resident memory peaked {growth >> 20} MiB above its {baseline >> 20} MiB baseline; budget {InFlightBudgetBytes >> 20} MiB ({summary})");
        await Task.Delay(200);
        var errors = server.Log.Split('\n').Where(l => l.Contains("\"Level\":\"Error\"", StringComparison.Ordinal) || l.Contains("\"Level\":\"Critical\"", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, $"the server logged {errors.Count} errors, first: {errors.FirstOrDefault()}");

        var stopping = Stopwatch.StartNew();
        server.Terminate();
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(DrainDelaySeconds + ShutdownTimeoutSeconds + 5)), "SIGTERM did not complete within drain delay + shutdown timeout");
        Assert.Equal(0, server.ExitCode);
        Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(DrainDelaySeconds + ShutdownTimeoutSeconds), $"stopping took {stopping.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>Sends one probe and checks its answer; returns "kind status" for the summary.</summary>
    private static Task<string> SendAsync(Clients clients, Probe probe) => probe switch
    {
        InferProbe { Grpc: false } infer => RestInferAsync(clients, infer),
        InferProbe infer => GrpcInferAsync(clients, infer),
        AdminProbe admin => AdminAsync(clients, admin),
        RepositoryProbe repository => RepositoryAsync(clients, repository),
        _ => throw new ArgumentException($"unknown probe {probe}"),
    };

    private static async Task<string> RestInferAsync(Clients clients, InferProbe probe)
    {
        using var response = await clients.Rest.PostAsync($"/v2/models/{probe.Model}/infer", HostileProbes.RestBody(probe));
        var bytes = await response.Content.ReadAsByteArrayAsync();
        var status = response.StatusCode;
        Check(InferStatuses.Contains(status), probe, $"undocumented status {(int)status}: {Text(bytes)}");
        var problems = Problems(probe);
        if (status == HttpStatusCode.OK)
        {
            Check(problems.Count == 0, probe, $"served although it has problems [{string.Join(", ", problems)}]");
            var headerLength = response.Headers.TryGetValues("Inference-Header-Content-Length", out var h) ? int.Parse(h.Single(), CultureInfo.InvariantCulture) : bytes.Length;
            var json = JsonNode.Parse(bytes.AsSpan(0, headerLength))!;
            CheckOutputs(probe, json, bytes.Length - headerLength);
            return "rest-infer 200";
        }

        if (probe.Model == ".." && status == HttpStatusCode.NotFound)
        {
            // The client itself resolves /v2/models/../infer to /v2/infer: no inference endpoint was asked.
            return "rest-infer 404";
        }

        var error = ErrorOf(bytes);
        Check(error.Length > 0, probe, $"{(int)status} without an error message: {Text(bytes)}");
        CheckNamesAProblem(probe, (int)status, error, problems);
        if (status == HttpStatusCode.TooManyRequests)
        {
            Check(response.Headers.RetryAfter is not null, probe, "429 without Retry-After");
        }

        return $"rest-infer {(int)status}";
    }

    private static async Task<string> GrpcInferAsync(Clients clients, InferProbe probe)
    {
        var result = await clients.Grpc.CallAsync(GrpcTestClient.Service + "ModelInfer", GrpcTestClient.Frame(GrpcRequest(probe).ToByteArray()), ModelInferResponse.Parser);
        Check(result.HttpStatus == HttpStatusCode.OK && GrpcInferStatuses.Contains(result.Status), probe, $"HTTP {(int)result.HttpStatus}, undocumented status {result.Status}: {result.Message}");
        var problems = Problems(probe);
        if (result.Status == GrpcStatusCode.OK)
        {
            Check(problems.Count == 0, probe, $"served although it has problems [{string.Join(", ", problems)}]");
            var response = result.Single();
            Check(response.Outputs.Count == response.RawOutputContents.Count && response.Outputs.Count > 0, probe, "outputs and raw contents differ");
            for (var i = 0; i < response.Outputs.Count; i++)
            {
                var elements = response.Outputs[i].Shape.Aggregate(1L, (a, b) => a * b);
                var size = response.Outputs[i].Datatype == "BOOL" ? 1 : 4;
                Check(response.RawOutputContents[i].Length == elements * size, probe, $"output {response.Outputs[i].Name}: {response.RawOutputContents[i].Length} bytes for shape [{string.Join(",", response.Outputs[i].Shape)}]");
                Check(response.Outputs[i].Shape[0] == probe.Batch, probe, $"output {response.Outputs[i].Name} has batch {response.Outputs[i].Shape[0]}");
            }

            return "grpc-infer OK";
        }

        Check(result.Message.Length > 0, probe, $"{result.Status} without a message");
        var asHttp = result.Status switch
        {
            GrpcStatusCode.InvalidArgument => 400,
            GrpcStatusCode.NotFound => 404,
            GrpcStatusCode.ResourceExhausted => 429,
            GrpcStatusCode.Unavailable => 503,
            _ => 504,
        };
        CheckNamesAProblem(probe, asHttp, result.Message, problems);
        return $"grpc-infer {result.Status}";
    }

    private static async Task<string> AdminAsync(Clients clients, AdminProbe probe)
    {
        using var request = new HttpRequestMessage(new HttpMethod(probe.Method), probe.Path);
        if (probe.Body is not null)
        {
            request.Content = new StringContent(probe.Body, Encoding.UTF8, "application/json");
        }

        Authorize(request, probe.Credential);
        using var response = await clients.Admin.SendAsync(request);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        var status = (int)response.StatusCode;
        if (Authorized(probe, probe.Credential, status, bytes, [200, 201, 400, 404, 409, 422]) && status is 200 or 201)
        {
            // Whatever split was accepted, it divides all traffic: shares are finite and add up to 1.
            var shares = JsonNode.Parse(bytes)!["variants"]!.AsArray().Select(v => v!["share"]!.GetValue<double>()).ToList();
            Check(shares.All(double.IsFinite) && Math.Abs(shares.Sum() - 1) < 1e-9, probe, $"accepted a split whose shares are [{string.Join(", ", shares)}]");
        }

        return $"admin {status}";
    }

    private static async Task<string> RepositoryAsync(Clients clients, RepositoryProbe probe)
    {
        if (probe.Port == "grpc")
        {
            var (path, body) = probe.Action switch
            {
                "index" => ("RepositoryIndex", new RepositoryIndexRequest().ToByteArray()),
                "unload" => ("RepositoryModelUnload", new RepositoryModelUnloadRequest { ModelName = probe.Model }.ToByteArray()),
                _ => ("RepositoryModelLoad", LoadRequest(probe).ToByteArray()),
            };
            var result = await clients.Grpc.CallAsync(GrpcTestClient.Service + path, GrpcTestClient.Frame(body), RepositoryIndexResponse.Parser);
            var expected = probe.Action == "index" ? GrpcStatusCode.OK : GrpcStatusCode.PermissionDenied;
            Check(result.Status == expected, probe, $"gRPC {probe.Action}: {result.Status} {result.Message}");
            return $"grpc-repository {result.Status}";
        }

        var client = probe.Port == "rest" ? clients.Rest : clients.Admin;
        var url = probe.Action == "index" ? "/v2/repository/index" : $"/v2/repository/models/{probe.Model}/{probe.Action}";
        using var request = new HttpRequestMessage(HttpMethod.Post, url);
        if (probe.Action == "load" && probe.Override is not null)
        {
            request.Content = new StringContent(new JsonObject { ["parameters"] = new JsonObject { ["config"] = probe.Override } }.ToJsonString(), Encoding.UTF8, "application/json");
        }

        Authorize(request, probe.Credential);
        using var response = await client.SendAsync(request);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        var status = (int)response.StatusCode;
        if (probe.Port == "rest")
        {
            // The inference port serves the read-only index to anyone and model control to no one.
            var expected = probe.Action == "index" ? 200 : 403;
            Check(status == expected, probe, $"inference port {probe.Action}: {status} {Text(bytes)}");
            return $"rest-repository {status}";
        }

        Authorized(probe, probe.Credential, status, bytes, [200, 400, 404]);
        return $"admin-repository {status}";
    }

    /// <summary>What is wrong with a request whatever the server's state; a refusal must name one of these.</summary>
    private static List<string> Problems(InferProbe probe)
    {
        var problems = new List<string>();
        if (probe.Timeout is < 0 or > 3_600_000_000)
        {
            problems.Add("timeout");
        }

        if (probe.Priority is < 0 or > int.MaxValue)
        {
            problems.Add("priority");
        }

        if (probe.Channels != HostileServer.Channels || probe.Batch < 1 || probe.Time < 1)
        {
            problems.Add("shape");
        }

        if (probe.Time > HostileServer.MaxSeqLen)
        {
            problems.Add("max_seq_len");
        }

        if (probe.Values == "nan")
        {
            problems.Add("finite");
        }

        if (probe.Variant is "nosuch" or "DENSE" or "../dense")
        {
            problems.Add("variant");
        }

        if (probe.Output is "nosuch" or "")
        {
            problems.Add("output");
        }

        if (probe.Model is not (HostileServer.Model or HostileProbes.FuzzQueue or HostileProbes.FuzzControl))
        {
            problems.Add("model");
        }

        return problems;
    }

    /// <summary>A refusal names its problem: a 400 one the request has, the others what ran out or is unavailable.</summary>
    private static void CheckNamesAProblem(InferProbe probe, int status, string error, List<string> problems)
    {
        string[] accepted = status switch
        {
            // A variant or priority can be wrong for the model as loaded now (an override changes them), not only in general.
            400 => [.. problems.SelectMany(Words), "variant", "priority"],
            404 => [probe.Model, "unknown", "version"],
            413 => ["budget", "too large", "larger than"],
            429 => ["budget", "queue is full"],
            503 => ["not ready", "unloaded", "retry"],
            _ => ["timeout", "deadline"],
        };
        Check(accepted.Any(w => error.Contains(w, StringComparison.OrdinalIgnoreCase)), probe, $"{status} '{error}' names none of [{string.Join(", ", accepted)}]");
        if (status == 400)
        {
            Check(problems.Count > 0 || probe.Variant is not null || probe.Priority is not null, probe, $"400 for a request with no problem: {error}");
        }

        static IEnumerable<string> Words(string problem) => problem switch
        {
            "shape" => ["shape", "dimensions"],
            "max_seq_len" => ["max_seq_len", "shape"],
            "model" => ["model"],
            _ => [problem],
        };
    }

    private static void CheckOutputs(InferProbe probe, JsonNode response, int binaryBytes)
    {
        Check(response["parameters"]?["variant"]?.GetValue<string>() is { Length: > 0 }, probe, "no variant in the response");
        var outputs = response["outputs"]!.AsArray();
        Check(outputs.Count > 0, probe, "no outputs");
        var binaryTotal = 0L;
        foreach (var output in outputs)
        {
            var shape = output!["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
            Check(shape[0] == probe.Batch && shape[1] == probe.Time, probe, $"output {output["name"]} has shape [{string.Join(",", shape)}]");
            var elements = shape.Aggregate(1L, (a, b) => a * b);
            if (output["parameters"]?["binary_data_size"] is { } size)
            {
                binaryTotal += size.GetValue<long>();
            }
            else
            {
                Check(output["data"]!.AsArray().Count == elements, probe, $"output {output["name"]}: {output["data"]!.AsArray().Count} values for {elements}");
            }
        }

        Check(binaryTotal == binaryBytes, probe, $"binary outputs declare {binaryTotal} bytes, the body holds {binaryBytes}");
    }

    /// <summary>Every model the index lists: READY exactly when its ready endpoints say so and it serves a plain request.</summary>
    private static async Task AssertReadinessIsTheTruthAsync(Clients clients)
    {
        var index = JsonNode.Parse(await (await clients.Rest.PostAsync("/v2/repository/index", null)).Content.ReadAsStringAsync())!.AsArray();
        var names = index.Select(e => e!["name"]!.GetValue<string>()).Distinct().ToList();
        Assert.Contains(HostileServer.Model, names);
        foreach (var name in names)
        {
            var ready = index.Any(e => e!["name"]!.GetValue<string>() == name && e["state"]!.GetValue<string>() == "READY");
            var rest = (await clients.Rest.GetAsync($"/v2/models/{name}/ready")).StatusCode;
            var grpc = (await clients.Grpc.UnaryAsync("ModelReady", new ModelReadyRequest { Name = name }, ModelReadyResponse.Parser)).Single().Ready;
            using var served = await clients.Rest.PostAsync($"/v2/models/{name}/infer", HostileProbes.RestBody(Plain(name)));
            var body = await served.Content.ReadAsStringAsync();
            Assert.True(ready == (rest == HttpStatusCode.OK) && ready == grpc, $"{name}: index {(ready ? "READY" : "UNAVAILABLE")}, REST ready {(int)rest}, gRPC ready {grpc}");
            Assert.True(served.StatusCode == (ready ? HttpStatusCode.OK : HttpStatusCode.ServiceUnavailable), $"{name} ({(ready ? "READY" : "UNAVAILABLE")}): plain inference {(int)served.StatusCode} {body}");
        }
    }

    private static InferProbe Plain(string model) =>
        new(false, model, 1, 8, HostileServer.Channels, "normal", false, false, null, null, null, null);

    private static ModelInferRequest GrpcRequest(InferProbe probe)
    {
        var count = probe.Elements is > 0 and <= 4_000_000 ? (int)probe.Elements : 16;
        var values = HostileProbes.Values(probe, count);
        var request = new ModelInferRequest { ModelName = probe.Model, Id = "fuzz" };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32" };
        input.Shape.AddRange([probe.Batch, probe.Time, probe.Channels]);
        request.Inputs.Add(input);
        request.RawInputContents.Add(ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())));
        if (probe.Variant is not null)
        {
            request.Parameters["variant"] = new InferParameter { StringParam = probe.Variant };
        }

        if (probe.Timeout is { } timeout)
        {
            request.Parameters["timeout"] = new InferParameter { Int64Param = timeout };
        }

        if (probe.Priority is { } priority)
        {
            request.Parameters["priority"] = new InferParameter { Int64Param = priority };
        }

        if (probe.Output is not null)
        {
            request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = probe.Output });
        }

        return request;
    }

    private static RepositoryModelLoadRequest LoadRequest(RepositoryProbe probe)
    {
        var request = new RepositoryModelLoadRequest { ModelName = probe.Model };
        if (probe.Override is not null)
        {
            request.Parameters["config"] = new ModelRepositoryParameter { StringParam = probe.Override };
        }

        return request;
    }

    /// <summary>
    /// An admin-port answer: 401 without a token, 403 with a wrong one, else one of <paramref name="documented"/> with an
    /// error message unless it succeeded. True when the probe held the token.
    /// </summary>
    private static bool Authorized(Probe probe, Credential credential, int status, byte[] bytes, int[] documented)
    {
        switch (credential)
        {
            case Credential.None:
                Check(status == 401, probe, $"without a token: {status} {Text(bytes)}");
                return false;
            case Credential.Wrong:
                Check(status == 403, probe, $"with a wrong token: {status} {Text(bytes)}");
                return false;
            default:
                Check(documented.Contains(status), probe, $"undocumented status {status}: {Text(bytes)}");
                Check(status is 200 or 201 || ErrorOf(bytes).Length > 0, probe, $"{status} without an error message");
                return true;
        }
    }

    private static void Authorize(HttpRequestMessage request, Credential credential)
    {
        if (credential != Credential.None)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", credential == Credential.Admin ? HostileServer.AdminToken : "a-wrong-token-of-enough-length");
        }
    }

    private static void Check(bool condition, Probe probe, string what)
    {
        if (!condition)
        {
            throw new Xunit.Sdk.XunitException($"{probe}: {what}");
        }
    }

    private static string ErrorOf(byte[] body)
    {
        try
        {
            return JsonNode.Parse(body)?["error"]?.GetValue<string>() ?? "";
        }
        catch (System.Text.Json.JsonException)
        {
            return "";
        }
    }

    private static string Text(byte[] body) => Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, 400));

    /// <summary>The default model, copies of it that the probes may reload with anything, and two models that cannot load.</summary>
    private static void PrepareRepository(string repository)
    {
        HostileServer.CopyModel(repository, HostileProbes.FuzzQueue, """{"default_variant":"dense","variants":[{"name":"dense","pattern":"dense"},{"name":"window-0.75","pattern":"window","sparsity":0.75}],"batching":{"max_batch_size":4,"max_queue_delay_microseconds":2000,"default_queue_policy":{"max_queue_size":4}}}""");
        HostileServer.CopyModel(repository, HostileProbes.FuzzControl, null);
        HostileServer.CopyModel(repository, HostileProbes.BadSequence, null, config => config["max_seq_len"] = int.MaxValue);
        HostileServer.CopyModel(repository, HostileProbes.NanWeights, null);
        HostileServer.PoisonFirstValue(repository, HostileProbes.NanWeights, "layers.1.ff1.weight", float.NaN);
    }

    /// <summary>A client per port (the admin one without default credentials: each probe brings its own).</summary>
    private sealed class Clients(LiveServerProcess server) : IDisposable
    {
        public HttpClient Rest { get; } = new() { BaseAddress = new Uri($"http://127.0.0.1:{server.RestPort}"), Timeout = TimeSpan.FromSeconds(60) };
        public HttpClient Admin { get; } = new() { BaseAddress = new Uri($"http://127.0.0.1:{server.AdminPort}"), Timeout = TimeSpan.FromSeconds(60) };
        public HttpClient Metrics { get; } = new() { BaseAddress = new Uri($"http://127.0.0.1:{server.MetricsPort}"), Timeout = TimeSpan.FromSeconds(60) };
        public GrpcTestClient Grpc { get; } = new(server.GrpcPort);

        public async Task<bool> SettlesAsync(TimeSpan timeout)
        {
            var until = DateTime.UtcNow + timeout;
            do
            {
                var metrics = MetricsExposition.Parse(await Metrics.GetStringAsync("/metrics"));
                if (metrics.Where("sparseinference_queue_depth").All(s => s.Value == 0) && metrics.Sum("sparseinference_memory_in_flight_bytes") == 0)
                {
                    return true;
                }

                await Task.Delay(50);
            }
            while (DateTime.UtcNow < until);
            return false;
        }

        public void Dispose()
        {
            Rest.Dispose();
            Admin.Dispose();
            Metrics.Dispose();
            Grpc.Dispose();
        }
    }
}
