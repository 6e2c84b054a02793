using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace SparseInference.Serving.State;

/// <summary>
/// The state store as a directory: a local one for a single process, a ReadWriteMany volume (NFS, CephFS, a
/// cloud file share) shared by every replica of a fleet.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>A write goes to a temporary file in the same directory, is flushed to disk and renamed over the
/// document: rename is atomic, so a reader on any machine sees the old document or the new one.</item>
/// <item>Compare and swap: a writer holds an exclusive lock on a side file (<c>.&lt;name&gt;.lock</c>, a POSIX
/// <c>flock</c> through <see cref="FileShare.None"/>; NFS and CephFS clients forward it to the server) while
/// it reads the stored revision, compares and renames. The kernel drops the lock when a writer dies, so a
/// killed process leaves nothing to clean up. Readers take no lock.</item>
/// <item>Watching is polling (<see cref="StateStoreOptions.PollInterval"/>): notifications do not cross machines
/// on network file systems. A <see cref="FileSystemWatcher"/> only wakes watchers sooner for local writes.</item>
/// </list>
/// </remarks>
public sealed partial class DirectoryStateStore : IStateStore, IDisposable
{
    private const string Extension = ".json";

    private readonly TimeSpan _pollInterval;
    private readonly TimeSpan _lockTimeout;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly FileSystemWatcher? _watcher;
    private TaskCompletionSource _changed = NewSignal();

    public DirectoryStateStore(string directory, StateStoreOptions options, TimeProvider time, ILogger<DirectoryStateStore> logger)
    {
        Root = Path.GetFullPath(directory);
        _pollInterval = options.PollInterval;
        _lockTimeout = options.LockTimeout;
        _time = time;
        _logger = logger;
        Directory.CreateDirectory(Root);
        if (options.WatchFileSystem)
        {
            _watcher = TryWatch(Root);
        }
    }

    public string Root { get; }

    public string Location => Root;

    public async Task<StateDocument?> ReadAsync(StateDocumentId id, CancellationToken cancellationToken = default)
    {
        var path = PathOf(id);
        byte[] content;
        try
        {
            content = await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StateStoreException($"state document {id}: cannot read '{path}': {ex.Message}", ex);
        }

        return new StateDocument(id, RevisionOf(content, id, path), content);
    }

