using SparseInference.Serving.Variants.Guardrails;

namespace SparseInference.Serving.Variants.Rollout;

/// <summary>A change computed from one state: the status it would get and the state it leads to (the same state when refused or a no-op).</summary>
internal readonly record struct RolloutChange(VariantChangeStatus Status, RolloutState State, string? Error = null)
{
    public bool Succeeded => Status is VariantChangeStatus.Applied or VariantChangeStatus.Created;
}

/// <summary>
/// Every change an operator or a guardrail can make, as a pure function from one rollout state to the next. Nothing
/// is built or written here: the registry builds the result, and only a state that builds is written to the store.
/// </summary>
internal static class RolloutChanges
{
    /// <summary>How many earlier splits rollback can walk back through.</summary>
    public const int MaxHistory = 16;

    /// <summary>Creates a variant or changes one; a definition equal to the manifest's drops the run-time override.</summary>
    public static RolloutChange UpsertVariant(RolloutState state, IReadOnlyList<VariantDefinition> manifest, VariantDefinition definition)
    {
        if (definition.Validate() is { Count: > 0 } errors)
        {
            return new(VariantChangeStatus.Invalid, state, string.Join("; ", errors));
        }

        var exists = state.EffectiveVariants(manifest).TryGetValue(definition.Name, out var current);
        if (exists && current == definition)
        {
            return new(VariantChangeStatus.Applied, state);
        }

        var variants = state.Variants.RemoveAll(d => d.Name == definition.Name);
        if (manifest.FirstOrDefault(d => d.Name == definition.Name) != definition)
        {
            variants = variants.Add(definition);
        }

        var next = state with { Variants = variants, RemovedVariants = state.RemovedVariants.Remove(definition.Name, StringComparer.Ordinal) };
        return new(exists ? VariantChangeStatus.Applied : VariantChangeStatus.Created, next);
    }

    /// <summary>Deletes a variant that receives no traffic (no weight, not the shadow).</summary>
    public static RolloutChange DeleteVariant(RolloutState state, IReadOnlyList<VariantDefinition> manifest, string name)
    {
        var effective = state.EffectiveVariants(manifest);
        if (!effective.ContainsKey(name))
        {
            return new(VariantChangeStatus.NotFound, state, $"variant: expected one of [{Known(effective)}], actual '{name}'");
        }

        var weight = state.Split.WeightOf(name);
        var shadow = state.Split.Shadow?.Variant == name;
        if (weight > 0 || shadow)
        {
            return new(
                VariantChangeStatus.Conflict,
                state,
                $"variant '{name}': expected no traffic before deletion, actual weight {weight:0.###}{(shadow ? " and it is the shadow candidate" : "")}; change the split first");
        }

        var removed = manifest.Any(d => d.Name == name) ? state.RemovedVariants.Add(name) : state.RemovedVariants;
        return new(VariantChangeStatus.Applied, state with { Variants = state.Variants.RemoveAll(d => d.Name == name), RemovedVariants = removed });
    }

    /// <summary>Sets weights and shadow; the split it replaces becomes the rollback target.</summary>
    public static RolloutChange SetSplit(RolloutState state, IReadOnlyList<VariantDefinition> manifest, SplitConfig split)
    {
        if (split.Validate(state.EffectiveVariants(manifest)) is { Count: > 0 } errors)
        {
            return new(VariantChangeStatus.Invalid, state, string.Join("; ", errors));
        }

        var history = state.History.Insert(0, state.Split);
        if (history.Count > MaxHistory)
        {
            history = history.RemoveAt(history.Count - 1);
        }

        return new(VariantChangeStatus.Applied, state with { Split = split, History = history, RolledBack = false });
    }

    /// <summary>Sends 100% of traffic to one variant (and stops shadowing it).</summary>
    public static RolloutChange Promote(RolloutState state, IReadOnlyList<VariantDefinition> manifest, string name)
    {
        var effective = state.EffectiveVariants(manifest);
        if (!effective.ContainsKey(name))
        {
            return new(VariantChangeStatus.NotFound, state, $"variant: expected one of [{Known(effective)}], actual '{name}'");
        }

        var shadow = state.Split.Shadow?.Variant == name ? null : state.Split.Shadow;
        return SetSplit(state, manifest, new SplitConfig([new SplitWeight(name, 1.0)], shadow, state.Split.Experiment));
    }

    /// <summary>Restores the split before the latest one.</summary>
    public static RolloutChange Rollback(RolloutState state, IReadOnlyList<VariantDefinition> manifest, string model)
    {
        if (state.History.IsEmpty)
        {
            return new(VariantChangeStatus.Conflict, state, $"rollback: expected an earlier split of model '{model}', actual none");
        }

        var previous = state.History[0];
        if (previous.Validate(state.EffectiveVariants(manifest)) is { Count: > 0 } errors)
        {
            return new(VariantChangeStatus.Conflict, state, $"rollback: the earlier split no longer fits the variants: {string.Join("; ", errors)}");
        }

        return new(VariantChangeStatus.Applied, state with { Split = previous, History = state.History.RemoveAt(0), RolledBack = true });
    }

    /// <summary>
    /// What a guardrail trip does: roll the split back, or, for a candidate that is only shadowed, stop shadowing
    /// it; either way the trip is recorded in the state.
    /// </summary>
    public static RolloutChange GuardrailRollback(RolloutState state, IReadOnlyList<VariantDefinition> manifest, string model, GuardrailTripRecord trip, bool shadowOnly)
    {
        var change = shadowOnly
            ? SetSplit(state, manifest, state.Split with { Shadow = null })
            : Rollback(state, manifest, model);
        return change.Succeeded ? change with { State = change.State with { LastGuardrailTrip = trip } } : change;
    }

    /// <summary>Gives the model guardrail bounds of its own; null returns it to the configured ones.</summary>
    public static RolloutChange SetGuardrails(RolloutState state, GuardrailSettings? guardrails)
    {
        if (guardrails?.Validate("guardrails.") is { Count: > 0 } errors)
        {
            return new(VariantChangeStatus.Invalid, state, string.Join("; ", errors));
        }

        return guardrails == state.Guardrails
            ? new(VariantChangeStatus.Applied, state)
            : new(VariantChangeStatus.Applied, state with { Guardrails = guardrails });
    }

    public static string Known<T>(IReadOnlyDictionary<string, T> variants) => string.Join(", ", variants.Keys.Order(StringComparer.Ordinal));
}
