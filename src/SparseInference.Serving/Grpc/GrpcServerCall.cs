using System.Buffers;
using System.IO.Compression;
using System.IO.Pipelines;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;

namespace SparseInference.Serving.Grpc;

/// <summary>One gRPC call on one HTTP/2 stream: reads framed requests, writes framed responses, starts the response once.</summary>
internal sealed class GrpcServerCall(GrpcCallContext context, int maxMessageBytes, bool gzipRequests)
{
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly PipeReader _reader = context.HttpContext.Request.BodyReader;

    public GrpcCallContext Context { get; } = context;

    /// <summary>The next request message, or null at the end of the request stream.</summary>
    public async ValueTask<T?> ReadMessageAsync<T>(MessageParser<T> parser)
        where T : IMessage<T>
    {
        while (true)
        {
            var result = await _reader.ReadAsync(Context.CancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (GrpcProtocol.TryReadFrame(ref buffer, maxMessageBytes, out var frame, out var compressed))
            {
                T message;
                try
                {
                    message = Parse(parser, frame, compressed);
                }
                finally
                {
                    _reader.AdvanceTo(buffer.Start);
                }

                return message;
            }

            if (result.IsCompleted)
            {
                var leftover = buffer.Length;
                _reader.AdvanceTo(buffer.End);
                return leftover == 0
                    ? default
                    : throw new GrpcStatusException(GrpcStatusCode.Internal, $"request stream ended inside a message ({leftover} bytes of an incomplete frame).");
            }

            _reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    public async ValueTask WriteMessageAsync(IMessage message, CancellationToken cancellationToken)
    {
        var size = message.CalculateSize();
        if (size > maxMessageBytes)
        {
            throw new GrpcStatusException(
                GrpcStatusCode.ResourceExhausted, $"response message of {size} bytes is larger than the maximum of {maxMessageBytes} bytes.");
        }

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var response = Context.HttpContext.Response;
            if (!response.HasStarted)
            {
                await response.StartAsync(cancellationToken).ConfigureAwait(false);
            }

            var writer = response.BodyWriter;
            var span = writer.GetSpan(GrpcProtocol.FrameHeaderLength + size);
            GrpcProtocol.WriteFrameHeader(span, size);
            message.WriteTo(span.Slice(GrpcProtocol.FrameHeaderLength, size));
            writer.Advance(GrpcProtocol.FrameHeaderLength + size);
            await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private T Parse<T>(MessageParser<T> parser, ReadOnlySequence<byte> frame, bool compressed)
        where T : IMessage<T>
    {
        if (compressed && !gzipRequests)
        {
            throw new GrpcStatusException(
                GrpcStatusCode.Internal, $"received a compressed message but the request names no supported {GrpcProtocol.EncodingHeader} (supported: {GrpcProtocol.SupportedEncodings}).");
        }

        return ParseMessage(parser, compressed ? new ReadOnlySequence<byte>(Gunzip(frame)) : frame);
    }

    /// <summary>Parses one message; malformed bytes become INVALID_ARGUMENT.</summary>
    internal static T ParseMessage<T>(MessageParser<T> parser, ReadOnlySequence<byte> payload)
        where T : IMessage<T>
    {
        try
        {
            return parser.ParseFrom(payload);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"malformed protobuf message {typeof(T).Name}: {ex.Message}");
        }
        catch (OutOfMemoryException ex)
        {
            // Google.Protobuf pre-sizes packed repeated fields from the declared length; a length of int.MaxValue
            // passes its bounds check by overflow and fails at once in the array size check, allocating nothing.
            // The message is at most maxMessageBytes long, so this is a malformed length, not an exhausted heap.
            throw new GrpcStatusException(GrpcStatusCode.InvalidArgument, $"malformed protobuf message {typeof(T).Name}: a packed field declares more elements than the message holds ({ex.Message})");
        }
    }

    private byte[] Gunzip(ReadOnlySequence<byte> frame)
    {
        using var input = new MemoryStream(frame.ToArray());
        using var gzip = new GZipStream(input, CompressionMode.Decompress);
        using var output = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        try
        {
            while ((read = gzip.Read(chunk, 0, chunk.Length)) > 0)
            {
                output.Write(chunk, 0, read);
                if (output.Length > maxMessageBytes)
                {
                    throw new GrpcStatusException(
                        GrpcStatusCode.ResourceExhausted, $"decompressed message is larger than the maximum of {maxMessageBytes} bytes.");
                }
            }
        }
        catch (InvalidDataException ex)
        {
            throw new GrpcStatusException(GrpcStatusCode.Internal, $"compressed message is not valid gzip: {ex.Message}");
        }

        return output.ToArray();
    }
}
