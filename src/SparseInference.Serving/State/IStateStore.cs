namespace SparseInference.Serving.State;

/// <summary>
/// Small JSON documents that every replica shares and converges to, addressed by <see cref="StateDocumentId"/>.
/// Each document is a JSON object with a whole-number <c>revision</c> (1 for the first); a write names the
/// revision it replaces and succeeds only if that is still the stored one (compare and swap), so two writers
/// cannot overwrite each other unnoticed. Readers see a whole document, old or new, never a torn write.
/// </summary>
/// <remarks>
/// The directory implementation (<see cref="DirectoryStateStore"/>) serves a local directory and a ReadWriteMany
/// volume alike. Another medium (the Kubernetes API, a database) implements the same five members.
/// </remarks>
public interface IStateStore
{
    /// <summary>Where the documents live, for messages and the admin API.</summary>
    string Location { get; }

    /// <summary>The stored document, or null when there is none.</summary>
    /// <exception cref="StateStoreException">The document cannot be read, or is not a JSON object with a revision.</exception>
    Task<StateDocument?> ReadAsync(StateDocumentId id, CancellationToken cancellationToken = default);

    /// <summary>
    /// Stores <paramref name="content"/>, a JSON object whose <c>revision</c> is <paramref name="expectedRevision"/> + 1,
    /// if the stored revision is still <paramref name="expectedRevision"/> (0: no document yet). Otherwise nothing
    /// changes and the result names the revision found.
    /// </summary>
    /// <exception cref="StateStoreException">The store cannot be written (or locked for writing).</exception>
    Task<StateWriteResult> WriteAsync(StateDocumentId id, ReadOnlyMemory<byte> content, long expectedRevision, CancellationToken cancellationToken = default);

    /// <summary>Removes the document if its stored revision is still <paramref name="expectedRevision"/>.</summary>
    Task<StateWriteResult> DeleteAsync(StateDocumentId id, long expectedRevision, CancellationToken cancellationToken = default);

    /// <summary>The keys of one model's documents of a keyed kind (e.g. every line's baseline), in ordinal order.</summary>
    Task<IReadOnlyList<string>> ListKeysAsync(string model, string kind, CancellationToken cancellationToken = default);

    /// <summary>
    /// Completes when documents may have changed: after the poll interval at the latest, sooner where the medium
    /// notifies changes. Watchers re-read their documents after each completion and compare revisions.
    /// </summary>
    Task WaitForChangeAsync(CancellationToken cancellationToken);
}

/// <summary>A stored document: its revision and its bytes (UTF-8 JSON).</summary>
public sealed record StateDocument(StateDocumentId Id, long Revision, ReadOnlyMemory<byte> Content);

public enum StateWriteStatus
{
    /// <summary>The document now holds the new content (or, for a delete, is gone).</summary>
    Written,

    /// <summary>The stored revision was not the expected one; nothing changed.</summary>
    Conflict,
}

/// <summary>Outcome of a compare-and-swap: on conflict <see cref="StoredRevision"/> is what was found (0: no document).</summary>
public sealed record StateWriteResult(StateWriteStatus Status, long StoredRevision)
{
    public bool Written => Status == StateWriteStatus.Written;
}

/// <summary>The store could not be read or written, or holds a document that is not valid; the message says which and where.</summary>
public sealed class StateStoreException(string message, Exception? innerException = null) : Exception(message, innerException);
