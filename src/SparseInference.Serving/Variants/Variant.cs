using SparseInference.Models;

namespace SparseInference.Serving.Variants;

/// <summary>
/// A built, warmed variant: immutable. A change builds a new object, so a request that routed to this
/// one finishes on it even after the routing table has moved on.
/// </summary>
public sealed class Variant
{
    internal Variant(string model, VariantDefinition definition, IVariantModel loadedModel, long generation)
    {
        Model = model;
        Definition = definition;
        Spec = definition.ToAttentionSpec();
        LoadedModel = loadedModel;
        Generation = generation;
    }

    public string Model { get; }

    public string Name => Definition.Name;

    public VariantDefinition Definition { get; }

    public AttentionSpec Spec { get; }

    /// <summary>The shared loaded model (same instance for every variant on the same weights).</summary>
    public IVariantModel LoadedModel { get; }

    /// <summary>Increases with every build in this model's registry; tells two builds of one name apart.</summary>
    public long Generation { get; }

    public ForwardResult Forward(ForwardInput input) => LoadedModel.Forward(input, Spec);
}
