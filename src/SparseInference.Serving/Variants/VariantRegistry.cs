using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using SparseInference.Serving.State;
using SparseInference.Serving.Variants.Guardrails;
using SparseInference.Serving.Variants.Rollout;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Variants;

/// <summary>
/// One model's variants and split in this process. Reads are lock-free (one volatile read of an immutable table).
/// What the table serves is the model's rollout state in the shared store, the same for every replica: a change
/// computes the next state from the stored one, builds and warms it, writes it with compare-and-swap on the
/// revision, and only then swaps; <see cref="SyncAsync"/> brings this replica to whatever the store holds.
/// Changes are serialised per model: a second change while one runs is refused with Conflict rather than
/// queued, so an operator never triggers a double load by retrying.
/// </summary>
public sealed partial class VariantRegistry
{
    /// <summary>How many earlier splits rollback can walk back through.</summary>
    public const int MaxHistory = RolloutChanges.MaxHistory;

    private readonly IVariantModel _defaultModel;
    private readonly string _defaultVariant;
    private readonly IVariantModelSource _source;
    private readonly IReadOnlyList<IVariantRoutingPolicy> _policies;
    private readonly ShadowSampler _shadowSampler;
    private readonly VariantMetrics _metrics;
    private readonly RolloutStore _store;
    private readonly TimeProvider _time;
    private readonly TimeSpan _retryInterval;
    private readonly ILogger _logger;
    // Operator and guardrail changes: a second one while one runs is refused, never queued.
    private readonly SemaphoreSlim _changeGate = new(1, 1);

    // Anything that builds and swaps a table (a change, convergence): a change waits for a convergence round to end.
    private readonly SemaphoreSlim _applyGate = new(1, 1);
    private readonly ImmutableArray<VariantDefinition> _pendingManifest;
    private ImmutableArray<VariantDefinition> _manifest;
    private long _generation;
    private RoutingTable _table;
    private RolloutStatus _status;

    internal VariantRegistry(
        string model,
        IVariantModel defaultModel,
        VariantDefinition initial,
        IEnumerable<VariantDefinition> others,
        IVariantModelSource source,
        IReadOnlyList<IVariantRoutingPolicy> policies,
        IRoutingRandom random,
        VariantMetrics metrics,
        RolloutStore store,
        TimeProvider time,
        TimeSpan retryInterval,
        ILogger logger)
    {
        var definitions = CheckRegistration(model, initial, others);
        Model = model;
        _defaultModel = defaultModel;
        _defaultVariant = initial.Name;
        _source = source;
        _policies = policies;
        _shadowSampler = new ShadowSampler(random);
        _metrics = metrics;
        _store = store;
        _time = time;
        _retryInterval = retryInterval;
        _logger = logger;

        // Variants on the loaded default weights serve at once (the host has just loaded and checked those weights);
        // those on weights of their own join in InitializeAsync, once built.
        var variants = ImmutableDictionary.CreateBuilder<string, Variant>(StringComparer.Ordinal);
        foreach (var definition in definitions.Where(d => d.WeightsDirectory is null))
        {
            variants.Add(definition.Name, new Variant(model, definition, defaultModel, ++_generation));
        }

        _manifest = [.. definitions.Where(d => d.WeightsDirectory is null)];
        _pendingManifest = [.. definitions.Where(d => d.WeightsDirectory is not null)];
        var state = RolloutState.Initial(initial.Name);
        _table = new RoutingTable(model, state, variants.ToImmutable());
        _status = new RolloutStatus(0, 0, null, null);
    }

    /// <summary>
    /// The checks registering these definitions runs, without registering anything (a model load runs them before it
    /// publishes a version); throws <see cref="ArgumentException"/> whose message (meant for an operator, so without a
    /// parameter name) names the variant, field, expected and actual value.
    /// </summary>
    public static IReadOnlyList<VariantDefinition> CheckRegistration(string model, VariantDefinition initial, IEnumerable<VariantDefinition> others)
    {
        if (initial.Validate() is { Count: > 0 } errors)
        {
            throw new ArgumentException($"Initial variant of model '{model}': {string.Join("; ", errors)}");
        }

        if (initial.WeightsDirectory is not null)
        {
            throw new ArgumentException($"Initial variant of model '{model}': weights: expected none (it runs on the loaded default weights), actual '{initial.WeightsDirectory}'");
        }

        var definitions = new List<VariantDefinition> { initial };
        foreach (var other in others)
        {
            if (other.Validate() is { Count: > 0 } otherErrors)
            {
                throw new ArgumentException($"Variant '{other.Name}' of model '{model}': {string.Join("; ", otherErrors)}");
            }

            if (definitions.Any(d => d.Name == other.Name))
            {
                throw new ArgumentException($"Variant '{other.Name}' of model '{model}': name: expected each name once, actual it appears twice");
            }

            definitions.Add(other);
        }

        return definitions;
    }

