using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Server.FunctionalTests.Protocol;
using SparseInference.Server.FunctionalTests.Reliability;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Observability.Logging;

/// <summary>What the server process prints on its console, as a container's log collector or a person at a terminal sees it.</summary>
public sealed class ConsoleLogTests
{
    private const int Requests = 40;

    /// <summary>
    /// With the shipped appsettings.json, and without it (a server started outside its content root falls back to the
    /// defaults in code, where ASP.NET Core's own per-request lines once added four more).
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Production_FortyInferences_AtMostOneJsonLineEachWithTheOipFields(bool withAppSettings)
    {
        var elsewhere = Directory.CreateTempSubdirectory("si-cwd-");
        using var server = LiveServerProcess.Start(
            new Dictionary<string, string> { ["SparseInference__Shutdown__DrainDelaySeconds"] = "0" }, workingDirectory: withAppSettings ? null : elsewhere.FullName);
        await server.WaitReadyAsync(TimeSpan.FromSeconds(60));
        using var rest = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.RestPort}") };
        using var grpc = new GrpcTestClient(server.GrpcPort);
        // Once per protocol before counting: the variant's batcher is created (and logged) on its first request.
        await InferRestAsync(rest, 0);
        await InferGrpcAsync(grpc, 0);
        var before = await SettledLineCountAsync(server);

        for (var i = 1; i <= Requests / 2; i++)
        {
            await InferRestAsync(rest, i);
            await InferGrpcAsync(grpc, i);
        }

        var lines = (await SettledLinesAsync(server, before + Requests)).Skip(before).ToList();
        Assert.True(lines.Count <= Requests, $"{Requests} inference requests wrote {lines.Count} lines:\n{string.Join('\n', lines)}");
        var requestLines = lines.Select(l => JsonDocument.Parse(l).RootElement).Where(e => e.TryGetProperty("RequestPath", out _)).ToList();
        Assert.Equal(Requests, requestLines.Count);
        foreach (var line in requestLines)
        {
            Assert.Equal(ServerFixture.ModelName, line.GetProperty("Model").GetString());
            Assert.Equal("1", line.GetProperty("Version").GetString());
            Assert.Equal("dense", line.GetProperty("Variant").GetString());
            Assert.Equal("success", line.GetProperty("Status").GetString());
            Assert.True(line.GetProperty("Elapsed").GetDouble() > 0);
            Assert.Matches("^[0-9a-f]{32}$", line.GetProperty("TraceId").GetString());
            Assert.Matches(@"^(rest|grpc) POST /\S+ responded 200 in \d+\.\d{3} ms: skab-pump v1 variant dense batch 1, success$", line.GetProperty("@m").GetString());
        }

