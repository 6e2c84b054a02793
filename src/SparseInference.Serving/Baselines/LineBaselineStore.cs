using System.Collections.Immutable;
using System.Text.Json;
using SparseInference.Serving.State;

namespace SparseInference.Serving.Baselines;

/// <summary>
/// Each line's baseline in the shared state store, as <see cref="LineBaseline"/>: document <c>(model, "baselines", line)</c>,
/// whose <c>revision</c> is the baseline's own. Beside it, <c>(model, "baseline-rows", line)</c> keeps the onboarding rows the
/// baseline was computed from, so that it can be computed again for a new model version or variant without asking the
/// line's owner for data. Both are compare-and-swap writes on the revision (<see cref="IStateStore"/>).
/// </summary>
public sealed class LineBaselineStore(IStateStore store)
{
    public const string Kind = "baselines";
    public const string RowsKind = "baseline-rows";

    /// <summary>Attempts of a rows write that lost a race with another writer of the same rows document.</summary>
    private const int RowsWriteAttempts = 5;

    /// <summary>Where the documents live (the state directory).</summary>
    public string Location => store.Location;

    public static StateDocumentId DocumentId(string model, string line) => new(model, Kind, line);

    public static StateDocumentId RowsDocumentId(string model, string line) => new(model, RowsKind, line);

    /// <summary>Why <paramref name="line"/> cannot key a baseline (as a line, or as a store key); null when it can.</summary>
    public static string? LineProblem(string? line)
    {
        if (LineBaseline.LineProblem(line) is { } problem)
            return $"line {problem}";
        var encoded = StateDocumentId.EncodeKey(line!).Length;
        return encoded > StateDocumentId.MaxEncodedKeyLength
            ? $"line must be at most {StateDocumentId.MaxEncodedKeyLength} bytes once encoded as a file name (letters, digits, '-', '_' and '.' take one, other characters 3 per UTF-8 byte), got {encoded} for '{line}'."
            : null;
    }

    /// <summary>The stored baseline of <paramref name="line"/>, or null when there is none.</summary>
    /// <exception cref="StateStoreException">The document cannot be read or is not a valid baseline of that model and line; the message names the problem.</exception>
    public async Task<LineBaseline?> ReadAsync(string model, string line, CancellationToken cancellationToken = default)
    {
        var id = DocumentId(model, line);
        if (await store.ReadAsync(id, cancellationToken).ConfigureAwait(false) is not { } stored)
            return null;
        return Parse(id, stored);
    }

    /// <summary>The revision of the line's baseline document (0: none), without reading it as a baseline: a document that is not a valid one can still be replaced or removed.</summary>
    public async Task<long> ReadRevisionAsync(string model, string line, CancellationToken cancellationToken = default) =>
        (await store.ReadAsync(DocumentId(model, line), cancellationToken).ConfigureAwait(false))?.Revision ?? 0;

    /// <summary>The lines of <paramref name="model"/> that have a baseline document, in ordinal order.</summary>
    public Task<IReadOnlyList<string>> ListLinesAsync(string model, CancellationToken cancellationToken = default) =>
        store.ListKeysAsync(model, Kind, cancellationToken);

    /// <summary>Writes <paramref name="baseline"/> (whose revision is <paramref name="expectedRevision"/> + 1) if the stored revision is still <paramref name="expectedRevision"/> (0: none).</summary>
    public Task<StateWriteResult> WriteAsync(string model, LineBaseline baseline, long expectedRevision, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(baseline);
        return store.WriteAsync(DocumentId(model, baseline.Line), JsonSerializer.SerializeToUtf8Bytes(baseline, BaselineJsonContext.Default.LineBaseline), expectedRevision, cancellationToken);
    }

    /// <summary>Removes the baseline of <paramref name="line"/> if its stored revision is still <paramref name="expectedRevision"/>.</summary>
    public Task<StateWriteResult> DeleteAsync(string model, string line, long expectedRevision, CancellationToken cancellationToken = default) =>
        store.DeleteAsync(DocumentId(model, line), expectedRevision, cancellationToken);

