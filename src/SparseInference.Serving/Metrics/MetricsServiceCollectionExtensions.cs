using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using SparseInference.Serving.Hosting;
using SparseInference.Tensors;

namespace SparseInference.Serving.Metrics;

public static class MetricsServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="ServingMetrics"/> on the container's meter factory; the host exports every "SparseInference"
    /// meter of that factory. Uses TryAdd so a host or test can replace it.
    /// </summary>
    public static IServiceCollection AddServingMetrics(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddMetrics();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IDeviceMemoryProbe, ProcessMemoryProbe>());
        services.TryAddSingleton(sp =>
        {
            // A backend memory source adds its device probe and the per-use gauge: the configured accelerator's, read once
            // its backend is open (none on the CPU), and any a host registers.
            var backends = sp.GetServices<IBackendMemorySource>().ToList();
            if (sp.GetService<ConfiguredBackend>() is { Device.Kind: not DeviceKind.Cpu } configured)
            {
                backends.Add(new BackendMemorySource(configured));
            }

            var probes = sp.GetServices<IDeviceMemoryProbe>().Concat(backends.Select(b => new BackendDeviceMemoryProbe(b)));
            var metrics = new ServingMetrics(sp.GetRequiredService<IMeterFactory>(), probes);
            BackendMemoryMetrics.AddTo(metrics.Meter, backends);
            return metrics;
        });
        return services;
    }
}
