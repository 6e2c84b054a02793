using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Variants;

namespace SparseInference.Serving.Tests.TestDoubles;

/// <summary>The protocol-neutral inference service as a host composes it, without the host.</summary>
internal static class InferenceServiceKit
{
    /// <summary>The inference service over <paramref name="repository"/> with the real variant router, bound to the repository's loads.</summary>
    public static (ServiceProvider Services, InferenceService Service) Build(ModelRepository repository, IInferenceExecutor executor)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().Build());
        services.AddSingleton(repository);
        services.AddSingleton(executor);
        services.AddSingleton<IVariantModelSource>(sp => new RepositoryVariantModelSource(sp, new ScaledEchoLoader()));
        services.AddSingleton<RepositoryVariantBinding>();
        services.AddSparseInferenceVariants();
        var provider = services.BuildServiceProvider();
        provider.GetRequiredService<RepositoryVariantBinding>().Attach(repository);
        var service = new InferenceService(repository, executor, provider.GetRequiredService<VariantRouter>(), TimeProvider.System);
        return (provider, service);
    }
}
