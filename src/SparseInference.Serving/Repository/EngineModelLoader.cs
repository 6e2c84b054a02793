namespace SparseInference.Serving.Repository;

/// <summary>Loads version directories with the SparseInference.Models engine.</summary>
internal sealed class EngineModelLoader : IInferenceModelLoader
{
    public IInferenceModel Load(string versionDirectory, ModelConfiguration configuration) =>
        throw new NotSupportedException($"the encoder engine is not part of this build; cannot load '{versionDirectory}'.");
}
