using System.Text.Json;
using Microsoft.Extensions.Options;
using SparseInference.Serving.State;

namespace SparseInference.Serving.Variants.Rollout;

/// <summary>Each model's rollout document (kind <see cref="Kind"/>) in the shared state store, as <see cref="RolloutState"/>.</summary>
public sealed class RolloutStore(IStateStore store, IOptionsMonitor<VariantOptions> options)
{
    public const string Kind = "rollout";

    /// <summary>Where the documents live (the state directory).</summary>
    public string Location => store.Location;

    public static StateDocumentId DocumentId(string model) => new(model, Kind);

    /// <summary>The model's desired state, or null when it has no document.</summary>
    /// <exception cref="StateStoreException">The document cannot be read or does not describe a valid state; the message names each problem.</exception>
    public async Task<RolloutState?> ReadAsync(string model, CancellationToken cancellationToken = default)
    {
        var id = DocumentId(model);
        if (await store.ReadAsync(id, cancellationToken).ConfigureAwait(false) is not { } stored)
        {
            return null;
        }

        RolloutDocument? document;
        try
        {
            document = JsonSerializer.Deserialize(stored.Content.Span, RolloutJsonContext.Relaxed.RolloutDocument);
        }
        catch (JsonException ex)
        {
            throw new StateStoreException($"rollout document {id} in {store.Location}: expected a rollout document, actual {ex.Message}", ex);
        }

        if (document is null)
        {
            throw new StateStoreException($"rollout document {id} in {store.Location}: expected an object, actual null");
        }

        return document.ToState(model, options.CurrentValue.Guardrails.ToSettings(), out var errors)
            ?? throw new StateStoreException($"rollout document {id} in {store.Location}: {string.Join("; ", errors)}");
    }

    /// <summary>Writes <paramref name="state"/> (whose revision is <paramref name="expectedRevision"/> + 1) if the stored revision is still <paramref name="expectedRevision"/>.</summary>
    public Task<StateWriteResult> WriteAsync(string model, RolloutState state, long expectedRevision, CancellationToken cancellationToken = default) =>
        store.WriteAsync(DocumentId(model), JsonSerializer.SerializeToUtf8Bytes(RolloutDocument.From(model, state), RolloutJsonContext.Relaxed.RolloutDocument), expectedRevision, cancellationToken);

    /// <summary>See <see cref="IStateStore.WaitForChangeAsync"/>.</summary>
    public Task WaitForChangeAsync(CancellationToken cancellationToken) => store.WaitForChangeAsync(cancellationToken);
}
