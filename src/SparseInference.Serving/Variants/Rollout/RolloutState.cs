using System.Collections.Immutable;
using SparseInference.Serving.Variants.Guardrails;

namespace SparseInference.Serving.Variants.Rollout;

/// <summary>
/// The desired rollout of one model, the same for every replica: what the model's rollout document says.
/// Revision 0 is the state a model starts in when it has no document: the variants of its manifest, the
/// default one at 100%.
/// </summary>
/// <param name="Revision">Grows by one with every change written to the store.</param>
/// <param name="Variants">Variants defined or redefined at run time; they override manifest variants of the same name.</param>
/// <param name="RemovedVariants">Manifest variants deleted at run time.</param>
/// <param name="Split">Weights, shadow and the experiment name that salts sticky routing.</param>
/// <param name="History">Earlier splits, most recent first; rollback restores the first.</param>
/// <param name="Guardrails">The model's own guardrail bounds; null: the configured ones.</param>
/// <param name="LastGuardrailTrip">The latest automatic rollback, on whichever replica it happened.</param>
/// <param name="RolledBack">
/// The split was restored by a rollback. Guardrails then judge no variant for having grown: the restored split
/// is the one that served before, and judging its baseline would roll back through the whole history.
/// </param>
public sealed record RolloutState(
    long Revision,
    ImmutableArray<VariantDefinition> Variants,
    ImmutableArray<string> RemovedVariants,
    SplitConfig Split,
    ImmutableList<SplitConfig> History,
    GuardrailSettings? Guardrails = null,
    GuardrailTripRecord? LastGuardrailTrip = null,
    DateTimeOffset? UpdatedAt = null,
    string? UpdatedBy = null,
    bool RolledBack = false)
{
    /// <summary>A model without a document: its manifest's variants, <paramref name="defaultVariant"/> at 100%.</summary>
    public static RolloutState Initial(string defaultVariant) => new(0, [], [], SplitConfig.Single(defaultVariant), []);

    /// <summary>
    /// The variants this state serves: the manifest's (<paramref name="manifest"/>) less the removed ones, each
    /// replaced by a run-time definition of the same name, then the run-time ones the manifest lacks.
    /// </summary>
    public ImmutableDictionary<string, VariantDefinition> EffectiveVariants(IReadOnlyList<VariantDefinition> manifest)
    {
        var result = ImmutableDictionary.CreateBuilder<string, VariantDefinition>(StringComparer.Ordinal);
        foreach (var definition in manifest)
        {
            if (!RemovedVariants.Contains(definition.Name, StringComparer.Ordinal))
            {
                result[definition.Name] = definition;
            }
        }

        foreach (var definition in Variants)
        {
            result[definition.Name] = definition;
        }

        return result.ToImmutable();
    }
}

/// <summary>An automatic rollback as the rollout document records it.</summary>
/// <param name="Replica">The replica whose guardrail tripped (<see cref="RolloutReplica.Name"/>).</param>
/// <param name="Revision">The revision the candidate was judged under; the rollback is the next one.</param>
public sealed record GuardrailTripRecord(DateTimeOffset At, string Replica, string Variant, string Bound, double Limit, double Actual, long Revision, string Reason);

/// <summary>This process as it names itself in rollout documents and the admin API: host (the pod name in Kubernetes) and process id.</summary>
public static class RolloutReplica
{
    public static string Name { get; } = $"{Environment.MachineName}/{Environment.ProcessId}";
}
