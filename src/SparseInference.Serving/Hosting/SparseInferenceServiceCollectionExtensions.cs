using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Grpc;
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
    /// the model repository, inference behind the dynamic batcher, variants with their admin API, the gRPC transport and Kestrel's four listeners. Every piece is added with
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
        services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<SparseInferenceOptions>>().Value;
            var root = SparseInferenceOptionsValidator.ResolveRepositoryPath(sp.GetRequiredService<IHostEnvironment>(), options.ModelRepository);
            var repository = new ModelRepository(root, sp.GetRequiredService<IInferenceModelLoader>(), sp.GetRequiredService<ILogger<ModelRepository>>());
            // Before anything loads: the variant catalog and batching queues follow every load and unload.
            sp.GetRequiredService<RepositoryVariantBinding>().Attach(repository);
            return repository;
        });
        services.TryAddSingleton<IInferenceExecutor, BatchingInferenceExecutor>();
        services.TryAddSingleton<IVariantModelSource, RepositoryVariantModelSource>();
        services.TryAddSingleton<RepositoryVariantBinding>();
        services.AddSparseInferenceVariants();
        services.TryAddSingleton<InferenceService>();
        services.TryAddSingleton<GrpcInferenceService>();
        services.AddHostedService<ServerLifecycle>();
        services.AddInferenceApiKeys(configuration);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<MatcherPolicy, LocalPortMatcherPolicy>());

        services.AddOptions<HostOptions>().Configure<IOptions<SparseInferenceOptions>>((host, options) =>
            host.ShutdownTimeout = TimeSpan.FromSeconds(options.Value.Shutdown.TimeoutSeconds));

        services.AddOptions<KestrelServerOptions>().Configure<IOptions<SparseInferenceOptions>>((kestrel, serving) =>
        {
            var options = serving.Value;
            kestrel.Limits.MaxRequestBodySize = options.Limits.MaxRequestBodyBytes;
            kestrel.ListenAnyIP(options.Ports.Rest, l => l.Protocols = HttpProtocols.Http1);
            // Cleartext HTTP/2 needs an endpoint that speaks HTTP/2 alone (no ALPN without TLS).
            kestrel.ListenAnyIP(options.Ports.Grpc, l => l.Protocols = HttpProtocols.Http2);
            kestrel.ListenAnyIP(options.Ports.Metrics, l => l.Protocols = HttpProtocols.Http1);
            kestrel.ListenAnyIP(options.Ports.Admin, l => l.Protocols = HttpProtocols.Http1);
        });
        return services;
    }
}
