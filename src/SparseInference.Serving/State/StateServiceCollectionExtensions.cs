using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace SparseInference.Serving.State;

public static class StateServiceCollectionExtensions
{
    /// <summary>
    /// Registers the shared state store (<see cref="IStateStore"/>) from "SparseInference:State", validated at start:
    /// a <see cref="DirectoryStateStore"/> on <see cref="StateStoreOptions.Directory"/>. Added with TryAdd, so a
    /// host or a test can put another store in its place.
    /// </summary>
    public static IServiceCollection AddSparseInferenceState(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<StateStoreOptions>().BindConfiguration(StateStoreOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<StateStoreOptions>, StateStoreOptionsValidator>());
        services.TryAddSingleton<IStateStore>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<StateStoreOptions>>().Value;
            var directory = options.ResolveDirectory(sp.GetService<IHostEnvironment>()?.ContentRootPath);
            return new DirectoryStateStore(directory, options, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<DirectoryStateStore>>());
        });
        return services;
    }
}
