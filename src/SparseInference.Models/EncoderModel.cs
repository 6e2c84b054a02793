using SparseInference.Models.Attention;
using SparseInference.Models.Compute;
using SparseInference.Models.Configuration;
using SparseInference.Tensors;

namespace SparseInference.Models;

/// <summary>
/// A pre-LN transformer encoder loaded from a model directory (docs/model-format.md), running any attention
/// pattern on the same weights. Weights are immutable and every forward owns its scratch, so concurrent
/// <see cref="Forward"/> calls are safe.
/// Without a backend the forward runs on the engine's fused CPU kernels; with one, every op goes through
/// <see cref="IComputeBackend"/> (e.g. a GPU backend).
/// </summary>
public sealed unsafe class EncoderModel : IDisposable
{
    public const string ConfigFileName = "config.json";
    public const string WeightsFileName = "model.safetensors";

    private readonly EncoderWeights? _weights;
    private readonly BackendEncoder? _backendEncoder;
    private readonly LayoutCache _layouts = new();

    private EncoderModel(string directory, ModelConfig config, EncoderWeights? weights, BackendEncoder? backendEncoder, IComputeBackend? backend, long weightBytes)
    {
        Directory = directory;
        Config = config;
        _weights = weights;
        _backendEncoder = backendEncoder;
        Backend = backend;
        WeightBytes = weightBytes;
    }

    private EncoderWeights Fused => _weights ?? throw new InvalidOperationException("The fused CPU weights are not loaded: this model runs on a backend.");

    /// <summary>The backend running the forward, or null for the fused CPU kernels.</summary>
    public IComputeBackend? Backend { get; }

    public string Directory { get; }

    public ModelConfig Config { get; }

    /// <summary>Bytes of FP32 parameters held in memory.</summary>
    public long WeightBytes { get; }

