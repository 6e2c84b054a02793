using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Logging;
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
    private readonly ILoggerFactory _loggerFactory;

    public VariantCatalog(IVariantModelSource source, IRoutingRandom random, VariantMetrics metrics, ILoggerFactory loggerFactory)
    {
        _source = source;
        _random = random;
        _metrics = metrics;
        _loggerFactory = loggerFactory;
        _policies = [new OverrideRoutingPolicy(), new StickyRoutingPolicy(), new WeightedRoutingPolicy(random)];
    }

    public IReadOnlyCollection<string> Models => _registries.Keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>
    /// Registers a model with its loaded default weights and the variant that starts at 100% of traffic
    /// (e.g. <c>new VariantDefinition("dense", "dense")</c>).
    /// </summary>
    /// <param name="others">
    /// Further variants on the same loaded weights (e.g. the ones a model's manifest lists), defined at 0% of
    /// traffic; they are not warmed, the host has just loaded and checked these weights.
    /// </param>
    public VariantRegistry AddModel(string model, IVariantModel defaultModel, VariantDefinition initial, IEnumerable<VariantDefinition>? others = null)
    {
        var registry = new VariantRegistry(model, defaultModel, initial, others ?? [], _source, _policies, _random, _metrics, _loggerFactory.CreateLogger<VariantRegistry>());
        if (!_registries.TryAdd(model, registry))
        {
            throw new InvalidOperationException($"model '{model}': expected to be added once, actual it already has variants");
        }

        return registry;
    }

    public bool TryGet(string model, [NotNullWhen(true)] out VariantRegistry? registry) => _registries.TryGetValue(model, out registry);

    /// <summary>Removes a model's registry (when the model is unloaded).</summary>
    public bool Remove(string model) => _registries.TryRemove(model, out _);
}
