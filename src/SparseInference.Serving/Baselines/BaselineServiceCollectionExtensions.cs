using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using SparseInference.Serving.State;

namespace SparseInference.Serving.Baselines;

public static class BaselineServiceCollectionExtensions
{
    /// <summary>
    /// Registers per-line baselines held by the service: their documents in the shared state store
    /// (<see cref="LineBaselineStore"/>), this replica's view of them that the request path reads (<see cref="LineBaselines"/>)
    /// kept on the store by a background service, the administrative operations (<see cref="LineOnboarding"/>), their options
    /// from "SparseInference:Baselines" (validated at start) and metrics. Every piece is added with TryAdd so a host or a test
    /// can replace it; the model repository and the variant catalog come from the serving stack.
    /// </summary>
    public static IServiceCollection AddSparseInferenceBaselines(this IServiceCollection services)
    {
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSparseInferenceState();
        services.AddOptions<LineBaselineOptions>().BindConfiguration(LineBaselineOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LineBaselineOptions>, LineBaselineOptionsValidator>());
        services.TryAddSingleton<LineBaselineStore>();
        services.TryAddSingleton<BaselineMetrics>();
        services.TryAddSingleton<LineBaselines>();
        services.TryAddSingleton<LineOnboarding>();
        services.AddHostedService<BaselineConvergenceService>();
        return services;
    }
}
