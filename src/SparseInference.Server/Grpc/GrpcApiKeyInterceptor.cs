using Grpc.Core;
using Grpc.Core.Interceptors;
using SparseInference.Serving.Hosting;
using SparseInference.Server.Hosting;

namespace SparseInference.Server.Grpc;

/// <summary>
/// With inference API keys configured, every call of the gRPC port must carry <c>authorization: Bearer &lt;key&gt;</c>
/// metadata, else it ends with UNAUTHENTICATED. Liveness, readiness and grpc.health.v1 stay open for probes.
/// </summary>
internal sealed class GrpcApiKeyInterceptor(InferenceApiKeys keys) : Interceptor
{
    private static readonly HashSet<string> OpenMethods = new(StringComparer.Ordinal)
    {
        "/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady",
        "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
    };

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Check(ServerCallContext context)
    {
        if (!keys.Required || OpenMethods.Contains(context.Method))
        {
            return;
        }

        var headers = context.GetHttpContext().Request.Headers;
        if (!keys.Accepts(headers.Authorization.ToString(), headers["x-api-key"].ToString()))
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, InferenceApiKeys.MissingKeyMessage));
        }
    }
}