    /// <summary>
    /// Loads <c>config.json</c> and <c>model.safetensors</c> from <paramref name="directory"/>; with a
    /// <paramref name="backend"/>, the weights are placed on it and the forward runs through it.
    /// </summary>
    public static EncoderModel Load(string directory, IComputeBackend? backend = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var config = ModelConfig.Load(Path.Combine(directory, ConfigFileName));
        string weightsPath = Path.Combine(directory, WeightsFileName);
        if (backend is null)
        {
            var weights = EncoderWeights.Load(weightsPath, config);
            return new EncoderModel(directory, config, weights, null, null, weights.ParameterBytes);
        }

        var encoder = BackendEncoder.Load(weightsPath, config, backend);
        long bytes = BackendEncoder.ExpectedTensors(config).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b)) * sizeof(float);
        return new EncoderModel(directory, config, null, encoder, backend, bytes);
    }

    /// <summary>Frees backend-held weights (nothing to free for the fused CPU path).</summary>
    public void Dispose() => _backendEncoder?.Dispose();

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
        if (_backendEncoder is not null)
        {
            return _backendEncoder.Forward(input, lengths, pattern, attention);
        }

        int batch = input.Batch, time = input.Time, d = Config.DModel;
        var offsets = new int[batch + 1];
        for (int b = 0; b < batch; b++)
        {
            offsets[b + 1] = offsets[b] + lengths[b];
        }

        int rows = offsets[batch];
        using var x = new NativeBuffer((long)rows * d);
        using var h = new NativeBuffer((long)rows * d);
        Embed(input, lengths, offsets, x.Pointer);

        long computed = 0;
        for (int layer = 0; layer < Config.NLayers; layer++)
        {
            var weights = Fused.Layers[layer];
            fixed (float* g1 = weights.Ln1Weight, b1 = weights.Ln1Bias, g2 = weights.Ln2Weight, b2 = weights.Ln2Bias)
            {
                RowOps.LayerNorm(x.Pointer, rows, d, g1, b1, (float)Config.LayerNormEps, h.Pointer);
                for (int b = 0; b < batch; b++)
                {
                    float* xb = x.Pointer + (long)offsets[b] * d;
                    float* hb = h.Pointer + (long)offsets[b] * d;
                    computed += pattern.Kind == AttentionPatternKind.Gated
                        ? GatedAttention(weights, hb, xb, lengths[b], attention)
                        : Attention(weights, layer, pattern, attention, hb, xb, lengths[b]);
                }

                RowOps.LayerNorm(x.Pointer, rows, d, g2, b2, (float)Config.LayerNormEps, h.Pointer);
            }

            FeedForward(weights, h.Pointer, x.Pointer, rows);
        }

        fixed (float* gf = Fused.FinalLnWeight, bf = Fused.FinalLnBias)
        {
            RowOps.LayerNorm(x.Pointer, rows, d, gf, bf, (float)Config.LayerNormEps, h.Pointer);
        }

        long densePairs = 0;
        foreach (int l in lengths)
        {
            densePairs += (long)l * l;
        }

        densePairs *= (long)Config.NLayers * Config.NHeads;
        var (output, shape) = Head(h.Pointer, lengths, offsets, batch, time);
        return new ForwardResult { Output = output, Shape = shape, ComputedPairs = computed, DensePairs = densePairs };
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

    /// <summary>x = input_proj(input) or embedding(ids), plus positions, for the valid rows only.</summary>
    private void Embed(ForwardInput input, int[] lengths, int[] offsets, float* x)
    {
        int d = Config.DModel, time = input.Time;
        if (Config.InputKind == InputKind.Continuous)
        {
            int c = Config.InputChannels;
            fixed (float* values = input.Values)
            {
                for (int b = 0; b < input.Batch; b++)
                {
                    Fused.InputProjection!.Apply(values + (long)b * time * c, c, lengths[b], x + (long)offsets[b] * d, d, GemmEpilogue.Store);
                }
            }
        }
        else
        {
            var table = Fused.Embedding!;
            for (int b = 0; b < input.Batch; b++)
            {
                for (int t = 0; t < lengths[b]; t++)
                {
                    int id = input.TokenIds![b * time + t];
                    table.AsSpan(id * d, d).CopyTo(new Span<float>(x + (long)(offsets[b] + t) * d, d));
                }
            }
        }

        fixed (float* positions = Fused.Positions)
        {
            for (int b = 0; b < input.Batch; b++)
            {
                for (int t = 0; t < lengths[b]; t++)
                {
                    RowOps.AddScaled(x + (long)(offsets[b] + t) * d, positions + (long)t * d, d, 1f);
                }
            }
        }
    }

    /// <summary>x += out(Attention(h)) for one sequence; returns the (query, key) pairs computed.</summary>
    private long Attention(LayerWeights weights, int layer, IAttentionPattern pattern, AttentionSpec spec, float* h, float* x, int length)
    {
        int d = Config.DModel, heads = Config.NHeads, dh = Config.DHead;
        using var qkv = new NativeBuffer((long)length * 3 * d);
        using var attended = new NativeBuffer((long)length * d);
        weights.Qkv.Apply(h, d, length, qkv.Pointer, 3 * d, GemmEpilogue.Store);

        KeyBlockSelection? shared = pattern is IStaticBlockPattern staticPattern && pattern.Kind != AttentionPatternKind.Dense
            ? _layouts.Get(staticPattern, spec, length, layer)
            : null;
        var pairs = new long[heads];
        nint qkvPointer = (nint)qkv.Pointer, outPointer = (nint)attended.Pointer;
        Parallel.For(0, heads, head =>
        {
            int tile = pattern.Kind == AttentionPatternKind.Dense ? HeadAttention.DenseQueryTile : Math.Min(spec.BlockSize, HeadAttention.DenseQueryTile);
            using var attention = new HeadAttention((float*)qkvPointer, length, d, head, dh, tile);
            float* output = (float*)outPointer + head * dh;
            switch (pattern.Kind)
            {
                case AttentionPatternKind.Dense:
                    attention.Dense(output, d);
                    pairs[head] = (long)length * length;
                    break;
                case AttentionPatternKind.StaticBlocks:
                    attention.Blocks(shared!, output, d);
                    pairs[head] = shared!.ComputedPairs;
                    break;
                case AttentionPatternKind.DynamicBlocks:
                    var geometry = new BlockGeometry(length, spec.BlockSize);
                    var selection = ((IDynamicBlockPattern)pattern).Select(geometry, spec, layer, head, attention.PooledScores(geometry));
                    attention.Blocks(selection, output, d);
                    pairs[head] = selection.ComputedPairs;
                    break;
                case AttentionPatternKind.TokenTopK:
                    int k = PatternMath.Budget(spec.Sparsity, length);
                    attention.TopK(k, output, d);
                    pairs[head] = (long)k * length;
                    break;
                default:
                    throw new InvalidOperationException($"Pattern '{pattern.Name}' of kind {pattern.Kind} is not run per head.");
            }
        });

        weights.Out.Apply(attended.Pointer, d, length, x, d, GemmEpilogue.Accumulate);
        return pairs.Sum();
    }

    /// <summary>
    /// Gated layer for one sequence: the m tokens with the largest gate attend densely among themselves and add
    /// g_t · Attention(h)_t; the others skip the sub-layer.
    /// </summary>
    private long GatedAttention(LayerWeights weights, float* h, float* x, int length, AttentionSpec spec)
    {
        int d = Config.DModel, heads = Config.NHeads, dh = Config.DHead;
        var gates = new float[length];
        fixed (float* gw = weights.GateWeight)
        {
            for (int t = 0; t < length; t++)
            {
                float z = RowOps.Dot(h + (long)t * d, gw, d) + weights.GateBias;
                gates[t] = 1f / (1f + MathF.Exp(-z));
            }
        }

        int m = PatternMath.Budget(spec.Sparsity, length);
        var active = new int[m];
        TopSelection.IndicesOfLargest(gates, m, new float[length], active);

        using var compact = new NativeBuffer((long)m * d);
        for (int i = 0; i < m; i++)
        {
            new Span<float>(h + (long)active[i] * d, d).CopyTo(new Span<float>(compact.Pointer + (long)i * d, d));
        }

        using var qkv = new NativeBuffer((long)m * 3 * d);
        using var attended = new NativeBuffer((long)m * d);
        using var projected = new NativeBuffer((long)m * d);
        weights.Qkv.Apply(compact.Pointer, d, m, qkv.Pointer, 3 * d, GemmEpilogue.Store);
        nint qkvPointer = (nint)qkv.Pointer, outPointer = (nint)attended.Pointer;
        Parallel.For(0, heads, head =>
        {
            using var attention = new HeadAttention((float*)qkvPointer, m, d, head, dh, HeadAttention.DenseQueryTile);
            attention.Dense((float*)outPointer + head * dh, d);
        });

        weights.Out.Apply(attended.Pointer, d, m, projected.Pointer, d, GemmEpilogue.Store);
        for (int i = 0; i < m; i++)
        {
            int t = active[i];
            RowOps.AddScaled(x + (long)t * d, projected.Pointer + (long)i * d, d, gates[t]);
        }

        return (long)heads * m * m;
    }

    /// <summary>x += FF2(GELU(FF1(h))), in row chunks so the d_ff-wide activation stays small.</summary>
    private void FeedForward(LayerWeights weights, float* h, float* x, int rows)
    {
        int d = Config.DModel, dff = Config.DFf;
        const int chunkRows = 1536;
        using var hidden = new NativeBuffer((long)Math.Min(rows, chunkRows) * dff);
        for (int r0 = 0; r0 < rows; r0 += chunkRows)
        {
            int count = Math.Min(chunkRows, rows - r0);
            weights.Ff1.Apply(h + (long)r0 * d, d, count, hidden.Pointer, dff, GemmEpilogue.StoreGelu);
            weights.Ff2.Apply(hidden.Pointer, dff, count, x + (long)r0 * d, d, GemmEpilogue.Accumulate);
        }
    }

    /// <summary>Applies the head; padded positions stay zero.</summary>
    private (float[] Output, int[] Shape) Head(float* y, int[] lengths, int[] offsets, int batch, int time)
    {
        int d = Config.DModel, outDim = Config.OutputDim;
        if (Config.Head == HeadKind.Classification)
        {
            using var pooled = new NativeBuffer((long)batch * d, zero: true);
            for (int b = 0; b < batch; b++)
            {
                float* p = pooled.Pointer + (long)b * d;
                for (int t = 0; t < lengths[b]; t++)
                {
                    RowOps.AddScaled(p, y + (long)(offsets[b] + t) * d, d, 1f);
                }

                RowOps.Scale(p, d, 1f / lengths[b]);
            }

            var logits = new float[batch * outDim];
            fixed (float* o = logits)
            {
                Fused.Head.Apply(pooled.Pointer, d, batch, o, outDim, GemmEpilogue.Store);
            }

            return (logits, [batch, outDim]);
        }

        var output = new float[(long)batch * time * outDim];
        fixed (float* o = output)
        {
            for (int b = 0; b < batch; b++)
            {
                Fused.Head.Apply(y + (long)offsets[b] * d, d, lengths[b], o + (long)b * time * outDim, outDim, GemmEpilogue.Store);
            }
        }

        return (output, [batch, time, outDim]);
    }
}
