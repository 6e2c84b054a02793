using System.Net;
using System.Net.Http.Headers;
using SparseInference.Server.FunctionalTests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Reliability;

/// <summary>
/// gRPC framing from a hostile client, at the wire level (HTTP/2 cleartext with prior knowledge, hand-made frames), so
/// the checks hold whatever serves gRPC: an impossible length prefix is RESOURCE_EXHAUSTED, answered without an error
/// log or a stack trace, and no configuration can make the server accept one.
/// </summary>
[Collection(HostileServerCollection.Name)]
public sealed class GrpcFramingTests(HostileServer server)
{
    [Theory]
    [InlineData("ModelInfer")]
    [InlineData("ModelStreamInfer")]
    public async Task Call_FramePrefixClaimingTwoGibibytes_ResourceExhaustedWithoutAnErrorLog(string method)
    {
        var logBefore = server.Process.Log.Length;
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.Process.GrpcPort}") };
        for (var i = 0; i < 5; i++)
        {
            // Compressed flag 0, length 0x7FFFFFFF (2^31 − 1), then a few bytes of the message that never comes.
            byte[] frame = [0, 0x7F, 0xFF, 0xFF, 0xFF, 0x0A, 0x01, 0x6D];
            using var request = new HttpRequestMessage(HttpMethod.Post, GrpcTestClient.Service + method)
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = new ByteArrayContent(frame),
            };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
            request.Headers.TryAddWithoutValidation("te", "trailers");
            using var response = await http.SendAsync(request);
            await response.Content.ReadAsByteArrayAsync();
            var headers = response.TrailingHeaders.Contains("grpc-status") ? (HttpHeaders)response.TrailingHeaders : response.Headers;
            Assert.Equal("8", headers.GetValues("grpc-status").Single()); // RESOURCE_EXHAUSTED
            Assert.Contains("2147483647", Uri.UnescapeDataString(headers.GetValues("grpc-message").Single()));
        }

        await Task.Delay(200); // let the server's log lines for these calls arrive
        var log = server.Process.Log[logBefore..];
        Assert.DoesNotContain("\"Level\":\"Error\"", log);
        Assert.DoesNotContain("   at ", log);
    }

    [Fact]
    public async Task Start_MaxGrpcMessageBytesAtTheIntMaximum_RefusedNamingKeyBoundAndValue()
    {
        using var process = LiveServerProcess.Start(new Dictionary<string, string> { ["SparseInference__Limits__MaxGrpcMessageBytes"] = int.MaxValue.ToString() });
        Assert.True(process.WaitForExit(TimeSpan.FromSeconds(60)), "the server started with a message limit no frame prefix can exceed");
        Assert.NotEqual(0, process.ExitCode);
        await Task.Delay(200);
        Assert.Contains("SparseInference:Limits:MaxGrpcMessageBytes must be in 1024..1073741824, got 2147483647", process.Log);
    }
}
