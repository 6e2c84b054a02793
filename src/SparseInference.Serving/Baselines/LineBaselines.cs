using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using SparseInference.Serving.State;

namespace SparseInference.Serving.Baselines;

/// <summary>A line's baseline as this replica applies it: the baseline, or why its stored document could not be read (and none was applied before).</summary>
public sealed record AppliedBaseline(string Line, LineBaseline? Baseline, string? Problem)
{
    public long Revision => Baseline?.Revision ?? 0;
}

/// <summary>
/// The line baselines this replica applies, per model and line: an in-memory view of the shared state store that the
/// request path reads without touching the store (<see cref="Find"/>: two dictionary lookups). It follows the store
/// (<see cref="SyncAsync"/>, called on every change notification or poll interval, and once before the server reports
/// ready), and writes made through this replica are applied at once (<see cref="StoreAsync"/>, <see cref="DeleteAsync"/>).
/// A document that cannot be read leaves the line on the revision applied before; a line that never had a readable one
/// is reported to its requests rather than scored without a baseline.
/// </summary>
public sealed partial class LineBaselines
{
    private readonly LineBaselineStore _store;
    private readonly BaselineMetrics _metrics;
    private readonly ILogger<LineBaselines> _logger;

    // Per model, a dictionary never changed once published: a change publishes a new one, so readers need no lock.
    private readonly ConcurrentDictionary<string, Dictionary<string, AppliedBaseline>> _models = new(StringComparer.Ordinal);

    // One writer at a time, so that a sync round that listed the store before this replica's own write cannot undo it.
    private readonly SemaphoreSlim _writer = new(1, 1);

    // The last problem logged per document, so that a document that stays unreadable is logged once.
    private readonly ConcurrentDictionary<string, string> _reported = new(StringComparer.Ordinal);

    public LineBaselines(LineBaselineStore store, BaselineMetrics metrics, ILogger<LineBaselines> logger)
    {
        _store = store;
        _metrics = metrics;
        _logger = logger;
        metrics.Observe(Counts);
    }

    public LineBaselineStore Store => _store;

    /// <summary>The baseline this replica applies to <paramref name="line"/> of <paramref name="model"/>; null when the line has none.</summary>
    public AppliedBaseline? Find(string model, string line) =>
        _models.TryGetValue(model, out var lines) && lines.TryGetValue(line, out var applied) ? applied : null;

    /// <summary>Every line of <paramref name="model"/> this replica applies a baseline to (or knows to be unreadable).</summary>
    public IReadOnlyCollection<AppliedBaseline> Lines(string model) =>
        _models.TryGetValue(model, out var lines) ? lines.Values : [];

    /// <summary>Lines with an applied baseline per model, for the gauge.</summary>
    internal IEnumerable<(string Model, int Lines)> Counts() =>
        _models.Select(m => (m.Key, m.Value.Values.Count(a => a.Baseline is not null)));

    /// <summary>Counts a request of <paramref name="model"/> scored with or without a line baseline.</summary>
    public void RecordScored(string model, bool withBaseline) => _metrics.RecordScored(model, withBaseline);

