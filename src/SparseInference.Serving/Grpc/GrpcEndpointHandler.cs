using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace SparseInference.Serving.Grpc;

/// <summary>
/// Serves registered gRPC methods over Kestrel HTTP/2: checks the request, applies <c>grpc-timeout</c>, runs the
/// method and ends the call with <c>grpc-status</c>/<c>grpc-message</c> trailers (or a Trailers-Only response when
/// it fails before anything was sent).
/// </summary>
internal sealed partial class GrpcEndpointHandler(GrpcMethodRegistry registry, int maxMessageBytes, TimeProvider time, ILogger<GrpcEndpointHandler> logger)
{
    public async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        if (!HttpMethods.IsPost(request.Method) || !IsGrpcContentType(request.ContentType))
        {
            // PROTOCOL-HTTP2.md: a request that is not gRPC gets HTTP 415.
            context.Response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
            context.Response.Headers.ContentType = "text/plain";
            await context.Response.WriteAsync($"expected POST with content-type {GrpcProtocol.ContentType}, got {request.Method} with '{request.ContentType}'.").ConfigureAwait(false);
            return;
        }

        // Message size is checked per message; the body as a whole is a stream of any length.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = null;
        }

        var path = request.Path.Value ?? "";
        context.Response.ContentType = GrpcProtocol.ContentType;
        context.Response.Headers[GrpcProtocol.AcceptEncodingHeader] = GrpcProtocol.SupportedEncodings;

        if (!registry.TryGet(path, out var method))
        {
            await CompleteAsync(context, GrpcStatusCode.Unimplemented, $"method '{path}' is not implemented by this server.").ConfigureAwait(false);
            return;
        }

        var encoding = request.Headers[GrpcProtocol.EncodingHeader].ToString();
        if (encoding is not ("" or "identity" or "gzip"))
        {
            await CompleteAsync(
                context, GrpcStatusCode.Unimplemented,
                $"{GrpcProtocol.EncodingHeader} '{encoding}' is not supported; supported: {GrpcProtocol.SupportedEncodings}.").ConfigureAwait(false);
            return;
        }

        TimeSpan? timeout = null;
        var timeoutHeader = request.Headers[GrpcProtocol.TimeoutHeader].ToString();
        if (timeoutHeader.Length > 0)
        {
            if (!GrpcProtocol.TryParseTimeout(timeoutHeader, out var parsed))
            {
                await CompleteAsync(
                    context, GrpcStatusCode.InvalidArgument,
                    $"{GrpcProtocol.TimeoutHeader} must be 1-8 digits followed by H, M, S, m, u or n, got '{timeoutHeader}'.").ConfigureAwait(false);
                return;
            }

            timeout = parsed;
        }

        using var deadline = timeout is { } t && t > TimeSpan.Zero ? new CancellationTokenSource(t, time) : new CancellationTokenSource();
        if (timeout is { } expired && expired <= TimeSpan.Zero)
        {
            await deadline.CancelAsync().ConfigureAwait(false);
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, context.RequestAborted);
        var callContext = new GrpcCallContext(context, path, timeout is { } d ? time.GetUtcNow() + d : null, linked.Token);
        var call = new GrpcServerCall(callContext, maxMessageBytes, encoding == "gzip");
        try
        {
            linked.Token.ThrowIfCancellationRequested();
            await method.InvokeAsync(call).ConfigureAwait(false);
            await CompleteAsync(context, GrpcStatusCode.OK, null).ConfigureAwait(false);
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client reset the stream (reads then fail with cancellation or an I/O error); nobody is left to read a status.
            Log.CallCancelled(logger, path);
        }
        catch (GrpcStatusException ex)
        {
            Log.CallFailed(logger, path, ex.Status, ex.Message);
            await CompleteAsync(context, ex.Status, ex.Message).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex)
        {
            // The client broke the transport's rules for its body (too large, too slow): a client's fault, answered with
            // a status and no error log, so a client cannot amplify it into the server's logs.
            var status = ex.StatusCode == StatusCodes.Status413PayloadTooLarge ? GrpcStatusCode.ResourceExhausted : GrpcStatusCode.InvalidArgument;
            Log.CallFailed(logger, path, status, ex.Message);
            await CompleteAsync(context, status, ex.Message).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            Log.DeadlineExceeded(logger, path, timeoutHeader);
            await CompleteAsync(context, GrpcStatusCode.DeadlineExceeded, $"deadline of {timeoutHeader} exceeded.").ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            var message = Health.UnhandledFaults.Report(logger, "grpc", path, ex);
            await CompleteAsync(context, GrpcStatusCode.Internal, "the server failed to handle the call: " + message).ConfigureAwait(false);
        }
    }

    private static bool IsGrpcContentType(string? contentType) =>
        contentType is not null
        && contentType.StartsWith(GrpcProtocol.ContentType, StringComparison.OrdinalIgnoreCase)
        && (contentType.Length == GrpcProtocol.ContentType.Length || contentType[GrpcProtocol.ContentType.Length] is '+' or ';');

    /// <summary>Ends the call: trailers after a started response, else a Trailers-Only response (status in the headers).</summary>
    private static async Task CompleteAsync(HttpContext context, GrpcStatusCode status, string? message)
    {
        var response = context.Response;
        var code = ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (!response.HasStarted)
        {
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = GrpcProtocol.ContentType;
            response.Headers[GrpcProtocol.StatusTrailer] = code;
            if (!string.IsNullOrEmpty(message))
            {
                response.Headers[GrpcProtocol.MessageTrailer] = GrpcProtocol.EncodeMessage(message);
            }

            return;
        }

        response.AppendTrailer(GrpcProtocol.StatusTrailer, code);
        if (!string.IsNullOrEmpty(message))
        {
            response.AppendTrailer(GrpcProtocol.MessageTrailer, GrpcProtocol.EncodeMessage(message));
        }

        await response.BodyWriter.FlushAsync().ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 300, Level = LogLevel.Debug, Message = "gRPC call {Method} ended with {Status}: {Message}")]
        public static partial void CallFailed(ILogger logger, string method, GrpcStatusCode status, string message);

        [LoggerMessage(EventId = 301, Level = LogLevel.Debug, Message = "gRPC call {Method} exceeded its deadline ({Timeout})")]
        public static partial void DeadlineExceeded(ILogger logger, string method, string timeout);

        [LoggerMessage(EventId = 302, Level = LogLevel.Debug, Message = "gRPC call {Method} was cancelled by the client")]
        public static partial void CallCancelled(ILogger logger, string method);

    }
}
