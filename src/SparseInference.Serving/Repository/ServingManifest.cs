using System.Text.Json;

namespace SparseInference.Serving.Repository;

/// <summary>
/// <c>models/&lt;name&gt;/serving.json</c>: how a model is served. Variants are named attention specs on the same
/// weights; a request picks one with the <c>variant</c> parameter, else <see cref="DefaultVariant"/> serves it.
/// </summary>
public sealed class ServingManifest
{
    public const string FileName = "serving.json";

    /// <summary>Version served when a request names none; null means the highest numeric version.</summary>
    public string? DefaultVersion { get; set; }

    /// <summary>Variant served when a request names none; null means the model config's own attention spec.</summary>
    public string? DefaultVariant { get; set; }

    public List<VariantManifest> Variants { get; set; } = [];

    /// <summary>Scheduler settings for this model, read by the batching layer; carried as is.</summary>
    public JsonElement? Batching { get; set; }

    public static ServingManifest Parse(ReadOnlySpan<byte> json, string source)
    {
        ServingManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize(json, RepositoryJsonContext.Default.ServingManifest);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{source}: not valid JSON: {ex.Message}", ex);
        }

        return manifest ?? throw new InvalidDataException($"{source}: expected a JSON object, got null.");
    }
}

public sealed class VariantManifest
{
    public string Name { get; set; } = "";
    public string Pattern { get; set; } = "dense";
    public double Sparsity { get; set; }
    public int? BlockSize { get; set; }
    public int? GlobalBlocks { get; set; }
    public ulong? Seed { get; set; }

    /// <summary>A directory of weights of this variant's own (relative to the model directory); null runs on the version's weights.</summary>
    public string? Weights { get; set; }
}