    /// <summary>
    /// Writes <paramref name="baseline"/> (its revision = <paramref name="expectedRevision"/> + 1) to the store if the stored
    /// revision is still <paramref name="expectedRevision"/>, and applies it here once written.
    /// </summary>
    public async Task<StateWriteResult> StoreAsync(string model, LineBaseline baseline, long expectedRevision, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(baseline);
        await _writer.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var result = await _store.WriteAsync(model, baseline, expectedRevision, cancellationToken).ConfigureAwait(false);
            if (result.Written)
            {
                Publish(model, lines => lines[baseline.Line] = new AppliedBaseline(baseline.Line, baseline, null));
                Log.Stored(_logger, model, baseline.Line, baseline.Revision, baseline.ModelVersion, baseline.Rows);
            }

            return result;
        }
        finally
        {
            _writer.Release();
        }
    }

    /// <summary>Removes the line's baseline from the store if its revision is still <paramref name="expectedRevision"/>, and here once removed.</summary>
    public async Task<StateWriteResult> DeleteAsync(string model, string line, long expectedRevision, CancellationToken cancellationToken)
    {
        await _writer.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var result = await _store.DeleteAsync(model, line, expectedRevision, cancellationToken).ConfigureAwait(false);
            if (result.Written)
            {
                Publish(model, lines => lines.Remove(line));
                Log.Removed(_logger, model, line, expectedRevision);
            }

            return result;
        }
        finally
        {
            _writer.Release();
        }
    }

    /// <summary>
    /// Brings the view to the store for <paramref name="models"/> (and forgets models not among them): every line's document
    /// is read and applied when its revision differs from the applied one; lines whose document is gone are removed.
    /// </summary>
    public async Task SyncAsync(IReadOnlyCollection<string> models, CancellationToken cancellationToken)
    {
        await _writer.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var gone in _models.Keys.Except(models, StringComparer.Ordinal).ToList())
                _models.TryRemove(gone, out _);
            foreach (var model in models)
                await SyncModelAsync(model, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writer.Release();
        }
    }

    private async Task SyncModelAsync(string model, CancellationToken cancellationToken)
    {
        var keys = await _store.ListLinesAsync(model, cancellationToken).ConfigureAwait(false);
        var current = _models.GetValueOrDefault(model);
        Dictionary<string, AppliedBaseline>? next = null;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in keys)
        {
            seen.Add(line);
            var before = current?.GetValueOrDefault(line);
            AppliedBaseline after;
            try
            {
                var baseline = await _store.ReadAsync(model, line, cancellationToken).ConfigureAwait(false);
                if (baseline is null)
                {
                    // Removed between the listing and the read.
                    seen.Remove(line);
                    continue;
                }

                if (before?.Baseline is { } applied && applied.Revision == baseline.Revision)
                    continue;
                after = new AppliedBaseline(line, baseline, null);
                _reported.TryRemove(Key(model, line), out _);
            }
            catch (StateStoreException ex)
            {
                _metrics.RecordReadFailure(model);
                if (_reported.TryGetValue(Key(model, line), out var last) is false || last != ex.Message)
                {
                    _reported[Key(model, line)] = ex.Message;
                    Log.Unreadable(_logger, model, line, before?.Revision ?? 0, ex);
                }

                // Keep serving the revision applied before; a line never applied is refused to its requests, naming why.
                if (before?.Baseline is not null)
                    continue;
                after = new AppliedBaseline(line, null, ex.Message);
                if (before?.Problem == after.Problem)
                    continue;
            }

            next ??= current is null ? new(StringComparer.Ordinal) : new(current, StringComparer.Ordinal);
            next[line] = after;
        }

        if (current is not null)
        {
            foreach (var line in current.Keys.Where(l => !seen.Contains(l)))
            {
                next ??= new(current, StringComparer.Ordinal);
                next.Remove(line);
                _reported.TryRemove(Key(model, line), out _);
            }
        }

        if (next is not null)
        {
            _models[model] = next;
            Log.Applied(_logger, model, next.Count);
        }
        else if (current is null)
        {
            _models[model] = new(StringComparer.Ordinal);
        }
    }

    /// <summary>Publishes a changed copy of the model's lines (callers hold the writer gate).</summary>
    private void Publish(string model, Action<Dictionary<string, AppliedBaseline>> change)
    {
        var next = _models.TryGetValue(model, out var current) ? new Dictionary<string, AppliedBaseline>(current, StringComparer.Ordinal) : new(StringComparer.Ordinal);
        change(next);
        _models[model] = next;
    }

    private static string Key(string model, string line) => model + "\n" + line;

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.BaselineStored, Level = LogLevel.Information, Message = "Baseline of line {Line} of {Model} stored: revision {Revision}, model version {ModelVersion}, {Rows} onboarding rows")]
        public static partial void Stored(ILogger logger, string model, string line, long revision, string modelVersion, int rows);

        [LoggerMessage(EventId = EventIds.BaselineRemoved, Level = LogLevel.Information, Message = "Baseline of line {Line} of {Model} removed (it was revision {Revision})")]
        public static partial void Removed(ILogger logger, string model, string line, long revision);

        [LoggerMessage(EventId = EventIds.BaselineUnreadable, Level = LogLevel.Warning, Message = "Baseline of line {Line} of {Model} cannot be read from the state store; this replica keeps revision {Revision} (0: none, its requests are refused)")]
        public static partial void Unreadable(ILogger logger, string model, string line, long revision, Exception exception);

        [LoggerMessage(EventId = EventIds.BaselinesChanged, Level = LogLevel.Debug, Message = "Baselines of {Model} changed in the state store; {Lines} lines applied")]
        public static partial void Applied(ILogger logger, string model, int lines);
    }
}
