namespace SparseInference.Serving.Variants.Comparison;

/// <summary>
/// Tells shadowing when live traffic is under pressure, so shadow work is the first thing shed. The batching
/// layer can implement it from its queue depth; the default never reports pressure, leaving the bounded
/// shadow queue as the only limit.
/// </summary>
public interface IServingPressure
{
    /// <summary>True while primaries are queueing up; shadow work is then dropped and counted.</summary>
    bool ShouldShedShadowWork { get; }
}

internal sealed class NoServingPressure : IServingPressure
{
    public bool ShouldShedShadowWork => false;
}
