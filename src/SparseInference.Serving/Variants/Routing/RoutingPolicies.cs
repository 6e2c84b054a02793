namespace SparseInference.Serving.Variants.Routing;

/// <summary>parameters.variant wins over any split, for any defined variant (including ones at weight 0).</summary>
internal sealed class OverrideRoutingPolicy : IVariantRoutingPolicy
{
    public string Name => RoutingPolicyNames.Override;

    public Variant? Choose(RoutingTable table, RoutingContext context)
    {
        if (context.RequestedVariant is not { } requested)
        {
            return null;
        }

        if (table.Variants.TryGetValue(requested, out var variant))
        {
            return variant;
        }

        var known = string.Join(", ", table.Variants.Keys.Order(StringComparer.Ordinal));
        throw new VariantRoutingException(
            $"parameters.{RoutingContext.VariantParameter}: expected one of [{known}] for model '{table.Model}', actual '{requested}'");
    }
}

/// <summary>Stable hash of experiment + key onto the cumulative weights; the same on every replica.</summary>
internal sealed class StickyRoutingPolicy : IVariantRoutingPolicy
{
    public string Name => RoutingPolicyNames.Sticky;

    public Variant? Choose(RoutingTable table, RoutingContext context) =>
        context.Key is { } key ? table.PickByPoint(StableHash.UnitInterval(table.Experiment, key)) : null;
}

/// <summary>Requests without a key are spread by a random draw over the weights.</summary>
internal sealed class WeightedRoutingPolicy(IRoutingRandom random) : IVariantRoutingPolicy
{
    public string Name => RoutingPolicyNames.Weighted;

    public Variant? Choose(RoutingTable table, RoutingContext context) => table.PickByPoint(random.NextDouble());
}

/// <summary>
/// Decides whether a request is mirrored to the shadow candidate. Keyed requests are mirrored by a hash
/// salted apart from the split, so a line is either always or never shadowed; others by a random draw.
/// </summary>
internal sealed class ShadowSampler(IRoutingRandom random)
{
    public Variant? Choose(RoutingTable table, RoutingContext context, Variant primary)
    {
        if (table.Shadow is not { } candidate || table.Split.Shadow is not { } config || ReferenceEquals(candidate, primary) || candidate.Name == primary.Name)
        {
            return null;
        }

        var point = context.Key is { } key ? StableHash.UnitInterval(table.Experiment + "/shadow", key) : random.NextDouble();
        return point * 100.0 < config.Percent ? candidate : null;
    }
}
