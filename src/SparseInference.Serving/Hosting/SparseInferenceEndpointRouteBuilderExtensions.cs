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
    /// Maps the Open Inference Protocol's REST API on the REST port only, and the variants admin API and model control
    /// (repository load and unload) on the admin port only, behind the admin token; the host maps gRPC and the metrics
    /// exporter.
    /// </summary>
    public static IEndpointRouteBuilder MapSparseInference(this IEndpointRouteBuilder endpoints)
    {
        var options = endpoints.ServiceProvider.GetRequiredService<IOptions<SparseInferenceOptions>>().Value;
        endpoints.MapOpenInferenceRest().RequireLocalPort(options.Ports.Rest);
        endpoints.MapSparseInferenceAdmin().RequireLocalPort(options.Ports.Admin);
        endpoints.MapSparseInferenceModelControl().RequireLocalPort(options.Ports.Admin);
        return endpoints;
    }
}
