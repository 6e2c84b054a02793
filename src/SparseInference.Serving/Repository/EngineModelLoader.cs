using SparseInference.Models;
using SparseInference.Models.Configuration;

namespace SparseInference.Serving.Repository;

/// <summary>Loads version directories with the SparseInference.Models CPU engine.</summary>
internal sealed class EngineModelLoader : IInferenceModelLoader
{
    public IInferenceModel Load(string versionDirectory) => new EngineModel(EncoderModel.Load(versionDirectory));

    private sealed class EngineModel(EncoderModel model) : IInferenceModel
    {
        public ModelConfiguration Configuration { get; } = FromEngine(model.Config);

        public ForwardResult Forward(ForwardInput input, AttentionSpec attention) => model.Forward(input, attention);
    }

    internal static ModelConfiguration FromEngine(ModelConfig config) => new()
    {
        Format = ModelConfig.FormatName,
        FormatVersion = ModelConfig.FormatVersion,
        InputKind = config.InputKind == InputKind.Tokens ? ModelConfiguration.TokenInput : ModelConfiguration.ContinuousInput,
        InputChannels = config.InputChannels,
        VocabSize = config.VocabSize,
        DModel = config.DModel,
        NHeads = config.NHeads,
        NLayers = config.NLayers,
        MaxSeqLen = config.MaxSeqLen,
        Head = config.Head switch
        {
            HeadKind.Classification => ModelConfiguration.ClassificationHead,
            HeadKind.Regression => ModelConfiguration.RegressionHead,
            _ => ModelConfiguration.ReconstructionHead,
        },
        OutputDim = config.OutputDim,
        Gated = config.Gated,
        Attention = new AttentionConfiguration
        {
            Pattern = config.Attention.Pattern,
            Sparsity = config.Attention.Sparsity,
            BlockSize = config.Attention.BlockSize,
            GlobalBlocks = config.Attention.GlobalBlocks,
            Seed = config.Attention.Seed,
        },
        AnomalyThreshold = config.AnomalyThreshold,
        Metadata = config.Metadata,
    };
}
