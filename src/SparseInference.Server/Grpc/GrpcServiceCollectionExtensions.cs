using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using SparseInference.Server.Hosting;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Protocol.Grpc;

namespace SparseInference.Server.Grpc;

public static class GrpcServiceCollectionExtensions
{
    /// <summary>
    /// gRPC on grpc-dotnet: <c>inference.GRPCInferenceService</c>, grpc.health.v1 following readiness, and server
    /// reflection; messages up to <c>SparseInference:Limits:MaxGrpcMessageBytes</c> each way (a gzip request is refused
    /// as it inflates past that, not after), API keys and statuses through interceptors.
    /// </summary>
    public static IServiceCollection AddSparseInferenceGrpc(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddGrpc(options =>
        {
            options.Interceptors.Add<GrpcApiKeyInterceptor>();
            options.Interceptors.Add<GrpcStatusInterceptor>();
        });
        services.AddOptions<GrpcServiceOptions>().Configure<IOptions<SparseInferenceOptions>>((grpc, serving) =>
        {
            var limit = serving.Value.Limits.MaxGrpcMessageBytes;
            grpc.MaxReceiveMessageSize = limit;
            grpc.MaxSendMessageSize = limit;
            grpc.CompressionProviders = [new GzipCompressionProvider()];
        });
        services.TryAddSingleton<GrpcInferenceService>();
        services.TryAddSingleton<InferenceGrpcService>();
        services.TryAddSingleton<GrpcApiKeyInterceptor>();
        services.TryAddSingleton<GrpcStatusInterceptor>();
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks(options =>
        {
            // Check runs the readiness check on each call; the empty name and the inference service both follow it.
            options.UseHealthChecksCache = false;
            options.Services.Clear();
            options.Services.Map("", check => check.Name == ReadinessHealthCheck.Name);
            options.Services.Map(GrpcInferenceService.ServiceName, check => check.Name == ReadinessHealthCheck.Name);
        }).AddCheck<ReadinessHealthCheck>(ReadinessHealthCheck.Name);
        return services;
    }

    /// <summary>Checks each request message's prefix on the gRPC port before grpc-dotnet reads it (<see cref="GrpcFrameGuardMiddleware"/>).</summary>
    public static IApplicationBuilder UseGrpcFrameGuard(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var options = app.ApplicationServices.GetRequiredService<IOptions<SparseInferenceOptions>>().Value;
        return app.UseMiddleware<GrpcFrameGuardMiddleware>(options.Ports.Grpc, options.Limits.MaxGrpcMessageBytes);
    }

    /// <summary>Maps the gRPC services on the gRPC port only.</summary>
    public static IEndpointRouteBuilder MapSparseInferenceGrpc(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var port = endpoints.ServiceProvider.GetRequiredService<IOptions<SparseInferenceOptions>>().Value.Ports.Grpc;
        endpoints.MapGrpcService<InferenceGrpcService>().RequireLocalPort(port);
        endpoints.MapGrpcHealthChecksService().RequireLocalPort(port);
        endpoints.MapGrpcReflectionService().RequireLocalPort(port);
        return endpoints;
    }
}
