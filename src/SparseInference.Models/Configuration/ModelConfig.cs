using System.Text.Json;

namespace SparseInference.Models.Configuration;

/// <summary>Whether a model reads continuous channels or token ids.</summary>
public enum InputKind
{
    Continuous,
    Tokens,
}

/// <summary>How positions are encoded.</summary>
public enum PositionalKind
{
    Sinusoidal,
    Learned,
}

/// <summary>The output head.</summary>
public enum HeadKind
{
    Reconstruction,
    Regression,
    Classification,
}

/// <summary>A validated <c>config.json</c> (docs/model-format.md).</summary>
public sealed record ModelConfig
{
    public const string FormatName = "sparseinference-encoder";
    public const int FormatVersion = 1;

    public required InputKind InputKind { get; init; }
    public required int InputChannels { get; init; }
    public required int VocabSize { get; init; }
    public required int DModel { get; init; }
    public required int NHeads { get; init; }
    public required int NLayers { get; init; }
    public required int DFf { get; init; }
    public required int MaxSeqLen { get; init; }
    public required PositionalKind Positional { get; init; }
    public required double LayerNormEps { get; init; }
    public required HeadKind Head { get; init; }
    public required int OutputDim { get; init; }
    public required bool Gated { get; init; }
    /// <summary>The model's default attention spec.</summary>
    public required AttentionSpec Attention { get; init; }
    public double? AnomalyThreshold { get; init; }
    /// <summary>Free-form metadata, carried through untouched.</summary>
    public JsonElement? Metadata { get; init; }

    public int DHead => DModel / NHeads;

    /// <summary>Reads and validates <paramref name="path"/>; errors name the file, the field, expected and actual value.</summary>
    public static ModelConfig Load(string path)
    {
        string json;
        try
        {
            json = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, $"cannot read the model configuration: {e.Message}", e);
        }

        return Parse(json, path);
    }

    /// <summary>Parses and validates config JSON; <paramref name="source"/> names the file in errors.</summary>
    public static ModelConfig Parse(string json, string source)
    {
        ModelConfigDocument? doc;
        try
        {
            doc = JsonSerializer.Deserialize(json, ModelConfigJsonContext.Default.ModelConfigDocument);
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(source, $"invalid JSON at {e.Path ?? "$"} (line {e.LineNumber + 1}): {e.Message}", e);
        }

        if (doc is null)
        {
            throw new ModelFormatException(source, "expected a JSON object, got null.");
        }

        return ModelConfigValidator.Validate(doc, source);
    }
}
