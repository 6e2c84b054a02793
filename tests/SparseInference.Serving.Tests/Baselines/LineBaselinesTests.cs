using System.Collections.Immutable;
using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using SparseInference.Serving.Baselines;
using SparseInference.Serving.State;
using SparseInference.Serving.Tests.Variants;

namespace SparseInference.Serving.Tests.Baselines;

/// <summary>
/// A replica's view of the line baselines in a shared state directory: two views over one directory stand for two
/// replicas, each with its own store instance, as two processes on one volume.
/// </summary>
public sealed class LineBaselinesTests : IDisposable
{
    private const string Model = "pump";
    private static readonly string[] Models = [Model];

    private readonly string _root = VariantTestKit.TempStateDirectory();
    private readonly List<IDisposable> _owned = [];

    public void Dispose() => _owned.ForEach(d => d.Dispose());

    [Fact]
    public async Task Store_WrittenThroughOneReplica_AppliesThereAtOnce_AndOnTheOtherAtItsNextSync()
    {
        var (writer, reader) = (View(), View());
        await reader.SyncAsync(Models, CancellationToken.None);

        var written = await writer.StoreAsync(Model, Baseline("pump-1", 1), expectedRevision: 0, CancellationToken.None);

        Assert.True(written.Written);
        Assert.Equal(1, writer.Find(Model, "pump-1")!.Revision);
        Assert.Null(reader.Find(Model, "pump-1"));
        await reader.SyncAsync(Models, CancellationToken.None);
        Assert.Equal(Baseline("pump-1", 1).ToJson(), reader.Find(Model, "pump-1")!.Baseline!.ToJson());
    }

    [Fact]
    public async Task Store_StaleExpectedRevision_ConflictsAndKeepsWhatEachReplicaApplies()
    {
        var (first, second) = (View(), View());
        await first.StoreAsync(Model, Baseline("pump-1", 1), 0, CancellationToken.None);
        await second.StoreAsync(Model, Baseline("pump-1", 2, threshold: 0.7), 1, CancellationToken.None);

        var stale = await first.StoreAsync(Model, Baseline("pump-1", 2, threshold: 0.9), 1, CancellationToken.None);

        Assert.Equal(new StateWriteResult(StateWriteStatus.Conflict, 2), stale);
        Assert.Equal(1, first.Find(Model, "pump-1")!.Revision);
        await first.SyncAsync(Models, CancellationToken.None);
        Assert.Equal(0.7, first.Find(Model, "pump-1")!.Baseline!.Variants["dense"].Threshold);
    }

    [Fact]
    public async Task Delete_ThroughOneReplica_RemovedFromTheOtherAtItsNextSync()
    {
        var (writer, reader) = (View(), View());
        await writer.StoreAsync(Model, Baseline("pump-1", 1), 0, CancellationToken.None);
        await writer.StoreAsync(Model, Baseline("pump-2", 1), 0, CancellationToken.None);
        await reader.SyncAsync(Models, CancellationToken.None);

        await writer.DeleteAsync(Model, "pump-1", 1, CancellationToken.None);
        await reader.SyncAsync(Models, CancellationToken.None);

        Assert.Null(writer.Find(Model, "pump-1"));
        Assert.Null(reader.Find(Model, "pump-1"));
        Assert.Equal(["pump-2"], reader.Lines(Model).Select(l => l.Line));
    }

    [Fact]
    public async Task Sync_UnreadableDocument_KeepsTheAppliedRevision_AndALineNeverAppliedCarriesTheProblem()
    {
        var (writer, reader) = (View(), View());
        await writer.StoreAsync(Model, Baseline("pump-1", 1), 0, CancellationToken.None);
        await reader.SyncAsync(Models, CancellationToken.None);
        var store = Store();
        await store.WriteAsync(LineBaselineStore.DocumentId(Model, "pump-1"), Encoding.UTF8.GetBytes("""{"revision": 2, "line": "pump-1"}"""), 1);
        await store.WriteAsync(LineBaselineStore.DocumentId(Model, "pump-2"), Encoding.UTF8.GetBytes("""{"revision": 1, "line": "pump-2"}"""), 0);
        // Another line's document, copied under the wrong name.
        await store.WriteAsync(LineBaselineStore.DocumentId(Model, "pump-3"), Encoding.UTF8.GetBytes(Baseline("pump-4", 1).ToJson()), 0);

        await reader.SyncAsync(Models, CancellationToken.None);

        Assert.Equal(1, reader.Find(Model, "pump-1")!.Revision);
        Assert.Null(reader.Find(Model, "pump-2")!.Baseline);
        Assert.StartsWith($"baseline document {Model}/baselines/pump-2 in {_root}: not a line baseline", reader.Find(Model, "pump-2")!.Problem, StringComparison.Ordinal);
        Assert.EndsWith("expected the baseline of model 'pump' line 'pump-3', actual model 'pump' line 'pump-4'", reader.Find(Model, "pump-3")!.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sync_ModelNoLongerServed_Forgotten()
    {
        var view = View();
        await view.StoreAsync(Model, Baseline("pump-1", 1), 0, CancellationToken.None);

        await view.SyncAsync([], CancellationToken.None);

        Assert.Null(view.Find(Model, "pump-1"));
    }

    [Fact]
    public async Task Rows_KeptBesideTheBaseline_OnlyTheLatestRevisionsRows()
    {
        var store = new LineBaselineStore(Store());
        double[][] older = [[1, 2], [3, 4]];
        double[][] newer = [[5, 6], [7, 8]];

        await store.WriteRowsAsync(Model, "pump-1", baselineRevision: 2, ["a", "b"], newer);
        await store.WriteRowsAsync(Model, "pump-1", baselineRevision: 1, ["a", "b"], older);

        var kept = await store.ReadRowsAsync(Model, "pump-1");
        Assert.Equal(2L, kept!.BaselineRevision);
        Assert.Equal(newer, kept.Rows);
        await store.DeleteRowsAsync(Model, "pump-1");
        Assert.Null(await store.ReadRowsAsync(Model, "pump-1"));
    }

    private LineBaselines View()
    {
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        _owned.Add(services);
        return new LineBaselines(new LineBaselineStore(Store()), new BaselineMetrics(services.GetRequiredService<IMeterFactory>()), NullLogger<LineBaselines>.Instance);
    }

    private DirectoryStateStore Store()
    {
        var store = new DirectoryStateStore(_root, new StateStoreOptions { WatchFileSystem = false }, TimeProvider.System, NullLogger<DirectoryStateStore>.Instance);
        _owned.Add(store);
        return store;
    }

    private static LineBaseline Baseline(string line, long revision, double threshold = 0.5) => new()
    {
        Line = line,
        Revision = revision,
        CreatedAt = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero),
        Model = Model,
        ModelVersion = "1",
        Rows = 400,
        Rule = new BaselineRule { Window = 64, Positions = 32, FalseAlarmRate = 0, Margin = 1.25, ResidualStdFloor = 1, MinimumRows = 256, ValidatedRows = 400 },
        InputMean = [1.0, 2.0],
        InputStd = [0.5, 0.25],
        Variants = ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, [KeyValuePair.Create("dense", new VariantBaseline
        {
            Pattern = "dense", Sparsity = 0, ResidualMean = [0.1, -0.1], ResidualStd = [1.0, 1.0], OnboardingQuantile = threshold / 1.25, Threshold = threshold,
        })]),
    };
}
