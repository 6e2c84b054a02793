using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Admin;
using SparseInference.Serving.Protocol.Rest;

namespace SparseInference.Serving.Hosting;

public static class SparseInferenceEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps the Open Inference Protocol's REST API on the REST port only and the variants admin API on the admin port only;
    /// the host maps gRPC and the metrics exporter.
    /// </summary>
    public static IEndpointRouteBuilder MapSparseInference(this IEndpointRouteBuilder endpoints)
    {
        var options = endpoints.ServiceProvider.GetRequiredService<IOptions<SparseInferenceOptions>>().Value;
        endpoints.MapOpenInferenceRest().RequireLocalPort(options.Ports.Rest);
        endpoints.MapSparseInferenceAdmin().RequireLocalPort(options.Ports.Admin);
        return endpoints;
    }
}
