using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace SparseInference.Tensors.Cuda;

public static class CudaServiceCollectionExtensions
{
    /// <summary>
    /// Makes <c>cuda</c> / <c>cuda:N</c> devices available to a host that picks its backend through
    /// <see cref="IComputeBackendProvider"/>. Registers the provider only: CUDA's native libraries load when a CUDA
    /// device is configured and opened, never for a CPU run.
    /// </summary>
    public static IServiceCollection AddCudaBackend(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IComputeBackendProvider, CudaBackendProvider>());
        return services;
    }
}
