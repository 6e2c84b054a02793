using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace SparseInference.Serving.Grpc;

public static class GrpcEndpointRouteBuilderExtensions
{
    /// <summary>Maps <c>POST /{service}/{method}</c> to the registry's methods; unknown methods get UNIMPLEMENTED.</summary>
    public static IEndpointConventionBuilder MapGrpcMethods(this IEndpointRouteBuilder endpoints, GrpcMethodRegistry registry, int maxMessageBytes)
    {
        var services = endpoints.ServiceProvider;
        var handler = new GrpcEndpointHandler(
            registry,
            maxMessageBytes,
            services.GetService<TimeProvider>() ?? TimeProvider.System,
            services.GetRequiredService<ILogger<GrpcEndpointHandler>>());
        return endpoints.Map("/{service}/{method}", handler.HandleAsync);
    }
}
