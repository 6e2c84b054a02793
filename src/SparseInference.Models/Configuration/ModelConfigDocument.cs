using System.Text.Json;
using System.Text.Json.Serialization;

namespace SparseInference.Models.Configuration;

/// <summary>The raw shape of <c>config.json</c>; every field is optional here so validation can name what is missing.</summary>
internal sealed class ModelConfigDocument
{
    [JsonPropertyName("format")] public string? Format { get; set; }
    [JsonPropertyName("format_version")] public int? FormatVersion { get; set; }
    [JsonPropertyName("input_kind")] public string? InputKind { get; set; }
    [JsonPropertyName("input_channels")] public int? InputChannels { get; set; }
    [JsonPropertyName("vocab_size")] public int? VocabSize { get; set; }
    [JsonPropertyName("d_model")] public int? DModel { get; set; }
    [JsonPropertyName("n_heads")] public int? NHeads { get; set; }
    [JsonPropertyName("n_layers")] public int? NLayers { get; set; }
    [JsonPropertyName("d_ff")] public int? DFf { get; set; }
    [JsonPropertyName("max_seq_len")] public int? MaxSeqLen { get; set; }
    [JsonPropertyName("positional")] public string? Positional { get; set; }
    [JsonPropertyName("layer_norm_eps")] public double? LayerNormEps { get; set; }
    [JsonPropertyName("head")] public string? Head { get; set; }
    [JsonPropertyName("output_dim")] public int? OutputDim { get; set; }
    [JsonPropertyName("gated")] public bool? Gated { get; set; }
    [JsonPropertyName("attention")] public AttentionDocument? Attention { get; set; }
    [JsonPropertyName("anomaly_threshold")] public double? AnomalyThreshold { get; set; }
    [JsonPropertyName("metadata")] public JsonElement? Metadata { get; set; }
}

internal sealed class AttentionDocument
{
    [JsonPropertyName("pattern")] public string? Pattern { get; set; }
    [JsonPropertyName("sparsity")] public double? Sparsity { get; set; }
    [JsonPropertyName("block_size")] public int? BlockSize { get; set; }
    [JsonPropertyName("global_blocks")] public int? GlobalBlocks { get; set; }
    [JsonPropertyName("seed")] public ulong? Seed { get; set; }
}

/// <summary>Source-generated metadata: the server is published trimmed, where reflection-based JSON is off.</summary>
[JsonSourceGenerationOptions(ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, WriteIndented = true)]
[JsonSerializable(typeof(ModelConfigDocument))]
internal sealed partial class ModelConfigJsonContext : JsonSerializerContext;
