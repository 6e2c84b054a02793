using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
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
using SparseInference.Serving.Protocol.Grpc;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Batching;
using SparseInference.Serving.Variants;

namespace SparseInference.Serving.Hosting;

public static class SparseInferenceServiceCollectionExtensions
{
    /// <summary>
    /// Registers the serving stack from the <c>SparseInference</c> configuration section: options (validated at start),
    /// the model repository, inference behind the dynamic batcher, variants with their admin API, the OIP gRPC mapping and Kestrel's four listeners. Every piece is added with
    /// <c>TryAdd</c>, so a host or a test can replace it.
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
        services.TryAddSingleton<IInferenceModelLoader, EngineModelLoader>();
        AddCudaMemorySource(services, configuration);
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
        services.TryAddSingleton<GrpcInferenceService>();
        services.AddHostedService<ServerLifecycle>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Microsoft.AspNetCore.Hosting.IStartupFilter, DrainingConnections>());
        services.AddInferenceApiKeys(configuration);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<MatcherPolicy, LocalPortMatcherPolicy>());

        services.AddOptions<HostOptions>().Configure<IOptions<SparseInferenceOptions>>((host, options) =>
            host.ShutdownTimeout = TimeSpan.FromSeconds(options.Value.Shutdown.TimeoutSeconds));

        services.AddOptions<KestrelServerOptions>().Configure<IOptions<SparseInferenceOptions>, IHostEnvironment>((kestrel, serving, environment) =>
        {
            var options = serving.Value;
            var root = environment.ContentRootPath;
            kestrel.Limits.MaxRequestBodySize = options.Limits.MaxRequestBodyBytes;
            TlsCertificates.Listen(kestrel, options.Ports.Rest, HttpProtocols.Http1, options.Tls.Rest, "Rest", root);
            // Cleartext HTTP/2 needs an endpoint that speaks HTTP/2 alone (no ALPN without TLS).
            TlsCertificates.Listen(kestrel, options.Ports.Grpc, HttpProtocols.Http2, options.Tls.Grpc, "Grpc", root);
            TlsCertificates.Listen(kestrel, options.Ports.Metrics, HttpProtocols.Http1, options.Tls.Metrics, "Metrics", root);
            TlsCertificates.Listen(kestrel, options.Ports.Admin, HttpProtocols.Http1, options.Tls.Admin, "Admin", root);
        });
        return services;
    }

    /// <summary>The configured in-flight budget, or the one derived from the container's memory limit.</summary>
    internal static long InFlightBudgetBytes(LimitOptions limits) =>
        limits.InFlightMemoryBytes > 0
            ? limits.InFlightMemoryBytes
            : ContainerMemory.DefaultBudgetBytes(ContainerMemory.ReadLimitBytes(), ContainerMemory.PhysicalBytes());

    /// <summary>
    /// With <c>SparseInference:Device</c> set to CUDA, reports the device's memory (and the backend pool's bytes by use)
    /// once the engine loader has opened the backend; on the CPU fallback the series stay absent.
    /// </summary>
    private static void AddCudaMemorySource(IServiceCollection services, IConfiguration configuration)
    {
        var device = (configuration[$"{SparseInferenceOptions.SectionName}:Device"] ?? ComputeDeviceSelector.Cpu).Trim().ToLowerInvariant();
        if (!device.StartsWith(ComputeDeviceSelector.Cuda, StringComparison.Ordinal))
        {
            return;
        }

        services.AddSingleton<IBackendMemorySource>(sp =>
        {
            var loader = sp.GetRequiredService<IInferenceModelLoader>() as EngineModelLoader;
            var label = device == ComputeDeviceSelector.Cuda ? "cuda:0" : device;
            return new CudaBackendMemorySource(() => loader?.OpenedBackend as SparseInference.Tensors.Cuda.CudaComputeBackend, label);
        });
    }
}
