namespace SparseInference.Serving.Variants.Routing;

/// <summary>
/// Picks the primary variant for a request, or returns null to leave the choice to the next policy.
/// Policies run in order: override, sticky, weighted.
/// </summary>
public interface IVariantRoutingPolicy
{
    string Name { get; }

    Variant? Choose(RoutingTable table, RoutingContext context);
}

/// <summary>Names of the routing policies, as reported in <see cref="RouteDecision.Policy"/>.</summary>
public static class RoutingPolicyNames
{
    /// <summary>The client named a variant in parameters.variant.</summary>
    public const string Override = "override";

    /// <summary>A routing key hashed onto the cumulative weights: same key, same variant.</summary>
    public const string Sticky = "sticky";

    /// <summary>No key: a random draw over the weights.</summary>
    public const string Weighted = "weighted";

    /// <summary>The mirror decision: a share of requests also runs on the shadow candidate.</summary>
    public const string Shadow = "shadow";
}

/// <summary>A source of uniform draws in [0, 1); injected so tests can make routing deterministic.</summary>
public interface IRoutingRandom
{
    double NextDouble();
}

internal sealed class SharedRoutingRandom : IRoutingRandom
{
    public double NextDouble() => Random.Shared.NextDouble();
}

/// <summary>A request asked for something routing cannot give (unknown model or variant): a client error.</summary>
public sealed class VariantRoutingException(string message) : Exception(message);