        Assert.Equal(Requests / 2, requestLines.Count(l => l.GetProperty("Listener").GetString() == "rest"));
        Assert.Equal(Requests / 2, requestLines.Count(l => l.GetProperty("Listener").GetString() == "grpc" && l.GetProperty("GrpcStatus").GetString() == "0"));
        elsewhere.Delete(recursive: true);
    }

    [Fact]
    public async Task Development_RequestLine_IsHumanReadableText()
    {
        using var server = LiveServerProcess.Start(new Dictionary<string, string>
        {
            ["DOTNET_ENVIRONMENT"] = "Development",
            ["SparseInference__Shutdown__DrainDelaySeconds"] = "0",
        });
        await server.WaitReadyAsync(TimeSpan.FromSeconds(60));
        using var rest = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.RestPort}") };
        await InferRestAsync(rest, 1);

        var line = await EventuallyLineAsync(server, l => l.Contains("/infer responded 200", StringComparison.Ordinal));
        Assert.Matches(@"^\[\d\d:\d\d:\d\d\.\d{3} INF\] rest POST /v2/models/skab-pump/infer responded 200 in \d+\.\d{3} ms: skab-pump v1 variant dense batch 1, success$", line);
        Assert.DoesNotContain(server.LogLines, l => l.TrimStart().StartsWith('{'));
    }

    [Fact]
    public async Task ConfiguredMinimumLevel_Warning_SuppressesInformationLines()
    {
        using var server = LiveServerProcess.Start(new Dictionary<string, string>
        {
            ["Serilog__MinimumLevel__Default"] = "Warning",
            ["SparseInference__Shutdown__DrainDelaySeconds"] = "0",
        });
        await server.WaitReadyAsync(TimeSpan.FromSeconds(60));
        using var rest = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.RestPort}") };
        await InferRestAsync(rest, 1);
        Assert.Equal(HttpStatusCode.NotFound, (await rest.GetAsync("/v2/models/nosuch")).StatusCode);

        // Compact JSON leaves "@l" out at Information; the only Information lines left are the host's start-up lines, whose
        // source keeps its own Information override in appsettings.json.
        var lines = await SettledLinesAsync(server, 1);
        var information = lines.Select(l => JsonDocument.Parse(l).RootElement).Where(e => !e.TryGetProperty("@l", out _)).ToList();
        Assert.NotEmpty(lines);
        Assert.All(information, e => Assert.Equal("Microsoft.Hosting.Lifetime", e.GetProperty("SourceContext").GetString()));
        Assert.DoesNotContain(lines, l => l.Contains("\"RequestPath\"", StringComparison.Ordinal));
    }

    /// <summary>
    /// Nobody reads the server's standard output, so once the pipe is full every console write blocks; requests must still be
    /// answered at full speed (the console sink writes from its own thread and drops lines it cannot place).
    /// </summary>
    [Fact]
    public async Task BlockedConsole_ManyRequests_AllAnsweredWithoutStalling()
    {
        using var server = LiveServerProcess.Start(new Dictionary<string, string> { ["SparseInference__Shutdown__DrainDelaySeconds"] = "0" }, readOutput: false);
        await server.WaitReadyAsync(TimeSpan.FromSeconds(60));
        using var rest = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.RestPort}"), Timeout = TimeSpan.FromSeconds(10) };

        // About 600 bytes of JSON per request line: 400 requests write far more than a 64 KiB pipe holds.
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 400; i++)
        {
            using var response = await rest.GetAsync($"/v2/models/nosuch-{i}");
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }

        await InferRestAsync(rest, 1);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"400 requests against a blocked console took {clock.Elapsed}");
    }

    private static async Task InferRestAsync(HttpClient rest, int seed)
    {
        var body = SensorWindows.InferBody(SensorWindows.Json(SensorWindows.Make(1, 16, ServerFixture.Channels, seed: seed)), 1, 16, ServerFixture.Channels);
        using var response = await rest.PostAsync($"/v2/models/{ServerFixture.ModelName}/infer", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static async Task InferGrpcAsync(GrpcTestClient grpc, int seed)
    {
        var result = await grpc.UnaryAsync("ModelInfer", GrpcProtocolTests.RawRequest(SensorWindows.Make(1, 16, ServerFixture.Channels, seed: seed), 1, 16), ModelInferResponse.Parser);
        Assert.Equal(GrpcStatusCode.OK, result.Status);
    }

    /// <summary>The line count once the async console sink has written what was queued (no change for 300 ms).</summary>
    private static async Task<int> SettledLineCountAsync(LiveServerProcess server) => (await SettledLinesAsync(server, 0)).Count;

    /// <summary>The lines once at least <paramref name="atLeast"/> are out and no more arrive for 300 ms (at most 20 s).</summary>
    private static async Task<IReadOnlyList<string>> SettledLinesAsync(LiveServerProcess server, int atLeast)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        var lines = server.LogLines;
        while (DateTime.UtcNow < until)
        {
            await Task.Delay(300);
            var now = server.LogLines;
            if (now.Count >= atLeast && now.Count == lines.Count)
                return now;
            lines = now;
        }

        return lines;
    }

    private static async Task<string> EventuallyLineAsync(LiveServerProcess server, Func<string, bool> match)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < until)
        {
            if (server.LogLines.FirstOrDefault(match) is { } line)
                return line;
            await Task.Delay(100);
        }

        throw new TimeoutException($"no matching line within 20 s:\n{server.Log}");
    }
}
