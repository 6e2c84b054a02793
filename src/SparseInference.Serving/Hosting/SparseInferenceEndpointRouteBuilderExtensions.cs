using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Admin;
using SparseInference.Serving.Grpc;
using SparseInference.Serving.Metrics;
using SparseInference.Serving.Protocol.Grpc;
using SparseInference.Serving.Protocol.Rest;

namespace SparseInference.Serving.Hosting;

public static class SparseInferenceEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps the Open Inference Protocol (REST on the REST port only, gRPC on the gRPC port only) and the Prometheus
    /// exporter on the metrics port only, and the variants admin API and model control (repository load and unload) on
    /// the admin port only, behind the admin token.
    /// </summary>
    public static IEndpointRouteBuilder MapSparseInference(this IEndpointRouteBuilder endpoints)
    {
        var options = endpoints.ServiceProvider.GetRequiredService<IOptions<SparseInferenceOptions>>().Value;
        endpoints.MapOpenInferenceRest().RequireLocalPort(options.Ports.Rest);

        var registry = endpoints.ServiceProvider.GetRequiredService<GrpcInferenceService>().Register(new GrpcMethodRegistry());
        endpoints.MapGrpcMethods(registry, options.Limits.MaxGrpcMessageBytes).RequireLocalPort(options.Ports.Grpc);
        endpoints.MapPrometheusMetrics().RequireLocalPort(options.Ports.Metrics);
        endpoints.MapSparseInferenceAdmin().RequireLocalPort(options.Ports.Admin);
        endpoints.MapSparseInferenceModelControl().RequireLocalPort(options.Ports.Admin);
        return endpoints;
    }
}
