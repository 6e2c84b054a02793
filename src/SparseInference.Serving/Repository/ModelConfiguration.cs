using System.Text.Json;
using System.Text.Json.Serialization;

namespace SparseInference.Serving.Repository;

/// <summary>
/// The fields of a version's <c>config.json</c> (docs/model-format.md) that shape the serving contract:
/// tensor names, datatypes and shapes, and the anomaly threshold.
/// </summary>
public sealed class ModelConfiguration
{
    public const string ContinuousInput = "continuous";
    public const string TokenInput = "tokens";
    public const string ClassificationHead = "classification";
    public const string ReconstructionHead = "reconstruction";
    public const string RegressionHead = "regression";

    public string Format { get; set; } = "";
    public int FormatVersion { get; set; }
    public string InputKind { get; set; } = ContinuousInput;
    public int InputChannels { get; set; }
    public int VocabSize { get; set; }
    public int DModel { get; set; }
    public int NHeads { get; set; }
    public int NLayers { get; set; }

    /// <summary>Width of the feed-forward hidden layer (sizes the forward's working memory).</summary>
    public int DFf { get; set; }
    public int MaxSeqLen { get; set; }
    public string Head { get; set; } = ReconstructionHead;
    public int OutputDim { get; set; }
    public bool Gated { get; set; }
    public AttentionConfiguration Attention { get; set; } = new();
    public double? AnomalyThreshold { get; set; }
    public JsonElement? Metadata { get; set; }

    public static ModelConfiguration Parse(ReadOnlySpan<byte> json, string source)
    {
        ModelConfiguration? configuration;
        try
        {
            configuration = JsonSerializer.Deserialize(json, RepositoryJsonContext.Default.ModelConfiguration);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{source}: not valid JSON: {ex.Message}", ex);
        }

        if (configuration is null)
        {
            throw new InvalidDataException($"{source}: expected a JSON object, got null.");
        }

        configuration.Validate(source);
        return configuration;
    }

    private void Validate(string source)
    {
        if (InputKind is not (ContinuousInput or TokenInput))
        {
            throw new InvalidDataException($"{source}: input_kind must be '{ContinuousInput}' or '{TokenInput}', got '{InputKind}'.");
        }

        if (InputKind == ContinuousInput && InputChannels < 1)
        {
            throw new InvalidDataException($"{source}: input_channels must be at least 1 for a continuous model, got {InputChannels}.");
        }

        if (InputKind == TokenInput && VocabSize < 1)
        {
            throw new InvalidDataException($"{source}: vocab_size must be at least 1 for a token model, got {VocabSize}.");
        }

        if (MaxSeqLen < 1)
        {
            throw new InvalidDataException($"{source}: max_seq_len must be at least 1, got {MaxSeqLen}.");
        }

        if (Head is not (ClassificationHead or ReconstructionHead or RegressionHead))
        {
            throw new InvalidDataException($"{source}: head must be '{ReconstructionHead}', '{RegressionHead}' or '{ClassificationHead}', got '{Head}'.");
        }

        if (OutputDim < 1)
        {
            throw new InvalidDataException($"{source}: output_dim must be at least 1, got {OutputDim}.");
        }

        if (Head == ReconstructionHead && InputKind == ContinuousInput && OutputDim != InputChannels)
        {
            throw new InvalidDataException($"{source}: a reconstruction head must output input_channels ({InputChannels}) values per step, got output_dim {OutputDim}.");
        }
    }
}

public sealed class AttentionConfiguration
{
    public string Pattern { get; set; } = "dense";
    public double Sparsity { get; set; }
    public int BlockSize { get; set; } = 16;
    public int GlobalBlocks { get; set; } = 1;
    public ulong Seed { get; set; }
}
