using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace SparseInference.Serving.Metrics;

public static class MetricsServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="ServingMetrics"/> on the container's meter factory and a
    /// <see cref="PrometheusCollector"/> over every "SparseInference" meter of that factory.
    /// Uses TryAdd so a host or test can replace either.
    /// </summary>
    public static IServiceCollection AddServingMetrics(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddMetrics();
        services.TryAddSingleton<Protocol.InferenceRequestLog>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IDeviceMemoryProbe, ProcessMemoryProbe>());
        services.TryAddSingleton(sp =>
        {
            // A backend memory source (CUDA) adds its device probe and the per-use gauge.
            var backends = sp.GetServices<IBackendMemorySource>().ToList();
            var probes = sp.GetServices<IDeviceMemoryProbe>().Concat(backends.Select(b => new BackendDeviceMemoryProbe(b)));
            var metrics = new ServingMetrics(sp.GetRequiredService<IMeterFactory>(), probes);
            BackendMemoryMetrics.AddTo(metrics.Meter, backends);
            return metrics;
        });
        services.TryAddSingleton(sp =>
        {
            var factory = sp.GetRequiredService<IMeterFactory>();
            var serving = sp.GetRequiredService<ServingMetrics>();
            return new PrometheusCollector(m =>
                ReferenceEquals(m, serving.Meter) || (m.Name == ServingMetrics.MeterName && ReferenceEquals(m.Scope, factory)));
        });
        return services;
    }
}

public static class PrometheusEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Serves the Prometheus text format at <paramref name="path"/>. The host restricts it to the metrics
    /// port, e.g. <c>.RequireHost("*:8002")</c>.
    /// </summary>
    public static IEndpointConventionBuilder MapPrometheusMetrics(this IEndpointRouteBuilder endpoints, string path = "/metrics")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var collector = endpoints.ServiceProvider.GetRequiredService<PrometheusCollector>();
        return endpoints.MapGet(path, async (HttpContext context) =>
        {
            context.Response.ContentType = PrometheusNaming.ContentType;
            context.Response.Headers.CacheControl = "no-store";
            await collector.WriteAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
        }).WithDisplayName("Prometheus metrics");
    }
}
