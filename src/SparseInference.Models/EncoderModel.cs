using SparseInference.Models.Attention;
using SparseInference.Models.Configuration;
using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Models;

/// <summary>
/// A pre-LN transformer encoder loaded from a model directory (docs/model-format.md), running any attention
/// pattern on the same weights. Every op goes through an <see cref="IComputeBackend"/>: the one given at load
/// (e.g. a GPU backend) or the process-wide CPU backend. Weights are immutable and every forward owns its
/// activations, so concurrent <see cref="Forward"/> calls are safe.
/// </summary>
public sealed class EncoderModel : IDisposable
{
    public const string ConfigFileName = "config.json";
    public const string WeightsFileName = "model.safetensors";

    /// <summary>The CPU backend used when none is given: created once, its worker pool shared by every model.</summary>
    private static readonly Lazy<CpuBackend> DefaultBackend = new(() => new CpuBackend());

    private readonly BackendEncoder _encoder;

    private EncoderModel(string directory, ModelConfig config, BackendEncoder encoder, IComputeBackend backend, long weightBytes)
    {
        Directory = directory;
        Config = config;
        _encoder = encoder;
        Backend = backend;
        WeightBytes = weightBytes;
    }

    /// <summary>The backend running the forward (the shared CPU backend when none was given at load).</summary>
    public IComputeBackend? Backend { get; }

    public string Directory { get; }

    public ModelConfig Config { get; }

    /// <summary>Bytes of FP32 parameters held in memory.</summary>
    public long WeightBytes { get; }

    /// <summary>
    /// Loads <c>config.json</c> and <c>model.safetensors</c> from <paramref name="directory"/> and places the weights
    /// on <paramref name="backend"/> (default: the shared CPU backend), which then runs every forward.
    /// </summary>
    public static EncoderModel Load(string directory, IComputeBackend? backend = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var config = ModelConfig.Load(Path.Combine(directory, ConfigFileName));
        backend ??= DefaultBackend.Value;
        var encoder = BackendEncoder.Load(Path.Combine(directory, WeightsFileName), config, backend);
        long bytes = BackendEncoder.ExpectedTensors(config).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b)) * sizeof(float);
        return new EncoderModel(directory, config, encoder, backend, bytes);
    }

    /// <summary>Frees the weights held on the backend (the backend itself belongs to the caller, or is shared).</summary>
    public void Dispose() => _encoder.Dispose();

    /// <summary>Runs the encoder with the model's default attention spec.</summary>
    public ForwardResult Forward(ForwardInput input) => Forward(input, Config.Attention);

    /// <summary>Runs the encoder on a padded batch with <paramref name="attention"/>.</summary>
    public ForwardResult Forward(ForwardInput input, AttentionSpec attention)
    {
        ArgumentNullException.ThrowIfNull(input);
        AttentionPatterns.Validate(attention);
        var pattern = AttentionPatterns.Get(attention.Pattern);
        if (pattern.Kind == AttentionPatternKind.Gated && !Config.Gated)
        {
            throw new ArgumentException($"Attention pattern 'gated' needs a model with gated: true; {Directory} has gated: false.", nameof(attention));
        }

        int[] lengths = ValidateInput(input);
        return _encoder.Forward(input, lengths, pattern, attention);
    }

    private int[] ValidateInput(ForwardInput input)
    {
        if (input.Batch < 1)
        {
            throw new ArgumentException($"Batch must be ≥ 1; got {input.Batch}.", nameof(input));
        }

        if (input.Time < 1 || input.Time > Config.MaxSeqLen)
        {
            throw new ArgumentException($"Time must be in 1 … max_seq_len ({Config.MaxSeqLen}); got {input.Time}.", nameof(input));
        }

        if (Config.InputKind == InputKind.Continuous)
        {
            long expected = (long)input.Batch * input.Time * Config.InputChannels;
            if (input.Values is null || input.Values.LongLength != expected)
            {
                throw new ArgumentException($"Values must hold Batch×Time×input_channels = {input.Batch}×{input.Time}×{Config.InputChannels} = {expected} floats; got {input.Values?.LongLength.ToString() ?? "null"}.", nameof(input));
            }
        }
        else
        {
            long expected = (long)input.Batch * input.Time;
            if (input.TokenIds is null || input.TokenIds.LongLength != expected)
            {
                throw new ArgumentException($"TokenIds must hold Batch×Time = {expected} ids; got {input.TokenIds?.LongLength.ToString() ?? "null"}.", nameof(input));
            }
        }

        int[] lengths;
        if (input.Lengths is null)
        {
            lengths = new int[input.Batch];
            Array.Fill(lengths, input.Time);
        }
        else
        {
            if (input.Lengths.Length != input.Batch)
            {
                throw new ArgumentException($"Lengths must have Batch = {input.Batch} entries; got {input.Lengths.Length}.", nameof(input));
            }

            lengths = input.Lengths;
            for (int b = 0; b < lengths.Length; b++)
            {
                if (lengths[b] < 1 || lengths[b] > input.Time)
                {
                    throw new ArgumentException($"Lengths[{b}] must be in 1 … Time ({input.Time}); got {lengths[b]}.", nameof(input));
                }
            }
        }

        if (Config.InputKind == InputKind.Tokens)
        {
            for (int b = 0; b < input.Batch; b++)
            {
                for (int t = 0; t < lengths[b]; t++)
                {
                    int id = input.TokenIds![b * input.Time + t];
                    if (id < 0 || id >= Config.VocabSize)
                    {
                        throw new ArgumentException($"TokenIds[{b}, {t}] must be in 0 … vocab_size − 1 ({Config.VocabSize - 1}); got {id}.", nameof(input));
                    }
                }
            }
        }

        return lengths;
    }
}
