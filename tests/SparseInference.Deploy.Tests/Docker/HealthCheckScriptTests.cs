using System.Net;
using System.Net.Sockets;
using SparseInference.Deploy.Tests.Infrastructure;

namespace SparseInference.Deploy.Tests.Docker;

/// <summary>deploy/docker/healthcheck.sh against a real HTTP listener standing in for the REST port.</summary>
public sealed class HealthCheckScriptTests
{
    [Theory]
    [InlineData(HttpStatusCode.OK, 0)]
    [InlineData(HttpStatusCode.ServiceUnavailable, 1)]
    [InlineData(HttpStatusCode.NotFound, 1)]
    public async Task Run_ReadinessAnswer_ExitCodeFollowsStatus(HttpStatusCode status, int expectedExitCode)
    {
        var port = FreePort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        string? requestedPath = null;
        var serve = Task.Run(() =>
        {
            var context = listener.GetContext();
            requestedPath = context.Request.Url?.AbsolutePath;
            context.Response.StatusCode = (int)status;
            context.Response.Close();
        });

        var result = RunScript(port);

        await serve.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("/v2/health/ready", requestedPath);
        Assert.True(expectedExitCode == result.ExitCode, result.Describe());
    }

    [Fact]
    public void Run_NothingListening_Fails()
    {
        var result = RunScript(FreePort());

        Assert.NotEqual(0, result.ExitCode);
    }

    private static ToolResult RunScript(int port) =>
        ExternalTool.Run("bash", [RepositoryLayout.PathOf("deploy", "docker", "healthcheck.sh")],
            environment: new Dictionary<string, string> { ["SparseInference__Ports__Rest"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            timeout: TimeSpan.FromSeconds(30));

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
