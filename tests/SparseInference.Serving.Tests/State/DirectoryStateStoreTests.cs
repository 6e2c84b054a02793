using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using SparseInference.Serving.State;
using SparseInference.Serving.Tests.Variants;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Serving.Tests.State;

public sealed class DirectoryStateStoreTests : IDisposable
{
    private static readonly StateDocumentId Rollout = new("pump", "rollout");

    private readonly string _root = VariantTestKit.TempStateDirectory();
    private readonly List<DirectoryStateStore> _stores = [];

    public void Dispose() => _stores.ForEach(s => s.Dispose());

    [Fact]
    public async Task Read_NoDocument_ReturnsNull()
    {
        var store = Store();

        Assert.Null(await store.ReadAsync(Rollout));
        Assert.Empty(await store.ListKeysAsync("pump", "baselines"));
    }

    [Fact]
    public async Task Write_FirstRevision_ReadsBackFromModelSlashKindJson()
    {
        var store = Store();

        var result = await store.WriteAsync(Rollout, Json(1, "a"), expectedRevision: 0);

        Assert.Equal(new StateWriteResult(StateWriteStatus.Written, 1), result);
        var stored = await store.ReadAsync(Rollout);
        Assert.Equal(1, stored!.Revision);
        Assert.Equal("a", (string?)JsonNode.Parse(stored.Content.Span)!["value"]);
        Assert.True(File.Exists(Path.Combine(_root, "pump", "rollout.json")));
        Assert.Equal(["rollout.json"], Directory.EnumerateFiles(Path.Combine(_root, "pump")).Select(Path.GetFileName).Where(n => !n!.StartsWith('.')));
    }

    [Fact]
    public async Task Write_StaleExpectedRevision_ConflictsAndKeepsTheStoredDocument()
    {
        var store = Store();
        await store.WriteAsync(Rollout, Json(1, "first"), 0);
        await store.WriteAsync(Rollout, Json(2, "second"), 1);

        var stale = await store.WriteAsync(Rollout, Json(2, "lost update"), 1);

        Assert.Equal(new StateWriteResult(StateWriteStatus.Conflict, 2), stale);
        Assert.Equal("second", (string?)JsonNode.Parse((await store.ReadAsync(Rollout))!.Content.Span)!["value"]);
    }

    [Fact]
    public async Task Write_ContentRevisionNotExpectedPlusOne_ThrowsNamingBoth()
    {
        var store = Store();

        var error = await Assert.ThrowsAsync<ArgumentException>(() => store.WriteAsync(Rollout, Json(5, "x"), 0));

        Assert.Contains("revision: expected 1", error.Message);
        Assert.Contains("actual 5", error.Message);
    }

