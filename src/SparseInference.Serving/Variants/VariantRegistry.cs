using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Variants;

/// <summary>
/// One model's variants and split. Reads are lock-free (one volatile read of an immutable table); changes
/// are serialised per model: a second change while one runs is refused with Conflict rather than queued,
/// so an operator never triggers a double load by retrying. A change builds and warms first, then swaps.
/// </summary>
public sealed partial class VariantRegistry
{
    /// <summary>How many earlier splits rollback can walk back through.</summary>
    public const int MaxHistory = 16;

    private readonly IVariantModel _defaultModel;
    private readonly IVariantModelSource _source;
    private readonly IReadOnlyList<IVariantRoutingPolicy> _policies;
    private readonly ShadowSampler _shadowSampler;
    private readonly VariantMetrics _metrics;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _changeGate = new(1, 1);
    private long _generation;
    private RoutingTable _table;

    internal VariantRegistry(
        string model,
        IVariantModel defaultModel,
        VariantDefinition initial,
        IEnumerable<VariantDefinition> others,
        IVariantModelSource source,
        IReadOnlyList<IVariantRoutingPolicy> policies,
        IRoutingRandom random,
        VariantMetrics metrics,
        ILogger logger)
    {
        var definitions = CheckRegistration(model, initial, others);
        Model = model;
        _defaultModel = defaultModel;
        _source = source;
        _policies = policies;
        _shadowSampler = new ShadowSampler(random);
        _metrics = metrics;
        _logger = logger;
        var variants = ImmutableDictionary.CreateBuilder<string, Variant>(StringComparer.Ordinal);
        foreach (var definition in definitions)
        {
            variants.Add(definition.Name, new Variant(model, definition, defaultModel, ++_generation));
        }

        _table = new RoutingTable(model, 1, variants.ToImmutable(), SplitConfig.Single(initial.Name), []);
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

            if (other.WeightsDirectory is not null)
            {
                throw new ArgumentException($"Variant '{other.Name}' of model '{model}': weights: expected none at registration (add variants on other weights through a change), actual '{other.WeightsDirectory}'");
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

    /// <summary>Creates a variant or changes one (pattern, sparsity, weights). Builds and warms it before the swap.</summary>
    public Task<VariantChangeResult> UpsertVariantAsync(VariantDefinition definition, CancellationToken cancellationToken = default) =>
        ChangeAsync("upsert", async table =>
        {
            if (definition.Validate() is { Count: > 0 } errors)
            {
                return new VariantChangeResult(VariantChangeStatus.Invalid, table, string.Join("; ", errors));
            }

            var exists = table.Variants.TryGetValue(definition.Name, out var old);
            if (exists && old!.Definition == definition)
            {
                return new VariantChangeResult(VariantChangeStatus.Applied, table);
            }

            Variant built;
            try
            {
                var loaded = await ResolveWeightsAsync(table, definition.WeightsDirectory, cancellationToken).ConfigureAwait(false);
                built = new Variant(Model, definition, loaded, Interlocked.Increment(ref _generation));
                await WarmAsync(built, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Log.BuildFailed(_logger, Model, definition.Name, ex);
                return new VariantChangeResult(
                    VariantChangeStatus.BuildFailed,
                    table,
                    $"building variant '{definition.Name}' of model '{Model}' failed; '{(exists ? definition.Name : "the previous table")}' keeps serving: {ex.Message}");
            }

            var next = new RoutingTable(Model, table.Version + 1, table.Variants.SetItem(built.Name, built), table.Split, table.History);
            return new VariantChangeResult(exists ? VariantChangeStatus.Applied : VariantChangeStatus.Created, next);
        });

    /// <summary>Deletes a variant that receives no traffic (no weight, not the shadow).</summary>
    public Task<VariantChangeResult> DeleteVariantAsync(string name) =>
        ChangeAsync("delete", table =>
        {
            if (!table.Variants.ContainsKey(name))
            {
                return Task.FromResult(new VariantChangeResult(VariantChangeStatus.NotFound, table, $"variant: expected one of [{Known(table)}], actual '{name}'"));
            }

            var weight = table.Split.WeightOf(name);
            if (weight > 0 || table.Split.Shadow?.Variant == name)
            {
                return Task.FromResult(new VariantChangeResult(
                    VariantChangeStatus.Conflict,
                    table,
                    $"variant '{name}': expected no traffic before deletion, actual weight {weight:0.###}{(table.Split.Shadow?.Variant == name ? " and it is the shadow candidate" : "")}; change the split first"));
            }

            var next = new RoutingTable(Model, table.Version + 1, table.Variants.Remove(name), table.Split, table.History);
            return Task.FromResult(new VariantChangeResult(VariantChangeStatus.Applied, next));
        });

    /// <summary>Sets weights and shadow; the split it replaces becomes the rollback target.</summary>
    public Task<VariantChangeResult> SetSplitAsync(SplitConfig split) =>
        ChangeAsync("split", table => Task.FromResult(ApplySplit(table, split)));

    /// <summary>Sends 100% of traffic to one variant (and stops shadowing it).</summary>
    public Task<VariantChangeResult> PromoteAsync(string name) =>
        ChangeAsync("promote", table =>
        {
            if (!table.Variants.ContainsKey(name))
            {
                return Task.FromResult(new VariantChangeResult(VariantChangeStatus.NotFound, table, $"variant: expected one of [{Known(table)}], actual '{name}'"));
            }

            var shadow = table.Split.Shadow?.Variant == name ? null : table.Split.Shadow;
            return Task.FromResult(ApplySplit(table, new SplitConfig([new SplitWeight(name, 1.0)], shadow, table.Split.Experiment)));
        });

    /// <summary>Restores the split before the latest one.</summary>
    public Task<VariantChangeResult> RollbackAsync(string reason) =>
        ChangeAsync("rollback", table =>
        {
            if (table.History.IsEmpty)
            {
                return Task.FromResult(new VariantChangeResult(VariantChangeStatus.Conflict, table, $"rollback: expected an earlier split of model '{Model}', actual none"));
            }

            var previous = table.History[0];
            if (previous.Validate(table.Variants) is { Count: > 0 } errors)
            {
                return Task.FromResult(new VariantChangeResult(VariantChangeStatus.Conflict, table, $"rollback: the earlier split no longer fits the variants: {string.Join("; ", errors)}"));
            }

            Log.RolledBack(_logger, Model, reason);
            var next = new RoutingTable(Model, table.Version + 1, table.Variants, previous, table.History.RemoveAt(0));
            return Task.FromResult(new VariantChangeResult(VariantChangeStatus.Applied, next));
        });

    private VariantChangeResult ApplySplit(RoutingTable table, SplitConfig split)
    {
        if (split.Validate(table.Variants) is { Count: > 0 } errors)
        {
            return new VariantChangeResult(VariantChangeStatus.Invalid, table, string.Join("; ", errors));
        }

        var history = table.History.Insert(0, table.Split);
        if (history.Count > MaxHistory)
        {
            history = history.RemoveAt(history.Count - 1);
        }

        return new VariantChangeResult(VariantChangeStatus.Applied, new RoutingTable(Model, table.Version + 1, table.Variants, split, history));
    }

    private async Task<VariantChangeResult> ChangeAsync(string operation, Func<RoutingTable, Task<VariantChangeResult>> change)
    {
        if (!await _changeGate.WaitAsync(0).ConfigureAwait(false))
        {
            _metrics.RecordChange(Model, operation, VariantChangeStatus.Conflict);
            return new VariantChangeResult(VariantChangeStatus.Conflict, Current, $"model '{Model}': expected no change in progress, actual another change is being applied; retry when it finishes");
        }

        try
        {
            var table = Current;
            var result = await change(table).ConfigureAwait(false);
            if (result.Succeeded && !ReferenceEquals(result.Table, table))
            {
                // Only this method writes, under the gate, so a plain volatile write is an atomic swap.
                Volatile.Write(ref _table, result.Table);
                Log.TableSwapped(_logger, Model, operation, result.Table.Version);
            }

            _metrics.RecordChange(Model, operation, result.Status);
            return result;
        }
        finally
        {
            _changeGate.Release();
        }
    }

    private async Task<IVariantModel> ResolveWeightsAsync(RoutingTable table, string? weightsDirectory, CancellationToken cancellationToken)
    {
        if (weightsDirectory is null)
        {
            return _defaultModel;
        }

        // Variants on the same weights share one loaded model: reuse it if any variant holds it already.
        var key = NormaliseWeightsPath(weightsDirectory);
        foreach (var variant in table.Variants.Values)
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

    private static string Known(RoutingTable table) => string.Join(", ", table.Variants.Keys.Order(StringComparer.Ordinal));

    private static partial class Log
    {
        [LoggerMessage(EventId = 3100, Level = LogLevel.Information, Message = "Model {Model}: {Operation} applied, routing table version {Version} now serving")]
        public static partial void TableSwapped(ILogger logger, string model, string operation, long version);

        [LoggerMessage(EventId = 3101, Level = LogLevel.Warning, Message = "Model {Model}: building variant {Variant} failed; the previous table keeps serving")]
        public static partial void BuildFailed(ILogger logger, string model, string variant, Exception exception);

        [LoggerMessage(EventId = 3102, Level = LogLevel.Information, Message = "Model {Model}: loading weights from {WeightsDirectory}")]
        public static partial void LoadingWeights(ILogger logger, string model, string weightsDirectory);

        [LoggerMessage(EventId = 3103, Level = LogLevel.Warning, Message = "Model {Model}: split rolled back ({Reason})")]
        public static partial void RolledBack(ILogger logger, string model, string reason);
    }
}
