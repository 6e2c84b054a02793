using Google.Protobuf;

namespace SparseInference.Serving.Grpc;

/// <summary>
/// The methods a gRPC endpoint serves, keyed by path <c>/package.Service/Method</c>. Service logic registers plain
/// delegates over protobuf messages here and never sees framing, trailers or HTTP/2.
/// </summary>
public sealed class GrpcMethodRegistry
{
    private readonly Dictionary<string, GrpcMethod> _methods = new(StringComparer.Ordinal);

    public IReadOnlyCollection<string> Paths => _methods.Keys;

    public GrpcMethodRegistry AddUnary<TRequest, TResponse>(
        string service, string method, MessageParser<TRequest> parser, Func<TRequest, GrpcCallContext, ValueTask<TResponse>> handler)
        where TRequest : IMessage<TRequest>
        where TResponse : IMessage<TResponse>
    {
        Add(new UnaryMethod<TRequest, TResponse>(Path(service, method), parser, handler));
        return this;
    }

    public GrpcMethodRegistry AddDuplexStreaming<TRequest, TResponse>(
        string service, string method, MessageParser<TRequest> parser,
        Func<IAsyncEnumerable<TRequest>, IGrpcStreamWriter<TResponse>, GrpcCallContext, Task> handler)
        where TRequest : IMessage<TRequest>
        where TResponse : IMessage<TResponse>
    {
        Add(new DuplexMethod<TRequest, TResponse>(Path(service, method), parser, handler));
        return this;
    }

    internal bool TryGet(string path, out GrpcMethod method) => _methods.TryGetValue(path, out method!);

    private static string Path(string service, string method) => $"/{service}/{method}";

    private void Add(GrpcMethod method)
    {
        if (!_methods.TryAdd(method.Path, method))
        {
            throw new InvalidOperationException($"gRPC method '{method.Path}' is registered twice.");
        }
    }
}

/// <summary>One registered method; the call object drives it over a <see cref="GrpcServerCall"/>.</summary>
internal abstract class GrpcMethod(string path)
{
    public string Path { get; } = path;

    public abstract Task InvokeAsync(GrpcServerCall call);
}

internal sealed class UnaryMethod<TRequest, TResponse>(
    string path, MessageParser<TRequest> parser, Func<TRequest, GrpcCallContext, ValueTask<TResponse>> handler) : GrpcMethod(path)
    where TRequest : IMessage<TRequest>
    where TResponse : IMessage<TResponse>
{
    public override async Task InvokeAsync(GrpcServerCall call)
    {
        var request = await call.ReadMessageAsync(parser).ConfigureAwait(false)
            ?? throw new GrpcStatusException(GrpcStatusCode.Internal, "request stream ended without a message; a unary call needs exactly one.");
        if (await call.ReadMessageAsync(parser).ConfigureAwait(false) is not null)
        {
            throw new GrpcStatusException(GrpcStatusCode.Internal, "request stream holds more than one message; a unary call takes exactly one.");
        }

        var response = await handler(request, call.Context).ConfigureAwait(false);
        call.Context.CancellationToken.ThrowIfCancellationRequested();
        await call.WriteMessageAsync(response, call.Context.CancellationToken).ConfigureAwait(false);
    }
}

internal sealed class DuplexMethod<TRequest, TResponse>(
    string path, MessageParser<TRequest> parser,
    Func<IAsyncEnumerable<TRequest>, IGrpcStreamWriter<TResponse>, GrpcCallContext, Task> handler) : GrpcMethod(path)
    where TRequest : IMessage<TRequest>
    where TResponse : IMessage<TResponse>
{
    public override Task InvokeAsync(GrpcServerCall call) =>
        handler(ReadAll(call), new Writer(call), call.Context);

    private async IAsyncEnumerable<TRequest> ReadAll(GrpcServerCall call)
    {
        while (await call.ReadMessageAsync(parser).ConfigureAwait(false) is { } message)
        {
            yield return message;
        }
    }

    private sealed class Writer(GrpcServerCall call) : IGrpcStreamWriter<TResponse>
    {
        public ValueTask WriteAsync(TResponse message, CancellationToken cancellationToken = default) =>
            call.WriteMessageAsync(message, cancellationToken.CanBeCanceled ? cancellationToken : call.Context.CancellationToken);
    }
}
