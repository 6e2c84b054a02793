using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using SparseInference.Serving.Variants.Comparison;
using SparseInference.Serving.Variants.Rollout;
using SparseInference.Serving;

namespace SparseInference.Server.Admin;

/// <summary>PUT /admin/models/{m}/variants/{v}. Omitted fields keep the variant's current value (or the default when creating).</summary>
public sealed class VariantBody
{
    public string? Pattern { get; set; }
    public double? Sparsity { get; set; }
    public int? BlockSize { get; set; }
    public int? GlobalBlocks { get; set; }
    public ulong? Seed { get; set; }

    /// <summary>A weights directory, or "default" for the model's loaded weights.</summary>
    public string? Weights { get; set; }
}

public sealed record ErrorBody(string Error);

public sealed record VariantView(string Name, string Pattern, double Sparsity, int BlockSize, int GlobalBlocks, ulong Seed, string? Weights, long Generation, double Share, bool Shadow);

public sealed record ShadowView(string Variant, double Percent, double? FlagThreshold);

public sealed record SplitView(Dictionary<string, double> Weights, ShadowView? Shadow, string Experiment);

public sealed record TableView(string Model, long Version, IReadOnlyList<VariantView> Variants, SplitView Split, bool CanRollback);

public sealed record ModelsView(IReadOnlyList<string> Models);

public sealed record ComparisonView(string Model, long TableVersion, IReadOnlyList<ShadowPairSnapshot> Pairs);

/// <summary>
/// GET /admin/models/{m}/rollout: this replica against the shared state (desired and applied revision, the last
/// failure to apply) and the state it serves, as its rollout document.
/// </summary>
public sealed record RolloutView(
    string Model,
    string Replica,
    string Store,
    long DesiredRevision,
    long AppliedRevision,
    bool Converged,
    RolloutApplyError? LastError,
    DateTimeOffset? CheckedAt,
    RolloutDocument Serving);

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(VariantBody))]
[JsonSerializable(typeof(SplitDocument))]
[JsonSerializable(typeof(GuardrailDocument))]
[JsonSerializable(typeof(RolloutView))]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(TableView))]
[JsonSerializable(typeof(ModelsView))]
[JsonSerializable(typeof(ComparisonView))]
internal sealed partial class AdminJsonContext : JsonSerializerContext
{
    /// <summary>
    /// Error messages quote names ('ghost'); relaxed escaping keeps them readable in curl output. The admin
    /// API only ever answers application/json, so HTML-sensitive escaping buys nothing here.
    /// Created on first use: a static initialiser here could run before the generated Default exists.
    /// </summary>
    public static AdminJsonContext Relaxed => s_relaxed ??= new(new JsonSerializerOptions(Default.Options) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    private static AdminJsonContext? s_relaxed;
}