    public async Task<StateWriteResult> WriteAsync(StateDocumentId id, ReadOnlyMemory<byte> content, long expectedRevision, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(expectedRevision);
        var path = PathOf(id);
        var revision = RevisionOf(content.ToArray(), id, "the content to write");
        if (revision != expectedRevision + 1)
        {
            throw new ArgumentException($"state document {id}: revision: expected {expectedRevision + 1} (the replaced revision + 1), actual {revision}", nameof(content));
        }

        var directory = Path.GetDirectoryName(path)!;
        using var gate = await LockAsync(id, path, cancellationToken).ConfigureAwait(false);
        var stored = await StoredRevisionAsync(id, cancellationToken).ConfigureAwait(false);
        if (stored != expectedRevision)
        {
            return new StateWriteResult(StateWriteStatus.Conflict, stored);
        }

        var temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            await using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 4096, FileOptions.Asynchronous))
            {
                await stream.WriteAsync(content, cancellationToken).ConfigureAwait(false);
                // On disk before it becomes visible under the document's name: a crash leaves the old document or the new one.
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(temporary);
            throw new StateStoreException($"state document {id}: cannot write '{path}': {ex.Message}", ex);
        }

        Log.Written(_logger, id.ToString(), revision, path);
        return new StateWriteResult(StateWriteStatus.Written, revision);
    }

    public async Task<StateWriteResult> DeleteAsync(StateDocumentId id, long expectedRevision, CancellationToken cancellationToken = default)
    {
        var path = PathOf(id);
        using var gate = await LockAsync(id, path, cancellationToken).ConfigureAwait(false);
        var stored = await StoredRevisionAsync(id, cancellationToken).ConfigureAwait(false);
        if (stored != expectedRevision)
        {
            return new StateWriteResult(StateWriteStatus.Conflict, stored);
        }

        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StateStoreException($"state document {id}: cannot delete '{path}': {ex.Message}", ex);
        }

        return new StateWriteResult(StateWriteStatus.Written, 0);
    }

    public Task<IReadOnlyList<string>> ListKeysAsync(string model, string kind, CancellationToken cancellationToken = default)
    {
        // Validates model and kind the way every other call does.
        var directory = Path.GetDirectoryName(PathOf(new StateDocumentId(model, kind, "_")))!;
        if (!Directory.Exists(directory))
        {
            return Task.FromResult<IReadOnlyList<string>>([]);
        }

        try
        {
            IReadOnlyList<string> keys = [.. Directory.EnumerateFiles(directory, "*" + Extension)
                .Select(Path.GetFileNameWithoutExtension)
                .Where(name => !string.IsNullOrEmpty(name) && name[0] != '.')
                .Select(name => StateDocumentId.DecodeKey(name!))
                .OfType<string>()
                .Order(StringComparer.Ordinal)];
            return Task.FromResult(keys);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StateStoreException($"state documents {model}/{kind}: cannot list '{directory}': {ex.Message}", ex);
        }
    }

    public async Task WaitForChangeAsync(CancellationToken cancellationToken)
    {
        var signal = Volatile.Read(ref _changed).Task;
        using var poll = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var delay = Task.Delay(_pollInterval, _time, poll.Token);
        await Task.WhenAny(signal, delay).ConfigureAwait(false);
        // Stop the timer when a notification came first.
        await poll.CancelAsync().ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
    }

    public void Dispose() => _watcher?.Dispose();

    /// <summary>The file of a document: <c>root/model/kind.json</c>, or <c>root/model/kind/key.json</c>.</summary>
    public string PathOf(StateDocumentId id)
    {
        if (id.Model is null)
        {
            throw new ArgumentException("state document: expected a model, kind and optional key, actual an empty id", nameof(id));
        }

        var modelDirectory = Path.Combine(Root, id.Model);
        return id.Key is null
            ? Path.Combine(modelDirectory, id.Kind + Extension)
            : Path.Combine(modelDirectory, id.Kind, StateDocumentId.EncodeKey(id.Key) + Extension);
    }

    private async Task<long> StoredRevisionAsync(StateDocumentId id, CancellationToken cancellationToken) =>
        (await ReadAsync(id, cancellationToken).ConfigureAwait(false))?.Revision ?? 0;

    /// <summary>Holds the document's lock file open with <see cref="FileShare.None"/> (an exclusive flock on Unix).</summary>
    private async Task<FileStream> LockAsync(StateDocumentId id, string path, CancellationToken cancellationToken)
    {
        var directory = Path.GetDirectoryName(path)!;
        var lockPath = Path.Combine(directory, $".{Path.GetFileName(path)}.lock");
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StateStoreException($"state document {id}: cannot create '{directory}': {ex.Message}", ex);
        }

        var started = _time.GetTimestamp();
        var wait = TimeSpan.FromMilliseconds(2);
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (Exception ex) when (ex is UnauthorizedAccessException or DirectoryNotFoundException)
            {
                throw new StateStoreException($"state document {id}: cannot open the lock file '{lockPath}': {ex.Message}", ex);
            }
            catch (IOException ex)
            {
                // Held by another writer (here or on another replica): wait a little, up to the lock timeout.
                if (_time.GetElapsedTime(started) >= _lockTimeout)
                {
                    throw new StateStoreException($"state document {id}: another writer held '{lockPath}' for more than {_lockTimeout.TotalSeconds:0.###} s: {ex.Message}", ex);
                }
            }

            await Task.Delay(wait, _time, cancellationToken).ConfigureAwait(false);
            wait = TimeSpan.FromMilliseconds(Math.Min(wait.TotalMilliseconds * 2, 50));
        }
    }

    /// <summary>
    /// The top-level <c>revision</c> of a JSON object: a whole number of at least 1. The whole document is read, so
    /// a truncated one (a writer that bypassed the rename) is refused rather than taken at its revision.
    /// </summary>
    private static long RevisionOf(byte[] content, StateDocumentId id, string where)
    {
        if (content.Length == 0)
        {
            throw new StateStoreException($"state document {id} in {where}: expected a JSON object, actual an empty file");
        }

        long? revision = null;
        try
        {
            var reader = new Utf8JsonReader(content, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw new StateStoreException($"state document {id} in {where}: expected a JSON object, actual {reader.TokenType}");
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isRevision = reader.ValueTextEquals("revision"u8);
                reader.Read();
                if (isRevision)
                {
                    revision = reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 1
                        ? value
                        : throw new StateStoreException($"state document {id} in {where}: revision: expected a whole number >= 1, actual {Describe(ref reader)}");
                }

                reader.Skip();
            }

            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                throw new StateStoreException($"state document {id} in {where}: expected one JSON object, actual more after it");
            }
        }
        catch (JsonException ex)
        {
            throw new StateStoreException($"state document {id} in {where}: expected JSON, actual invalid JSON ({ex.Message})", ex);
        }

        return revision ?? throw new StateStoreException($"state document {id} in {where}: revision: expected a whole number >= 1, actual none");
    }

    private static string Describe(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.Number or JsonTokenType.String => System.Text.Encoding.UTF8.GetString(reader.ValueSpan),
        var other => other.ToString(),
    };

    private FileSystemWatcher? TryWatch(string root)
    {
        try
        {
            var watcher = new FileSystemWatcher(root)
            {
                IncludeSubdirectories = true,
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite,
            };
            watcher.Created += (_, _) => Signal();
            watcher.Changed += (_, _) => Signal();
            watcher.Renamed += (_, _) => Signal();
            watcher.Deleted += (_, _) => Signal();
            watcher.Error += (_, e) =>
            {
                Log.WatchFailed(_logger, root, e.GetException());
                Signal();
            };
            watcher.EnableRaisingEvents = true;
            return watcher;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or PlatformNotSupportedException or UnauthorizedAccessException)
        {
            // E.g. the inotify instance limit: polling alone still converges, only less promptly for local writes.
            Log.WatchFailed(_logger, root, ex);
            return null;
        }
    }

    private void Signal() => Interlocked.Exchange(ref _changed, NewSignal()).TrySetResult();

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A stray temporary file is ignored by readers and listings (its name starts with '.').
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.StateDocumentWritten, Level = LogLevel.Debug, Message = "State document {Document} revision {Revision} written to {Path}")]
        public static partial void Written(ILogger logger, string document, long revision, string path);

        [LoggerMessage(EventId = EventIds.StateWatchUnavailable, Level = LogLevel.Warning, Message = "File-system notifications for the state directory {Root} are unavailable; changes are found by polling only")]
        public static partial void WatchFailed(ILogger logger, string root, Exception? exception);
    }
}
