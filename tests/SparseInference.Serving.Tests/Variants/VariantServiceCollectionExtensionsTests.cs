using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Tests.Variants;

public class VariantServiceCollectionExtensionsTests
{
    private static ServiceCollection Services(Dictionary<string, string?> settings)
    {
        var services = new ServiceCollection();
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["SparseInference:State:Directory"] = VariantTestKit.TempStateDirectory() })
            .AddInMemoryCollection(settings)
            .Build();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddLogging();
        services.AddSingleton<IVariantModelSource>(new TestModelSource());
        return services;
    }

    [Fact]
    public void AddSparseInferenceVariants_CalledTwice_RegistersBackgroundWorkOnce()
    {
        var services = Services([]);
        services.AddSparseInferenceVariants();
        services.AddSparseInferenceVariants();
        using var provider = services.BuildServiceProvider();

        // Shadow dispatcher, guardrail evaluation, rollout convergence.
        Assert.Equal(3, provider.GetServices<IHostedService>().Count());
        Assert.Same(provider.GetRequiredService<VariantRouter>(), provider.GetRequiredService<VariantRouter>());
    }

    [Fact]
    public void AddSparseInferenceVariants_HostReplacesRandom_ReplacementIsUsed()
    {
        var services = Services([]);
        var random = new SeededRandom(1);
        services.AddSingleton<IRoutingRandom>(random);
        services.AddSparseInferenceVariants();
        using var provider = services.BuildServiceProvider();

        Assert.Same(random, provider.GetRequiredService<IRoutingRandom>());
    }

    [Fact]
    public void VariantOptions_ZeroShadowQueue_FailsValidation()
    {
        var services = Services(new() { ["SparseInference:Variants:ShadowQueueCapacity"] = "0" });
        services.AddSparseInferenceVariants();
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<VariantOptions>>().Value);

        Assert.Contains("ShadowQueueCapacity: expected 1..100000, actual 0", ex.Message);
    }
}
