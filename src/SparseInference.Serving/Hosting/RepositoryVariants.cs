using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SparseInference.Models;
using SparseInference.Serving.Batching;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Variants;

namespace SparseInference.Serving.Hosting;

/// <summary>A model's default version as the variants see it: variants on the default weights share this one instance.</summary>
public sealed class VersionVariantModel(ModelVersion version) : IVariantModel
{
    public ModelVersion Version { get; } = version;

    public ForwardResult Forward(ForwardInput input, AttentionSpec spec) => Version.Model.Forward(input, spec);
}

/// <summary>A variant's own weights, loaded through the repository's loader.</summary>
public sealed class LoadedVariantModel(IInferenceModel model, string directory) : IVariantModel, IDisposable
{
    public IInferenceModel Model { get; } = model;

    public string Directory { get; } = directory;

    public ForwardResult Forward(ForwardInput input, AttentionSpec spec) => Model.Forward(input, spec);

    public void Dispose() => (Model as IDisposable)?.Dispose();
}

/// <summary>
/// Loads variant weights with the repository's model loader: a relative directory is taken from the model's directory,
/// and either kind must resolve inside the model repository (a manifest, an override or an admin change may not point the
/// server at files elsewhere on the host). Warm-up inputs follow the model's configuration.
/// </summary>
public sealed class RepositoryVariantModelSource(IServiceProvider services, IInferenceModelLoader loader) : IVariantModelSource
{
    public Task<IVariantModel> LoadAsync(string model, string weightsDirectory, CancellationToken cancellationToken)
    {
        var repository = services.GetRequiredService<ModelRepository>();
        var directory = ResolveWeightsDirectory(repository.Root, model, weightsDirectory);
        if (!File.Exists(Path.Combine(directory, ModelRepository.ConfigFileName)) || !File.Exists(Path.Combine(directory, ModelRepository.WeightsFileName)))
        {
            throw new FileNotFoundException(
                $"weights: expected a directory holding {ModelRepository.ConfigFileName} and {ModelRepository.WeightsFileName}, actual '{directory}' lacks them");
        }

        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult<IVariantModel>(new LoadedVariantModel(loader.Load(directory), directory));
    }

    /// <summary>The full path of a variant's weights directory, or an <see cref="ArgumentException"/> when it leaves the repository.</summary>
    public static string ResolveWeightsDirectory(string repositoryRoot, string model, string weightsDirectory)
    {
        try
        {
            // Relative to the model's directory; an absolute path replaces the whole and must still lie inside the root.
            return ModelNames.CombineConfined(repositoryRoot, Path.Combine(model, weightsDirectory));
        }
        catch (ArgumentException)
        {
            throw new ArgumentException(
                $"weights: expected a directory inside the model repository (relative to the model's directory), actual '{weightsDirectory}'");
        }
    }

    public ForwardInput CreateWarmupInput(string model)
    {
        var configuration = services.GetRequiredService<ModelRepository>().Resolve(model, null).Configuration;
        var time = Math.Min(16, configuration.MaxSeqLen);
        if (configuration.InputKind == ModelConfiguration.TokenInput)
        {
            return new ForwardInput { Batch = 1, Time = time, TokenIds = [.. Enumerable.Range(0, time).Select(i => i % configuration.VocabSize)] };
        }

        var values = new float[time * configuration.InputChannels];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = MathF.Sin(0.3f * i);
        }

        return new ForwardInput { Batch = 1, Time = time, Values = values };
    }
}

/// <summary>
/// Keeps the variant catalog and the batching queues in step with the repository: a loaded model gets its
/// manifest's variants (default at 100%, the others at 0%, on the loaded default weights; variants naming
/// <c>weights</c> load them through the repository loader), then the model's shared rollout state; an unloaded
/// or reloaded one has its queues drained and, when unloaded, its variants removed.
/// </summary>
public sealed partial class RepositoryVariantBinding(VariantCatalog catalog, IInferenceExecutor executor, ILogger<RepositoryVariantBinding> logger)
{
    public void Attach(ModelRepository repository)
    {
        repository.Validating += version => Validate(repository.Root, version);
        repository.Changed += OnChanged;
    }

    /// <summary>
    /// Everything registering a version's variants would refuse, checked before the repository publishes it: the
    /// definitions, the registry's own registration checks, and weights directories that leave the repository.
    /// </summary>
    private static void Validate(string repositoryRoot, ModelVersion version)
    {
        var definitions = Definitions(version);
        var initial = definitions.Single(d => d.Name == version.DefaultVariant);
        VariantRegistry.CheckRegistration(version.ModelName, initial, definitions.Where(d => d.Name != initial.Name));
        foreach (var definition in definitions.Where(d => d.WeightsDirectory is not null))
        {
            try
            {
                RepositoryVariantModelSource.ResolveWeightsDirectory(repositoryRoot, version.ModelName, definition.WeightsDirectory!);
            }
            catch (ArgumentException ex)
            {
                throw new InvalidDataException($"serving.json of '{version.ModelName}': variant '{definition.Name}': {ex.Message}", ex);
            }
        }
    }

    private void OnChanged(ModelChange change)
    {
        if (change.Retired.Count > 0 && executor is BatchingInferenceExecutor batching)
        {
            // Requests already queued on the old versions finish on them before their weights are released.
            batching.DrainAsync(change.Retired).GetAwaiter().GetResult();
        }

        catalog.Remove(change.Name);
        if (change.DefaultVersion is not { } version)
        {
            return;
        }

        var definitions = Definitions(version);
        var initial = definitions.Single(d => d.Name == version.DefaultVariant);
        // The shared rollout state is applied here, before the repository reports the model loaded (and so before
        // the server reports ready): a replica that starts or restarts serves the fleet's split from its first request.
        var (registry, failures) = catalog.AddModelAsync(change.Name, new VersionVariantModel(version), initial, definitions.Where(d => d.Name != initial.Name))
            .GetAwaiter().GetResult();
        foreach (var (own, error) in failures)
        {
            // The model serves its other variants; the operator sees why this one is missing.
            Log.VariantBuildFailed(logger, change.Name, own.Name, own.WeightsDirectory!, error);
        }

        Log.VariantsRegistered(logger, change.Name, version.Version, string.Join(",", definitions.Select(d => d.Name)), initial.Name, registry.Current.Version);
    }

    private static List<VariantDefinition> Definitions(ModelVersion version)
    {
        var weights = version.Manifest.Variants.ToDictionary(v => v.Name, v => v.Weights, StringComparer.Ordinal);
        var definitions = new List<VariantDefinition>();
        foreach (var (name, spec) in version.Variants)
        {
            var definition = new VariantDefinition(name, spec.Pattern, spec.Sparsity, spec.BlockSize, spec.GlobalBlocks, spec.Seed, weights.GetValueOrDefault(name));
            if (definition.Validate() is { Count: > 0 } errors)
            {
                throw new InvalidDataException($"serving.json of '{version.ModelName}': variant '{name}': {string.Join("; ", errors)}");
            }

            definitions.Add(definition);
        }

        return definitions;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.VariantsRegistered, Level = LogLevel.Information, Message = "Variants of {Model} (version {Version}): {Variants}, default {Default}; serving rollout revision {Revision}")]
        public static partial void VariantsRegistered(ILogger logger, string model, string version, string variants, string @default, long revision);

        [LoggerMessage(EventId = EventIds.VariantBuildFailed, Level = LogLevel.Warning, Message = "Variant {Variant} of {Model} on weights {Weights} was not added: {Error}")]
        public static partial void VariantBuildFailed(ILogger logger, string model, string variant, string weights, string error);
    }
}
