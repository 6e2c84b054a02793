using SparseInference.Models;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Tests.TestDoubles;

/// <summary>
/// A stand-in engine for protocol-layer tests: output = input × <see cref="Factor"/> (reconstruction) or the per-sequence
/// mean (classification), pairs as if dense. Records the attention spec of the last call.
/// </summary>
internal sealed class ScaledEchoModel(ModelConfiguration configuration, float factor = 0.5f) : IInferenceModel
{
    public ModelConfiguration Configuration { get; } = configuration;
    public float Factor { get; } = factor;
    public AttentionSpec? LastAttention { get; private set; }
    public int Calls { get; private set; }

    public ForwardResult Forward(ForwardInput input, AttentionSpec attention)
    {
        LastAttention = attention;
        Calls++;
        var dense = (long)Configuration.NLayers * Configuration.NHeads * input.Batch * input.Time * input.Time;
        var values = input.Values ?? input.TokenIds!.Select(i => (float)i).ToArray();
        var output = values.Select(v => v * Factor).ToArray();
        return new ForwardResult { Output = output, Shape = [input.Batch, input.Time, Configuration.OutputDim], ComputedPairs = dense, DensePairs = dense };
    }

    public static ModelConfiguration Continuous(int channels = 2, int maxSeqLen = 8, double? threshold = 0.1) => new()
    {
        Format = "sparseinference-encoder",
        FormatVersion = 1,
        InputKind = ModelConfiguration.ContinuousInput,
        InputChannels = channels,
        DModel = 4,
        NHeads = 1,
        NLayers = 1,
        MaxSeqLen = maxSeqLen,
        Head = ModelConfiguration.ReconstructionHead,
        OutputDim = channels,
        AnomalyThreshold = threshold,
    };
}

/// <summary>Loads <see cref="ScaledEchoModel"/>s from config.json alone; counts loads.</summary>
internal sealed class ScaledEchoLoader : IInferenceModelLoader
{
    public int Loads { get; private set; }

    public IInferenceModel Load(string versionDirectory)
    {
        Loads++;
        var path = Path.Combine(versionDirectory, "config.json");
        return new ScaledEchoModel(ModelConfiguration.Parse(File.ReadAllBytes(path), path));
    }
}
