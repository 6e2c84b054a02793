using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.FunctionalTests.Protocol;

[Collection(ServerCollection.Name)]
public sealed class GrpcCancellationTests(ServerFixture server)
{
    [Fact]
    public async Task ModelStreamInfer_ClientCancelsMidStream_ServerEndsCallQuietlyAndStaysHealthy()
    {
        using var http = new HttpClient(new SocketsHttpHandler()) { BaseAddress = new Uri($"http://127.0.0.1:{server.GrpcPort}") };
        var message = GrpcProtocolTests.RawRequest(SensorWindows.Make(1, 8, ServerFixture.Channels), 1, 8, id: "first").ToByteArray();
        var content = new OpenRequestStream(GrpcTestClient.Frame(message));
        using var request = new HttpRequestMessage(HttpMethod.Post, GrpcTestClient.Service + "ModelStreamInfer")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = content,
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        using var cancel = new CancellationTokenSource();
        var responseTask = http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);

        // One request, then the request stream stays open: the server answers it and waits for more.
        using var response = await responseTask;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStreamAsync(cancel.Token);
        var header = new byte[5];
        await body.ReadExactlyAsync(header, cancel.Token);
        var payload = new byte[BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(1))];
        await body.ReadExactlyAsync(payload, cancel.Token);
        Assert.Equal("first", ModelStreamInferResponse.Parser.ParseFrom(payload).InferResponse.Id);

        // HttpClient resets the stream once the cancelled request's content stops writing.
        await cancel.CancelAsync();
        response.Dispose();
        content.Finish();

        // Other tests of the shared server end calls early too: wait for this call's line, not for any.
        static bool ThisCallEnded((string Category, LogLevel Level, EventId EventId, string Message) e) =>
            e.EventId.Id == 302 && e.Message.Contains("ModelStreamInfer") && e.Message.Contains("the client cancelled it");
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!server.Logs.Entries.Any(ThisCallEnded) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.True(server.Logs.Entries.Any(ThisCallEnded),
            string.Join("\n", server.Logs.Entries.Where(e => e.EventId.Id >= 300).Select(e => $"{e.Level} {e.EventId} {e.Message}")));
        Assert.DoesNotContain(server.Logs.Entries, e => e.Level >= LogLevel.Error && e.Category.StartsWith("SparseInference", StringComparison.Ordinal));
        Assert.True((await server.Grpc.UnaryAsync("ServerLive", new ServerLiveRequest(), ServerLiveResponse.Parser)).Single().Live);
    }

    /// <summary>Sends its frames, flushes, then keeps the request stream open until told to finish.</summary>
    private sealed class OpenRequestStream(byte[] frames) : HttpContent
    {
        private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Finish() => _finished.TrySetResult();

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(frames);
            await stream.FlushAsync();
            await _finished.Task;
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
