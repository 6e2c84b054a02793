using SparseInference.Models;

namespace SparseInference.Serving.Repository;

/// <summary>One loaded model version as the serving layer sees it: its configuration and a forward pass.</summary>
public interface IInferenceModel
{
    ModelConfiguration Configuration { get; }

    /// <summary>Runs one batch. Must be safe to call from several threads at once.</summary>
    ForwardResult Forward(ForwardInput input, AttentionSpec attention);
}

/// <summary>Turns a version directory (<c>config.json</c> + <c>model.safetensors</c>) into a runnable model.</summary>
public interface IInferenceModelLoader
{
    /// <summary>Loads a version; throws <see cref="ModelFormatException"/> or <see cref="IOException"/> naming the file when it is not a valid model.</summary>
    IInferenceModel Load(string versionDirectory);
}
