using SparseInference.Models.Compute;
using SparseInference.Models.Configuration;
using SparseInference.Models.Formats;

namespace SparseInference.Models;

/// <summary>One encoder layer's parameters, immutable after load.</summary>
internal sealed class LayerWeights
{
    public required float[] Ln1Weight { get; init; }
    public required float[] Ln1Bias { get; init; }
    public required PackedLinear Qkv { get; init; }
    public required PackedLinear Out { get; init; }
    public required float[] Ln2Weight { get; init; }
    public required float[] Ln2Bias { get; init; }
    public required PackedLinear Ff1 { get; init; }
    public required PackedLinear Ff2 { get; init; }
    public float[]? GateWeight { get; init; }
    public float GateBias { get; init; }
}

/// <summary>All parameters of an encoder, read from <c>model.safetensors</c> with shapes checked against the config.</summary>
internal sealed class EncoderWeights
{
    public PackedLinear? InputProjection { get; private init; }
    public float[]? Embedding { get; private init; }
    /// <summary>[max_seq_len, d_model] positions: the sinusoidal table or the learned embedding.</summary>
    public required float[] Positions { get; init; }
    public required LayerWeights[] Layers { get; init; }
    public required float[] FinalLnWeight { get; init; }
    public required float[] FinalLnBias { get; init; }
    public required PackedLinear Head { get; init; }
    /// <summary>Bytes of FP32 parameters held (what the file's tensors take once converted).</summary>
    public required long ParameterBytes { get; init; }

    public static EncoderWeights Load(string path, ModelConfig config)
    {
        using var file = SafetensorsFile.Open(path);
        long parameters = 0;
        float[] Read(string name, params int[] shape)
        {
            var data = file.ReadFloat32(name, shape);
            parameters += data.LongLength;
            return data;
        }

        int d = config.DModel;
        PackedLinear Linear(string prefix, int outFeatures, int inFeatures)
            => new(Read(prefix + ".weight", outFeatures, inFeatures), Read(prefix + ".bias", outFeatures), outFeatures, inFeatures);

        PackedLinear? inputProjection = null;
        float[]? embedding = null;
        if (config.InputKind == InputKind.Continuous)
        {
            inputProjection = Linear("input_proj", d, config.InputChannels);
        }
        else
        {
            embedding = Read("embedding.weight", config.VocabSize, d);
        }

        float[] positions = config.Positional == PositionalKind.Learned
            ? Read("pos_embedding.weight", config.MaxSeqLen, d)
            : SinusoidalTable(config.MaxSeqLen, d);

        var layers = new LayerWeights[config.NLayers];
        for (int i = 0; i < config.NLayers; i++)
        {
            string p = $"layers.{i}";
            float[]? gateWeight = null;
            float gateBias = 0f;
            if (config.Gated)
            {
                gateWeight = Read($"{p}.gate.weight", 1, d);
                gateBias = Read($"{p}.gate.bias", 1)[0];
            }

            layers[i] = new LayerWeights
            {
                Ln1Weight = Read($"{p}.ln1.weight", d),
                Ln1Bias = Read($"{p}.ln1.bias", d),
                Qkv = Linear($"{p}.attn.qkv", 3 * d, d),
                Out = Linear($"{p}.attn.out", d, d),
                Ln2Weight = Read($"{p}.ln2.weight", d),
                Ln2Bias = Read($"{p}.ln2.bias", d),
                Ff1 = Linear($"{p}.ff1", config.DFf, d),
                Ff2 = Linear($"{p}.ff2", d, config.DFf),
                GateWeight = gateWeight,
                GateBias = gateBias,
            };
        }

        return new EncoderWeights
        {
            InputProjection = inputProjection,
            Embedding = embedding,
            Positions = positions,
            Layers = layers,
            FinalLnWeight = Read("final_ln.weight", d),
            FinalLnBias = Read("final_ln.bias", d),
            Head = Linear("head", config.OutputDim, d),
            ParameterBytes = parameters * sizeof(float),
        };
    }

    /// <summary><c>P[t, 2i] = sin(t / 10000^(2i/d))</c>, <c>P[t, 2i+1] = cos(…)</c>, evaluated in double.</summary>
    internal static float[] SinusoidalTable(int length, int d)
    {
        var table = new float[(long)length * d];
        for (int i = 0; i < d / 2; i++)
        {
            double frequency = Math.Pow(10000.0, -2.0 * i / d);
            for (int t = 0; t < length; t++)
            {
                double angle = t * frequency;
                table[(long)t * d + 2 * i] = (float)Math.Sin(angle);
                table[(long)t * d + 2 * i + 1] = (float)Math.Cos(angle);
            }
        }

        return table;
    }
}