    /// <summary>
    /// Two stores on one directory are two replicas on one volume. Every writer reads, increments and writes back with
    /// compare-and-swap, retrying on conflict: if two writers could both replace revision n, one increment would be
    /// lost and the final revision would fall short of the number of successful writes.
    /// </summary>
    [Fact]
    public async Task Write_EightWritersOnTwoStoresIncrementing_NoUpdateIsLost()
    {
        var replicas = new[] { Store(), Store() };
        const int writers = 8, increments = 25;
        var written = 0;
        var conflicts = 0;
        // Every writer's first write waits until all have read revision 0, so at least seven of them must lose a
        // compare-and-swap: the race is certain, not left to the scheduler.
        var firstReads = 0;
        var allHaveRead = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var store = replicas[w % 2];
            for (var i = 0; i < increments;)
            {
                var current = await store.ReadAsync(Rollout);
                if (!allHaveRead.Task.IsCompleted)
                {
                    if (Interlocked.Increment(ref firstReads) == writers)
                    {
                        allHaveRead.SetResult();
                    }

                    await allHaveRead.Task;
                }

                var revision = current?.Revision ?? 0;
                var seen = current is null ? new JsonArray() : JsonNode.Parse(current.Content.Span)!["writers"]!.AsArray().DeepClone().AsArray();
                seen.Add(w);
                var next = new JsonObject { ["revision"] = revision + 1, ["writers"] = seen };
                var result = await store.WriteAsync(Rollout, Encoding.UTF8.GetBytes(next.ToJsonString()), revision);
                if (result.Written)
                {
                    Interlocked.Increment(ref written);
                    i++;
                }
                else
                {
                    Interlocked.Increment(ref conflicts);
                }
            }
        })));

        var final = await replicas[0].ReadAsync(Rollout);
        Assert.Equal(writers * increments, written);
        Assert.Equal(writers * increments, final!.Revision);
        Assert.Equal(writers * increments, JsonNode.Parse(final.Content.Span)!["writers"]!.AsArray().Count);
        Assert.True(conflicts >= writers - 1, $"expected at least {writers - 1} lost compare-and-swaps, saw {conflicts}");
    }

    [Fact]
    public async Task Read_WhileAWriterReplacesLargeDocuments_AlwaysSeesAWholeDocument()
    {
        var writer = Store();
        var reader = Store();
        var filler = new string('x', 256 * 1024);
        await writer.WriteAsync(Rollout, Json(1, filler), 0);
        using var stop = new CancellationTokenSource();
        var reads = 0;
        var readerTask = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var document = await reader.ReadAsync(Rollout);
                Assert.Equal(filler.Length, ((string?)JsonNode.Parse(document!.Content.Span)!["value"])!.Length);
                reads++;
            }
        });

        for (var revision = 2; revision <= 60; revision++)
        {
            Assert.True((await writer.WriteAsync(Rollout, Json(revision, filler), revision - 1)).Written);
        }

        await stop.CancelAsync();
        await readerTask;
        Assert.True(reads > 0);
    }

    [Theory]
    [InlineData("{\"value\": 1}", "revision: expected a whole number >= 1, actual none")]
    [InlineData("{\"revision\": \"7\"}", "revision: expected a whole number >= 1, actual 7")]
    [InlineData("{\"revision\": 0}", "revision: expected a whole number >= 1, actual 0")]
    [InlineData("[1, 2]", "expected a JSON object")]
    [InlineData("{\"revision\": 3, \"split\": {", "invalid JSON")]
    [InlineData("", "expected a JSON object, actual an empty file")]
    public async Task Read_DocumentWithoutAValidRevision_ThrowsNamingFileAndField(string content, string expected)
    {
        var store = Store();
        Directory.CreateDirectory(Path.Combine(_root, "pump"));
        await File.WriteAllTextAsync(Path.Combine(_root, "pump", "rollout.json"), content);

        var error = await Assert.ThrowsAsync<StateStoreException>(() => store.ReadAsync(Rollout));

        Assert.Contains("pump/rollout", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public async Task ListKeys_KeysWithSeparatorsDotsAndNonAscii_RoundTripAsFileNamesInsideTheKindDirectory()
    {
        var store = Store();
        string[] keys = ["line-07", "line/7", ".hidden", "..", "pumpe-ü", "a.b"];
        foreach (var key in keys)
        {
            await store.WriteAsync(new StateDocumentId("pump", "baselines", key), Json(1, key), 0);
        }

        Assert.Equal(keys.Order(StringComparer.Ordinal), await store.ListKeysAsync("pump", "baselines"));
        Assert.All(Directory.EnumerateFileSystemEntries(_root, "*", SearchOption.AllDirectories),
            path => Assert.StartsWith(Path.Combine(_root, "pump"), path, StringComparison.Ordinal));
        Assert.True(File.Exists(Path.Combine(_root, "pump", "baselines", "line%2F7.json")));
        Assert.Equal("..", (string?)JsonNode.Parse((await store.ReadAsync(new StateDocumentId("pump", "baselines", "..")))!.Content.Span)!["value"]);
    }

    [Theory]
    [InlineData("../etc", "rollout", null, "model")]
    [InlineData("pump", "Roll/out", null, "kind")]
    [InlineData("pump", "baselines", "", "key")]
    public void Id_UnsafeModelKindOrKey_IsRefusedNamingTheField(string model, string kind, string? key, string field)
    {
        var error = Assert.Throws<ArgumentException>(() => new StateDocumentId(model, kind, key));

        Assert.Contains(field, error.Message);
    }

    [Fact]
    public async Task WaitForChange_LocalWriteWithNotifications_WakesLongBeforeThePollInterval()
    {
        var watcher = Store(poll: TimeSpan.FromMinutes(5), watch: true);
        var writer = Store(watch: false);
        var clock = Stopwatch.StartNew();
        var wait = watcher.WaitForChangeAsync(CancellationToken.None);

        await writer.WriteAsync(Rollout, Json(1, "a"), 0);

        await wait.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), $"woke after {clock.Elapsed}");
    }

    [Fact]
    public async Task WaitForChange_NoNotifications_CompletesAfterThePollInterval()
    {
        var time = new Infrastructure.ManualTimeProvider();
        var store = Store(poll: TimeSpan.FromSeconds(2), watch: false, time: time);

        var wait = store.WaitForChangeAsync(CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(wait.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));

        await wait.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void Validate_DirectoryThatCannotBeCreated_FailsNamingTheKeyAndThePath()
    {
        var file = Path.Combine(_root, "a-file");
        File.WriteAllText(file, "");
        var options = new StateStoreOptions { Directory = Path.Combine(file, "state"), PollIntervalMilliseconds = 10, LockTimeoutMilliseconds = 50 };

        var result = new StateStoreOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains(result.Failures!, f => f.StartsWith("SparseInference:State:Directory: expected a directory this process can create and write", StringComparison.Ordinal) && f.Contains(file, StringComparison.Ordinal));
        Assert.Contains("SparseInference:State:PollIntervalMilliseconds: expected 50..600000, actual 10", result.Failures!);
        Assert.Contains("SparseInference:State:LockTimeoutMilliseconds: expected 100..600000, actual 50", result.Failures!);
    }

    [Fact]
    public void Validate_Defaults_PassAndResolveUnderTheContentRoot()
    {
        var options = new StateStoreOptions();

        Assert.True(new StateStoreOptionsValidator(new TestHostEnvironment(_root)).Validate(null, options).Succeeded);
        Assert.Equal(Path.Combine(_root, "state"), options.ResolveDirectory(_root));
        Assert.True(Directory.Exists(Path.Combine(_root, "state")));
    }

    private DirectoryStateStore Store(TimeSpan? poll = null, bool watch = false, TimeProvider? time = null)
    {
        var options = new StateStoreOptions
        {
            PollIntervalMilliseconds = (int)(poll ?? TimeSpan.FromSeconds(1)).TotalMilliseconds,
            WatchFileSystem = watch,
        };
        var store = new DirectoryStateStore(_root, options, time ?? TimeProvider.System, NullLogger<DirectoryStateStore>.Instance);
        _stores.Add(store);
        return store;
    }

    private static byte[] Json(long revision, string value) =>
        Encoding.UTF8.GetBytes(new JsonObject { ["revision"] = revision, ["value"] = value }.ToJsonString());

}
