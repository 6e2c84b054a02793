using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Prometheus;
using SparseInference.Serving.Metrics;

namespace SparseInference.Server.Observability.Metrics;

public static class PrometheusExportServiceCollectionExtensions
{
    /// <summary>
    /// A prometheus-net registry of this host (not the process-wide default, so hosts side by side keep their series apart)
    /// with prometheus-net's process metrics, and the bridge that publishes every "SparseInference" meter of the host's meter
    /// factory in it.
    /// </summary>
    public static IServiceCollection AddPrometheusExport(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(_ =>
        {
            var registry = Prometheus.Metrics.NewCustomRegistry();
            DotNetStats.Register(registry);
            return registry;
        });
        services.TryAddSingleton(sp =>
        {
            var factory = sp.GetRequiredService<IMeterFactory>();
            var serving = sp.GetRequiredService<ServingMetrics>();
            return new PrometheusMeterBridge(sp.GetRequiredService<CollectorRegistry>(), instrument =>
                ReferenceEquals(instrument.Meter, serving.Meter)
                || (instrument.Meter.Name == ServingMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, factory)));
        });
        return services;
    }

    /// <summary>Serves the registry at <paramref name="pattern"/>; the host restricts it to the metrics port.</summary>
    public static IEndpointConventionBuilder MapPrometheusMetrics(this IEndpointRouteBuilder endpoints, string pattern = "/metrics")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        // The bridge listens from here on; instruments published earlier are reported to it when it starts.
        _ = endpoints.ServiceProvider.GetRequiredService<PrometheusMeterBridge>();
        return endpoints.MapMetrics(pattern, endpoints.ServiceProvider.GetRequiredService<CollectorRegistry>());
    }
}
