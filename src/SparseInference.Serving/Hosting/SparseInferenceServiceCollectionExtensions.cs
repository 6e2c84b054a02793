using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Admission;
using SparseInference.Serving.Baselines;
using SparseInference.Serving.Health;
using SparseInference.Serving.Metrics;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Batching;
using SparseInference.Serving.Variants;

namespace SparseInference.Serving.Hosting;

public static class SparseInferenceServiceCollectionExtensions
{
    /// <summary>
    /// Registers the serving library from the <c>SparseInference</c> configuration section: the options tree (validated at
    /// start), the configured compute backend (accelerators through a registered <c>IComputeBackendProvider</c>), the model
    /// repository, the protocol-neutral <see cref="InferenceService"/> behind admission and the dynamic batcher, variants with
    /// their shared rollout state, the metric instruments and the start-up load and shutdown drain. No transport: a host maps
    /// REST, gRPC and the admin API onto these services. Every piece is added with <c>TryAdd</c>, so a host or a test can
    /// replace it.
    /// </summary>
    public static IServiceCollection AddSparseInference(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<SparseInferenceOptions>()
            .Bind(configuration.GetSection(SparseInferenceOptions.SectionName))
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SparseInferenceOptions>, SparseInferenceOptionsValidator>());

        services.TryAddSingleton(TimeProvider.System);
        services.AddServingMetrics();
        services.TryAddSingleton<ServerState>();
        services.TryAddSingleton<ConfiguredBackend>();
        services.TryAddSingleton<IInferenceModelLoader, EngineModelLoader>();
        services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<SparseInferenceOptions>>().Value;
            var root = SparseInferenceOptionsValidator.ResolveRepositoryPath(sp.GetRequiredService<IHostEnvironment>(), options.ModelRepository);
            var loader = new FaultObservingModelLoader(sp.GetRequiredService<IInferenceModelLoader>(), sp.GetRequiredService<EngineFaultMonitor>());
            var repository = new ModelRepository(root, loader, sp.GetRequiredService<ILogger<ModelRepository>>());
            // Before anything loads: the variant catalog and batching queues follow every load and unload.
            sp.GetRequiredService<RepositoryVariantBinding>().Attach(repository);
            return repository;
        });
        services.TryAddSingleton<IInferenceExecutor, BatchingInferenceExecutor>();
        services.TryAddSingleton(sp => new InFlightMemoryBudget(
            InFlightBudgetBytes(sp.GetRequiredService<IOptions<SparseInferenceOptions>>().Value.Limits),
            sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.TryAddSingleton<EngineFaultMonitor>();
        services.TryAddSingleton<IVariantModelSource>(sp => new RepositoryVariantModelSource(
            sp, new FaultObservingModelLoader(sp.GetRequiredService<IInferenceModelLoader>(), sp.GetRequiredService<EngineFaultMonitor>())));
        services.TryAddSingleton<RepositoryVariantBinding>();
        services.AddSparseInferenceVariants();
        services.AddSparseInferenceBaselines();
        services.TryAddSingleton<InferenceService>();
        services.AddHostedService<ServerLifecycle>();
        return services;
    }

    /// <summary>The configured in-flight budget, or the one derived from the container's memory limit.</summary>
    internal static long InFlightBudgetBytes(LimitOptions limits) =>
        limits.InFlightMemoryBytes > 0
            ? limits.InFlightMemoryBytes
            : ContainerMemory.DefaultBudgetBytes(ContainerMemory.ReadLimitBytes(), ContainerMemory.PhysicalBytes());
}
