using Microsoft.AspNetCore.Http;

namespace SparseInference.Serving.Grpc;

/// <summary>What a handler may know about its call: the HTTP context, the deadline, and one token for both cancellations.</summary>
public sealed class GrpcCallContext(HttpContext httpContext, string method, DateTimeOffset? deadline, CancellationToken cancellationToken)
{
    public HttpContext HttpContext { get; } = httpContext;

    /// <summary>The full method path, <c>/package.Service/Method</c>.</summary>
    public string Method { get; } = method;

    public DateTimeOffset? Deadline { get; } = deadline;

    /// <summary>Cancelled when the client goes away or the deadline passes.</summary>
    public CancellationToken CancellationToken { get; } = cancellationToken;
}

/// <summary>Sends messages of a streaming response; safe to call from one writer at a time.</summary>
public interface IGrpcStreamWriter<in TResponse>
{
    ValueTask WriteAsync(TResponse message, CancellationToken cancellationToken = default);
}
