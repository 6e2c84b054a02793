using System.Collections.Immutable;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using SparseInference.Serving.Variants.Guardrails;

namespace SparseInference.Serving.Variants.Rollout;

/// <summary>
/// A model's rollout as JSON (<c>&lt;state directory&gt;/&lt;model&gt;/rollout.json</c>): what an operator reads,
/// commits to Git or writes by hand, and what every replica converges to. docs/variants.md describes each field.
/// </summary>
public sealed class RolloutDocument
{
    /// <summary>Grows by one with every change; a writer sets the stored revision + 1.</summary>
    public long Revision { get; set; }

    public string? Model { get; set; }

    public DateTimeOffset? UpdatedAt { get; set; }

    /// <summary>What made the change and on which replica, e.g. "split via pod-7/1".</summary>
    public string? UpdatedBy { get; set; }

    /// <summary>Variants defined or redefined at run time (manifest variants of the same name are replaced).</summary>
    public List<VariantDocument>? Variants { get; set; }

    /// <summary>Manifest variants deleted at run time.</summary>
    public List<string>? RemovedVariants { get; set; }

    public SplitDocument? Split { get; set; }

    /// <summary>Earlier splits, most recent first.</summary>
    public List<SplitDocument>? History { get; set; }

    /// <summary>The model's guardrail bounds; absent: the configured ones.</summary>
    public GuardrailDocument? Guardrails { get; set; }

    public GuardrailTripRecord? LastGuardrailTrip { get; set; }

    /// <summary>True when a rollback restored the split (guardrails then judge no variant for having grown); absent otherwise.</summary>
    public bool? RolledBack { get; set; }

    public static RolloutDocument From(string model, RolloutState state) => new()
    {
        Revision = state.Revision,
        Model = model,
        UpdatedAt = state.UpdatedAt,
        UpdatedBy = state.UpdatedBy,
        Variants = [.. state.Variants.Select(VariantDocument.From)],
        RemovedVariants = [.. state.RemovedVariants],
        Split = SplitDocument.From(state.Split),
        History = [.. state.History.Select(SplitDocument.From)],
        Guardrails = state.Guardrails is { } g ? GuardrailDocument.From(g) : null,
        LastGuardrailTrip = state.LastGuardrailTrip,
        RolledBack = state.RolledBack ? true : null,
    };

    /// <summary>The state this document describes, or the errors that keep it from being one (each naming field, expected and actual).</summary>
    public RolloutState? ToState(string model, GuardrailSettings configuredGuardrails, out IReadOnlyList<string> errors)
    {
        var found = new List<string>();
        errors = found;
        if (Revision < 1)
        {
            found.Add($"revision: expected a whole number >= 1, actual {Revision}");
        }

        if (Model is not null && Model != model)
        {
            found.Add($"model: expected '{model}' (the directory it is stored under) or none, actual '{Model}'");
        }

        var variants = ImmutableArray.CreateBuilder<VariantDefinition>();
        foreach (var (variant, i) in (Variants ?? []).Select((v, i) => (v, i)))
        {
            if (variant?.ToDefinition($"variants[{i}].", found) is { } definition)
            {
                if (variants.Any(d => d.Name == definition.Name))
                {
                    found.Add($"variants[{i}].name: expected each name once, actual '{definition.Name}' again");
                }

                variants.Add(definition);
            }
        }

        foreach (var (name, i) in (RemovedVariants ?? []).Select((n, i) => (n, i)))
        {
            if (!VariantDefinition.IsValidName(name))
            {
                found.Add($"removedVariants[{i}]: expected a variant name, actual '{name}'");
            }
        }

        SplitConfig? split = null;
        if (Split is null)
        {
            found.Add("split: expected {\"weights\": {variant: number}, ...}, actual none");
        }
        else
        {
            split = Split.ToSplitConfig("split.", found);
        }

        var history = ImmutableList.CreateBuilder<SplitConfig>();
        foreach (var (entry, i) in (History ?? []).Take(RolloutChanges.MaxHistory).Select((h, i) => (h, i)))
        {
            if (entry?.ToSplitConfig($"history[{i}].", found) is { } earlier)
            {
                history.Add(earlier);
            }
        }

        GuardrailSettings? guardrails = null;
        if (Guardrails is not null)
        {
            guardrails = Guardrails.ToSettings(configuredGuardrails);
            found.AddRange(guardrails.Validate("guardrails."));
        }

        if (LastGuardrailTrip is { } trip && (trip.Replica is null || trip.Variant is null || trip.Bound is null || trip.Reason is null))
        {
            found.Add("lastGuardrailTrip: expected at, replica, variant, bound, limit, actual, revision and reason, actual some missing");
        }

        if (found.Count > 0)
        {
            return null;
        }

        return new RolloutState(
            Revision,
            variants.ToImmutable(),
            [.. (RemovedVariants ?? []).Distinct(StringComparer.Ordinal)],
            split!,
            history.ToImmutable(),
            guardrails,
            LastGuardrailTrip,
            UpdatedAt,
            UpdatedBy,
            RolledBack ?? false);
    }
}

public sealed class VariantDocument
{
    public string? Name { get; set; }
    public string? Pattern { get; set; }
    public double? Sparsity { get; set; }
    public int? BlockSize { get; set; }
    public int? GlobalBlocks { get; set; }
    public ulong? Seed { get; set; }

    /// <summary>A weights directory (relative: inside the model's directory); absent: the model's loaded weights.</summary>
    public string? Weights { get; set; }

