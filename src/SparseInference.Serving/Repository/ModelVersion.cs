using SparseInference.Models;

namespace SparseInference.Serving.Repository;

/// <summary>A loaded, servable version of a model with its named attention variants and counters.</summary>
public sealed class ModelVersion
{
    /// <summary>The variant name used when serving.json defines none: the model config's own attention spec.</summary>
    public const string ConfigVariantName = "default";

    internal ModelVersion(string modelName, string version, string directory, IInferenceModel model, ServingManifest manifest)
    {
        ModelName = modelName;
        Version = version;
        Directory = directory;
        Model = model;
        Manifest = manifest;
        var attention = model.Configuration.Attention;
        var variants = new Dictionary<string, AttentionSpec>(StringComparer.Ordinal);
        foreach (var v in manifest.Variants)
        {
            variants[v.Name] = new AttentionSpec(
                v.Pattern,
                v.Sparsity,
                v.BlockSize ?? attention.BlockSize,
                v.GlobalBlocks ?? attention.GlobalBlocks,
                v.Seed ?? attention.Seed);
        }

        if (variants.Count == 0)
        {
            variants[ConfigVariantName] = new AttentionSpec(attention.Pattern, attention.Sparsity, attention.BlockSize, attention.GlobalBlocks, attention.Seed);
        }

        Variants = variants;
        DefaultVariant = manifest.DefaultVariant ?? (manifest.Variants.Count > 0 ? manifest.Variants[0].Name : ConfigVariantName);
    }

    public string ModelName { get; }
    public string Version { get; }
    public string Directory { get; }
    public IInferenceModel Model { get; }
    public ModelConfiguration Configuration => Model.Configuration;
    public ServingManifest Manifest { get; }
    public IReadOnlyDictionary<string, AttentionSpec> Variants { get; }
    public string DefaultVariant { get; }
    public ModelVersionStatistics Statistics { get; } = new();

    /// <summary>The manifest's batching block (validated when the version loaded), read once.</summary>
    public Batching.DynamicBatcherOptions BatchingOptions => _batching ??= Batching.BatchingInferenceExecutor.ReadOptions(Manifest, ModelName);

    private Batching.DynamicBatcherOptions? _batching;

    /// <summary>Set once an unload or reload has replaced this version; its queues are drained and new work runs unbatched.</summary>
    public bool IsRetired => Volatile.Read(ref _retired);

    private bool _retired;

    internal void Retire() => Volatile.Write(ref _retired, true);
}
