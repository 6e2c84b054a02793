using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using SparseInference.Serving.State;
using SparseInference.Serving.Variants.Comparison;
using SparseInference.Serving.Variants.Guardrails;
using SparseInference.Serving.Variants.Rollout;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Variants;

public static class VariantServiceCollectionExtensions
{
    /// <summary>
    /// Registers variants, routing, shadow comparison, guardrails, and the shared rollout state every replica converges to (the state store of <see cref="StateServiceCollectionExtensions.AddSparseInferenceState"/>).
    /// The host must also register an <see cref="IVariantModelSource"/> (how to load weights and warm a variant).
    /// Every piece is added with TryAdd so a host or a test can replace it.
    /// </summary>
    public static IServiceCollection AddSparseInferenceVariants(this IServiceCollection services)
    {
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<VariantOptions>().BindConfiguration(VariantOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<VariantOptions>, VariantOptionsValidator>());

        services.AddSparseInferenceState();
        services.TryAddSingleton<RolloutStore>();
        services.TryAddSingleton<IRoutingRandom, SharedRoutingRandom>();
        services.TryAddSingleton<ComparisonStore>();
        services.TryAddSingleton<IServingPressure, NoServingPressure>();
        services.TryAddSingleton<VariantMetrics>();
        services.TryAddSingleton<VariantCatalog>();
        services.TryAddSingleton<GuardrailMonitor>();
        services.TryAddSingleton<ShadowDispatcher>();
        services.TryAddSingleton<VariantRouter>();
        services.AddHostedService(sp => sp.GetRequiredService<ShadowDispatcher>());
        services.AddHostedService<GuardrailEvaluationService>();
        services.AddHostedService<RolloutConvergenceService>();
        return services;
    }
}
