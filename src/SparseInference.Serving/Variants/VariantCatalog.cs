using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Variants.Rollout;
using SparseInference.Serving.Variants.Routing;

namespace SparseInference.Serving.Variants;

/// <summary>The variant registries of all loaded models. The host adds a model once its default weights are loaded.</summary>
public sealed class VariantCatalog
{
    private readonly ConcurrentDictionary<string, VariantRegistry> _registries = new(StringComparer.Ordinal);
    private readonly IVariantModelSource _source;
    private readonly IReadOnlyList<IVariantRoutingPolicy> _policies;
    private readonly IRoutingRandom _random;
    private readonly VariantMetrics _metrics;
    private readonly RolloutStore _store;
    private readonly TimeProvider _time;
    private readonly IOptionsMonitor<VariantOptions> _options;
    private readonly ILoggerFactory _loggerFactory;

    public VariantCatalog(
        IVariantModelSource source,
        IRoutingRandom random,
        VariantMetrics metrics,
        RolloutStore store,
        TimeProvider time,
        IOptionsMonitor<VariantOptions> options,
        ILoggerFactory loggerFactory)
    {
        _source = source;
        _random = random;
        _metrics = metrics;
        _store = store;
        _time = time;
        _options = options;
        _loggerFactory = loggerFactory;
        _policies = [new OverrideRoutingPolicy(), new StickyRoutingPolicy(), new WeightedRoutingPolicy(random)];
    }

    public IReadOnlyCollection<string> Models => _registries.Keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>
    /// Registers a model with its loaded default weights and the variant that starts at 100% of traffic
    /// (e.g. <c>new VariantDefinition("dense", "dense")</c>), in the state it has without a rollout document.
    /// The stored rollout state follows at the next <see cref="VariantRegistry.SyncAsync"/>; a host adds models
    /// with <see cref="AddModelAsync"/>, which applies it before returning.
    /// </summary>
    /// <param name="others">
    /// Further variants on the same loaded weights (e.g. the ones a model's manifest lists), defined at 0% of
    /// traffic; they are not warmed, the host has just loaded and checked these weights.
    /// </param>
    public VariantRegistry AddModel(string model, IVariantModel defaultModel, VariantDefinition initial, IEnumerable<VariantDefinition>? others = null)
    {
        var list = (others ?? []).ToList();
        if (list.FirstOrDefault(d => d.WeightsDirectory is not null) is { } own)
        {
            throw new ArgumentException($"Variant '{own.Name}' of model '{model}': weights: expected none here (variants on weights of their own are built by AddModelAsync), actual '{own.WeightsDirectory}'", nameof(others));
        }

        return Register(model, defaultModel, initial, list);
    }

    /// <summary>
    /// Registers a model as <see cref="AddModel"/> does, builds the manifest's variants on weights of their own, and
    /// applies the model's stored rollout state, so that the model serves the fleet's state before the caller reports
    /// it ready. A manifest variant that cannot be built is left out (returned with its error); a stored state that
    /// cannot be built is reported in <see cref="VariantRegistry.Status"/> and the manifest's state serves meanwhile.
    /// </summary>
    public async Task<(VariantRegistry Registry, IReadOnlyList<(VariantDefinition Variant, string Error)> Failures)> AddModelAsync(
        string model, IVariantModel defaultModel, VariantDefinition initial, IEnumerable<VariantDefinition> others, CancellationToken cancellationToken = default)
    {
        var registry = Register(model, defaultModel, initial, others);
        var failures = await registry.InitializeAsync(cancellationToken).ConfigureAwait(false);
        return (registry, failures);
    }

    public bool TryGet(string model, [NotNullWhen(true)] out VariantRegistry? registry) => _registries.TryGetValue(model, out registry);

    /// <summary>Removes a model's registry (when the model is unloaded). Its rollout document stays in the store for when it comes back.</summary>
    public bool Remove(string model)
    {
        if (!_registries.TryRemove(model, out var registry))
        {
            return false;
        }

        _metrics.Untrack(registry);
        return true;
    }

    private VariantRegistry Register(string model, IVariantModel defaultModel, VariantDefinition initial, IEnumerable<VariantDefinition> others)
    {
        var registry = new VariantRegistry(
            model, defaultModel, initial, others, _source, _policies, _random, _metrics, _store, _time, _options.CurrentValue.ApplyRetryInterval,
            _loggerFactory.CreateLogger<VariantRegistry>());
        if (!_registries.TryAdd(model, registry))
        {
            throw new InvalidOperationException($"model '{model}': expected to be added once, actual it already has variants");
        }

        _metrics.Track(registry);
        return registry;
    }
}
