using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SparseInference.Server.FunctionalTests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Protocol;

/// <summary>
/// A gRPC client that is not ours: Debian's python3-grpcio with stubs generated at run time from
/// protos/grpc_service.proto, checked against what REST returns for the same input.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class PythonGrpcPeerTests(ServerFixture server)
{
    private const string Python = "/usr/bin/python3";

    [Theory]
    [InlineData(1, 16, "")]
    [InlineData(2, 40, "window-0.75")]
    public async Task PythonGrpcio_LiveMetadataInfer_MatchesRest(int batch, int time, string variant)
    {
        var peer = await RunPeerAsync(
            "--target", $"127.0.0.1:{server.GrpcPort}", "--model", ServerFixture.ModelName,
            "--batch", batch.ToString(CultureInfo.InvariantCulture), "--time", time.ToString(CultureInfo.InvariantCulture),
            "--variant", variant, "--json");

        Assert.True(peer["live"]!.GetValue<bool>());
        Assert.Equal(ServerFixture.ModelName, peer["model"]!["name"]!.GetValue<string>());
        Assert.Equal([-1L, -1L, ServerFixture.Channels], peer["model"]!["inputs"]![0]!["shape"]!.AsArray().Select(d => d!.GetValue<long>()));
        Assert.Equal(variant.Length > 0 ? variant : "dense", peer["response"]!["variant"]!.GetValue<string>());

        var input = peer["input"]!["data"]!.AsArray().Select(v => (float)v!.GetValue<double>()).ToArray();
        var body = SensorWindows.InferBody(SensorWindows.Json(input), batch, time, ServerFixture.Channels,
            extra: variant.Length > 0 ? $"\"parameters\":{{\"variant\":\"{variant}\"}}," : "");
        var restResponse = await server.Rest.PostAsync($"/v2/models/{ServerFixture.ModelName}/infer", new StringContent(body, Encoding.UTF8, "application/json"));
        var rest = JsonNode.Parse(await restResponse.Content.ReadAsStringAsync())!;

        var peerOutputs = peer["outputs"]!.AsArray();
        var restOutputs = rest["outputs"]!.AsArray();
        Assert.Equal(restOutputs.Select(o => o!["name"]!.GetValue<string>()), peerOutputs.Select(o => o!["name"]!.GetValue<string>()));
        foreach (var restOutput in restOutputs)
        {
            var name = restOutput!["name"]!.GetValue<string>();
            var peerOutput = peerOutputs.Single(o => o!["name"]!.GetValue<string>() == name)!;
            Assert.Equal(restOutput["shape"]!.AsArray().Select(d => d!.GetValue<long>()), peerOutput["shape"]!.AsArray().Select(d => d!.GetValue<long>()));
            if (restOutput["datatype"]!.GetValue<string>() == "BOOL")
            {
                Assert.Equal(restOutput["data"]!.AsArray().Select(d => d!.GetValue<bool>()), peerOutput["data"]!.AsArray().Select(d => d!.GetValue<bool>()));
            }
            else
            {
                Assert.Equal(
                    restOutput["data"]!.AsArray().Select(d => d!.GetValue<float>()),
                    peerOutput["data"]!.AsArray().Select(d => (float)d!.GetValue<double>()));
            }
        }
    }

    [Fact]
    public async Task PythonGrpcio_UnknownModel_ReportsNotFound()
    {
        var (code, _, stderr) = await RunAsync("--target", $"127.0.0.1:{server.GrpcPort}", "--model", "nosuch", "--json");
        Assert.Equal(2, code);
        Assert.Contains("NOT_FOUND", stderr);
        Assert.Contains("'nosuch'", stderr);
    }

    private static async Task<JsonNode> RunPeerAsync(params string[] arguments)
    {
        var (code, stdout, stderr) = await RunAsync(arguments);
        Assert.True(code == 0, $"grpc_client.py exited with {code}: {stderr}");
        return JsonNode.Parse(stdout)!;
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(params string[] arguments)
    {
        if (!File.Exists(Python))
        {
            Assert.Fail($"{Python} is missing; tools/test.sh installs python3-grpcio and python3-grpc-tools.");
        }

        var start = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(RepositoryPaths.PythonPeer);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(timeout.Token);
        var code = process.ExitCode;
        if (code == 3)
        {
            Assert.Fail($"the Python gRPC peer cannot run: {await stderr} (tools/test.sh installs python3-grpcio and python3-grpc-tools).");
        }

        return (code, await stdout, await stderr);
    }
}
