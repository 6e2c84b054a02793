namespace SparseInference.Serving.Variants.Routing;

/// <summary>
/// Where one request goes. Holds the variant objects themselves, so the request finishes on them even if
/// the table changes meanwhile; <see cref="VariantName"/> is what the response reports.
/// </summary>
public sealed record RouteDecision(string Model, Variant Primary, Variant? Shadow, string Policy, long TableVersion, double? FlagThreshold)
{
    public string VariantName => Primary.Name;
}
