using System.Buffers.Binary;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;
using SparseInference.Serving.Grpc;

namespace SparseInference.Server.FunctionalTests.Infrastructure;

/// <summary>The outcome of one gRPC call: HTTP status, response messages, and the status from trailers (or Trailers-Only headers).</summary>
internal sealed record GrpcCallResult<T>(HttpStatusCode HttpStatus, IReadOnlyList<T> Messages, GrpcStatusCode Status, string Message, bool TrailersOnly, string? ContentType)
{
    public T Single() => Status == GrpcStatusCode.OK
        ? Messages.Count == 1 ? Messages[0] : throw new InvalidOperationException($"expected one message, got {Messages.Count}")
        : throw new InvalidOperationException($"call failed: {Status} {Message}");
}

/// <summary>A minimal gRPC client over HttpClient HTTP/2 with prior knowledge (h2c), independent of the server's transport code.</summary>
internal sealed class GrpcTestClient : IDisposable
{
    private readonly HttpClient _http;

    public GrpcTestClient(int port)
        : this(new Uri($"http://127.0.0.1:{port}"), new SocketsHttpHandler())
    {
    }

    /// <summary>A client for <paramref name="baseAddress"/> through <paramref name="handler"/> (https: HTTP/2 negotiated by ALPN).</summary>
    public GrpcTestClient(Uri baseAddress, HttpMessageHandler handler)
    {
        _http = new HttpClient(handler)
        {
            BaseAddress = baseAddress,
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(60),
        };
    }

    public const string Service = "/inference.GRPCInferenceService/";

    public Task<GrpcCallResult<TResponse>> UnaryAsync<TResponse>(string method, IMessage request, MessageParser<TResponse> parser, IReadOnlyDictionary<string, string>? headers = null)
        where TResponse : IMessage<TResponse> =>
        CallAsync(Service + method, Frame(request.ToByteArray()), parser, headers);

    public async Task<GrpcCallResult<TResponse>> CallAsync<TResponse>(
        string path, byte[] body, MessageParser<TResponse> parser, IReadOnlyDictionary<string, string>? headers = null, string contentType = "application/grpc")
        where TResponse : IMessage<TResponse>
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(body),
        };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        request.Headers.TryAddWithoutValidation("te", "trailers");
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await _http.SendAsync(request);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        var messages = new List<TResponse>();
        var offset = 0;
        if (response.Content.Headers.ContentType?.MediaType != "application/grpc")
        {
            offset = bytes.Length;
        }

        while (offset + 5 <= bytes.Length)
        {
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(offset + 1));
            messages.Add(parser.ParseFrom(bytes, offset + 5, length));
            offset += 5 + length;
        }

        if (offset != bytes.Length)
        {
            throw new InvalidDataException($"response body has {bytes.Length - offset} trailing bytes outside any frame.");
        }

        var trailersOnly = !response.TrailingHeaders.Contains("grpc-status");
        var source = trailersOnly ? (HttpHeaders)response.Headers : response.TrailingHeaders;
        var status = source.TryGetValues("grpc-status", out var statusValues) ? (GrpcStatusCode)int.Parse(statusValues.First()) : (GrpcStatusCode)(-1);
        var message = source.TryGetValues("grpc-message", out var messageValues) ? Uri.UnescapeDataString(messageValues.First()) : "";
        return new GrpcCallResult<TResponse>(response.StatusCode, messages, status, message, trailersOnly, response.Content.Headers.ContentType?.MediaType);
    }

    /// <summary>Length-prefixed, uncompressed frames.</summary>
    public static byte[] Frame(params byte[][] messages)
    {
        var output = new MemoryStream();
        var header = new byte[5];
        foreach (var m in messages)
        {
            header[0] = 0;
            BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(1), (uint)m.Length);
            output.Write(header);
            output.Write(m);
        }

        return output.ToArray();
    }

    /// <summary>One gzip-compressed frame (compressed flag 1).</summary>
    public static byte[] FrameGzip(byte[] message)
    {
        var compressed = new MemoryStream();
        using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(message);
        }

        var payload = compressed.ToArray();
        var output = new byte[5 + payload.Length];
        output[0] = 1;
        BinaryPrimitives.WriteUInt32BigEndian(output.AsSpan(1), (uint)payload.Length);
        payload.CopyTo(output, 5);
        return output;
    }

    public void Dispose() => _http.Dispose();
}
