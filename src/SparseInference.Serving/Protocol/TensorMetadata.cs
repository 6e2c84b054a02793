using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Protocol;

/// <summary>A tensor as model metadata describes it; -1 marks a variable dimension.</summary>
public sealed record TensorMetadata(string Name, string Datatype, long[] Shape);

/// <summary>The tensors a model takes and gives, derived from its configuration.</summary>
public sealed class ModelTensorContract
{
    public const string InputName = "input";
    public const string OutputName = "output";
    public const string ScoreName = "score";
    public const string AnomalyName = "anomaly";
    public const string LogitsName = "logits";

    private ModelTensorContract(TensorMetadata input, IReadOnlyList<TensorMetadata> outputs)
    {
        Input = input;
        Outputs = outputs;
    }

    public TensorMetadata Input { get; }
    public IReadOnlyList<TensorMetadata> Inputs => [Input];
    public IReadOnlyList<TensorMetadata> Outputs { get; }

    public static ModelTensorContract For(ModelConfiguration configuration)
    {
        var input = configuration.InputKind == ModelConfiguration.TokenInput
            ? new TensorMetadata(InputName, TensorDatatypes.Int64, [-1, -1])
            : new TensorMetadata(InputName, TensorDatatypes.Fp32, [-1, -1, configuration.InputChannels]);
        var outputs = new List<TensorMetadata>();
        if (configuration.Head == ModelConfiguration.ClassificationHead)
        {
            outputs.Add(new TensorMetadata(LogitsName, TensorDatatypes.Fp32, [-1, configuration.OutputDim]));
        }
        else
        {
            outputs.Add(new TensorMetadata(OutputName, TensorDatatypes.Fp32, [-1, -1, configuration.OutputDim]));
            if (HasScore(configuration))
            {
                outputs.Add(new TensorMetadata(ScoreName, TensorDatatypes.Fp32, [-1, -1]));
                if (configuration.AnomalyThreshold is not null)
                {
                    outputs.Add(new TensorMetadata(AnomalyName, TensorDatatypes.Bool, [-1, -1]));
                }
            }
        }

        return new ModelTensorContract(input, outputs);
    }

    internal static bool HasScore(ModelConfiguration configuration) =>
        configuration.Head == ModelConfiguration.ReconstructionHead && configuration.InputKind == ModelConfiguration.ContinuousInput;
}
