using SparseInference.Models;

namespace SparseInference.Serving.Variants;

/// <summary>
/// A loaded model that variants share: one set of weights, many attention specs. The host adapts the
/// engine's encoder to this; variants that name the same weights hold the same instance.
/// </summary>
public interface IVariantModel
{
    /// <summary>Runs one forward with the given attention pattern and sparsity. Must be safe to call concurrently.</summary>
    ForwardResult Forward(ForwardInput input, AttentionSpec spec);
}

/// <summary>
/// What the host provides so that variants can be built: loading weights from a directory and a
/// representative input for the warm-up forward that every new variant runs before it serves.
/// </summary>
public interface IVariantModelSource
{
    /// <summary>Loads the model's weights from <paramref name="weightsDirectory"/> (as given by the admin request).</summary>
    Task<IVariantModel> LoadAsync(string model, string weightsDirectory, CancellationToken cancellationToken);

    /// <summary>A small valid input for <paramref name="model"/> (right channels or vocabulary) used to warm a new variant.</summary>
    ForwardInput CreateWarmupInput(string model);
}
