using System.Net;
using System.Text;
using SparseInference.Server.FunctionalTests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>During the drain delay, keep-alive HTTP/1.1 connections are told to close, so clients reconnect elsewhere.</summary>
public sealed class DrainConnectionTests
{
    [Fact]
    public async Task Sigterm_ResponsesWhileDraining_SayConnectionCloseAndTheServerExitsCleanly()
    {
        using var server = LiveServerProcess.Start(new Dictionary<string, string>
        {
            ["SparseInference__Shutdown__DrainDelaySeconds"] = "3",
            ["SparseInference__Shutdown__TimeoutSeconds"] = "10",
        });
        await server.WaitReadyAsync(TimeSpan.FromSeconds(90));
        using var client = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = Timeout.InfiniteTimeSpan })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{server.RestPort}"),
        };
        var body = SensorWindows.InferBody(SensorWindows.Json(SensorWindows.Make(1, 16, ServerFixture.Channels)), 1, 16, ServerFixture.Channels);

        using (var before = await client.PostAsync($"/v2/models/{ServerFixture.ModelName}/infer", new StringContent(body, Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
            Assert.NotEqual(true, before.Headers.ConnectionClose);
        }

        server.Terminate();
        HttpResponseMessage? ready = null;
        for (var i = 0; i < 40 && ready?.StatusCode != HttpStatusCode.ServiceUnavailable; i++)
        {
            ready?.Dispose();
            ready = await client.GetAsync("/v2/health/ready");
            if (ready.StatusCode != HttpStatusCode.ServiceUnavailable)
            {
                await Task.Delay(25);
            }
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready!.StatusCode);
        Assert.True(ready.Headers.ConnectionClose, "the not-ready answer while draining kept the connection open");
        ready.Dispose();

        using (var during = await client.PostAsync($"/v2/models/{ServerFixture.ModelName}/infer", new StringContent(body, Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.OK, during.StatusCode);
            Assert.True(during.Headers.ConnectionClose, "an inference answered while draining kept the connection open");
        }

        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)), "the server did not exit within drain delay + shutdown timeout");
        Assert.Equal(0, server.ExitCode);
    }
}