    public string Model { get; }

    /// <summary>The table serving now.</summary>
    public RoutingTable Current => Volatile.Read(ref _table);

    /// <summary>This replica against the shared state: desired and applied revision, and the last failure to apply.</summary>
    public RolloutStatus Status => Volatile.Read(ref _status) with { AppliedRevision = Current.Version };

    /// <summary>Where the shared state lives.</summary>
    public string StoreLocation => _store.Location;

    /// <summary>The variants the model's manifest declares (the ones a state without run-time changes serves).</summary>
    public IReadOnlyList<VariantDefinition> ManifestVariants => _manifest;

    /// <summary>Picks the primary (override, sticky, weighted) and, maybe, a shadow for one request.</summary>
    public RouteDecision Route(RoutingContext context)
    {
        var table = Current;
        foreach (var policy in _policies)
        {
            if (policy.Choose(table, context) is { } primary)
            {
                var shadow = _shadowSampler.Choose(table, context, primary);
                return new RouteDecision(Model, primary, shadow, policy.Name, table.Version, shadow is null ? null : table.Split.Shadow?.FlagThreshold);
            }
        }

        throw new InvalidOperationException($"No routing policy chose a variant for model '{Model}'; the weighted policy must be last.");
    }

    /// <summary>
    /// Builds the manifest's variants on weights of their own (one that cannot be built is left out and its error
    /// returned, as the manifest's other variants serve), then applies the stored rollout state, so a replica that
    /// starts (or restarts) serves the fleet's state before it reports ready.
    /// </summary>
    internal async Task<IReadOnlyList<(VariantDefinition Variant, string Error)>> InitializeAsync(CancellationToken cancellationToken)
    {
        var failures = new List<(VariantDefinition, string)>();
        await _applyGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var own in _pendingManifest)
            {
                var manifest = _manifest.Add(own);
                var build = await BuildAsync(Current.Rollout, manifest, Current, cancellationToken).ConfigureAwait(false);
                if (build.Table is null)
                {
                    failures.Add((own, build.Error!));
                    continue;
                }

                _manifest = manifest;
                Volatile.Write(ref _table, build.Table);
            }
        }
        finally
        {
            _applyGate.Release();
        }

        await SyncAsync(cancellationToken).ConfigureAwait(false);
        return failures;
    }

    /// <summary>Creates a variant or changes one (pattern, sparsity, weights). Builds and warms it before the swap.</summary>
    public Task<VariantChangeResult> UpsertVariantAsync(VariantDefinition definition, CancellationToken cancellationToken = default) =>
        ChangeAsync("upsert", state => RolloutChanges.UpsertVariant(state, _manifest, definition), cancellationToken: cancellationToken);

    /// <summary>Deletes a variant that receives no traffic (no weight, not the shadow).</summary>
    public Task<VariantChangeResult> DeleteVariantAsync(string name, CancellationToken cancellationToken = default) =>
        ChangeAsync("delete", state => RolloutChanges.DeleteVariant(state, _manifest, name), cancellationToken: cancellationToken);

    /// <summary>Sets weights and shadow; the split it replaces becomes the rollback target.</summary>
    public Task<VariantChangeResult> SetSplitAsync(SplitConfig split, CancellationToken cancellationToken = default) =>
        ChangeAsync("split", state => RolloutChanges.SetSplit(state, _manifest, split), cancellationToken: cancellationToken);

    /// <summary>Sends 100% of traffic to one variant (and stops shadowing it).</summary>
    public Task<VariantChangeResult> PromoteAsync(string name, CancellationToken cancellationToken = default) =>
        ChangeAsync("promote", state => RolloutChanges.Promote(state, _manifest, name), cancellationToken: cancellationToken);

    /// <summary>Restores the split before the latest one.</summary>
    public Task<VariantChangeResult> RollbackAsync(string reason, CancellationToken cancellationToken = default) =>
        ChangeAsync("rollback", state =>
        {
            var change = RolloutChanges.Rollback(state, _manifest, Model);
            if (change.Succeeded)
            {
                Log.RolledBack(_logger, Model, reason);
            }

            return change;
        }, cancellationToken: cancellationToken);

    /// <summary>Gives the model guardrail bounds of its own for every replica; null returns it to the configured ones.</summary>
    public Task<VariantChangeResult> SetGuardrailsAsync(GuardrailSettings? guardrails, CancellationToken cancellationToken = default) =>
        ChangeAsync("guardrails", state => RolloutChanges.SetGuardrails(state, guardrails), cancellationToken: cancellationToken);

    /// <summary>
    /// A guardrail tripped on this replica while it served <paramref name="trip"/>'s revision: rolls the shared state
    /// back (or stops the shadow) and records the trip, for every replica. Refused with Conflict when the stored
    /// state is no longer the judged revision (another replica rolled back first, or an operator changed it).
    /// </summary>
    internal Task<VariantChangeResult> GuardrailRollbackAsync(GuardrailTripRecord trip, bool shadowOnly, CancellationToken cancellationToken = default) =>
        ChangeAsync("guardrail", state =>
        {
            var change = RolloutChanges.GuardrailRollback(state, _manifest, Model, trip, shadowOnly);
            if (change.Succeeded)
            {
                Log.RolledBack(_logger, Model, "guardrail: " + trip.Reason);
            }

            return change;
        }, expectedRevision: trip.Revision, cancellationToken: cancellationToken);

    /// <summary>
    /// Brings this replica to the stored state when it differs from the one served: build and warm first, swap after;
    /// a state that cannot be read or built is refused (reported in <see cref="Status"/>, the metrics and the log)
    /// and the served one kept; the same revision is tried again after the retry interval. Returns at once when a
    /// change or another round is in progress (a change reads the store itself).
    /// </summary>
    public async Task<RolloutStatus> SyncAsync(CancellationToken cancellationToken = default)
    {
        if (!await _applyGate.WaitAsync(0, cancellationToken).ConfigureAwait(false))
        {
            return Status;
        }

        try
        {
            var now = _time.GetUtcNow();
            RolloutState desired;
            try
            {
                desired = await _store.ReadAsync(Model, cancellationToken).ConfigureAwait(false) ?? RolloutState.Initial(_defaultVariant);
            }
            catch (StateStoreException ex)
            {
                Fail(0, RolloutApplyFailures.Unreadable, ex.Message, now, _status.DesiredRevision);
                return Status;
            }

            var current = Current;
            if (desired.Revision == current.Version)
            {
                Volatile.Write(ref _status, new RolloutStatus(desired.Revision, current.Version, null, now));
                return Status;
            }

            if (_status.LastError is { } last && last.Revision == desired.Revision && now < last.RetryAt)
            {
                Volatile.Write(ref _status, _status with { DesiredRevision = desired.Revision, CheckedAt = now });
                return Status;
            }

            var build = await BuildAsync(desired, _manifest, current, cancellationToken).ConfigureAwait(false);
            if (build.Table is null)
            {
                Fail(desired.Revision, build.Status == VariantChangeStatus.Invalid ? RolloutApplyFailures.Invalid : RolloutApplyFailures.BuildFailed, build.Error!, now, desired.Revision);
                return Status;
            }

            Swap(build.Table, "converge");
            Volatile.Write(ref _status, new RolloutStatus(desired.Revision, desired.Revision, null, now));
            return Status;
        }
        finally
        {
            _applyGate.Release();
        }
    }

    private void Fail(long revision, string reason, string message, DateTimeOffset now, long desiredRevision)
    {
        var previous = _status.LastError;
        Volatile.Write(ref _status, new RolloutStatus(desiredRevision, Current.Version, new RolloutApplyError(revision, reason, message, now, now + _retryInterval), now));
        // Counted and logged once per distinct failure, not at every poll that finds it again.
        if (previous?.Revision != revision || previous.Message != message)
        {
            _metrics.RecordApplyFailure(Model, reason);
            Log.ApplyFailed(_logger, Model, revision, Current.Version, reason, message);
        }
    }

    private async Task<VariantChangeResult> ChangeAsync(string operation, Func<RolloutState, RolloutChange> change, long? expectedRevision = null, CancellationToken cancellationToken = default)
    {
        if (!await _changeGate.WaitAsync(0, cancellationToken).ConfigureAwait(false))
        {
            _metrics.RecordChange(Model, operation, VariantChangeStatus.Conflict);
            return new VariantChangeResult(VariantChangeStatus.Conflict, Current, $"model '{Model}': expected no change in progress, actual another change is being applied; retry when it finishes");
        }

        try
        {
            await _applyGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var result = await ChangeUnderGateAsync(operation, change, expectedRevision, cancellationToken).ConfigureAwait(false);
                _metrics.RecordChange(Model, operation, result.Status);
                return result;
            }
            finally
            {
                _applyGate.Release();
            }
        }
        finally
        {
            _changeGate.Release();
        }
    }

    private async Task<VariantChangeResult> ChangeUnderGateAsync(string operation, Func<RolloutState, RolloutChange> change, long? expectedRevision, CancellationToken cancellationToken)
    {
        var current = Current;
        RolloutState latest;
        try
        {
            // The stored state, not the served one: this replica may not have seen the latest revision yet.
            latest = await _store.ReadAsync(Model, cancellationToken).ConfigureAwait(false) ?? RolloutState.Initial(_defaultVariant);
        }
        catch (StateStoreException ex)
        {
            return new VariantChangeResult(VariantChangeStatus.Unavailable, current, $"rollout state of model '{Model}': {ex.Message}");
        }

        if (expectedRevision is { } expected && expected != latest.Revision)
        {
            return new VariantChangeResult(VariantChangeStatus.Conflict, current, $"rollout of model '{Model}': expected revision {expected}, actual {latest.Revision} in the store; the state changed meanwhile");
        }

        var outcome = change(latest);
        if (!outcome.Succeeded)
        {
            return new VariantChangeResult(outcome.Status, current, outcome.Error);
        }

        var next = ReferenceEquals(outcome.State, latest)
            ? latest
            : outcome.State with { Revision = latest.Revision + 1, UpdatedAt = _time.GetUtcNow(), UpdatedBy = $"{operation} via {RolloutReplica.Name}" };
        if (next.Revision == current.Version)
        {
            // Nothing to change, and this replica already serves the stored state.
            return new VariantChangeResult(outcome.Status, current);
        }

        var build = await BuildAsync(next, _manifest, current, cancellationToken).ConfigureAwait(false);
        if (build.Table is null)
        {
            return new VariantChangeResult(build.Status, current, build.Error);
        }

        if (!ReferenceEquals(next, latest))
        {
            StateWriteResult write;
            try
            {
                write = await _store.WriteAsync(Model, next, latest.Revision, cancellationToken).ConfigureAwait(false);
            }
            catch (StateStoreException ex)
            {
                return new VariantChangeResult(VariantChangeStatus.Unavailable, current, $"rollout state of model '{Model}': {ex.Message}; nothing changed");
            }

            if (!write.Written)
            {
                return new VariantChangeResult(
                    VariantChangeStatus.Conflict,
                    current,
                    $"rollout of model '{Model}': expected revision {latest.Revision} in the store, actual {write.StoredRevision}: another change was written while this one was built; nothing was written, retry");
            }
        }

        Swap(build.Table, operation);
        Volatile.Write(ref _status, new RolloutStatus(next.Revision, next.Revision, null, _time.GetUtcNow()));
        return new VariantChangeResult(outcome.Status, build.Table);
    }

    private void Swap(RoutingTable table, string operation)
    {
        // Only callers holding the apply gate write, so a plain volatile write is an atomic swap.
        Volatile.Write(ref _table, table);
        Log.TableSwapped(_logger, Model, operation, table.Version);
    }

    /// <summary>
    /// Builds the table of <paramref name="state"/>: variants whose definition is unchanged are taken over as they are
    /// (requests keep batching on them), new or changed ones are built on their weights and warmed. Nothing is swapped.
    /// </summary>
    private async Task<(RoutingTable? Table, VariantChangeStatus Status, string? Error)> BuildAsync(
        RolloutState state, IReadOnlyList<VariantDefinition> manifest, RoutingTable current, CancellationToken cancellationToken)
    {
        var definitions = state.EffectiveVariants(manifest);
        if (state.Split.Validate(definitions) is { Count: > 0 } errors)
        {
            return (null, VariantChangeStatus.Invalid, $"revision {state.Revision} of model '{Model}' does not fit its variants; revision {current.Version} keeps serving: {string.Join("; ", errors)}");
        }

        var variants = ImmutableDictionary.CreateBuilder<string, Variant>(StringComparer.Ordinal);
        var built = new List<Variant>();
        foreach (var definition in definitions.Values.OrderBy(d => d.Name, StringComparer.Ordinal))
        {
            if (current.Variants.TryGetValue(definition.Name, out var existing) && existing.Definition == definition)
            {
                variants.Add(definition.Name, existing);
                continue;
            }

            try
            {
                var loaded = await ResolveWeightsAsync(current.Variants.Values.Concat(built), definition.WeightsDirectory, cancellationToken).ConfigureAwait(false);
                var variant = new Variant(Model, definition, loaded, Interlocked.Increment(ref _generation));
                await WarmAsync(variant, cancellationToken).ConfigureAwait(false);
                built.Add(variant);
                variants.Add(definition.Name, variant);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Log.BuildFailed(_logger, Model, definition.Name, ex);
                var serving = current.Variants.ContainsKey(definition.Name) ? $"'{definition.Name}' keeps serving as in revision {current.Version}" : $"revision {current.Version} keeps serving";
                return (null, VariantChangeStatus.BuildFailed, $"building variant '{definition.Name}' of model '{Model}' failed; {serving}: {ex.Message}");
            }
        }

        return (new RoutingTable(Model, state, variants.ToImmutable()), VariantChangeStatus.Applied, null);
    }

    private async Task<IVariantModel> ResolveWeightsAsync(IEnumerable<Variant> available, string? weightsDirectory, CancellationToken cancellationToken)
    {
        if (weightsDirectory is null)
        {
            return _defaultModel;
        }

        // Variants on the same weights share one loaded model: reuse it if any variant holds it already.
        var key = NormaliseWeightsPath(weightsDirectory);
        foreach (var variant in available)
        {
            if (variant.Definition.WeightsDirectory is { } dir && NormaliseWeightsPath(dir) == key)
            {
                return variant.LoadedModel;
            }
        }

        Log.LoadingWeights(_logger, Model, weightsDirectory);
        return await _source.LoadAsync(Model, weightsDirectory, cancellationToken).ConfigureAwait(false);
    }

    private async Task WarmAsync(Variant variant, CancellationToken cancellationToken)
    {
        var input = _source.CreateWarmupInput(Model);
        var result = await Task.Run(() => variant.Forward(input), cancellationToken).ConfigureAwait(false);
        if (result.Output.Length == 0)
        {
            throw new InvalidOperationException($"warm-up forward: expected a non-empty output, actual 0 values");
        }

        for (var i = 0; i < result.Output.Length; i++)
        {
            if (!float.IsFinite(result.Output[i]))
            {
                throw new InvalidOperationException($"warm-up forward: expected finite outputs, actual {result.Output[i]} at index {i}");
            }
        }
    }

    private static string NormaliseWeightsPath(string path) => Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.RoutingTableSwapped, Level = LogLevel.Information, Message = "Model {Model}: {Operation} applied, rollout revision {Version} now serving")]
        public static partial void TableSwapped(ILogger logger, string model, string operation, long version);

        [LoggerMessage(EventId = EventIds.VariantBuildRefused, Level = LogLevel.Warning, Message = "Model {Model}: building variant {Variant} failed; the previous table keeps serving")]
        public static partial void BuildFailed(ILogger logger, string model, string variant, Exception exception);

        [LoggerMessage(EventId = EventIds.LoadingVariantWeights, Level = LogLevel.Information, Message = "Model {Model}: loading weights from {WeightsDirectory}")]
        public static partial void LoadingWeights(ILogger logger, string model, string weightsDirectory);

        [LoggerMessage(EventId = EventIds.SplitRolledBack, Level = LogLevel.Warning, Message = "Model {Model}: split rolled back ({Reason})")]
        public static partial void RolledBack(ILogger logger, string model, string reason);

        [LoggerMessage(EventId = EventIds.RolloutApplyFailed, Level = LogLevel.Error, Message = "Model {Model}: rollout revision {Revision} refused ({Reason}); revision {Applied} keeps serving: {Error}")]
        public static partial void ApplyFailed(ILogger logger, string model, long revision, long applied, string reason, string error);
    }
}