    /// <summary>The onboarding rows kept beside the line's baseline, or null when there are none (a baseline computed elsewhere).</summary>
    /// <exception cref="StateStoreException">The document cannot be read or is not valid.</exception>
    public async Task<OnboardingRowsDocument?> ReadRowsAsync(string model, string line, CancellationToken cancellationToken = default)
    {
        var id = RowsDocumentId(model, line);
        if (await store.ReadAsync(id, cancellationToken).ConfigureAwait(false) is not { } stored)
            return null;
        OnboardingRowsDocument? document;
        try
        {
            document = JsonSerializer.Deserialize(stored.Content.Span, BaselineJsonContext.Default.OnboardingRowsDocument);
        }
        catch (JsonException ex)
        {
            throw new StateStoreException($"onboarding rows {id} in {Location}: expected an onboarding rows document, actual {ex.Message}", ex);
        }

        if (document is null || document.Model != model || document.Line != line || document.Rows.Any(r => r is null))
            throw new StateStoreException($"onboarding rows {id} in {Location}: expected the rows of model '{model}' line '{line}', actual another document");
        return document;
    }

    /// <summary>
    /// Keeps <paramref name="rows"/> as the rows of the baseline revision <paramref name="baselineRevision"/>, unless the store
    /// already holds those of a later revision (another writer's onboarding that stored its baseline after this one).
    /// </summary>
    public async Task WriteRowsAsync(string model, string line, long baselineRevision, ImmutableArray<string> channels, IReadOnlyList<double[]> rows, CancellationToken cancellationToken = default)
    {
        var id = RowsDocumentId(model, line);
        for (var attempt = 1; ; attempt++)
        {
            var stored = await ReadRowsAsync(model, line, cancellationToken).ConfigureAwait(false);
            if (stored is not null && stored.BaselineRevision > baselineRevision)
                return;
            var expected = stored?.Revision ?? 0;
            var document = new OnboardingRowsDocument
            {
                Revision = expected + 1,
                Model = model,
                Line = line,
                BaselineRevision = baselineRevision,
                Channels = channels,
                Rows = [.. rows],
            };
            var result = await store.WriteAsync(id, JsonSerializer.SerializeToUtf8Bytes(document, BaselineJsonContext.Default.OnboardingRowsDocument), expected, cancellationToken).ConfigureAwait(false);
            if (result.Written)
                return;
            if (attempt == RowsWriteAttempts)
                throw new StateStoreException($"onboarding rows {id} in {Location}: other writers changed the document {RowsWriteAttempts} times while this one wrote it");
        }
    }

    /// <summary>Removes the onboarding rows of <paramref name="line"/>, whichever revision they have.</summary>
    public async Task DeleteRowsAsync(string model, string line, CancellationToken cancellationToken = default)
    {
        var id = RowsDocumentId(model, line);
        for (var attempt = 1; attempt <= RowsWriteAttempts; attempt++)
        {
            if (await store.ReadAsync(id, cancellationToken).ConfigureAwait(false) is not { } stored)
                return;
            if ((await store.DeleteAsync(id, stored.Revision, cancellationToken).ConfigureAwait(false)).Written)
                return;
        }
    }

    /// <summary>See <see cref="IStateStore.WaitForChangeAsync"/>.</summary>
    public Task WaitForChangeAsync(CancellationToken cancellationToken) => store.WaitForChangeAsync(cancellationToken);

    /// <summary>A stored document as the baseline of its model and line, whose revision is the store's.</summary>
    internal LineBaseline Parse(StateDocumentId id, StateDocument stored)
    {
        var source = $"baseline document {id} in {Location}";
        LineBaseline baseline;
        try
        {
            baseline = LineBaseline.FromJson(stored.Content.Span, source);
        }
        catch (InvalidDataException ex)
        {
            throw new StateStoreException(ex.Message, ex);
        }

        if (baseline.Model != id.Model || baseline.Line != id.Key)
            throw new StateStoreException($"{source}: expected the baseline of model '{id.Model}' line '{id.Key}', actual model '{baseline.Model}' line '{baseline.Line}'");
        return baseline;
    }
}

/// <summary>The onboarding rows a baseline was computed from, as the store keeps them beside it.</summary>
public sealed record OnboardingRowsDocument
{
    /// <summary>The document's own revision in the store.</summary>
    public long Revision { get; init; }

    public required string Model { get; init; }

    public required string Line { get; init; }

    /// <summary>The revision of the baseline these rows computed.</summary>
    public long BaselineRevision { get; init; }

    /// <summary>Channel names of the rows' columns, when the model names them.</summary>
    public ImmutableArray<string> Channels { get; init; } = [];

    public required double[][] Rows { get; init; }
}
