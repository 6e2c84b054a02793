using System.Buffers.Binary;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace SparseInference.Server.FunctionalTests.Infrastructure;

/// <summary>
/// The outcome of one gRPC call: response messages and status. Calls made at the wire level (<see cref="GrpcTestClient.CallAsync{TResponse}"/>)
/// also report the HTTP status, the content type and whether the status came as a Trailers-Only response.
/// </summary>
internal sealed record GrpcCallResult<T>(
    StatusCode Status, string Message, IReadOnlyList<T> Messages, HttpStatusCode HttpStatus = HttpStatusCode.OK, bool TrailersOnly = false, string? ContentType = null)
{
    public T Single() => Status == StatusCode.OK
        ? Messages.Count == 1 ? Messages[0] : throw new InvalidOperationException($"expected one message, got {Messages.Count}")
        : throw new InvalidOperationException($"call failed: {Status} {Message}");
}

/// <summary>
/// gRPC calls to <c>inference.GRPCInferenceService</c> through grpc-dotnet's client (Grpc.Net.Client), and, for what a
/// well-behaved client never sends (malformed frames, bodies and headers), raw HTTP/2 requests with prior knowledge (h2c).
/// </summary>
internal sealed class GrpcTestClient : IDisposable
{
    public const string ServiceName = "inference.GRPCInferenceService";
    public const string Service = "/" + ServiceName + "/";

    private static readonly Marshaller<IMessage> RequestMarshaller = Marshallers.Create<IMessage>(m => m.ToByteArray(), _ => throw new NotSupportedException());

    private readonly GrpcChannel _channel;
    private readonly HttpClient _http;

    public GrpcTestClient(int port)
        : this(new Uri($"http://127.0.0.1:{port}"), () => new SocketsHttpHandler())
    {
    }

    /// <summary>
    /// A client for <paramref name="baseAddress"/> through handlers from <paramref name="handlers"/> (https: HTTP/2 negotiated
    /// by ALPN); the gRPC channel and the raw HTTP/2 client each get their own.
    /// </summary>
    public GrpcTestClient(Uri baseAddress, Func<HttpMessageHandler> handlers)
    {
        _channel = GrpcChannel.ForAddress(baseAddress, new GrpcChannelOptions
        {
            HttpHandler = handlers(),
            MaxReceiveMessageSize = null,
            MaxSendMessageSize = null,
        });
        _http = new HttpClient(handlers())
        {
            BaseAddress = baseAddress,
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(60),
        };
    }

    public CallInvoker Invoker => _channel.CreateCallInvoker();

    /// <summary>A unary call of <paramref name="method"/>; <paramref name="headers"/> become request metadata.</summary>
    public async Task<GrpcCallResult<TResponse>> UnaryAsync<TResponse>(
        string method, IMessage request, MessageParser<TResponse> parser, IReadOnlyDictionary<string, string>? headers = null, DateTime? deadline = null)
        where TResponse : class, IMessage<TResponse>
    {
        using var call = Invoker.AsyncUnaryCall(Method(MethodType.Unary, method, parser), null, Options(headers, deadline), request);
        try
        {
            var response = await call.ResponseAsync;
            return new GrpcCallResult<TResponse>(StatusCode.OK, "", [response]);
        }
        catch (RpcException ex)
        {
            return new GrpcCallResult<TResponse>(ex.StatusCode, ex.Status.Detail, []);
        }
    }

    /// <summary>A bidirectional streaming call that sends <paramref name="requests"/>, completes the request stream and reads every response.</summary>
    public async Task<GrpcCallResult<TResponse>> DuplexAsync<TResponse>(string method, IEnumerable<IMessage> requests, MessageParser<TResponse> parser)
        where TResponse : class, IMessage<TResponse>
    {
        using var call = Invoker.AsyncDuplexStreamingCall(Method(MethodType.DuplexStreaming, method, parser), null, default);
        var responses = new List<TResponse>();
        try
        {
            foreach (var request in requests)
            {
                await call.RequestStream.WriteAsync(request);
            }

            await call.RequestStream.CompleteAsync();
            await foreach (var response in call.ResponseStream.ReadAllAsync())
            {
                responses.Add(response);
            }

            return new GrpcCallResult<TResponse>(StatusCode.OK, "", responses);
        }
        catch (RpcException ex)
        {
            return new GrpcCallResult<TResponse>(ex.StatusCode, ex.Status.Detail, responses);
        }
    }

    /// <summary>A raw HTTP/2 POST of <paramref name="body"/> to <paramref name="path"/>, read as a gRPC response.</summary>
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
        var status = source.TryGetValues("grpc-status", out var statusValues) ? (StatusCode)int.Parse(statusValues.First()) : (StatusCode)(-1);
        var message = source.TryGetValues("grpc-message", out var messageValues) ? Uri.UnescapeDataString(messageValues.First()) : "";
        return new GrpcCallResult<TResponse>(status, message, messages, response.StatusCode, trailersOnly, response.Content.Headers.ContentType?.MediaType);
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
    public static byte[] FrameGzip(byte[] message) => FrameCompressed(Gzip(message));

    /// <summary>One frame with the compressed flag set around an already compressed <paramref name="payload"/>.</summary>
    public static byte[] FrameCompressed(byte[] payload)
    {
        var output = new byte[5 + payload.Length];
        output[0] = 1;
        BinaryPrimitives.WriteUInt32BigEndian(output.AsSpan(1), (uint)payload.Length);
        payload.CopyTo(output, 5);
        return output;
    }

    public static byte[] Gzip(byte[] message)
    {
        var compressed = new MemoryStream();
        using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(message);
        }

        return compressed.ToArray();
    }

    public void Dispose()
    {
        _channel.Dispose();
        _http.Dispose();
    }

    private static Method<IMessage, TResponse> Method<TResponse>(MethodType type, string method, MessageParser<TResponse> parser)
        where TResponse : class, IMessage<TResponse> =>
        new(type, ServiceName, method, RequestMarshaller, Marshallers.Create(r => r.ToByteArray(), parser.ParseFrom));

    private static CallOptions Options(IReadOnlyDictionary<string, string>? headers, DateTime? deadline)
    {
        Metadata? metadata = null;
        if (headers is not null)
        {
            metadata = [];
            foreach (var (name, value) in headers)
            {
                metadata.Add(name, value);
            }
        }

        return new CallOptions(metadata, deadline);
    }
}
