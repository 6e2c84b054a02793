using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging;
using SparseInference.Serving;
using SparseInference.Serving.Health;

namespace SparseInference.Server.Grpc;

/// <summary>
/// Ends every call of the gRPC port with a status a Triton client expects: an <see cref="InferenceException"/> with the
/// status of its kind and its message; a call its client cancelled (or whose deadline passed) quietly; any other exception
/// with INTERNAL carrying the trace id that the error log line also carries (<see cref="UnhandledFaults"/>), where
/// grpc-dotnet would answer UNKNOWN.
/// </summary>
internal sealed partial class GrpcStatusInterceptor(ILogger<GrpcStatusInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw ToStatus(ex, context);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(requestStream, context).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw ToStatus(ex, context);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw ToStatus(ex, context);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw ToStatus(ex, context);
        }
    }

    /// <summary>The status of an InferenceException's kind; REST maps the same kinds in RestEndpoints.StatusFor.</summary>
    internal static StatusCode StatusFor(InferenceErrorKind kind) => kind switch
    {
        InferenceErrorKind.InvalidArgument => StatusCode.InvalidArgument,
        InferenceErrorKind.NotFound => StatusCode.NotFound,
        InferenceErrorKind.Unavailable => StatusCode.Unavailable,
        InferenceErrorKind.ResourceExhausted or InferenceErrorKind.Overloaded => StatusCode.ResourceExhausted,
        InferenceErrorKind.DeadlineExceeded => StatusCode.DeadlineExceeded,
        InferenceErrorKind.PermissionDenied => StatusCode.PermissionDenied,
        _ => StatusCode.Internal,
    };

    private RpcException ToStatus(Exception exception, ServerCallContext context)
    {
        if (exception is InferenceException inference)
        {
            var code = StatusFor(inference.Kind);
            Log.CallFailed(logger, context.Method, code, inference.Message);
            return new RpcException(new Status(code, inference.Message));
        }

        if (context.CancellationToken.IsCancellationRequested)
        {
            // The client reset the stream or the deadline passed: reads and writes then fail with cancellation or an I/O
            // error. grpc-dotnet has answered a passed deadline already; a gone client reads nothing.
            var deadlinePassed = context.Deadline <= DateTime.UtcNow;
            Log.CallCancelled(logger, context.Method, deadlinePassed ? "its deadline passed" : "the client cancelled it");
            return new RpcException(deadlinePassed
                ? new Status(StatusCode.DeadlineExceeded, "the call's deadline passed.")
                : new Status(StatusCode.Cancelled, "the client cancelled the call."));
        }

        var message = UnhandledFaults.Report(logger, "grpc", context.Method, exception);
        return new RpcException(new Status(StatusCode.Internal, "the server failed to handle the call: " + message));
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.GrpcCallFailed, Level = LogLevel.Debug, Message = "gRPC call {Method} ended with {Status}: {Message}")]
        public static partial void CallFailed(ILogger logger, string method, StatusCode status, string message);

        [LoggerMessage(EventId = EventIds.GrpcCallEndedEarly, Level = LogLevel.Debug, Message = "gRPC call {Method} ended early: {Reason}")]
        public static partial void CallCancelled(ILogger logger, string method, string reason);
    }
}