    public static VariantDocument From(VariantDefinition definition) => new()
    {
        Name = definition.Name,
        Pattern = definition.Pattern,
        Sparsity = definition.Sparsity,
        BlockSize = definition.BlockSize,
        GlobalBlocks = definition.GlobalBlocks,
        Seed = definition.Seed,
        Weights = definition.WeightsDirectory,
    };

    internal VariantDefinition? ToDefinition(string prefix, List<string> errors)
    {
        if (Name is null || Pattern is null)
        {
            errors.Add($"{prefix.TrimEnd('.')}: expected {{\"name\", \"pattern\", ...}}, actual name={Name ?? "none"}, pattern={Pattern ?? "none"}");
            return null;
        }

        var defaults = new VariantDefinition(Name, Pattern);
        var definition = new VariantDefinition(
            Name,
            Pattern,
            Sparsity ?? defaults.Sparsity,
            BlockSize ?? defaults.BlockSize,
            GlobalBlocks ?? defaults.GlobalBlocks,
            Seed ?? defaults.Seed,
            Weights);
        var invalid = definition.Validate();
        errors.AddRange(invalid.Select(e => $"{prefix}{e}"));
        return invalid.Count == 0 ? definition : null;
    }
}

/// <summary>A split as the admin API takes it and the rollout document stores it. Weights are relative (90/10 and 0.9/0.1 are the same split).</summary>
public sealed class SplitDocument
{
    /// <summary>In the order given, which is the order sticky routing maps keys onto.</summary>
    public Dictionary<string, double>? Weights { get; set; }
    public ShadowDocument? Shadow { get; set; }
    public string? Experiment { get; set; }

    public static SplitDocument From(SplitConfig split) => new()
    {
        Weights = split.Weights.ToDictionary(w => w.Variant, w => w.Weight, StringComparer.Ordinal),
        Shadow = split.Shadow is { } s ? new ShadowDocument { Variant = s.Variant, Percent = s.Percent, FlagThreshold = s.FlagThreshold } : null,
        Experiment = split.Experiment,
    };

    /// <summary>The split, or null with the errors added (each naming the field under <paramref name="prefix"/>); which variants exist is checked later.</summary>
    public SplitConfig? ToSplitConfig(string prefix, List<string> errors, string? defaultExperiment = null)
    {
        if (Weights is null)
        {
            errors.Add($"{prefix}weights: expected {{variant: number}}, actual none");
            return null;
        }

        ShadowConfig? shadow = null;
        if (Shadow is { } s)
        {
            if (s.Variant is null || s.Percent is null)
            {
                errors.Add($"{prefix}shadow: expected {{\"variant\", \"percent\"}}, actual variant={s.Variant ?? "none"}, percent={s.Percent?.ToString(CultureInfo.InvariantCulture) ?? "none"}");
                return null;
            }

            shadow = new ShadowConfig(s.Variant, s.Percent.Value, s.FlagThreshold);
        }

        return new SplitConfig([.. Weights.Select(kv => new SplitWeight(kv.Key, kv.Value))], shadow, Experiment ?? defaultExperiment);
    }
}

public sealed class ShadowDocument
{
    public string? Variant { get; set; }
    public double? Percent { get; set; }
    public double? FlagThreshold { get; set; }
}

/// <summary>Guardrail bounds in a rollout document or an admin request; an omitted field takes the configured value.</summary>
public sealed class GuardrailDocument
{
    public bool? Enabled { get; set; }
    public TimeSpan? Window { get; set; }
    public int? MinSamples { get; set; }
    public double? MaxErrorRate { get; set; }
    public double? MaxP99LatencyMs { get; set; }
    public double? MaxMeanAbsoluteError { get; set; }
    public double? MinFlagAgreement { get; set; }

    public static GuardrailDocument From(GuardrailSettings settings) => new()
    {
        Enabled = settings.Enabled,
        Window = settings.Window,
        MinSamples = settings.MinSamples,
        MaxErrorRate = settings.MaxErrorRate,
        MaxP99LatencyMs = settings.MaxP99LatencyMs,
        MaxMeanAbsoluteError = settings.MaxMeanAbsoluteError,
        MinFlagAgreement = settings.MinFlagAgreement,
    };

    /// <summary>
    /// Omitted bounds fall back to <paramref name="configured"/>'s; once written, a document holds every field, so
    /// every replica applies the same bounds whatever its own configuration says.
    /// </summary>
    public GuardrailSettings ToSettings(GuardrailSettings configured) => new(
        Enabled ?? configured.Enabled,
        Window ?? configured.Window,
        MinSamples ?? configured.MinSamples,
        MaxErrorRate ?? configured.MaxErrorRate,
        MaxP99LatencyMs ?? configured.MaxP99LatencyMs,
        MaxMeanAbsoluteError ?? configured.MaxMeanAbsoluteError,
        MinFlagAgreement ?? configured.MinFlagAgreement);
}

/// <summary>
/// Documents are indented for people and Git diffs, and unknown fields are skipped so that, during an upgrade, an
/// older replica still reads what a newer one wrote.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    WriteIndented = true,
    ReadCommentHandling = JsonCommentHandling.Skip,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(RolloutDocument))]
internal sealed partial class RolloutJsonContext : JsonSerializerContext
{
    /// <summary>Relaxed escaping keeps names and reasons readable in the file; it is never embedded in HTML.</summary>
    public static RolloutJsonContext Relaxed => s_relaxed ??= new(new JsonSerializerOptions(Default.Options) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    private static RolloutJsonContext? s_relaxed;
}
