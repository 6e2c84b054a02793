using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Admin;
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
    public void AdminOptions_ShortToken_FailsValidationWithFieldExpectedActual()
    {
        var services = Services(new() { ["SparseInference:Admin:Token"] = "short" });
        services.AddSparseInferenceVariants();
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<AdminOptions>>().Value);

        Assert.Contains("SparseInference:Admin:Token: expected at least 16 characters, actual 5", ex.Message);
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

    [Theory]
    [InlineData(null, "9103", 9103)]
    [InlineData("9200", "9103", 9200)]
    [InlineData(null, null, 8003)]
    public void AdminOptions_Port_FollowsHostAdminPortUnlessSet(string? adminPort, string? hostPort, int expected)
    {
        var services = Services(new() { ["SparseInference:Admin:Port"] = adminPort, ["SparseInference:Ports:Admin"] = hostPort });
        services.AddSparseInferenceVariants();
        using var provider = services.BuildServiceProvider();

        Assert.Equal(expected, provider.GetRequiredService<IOptions<AdminOptions>>().Value.Port);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public void AdminOptions_BlankToken_ValidMeaningNotConfigured(string token)
    {
        var services = Services(new() { ["SparseInference:Admin:Token"] = token });
        services.AddSparseInferenceVariants();
        using var provider = services.BuildServiceProvider();

        Assert.False(provider.GetRequiredService<IOptions<AdminOptions>>().Value.HasToken);
    }
}
