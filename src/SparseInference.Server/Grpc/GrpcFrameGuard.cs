using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace SparseInference.Server.Grpc;

/// <summary>
/// Checks the 5-byte prefix of each request message on the gRPC port before grpc-dotnet reads the message: a compressed flag
/// other than 0 or 1 ends the call with INTERNAL, a declared length over the receive limit with RESOURCE_EXHAUSTED naming
/// both sizes, before anything is buffered. grpc-dotnet itself answers a flag above 1 or a length above 2^31-1 with UNKNOWN
/// and logs the client's bytes as a server error with a stack trace.
/// </summary>
internal sealed class GrpcFrameGuardMiddleware(RequestDelegate next, int grpcPort, int maxMessageBytes)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (context.Connection.LocalPort == grpcPort
            && context.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true
            && context.Features.Get<IRequestBodyPipeFeature>() is { } body)
        {
            context.Features.Set<IRequestBodyPipeFeature>(new CheckedBody(new FrameCheckingReader(body.Reader, maxMessageBytes)));
        }

        return next(context);
    }

    private sealed class CheckedBody(PipeReader reader) : IRequestBodyPipeFeature
    {
        public PipeReader Reader { get; } = reader;
    }
}

/// <summary>
/// A request body reader whose every read result starts at a message prefix (grpc-dotnet consumes whole messages), so the
/// prefix at the front of each result is the next message's.
/// </summary>
internal sealed class FrameCheckingReader(PipeReader inner, int maxMessageBytes) : PipeReader
{
    public const int PrefixLength = 5;

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        var read = inner.ReadAsync(cancellationToken);
        if (!read.IsCompletedSuccessfully)
            return Checked(read);
        Check(read.Result.Buffer);
        return read;
    }

    public override bool TryRead(out ReadResult result)
    {
        if (!inner.TryRead(out result))
            return false;
        Check(result.Buffer);
        return true;
    }

    public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);

    public override void CancelPendingRead() => inner.CancelPendingRead();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

    /// <summary>Throws the status a client gets for a prefix that no valid message has.</summary>
    internal static void CheckPrefix(ReadOnlySpan<byte> prefix, int maxMessageBytes)
    {
        var flag = prefix[0];
        if (flag > 1)
        {
            throw new RpcException(new Status(StatusCode.Internal, $"message frame has compressed flag {flag}, expected 0 or 1."));
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(prefix[1..]);
        if (length > (uint)maxMessageBytes)
        {
            throw new RpcException(new Status(
                StatusCode.ResourceExhausted, $"received message of {length} bytes, larger than the maximum of {maxMessageBytes} bytes."));
        }
    }

    private async ValueTask<ReadResult> Checked(ValueTask<ReadResult> read)
    {
        var result = await read.ConfigureAwait(false);
        Check(result.Buffer);
        return result;
    }

    private void Check(ReadOnlySequence<byte> buffer)
    {
        if (buffer.Length < PrefixLength)
            return;
        Span<byte> prefix = stackalloc byte[PrefixLength];
        buffer.Slice(0, PrefixLength).CopyTo(prefix);
        CheckPrefix(prefix, maxMessageBytes);
    }
}
