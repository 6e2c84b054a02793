using SparseInference.Models.Attention;
using SparseInference.Models.Configuration;
using SparseInference.Models.Formats;
using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Models;

/// <summary>
/// The encoder forward expressed in <see cref="IComputeBackend"/> ops (matmul, layernorm, block-sparse and top-k
/// attention, gather/scatter for the gated pattern), so any backend — CUDA included — runs the same model.
/// Weights live on the backend, Linear weights prepared for its GEMM at load; activations (padded [B·T, …] rows,
/// padding excluded by the attention kernels' valid lengths and zeroed in the output) come from a pool of workspaces
/// that a forward rents and returns, so repeated forwards allocate no backend memory.
/// </summary>
internal sealed class BackendEncoder : IDisposable
{
    private readonly IComputeBackend _backend;
    private readonly ModelConfig _config;
    private readonly Dictionary<string, Tensor> _weights;
    private readonly LayoutCache _layouts = new();

    private readonly BatchLayoutCache _batchLayouts = new();
    private readonly LayerTensors[] _layers;
    private readonly Tensor? _inputProjection;
    private readonly Tensor? _inputBias;
    private readonly Tensor _positions;
    private readonly WorkspacePool _workspaces;
    private readonly RecordedForwards? _recorded;

    private BackendEncoder(IComputeBackend backend, ModelConfig config, Dictionary<string, Tensor> weights)
    {
        _backend = backend;
        _config = config;
        _weights = weights;
        _layers = ResolveLayers();
        if (config.InputKind == InputKind.Continuous)
        {
            _inputProjection = W("input_proj.weight");
            _inputBias = W("input_proj.bias");
        }

        _positions = W("pos_embedding.weight");
        _workspaces = new WorkspacePool(backend, config);
        if (backend is IForwardRecorder { MaxRecordedForwards: > 0 } recorder)
        {
            _recorded = new RecordedForwards(recorder, backend, config, Encode);
        }
    }

    /// <summary>Recorded forwards held now (0 on a backend that does not record).</summary>
    internal int RecordedCount => _recorded?.Count ?? 0;

    public static BackendEncoder Load(string path, ModelConfig config, IComputeBackend backend)
    {
        var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            using var file = SafetensorsFile.Open(path);
            foreach (var (name, shape) in ExpectedTensors(config))
            {
                var values = file.ReadFloat32(name, shape);
                RequireFinite(values, name, path);
                var tensor = backend.FromHost(values, shape);
                weights[name] = tensor;
                if (shape.Length == 2 && name.EndsWith(".weight", StringComparison.Ordinal) && name != "embedding.weight" && name != "pos_embedding.weight")
                {
                    // Linear weights [out, in]: every forward multiplies by their transpose, laid out once here.
                    backend.PrepareWeight(tensor, transposed: true);
                }
            }

            if (config.Positional == PositionalKind.Sinusoidal)
            {
                weights["pos_embedding.weight"] = backend.FromHost(SinusoidalTable(config.MaxSeqLen, config.DModel), config.MaxSeqLen, config.DModel);
            }
        }
        catch
        {
            foreach (var t in weights.Values)
            {
                t.Dispose();
            }

            throw;
        }

        return new BackendEncoder(backend, config, weights);
    }

    /// <summary>A NaN or infinite weight poisons every forward that touches it: such a model is refused at load, naming the tensor.</summary>
    private static void RequireFinite(float[] values, string name, string path)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                throw new ModelFormatException(path, $"tensor '{name}': element {i} is {values[i].ToString(System.Globalization.CultureInfo.InvariantCulture)}; weights must be finite.");
            }
        }
    }

    /// <summary>P[t, 2i] = sin(t / 10000^(2i/d)), P[t, 2i+1] = cos(t / 10000^(2i/d)) (docs/model-format.md, Forward).</summary>
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

    /// <summary>The tensors a config calls for, with their shapes (docs/model-format.md, Weights).</summary>
    public static IEnumerable<(string Name, int[] Shape)> ExpectedTensors(ModelConfig c)
    {
        int d = c.DModel;
        if (c.InputKind == InputKind.Continuous)
        {
            yield return ("input_proj.weight", [d, c.InputChannels]);
            yield return ("input_proj.bias", [d]);
        }
        else
        {
            yield return ("embedding.weight", [c.VocabSize, d]);
        }

        if (c.Positional == PositionalKind.Learned)
        {
            yield return ("pos_embedding.weight", [c.MaxSeqLen, d]);
        }

        for (int i = 0; i < c.NLayers; i++)
        {
            string p = $"layers.{i}";
            yield return ($"{p}.ln1.weight", [d]);
            yield return ($"{p}.ln1.bias", [d]);
            yield return ($"{p}.attn.qkv.weight", [3 * d, d]);
            yield return ($"{p}.attn.qkv.bias", [3 * d]);
            yield return ($"{p}.attn.out.weight", [d, d]);
            yield return ($"{p}.attn.out.bias", [d]);
            yield return ($"{p}.ln2.weight", [d]);
            yield return ($"{p}.ln2.bias", [d]);
            yield return ($"{p}.ff1.weight", [c.DFf, d]);
            yield return ($"{p}.ff1.bias", [c.DFf]);
            yield return ($"{p}.ff2.weight", [d, c.DFf]);
            yield return ($"{p}.ff2.bias", [d]);
            if (c.Gated)
            {
                yield return ($"{p}.gate.weight", [1, d]);
                yield return ($"{p}.gate.bias", [1]);
            }
        }

        yield return ("final_ln.weight", [d]);
        yield return ("final_ln.bias", [d]);
        yield return ("head.weight", [c.OutputDim, d]);
        yield return ("head.bias", [c.OutputDim]);
    }

    private Tensor W(string name) => _weights[name];

    /// <summary>One layer's tensors, resolved once at load so a forward does no name lookups.</summary>
    private sealed record LayerTensors(
        Tensor Ln1Weight, Tensor Ln1Bias, Tensor QkvWeight, Tensor QkvBias, Tensor OutWeight, Tensor OutBias,
        Tensor Ln2Weight, Tensor Ln2Bias, Tensor Ff1Weight, Tensor Ff1Bias, Tensor Ff2Weight, Tensor Ff2Bias, string Prefix)
    {
        /// <summary>The same tensors as a fused layer takes them.</summary>
        public EncoderLayerWeights Fused { get; } = new(
            Ln1Weight, Ln1Bias, QkvWeight, QkvBias, OutWeight, OutBias, Ln2Weight, Ln2Bias, Ff1Weight, Ff1Bias, Ff2Weight, Ff2Bias);
    }

    private LayerTensors[] ResolveLayers() =>
        Enumerable.Range(0, _config.NLayers).Select(i =>
        {
            string p = $"layers.{i}";
            return new LayerTensors(
                W($"{p}.ln1.weight"), W($"{p}.ln1.bias"), W($"{p}.attn.qkv.weight"), W($"{p}.attn.qkv.bias"), W($"{p}.attn.out.weight"), W($"{p}.attn.out.bias"),
                W($"{p}.ln2.weight"), W($"{p}.ln2.bias"), W($"{p}.ff1.weight"), W($"{p}.ff1.bias"), W($"{p}.ff2.weight"), W($"{p}.ff2.bias"), p);
        }).ToArray();

    private static readonly MatMulOptions Accumulate = new(TransposeB: true, Beta: 1f);

    public ForwardResult Forward(ForwardInput input, int[] lengths, IAttentionPattern pattern, AttentionSpec spec) =>
        _recorded is not null && _recorded.TryForward(input, lengths, pattern, spec, ForwardOps, out var recorded)
            ? recorded
            : ForwardOps(input, lengths, pattern, spec);

    /// <summary>The forward op by op, on a workspace from the pool.</summary>
    private ForwardResult ForwardOps(ForwardInput input, int[] lengths, IAttentionPattern pattern, AttentionSpec spec)
    {
        var be = _backend;
        int batch = input.Batch, time = input.Time, d = _config.DModel, rows = batch * time;
        float eps = (float)_config.LayerNormEps;
        bool padded = false;
        foreach (int l in lengths)
        {
            padded |= l < time;
        }

        var workspace = _workspaces.Rent(rows);
        try
        {
            var views = workspace.Views(batch, time);
            var all = views.Full;
            if (_config.InputKind == InputKind.Continuous)
            {
                int channels = _config.InputChannels;
                var values = input.Values!;
                if (padded)
                {
                    // Padding is never read back, but zero it so that NaN or Inf there cannot reach a kernel's arithmetic.
                    values = (float[])values.Clone();
                    for (int b = 0; b < batch; b++)
                    {
                        Array.Clear(values, (b * time + lengths[b]) * channels, (time - lengths[b]) * channels);
                    }
                }

                all.Values!.Upload<float>(values);
            }
            else
            {
                var ids = input.TokenIds!;
                if (padded)
                {
                    // Padded positions may hold any id; they are never read back, so map them to 0.
                    ids = (int[])ids.Clone();
                    for (int b = 0; b < batch; b++)
                    {
                        Array.Clear(ids, b * time + lengths[b], time - lengths[b]);
                    }
                }

                all.Ids!.Upload<int>(ids);
            }

            long computed;
            int parts = SequenceParts(batch, time);
            if (parts > 1)
            {
                // Short sequences in a batch: each thread runs whole sequences through every layer, so the forward
                // has one fork and join instead of one per op, and the ops inside run on their thread.
                var runs = views.Parts(parts);
                var pairs = new long[parts];
                ((CpuBackend)_backend).ForEachPart(parts, i =>
                    pairs[i] = Encode(runs[i], lengths[runs[i].First..(runs[i].First + runs[i].Count)], time, pattern, spec));
                computed = pairs.Sum();
            }
            else
            {
                computed = Encode(all, lengths, time, pattern, spec);
            }

            long densePairs = 0;
            foreach (int l in lengths)
            {
                densePairs += (long)l * l;
            }

            densePairs *= (long)_config.NLayers * _config.NHeads;
            int outDim = _config.OutputDim;
            if (_config.Head == HeadKind.Classification)
            {
                return Classify(all.H, batch, time, lengths, computed, densePairs);
            }

            var output = all.Head.ToArray<float>();
            if (padded)
            {
                for (int b = 0; b < batch; b++)
                {
                    Array.Clear(output, (b * time + lengths[b]) * outDim, (time - lengths[b]) * outDim);
                }
            }

            return new ForwardResult { Output = output, Shape = [batch, time, outDim], ComputedPairs = computed, DensePairs = densePairs };
        }
        finally
        {
            _workspaces.Return(workspace);
        }
    }

    /// <summary>
    /// Into how many runs of consecutive sequences to split a batch on the CPU backend, each run going through the
    /// whole encoder on one thread: for batches of short sequences, whose single ops are too small to be worth
    /// splitting. At least two runs per thread (a thread that the machine's other load delays leaves its second run to
    /// the others), and runs of at most <see cref="RowsPerRun"/> rows, so that a run's activations stay in the core's
    /// L2 cache. 1 (each op splits its own work) for long sequences and on other backends.
    /// </summary>
    private int SequenceParts(int batch, int time)
    {
        if (_backend is not CpuBackend cpu || batch < 2 || time > MaxSplitTime)
        {
            return 1;
        }

        int byRows = (batch * time + RowsPerRun - 1) / RowsPerRun;
        int byThreads = cpu.Threads > 1 ? 2 * cpu.Threads : 1;
        return Math.Clamp(Math.Max(byRows, byThreads), 1, batch);
    }

    /// <summary>Longest sequence for which a batch is split by sequences rather than per op.</summary>
    private const int MaxSplitTime = 256;

    /// <summary>Most rows in one run of sequences (a small model's activations for them fit in L2).</summary>
    private const int RowsPerRun = 256;

    /// <summary>
    /// Runs the encoder on a run of sequences whose input rows are in place (values or ids), leaving the final
    /// normalised rows in H and, for a per-timestep head, its output in Head; returns the pairs computed.
    /// </summary>
    private long Encode(SequenceViews v, int[] lengths, int time, IAttentionPattern pattern, AttentionSpec spec)
    {
        var be = _backend;
        float eps = (float)_config.LayerNormEps;
        Tensor x = v.X, h = v.H, qkv = v.Qkv, attended = v.Attended, hidden = v.Hidden;
        if (_config.InputKind == InputKind.Continuous)
        {
            be.Linear(v.Values!, _inputProjection!, _inputBias, x);
        }
        else
        {
            be.Embedding(W("embedding.weight"), v.Ids!, x);
        }

        using (var positions = _positions.SliceRows(0, time))
        {
            foreach (var xb in v.Sequences)
            {
                be.Add(xb, positions, xb);
            }
        }

        long computed = 0;
        var fused = FusedFor(pattern, time);
        for (int layer = 0; layer < _layers.Length; layer++)
        {
            var w = _layers[layer];
            if (fused is not null)
            {
                computed += fused.EncoderLayer(w.Fused, x, v.AttentionInputs, lengths, Layout(pattern, spec, layer, lengths, time, qkv), eps).ComputedPairs;
                continue;
            }

            be.LayerNorm(x, w.Ln1Weight, w.Ln1Bias, eps, h);
            if (pattern.Kind == AttentionPatternKind.Gated)
            {
                computed += Gated(w.Prefix, h, x, v.Count, time, lengths, spec);
            }
            else
            {
                be.Linear(h, w.QkvWeight, w.QkvBias, qkv);
                AttentionResult result = pattern.Kind == AttentionPatternKind.TokenTopK
                    ? be.TopKAttention(v.AttentionInputs, v.AttendedBatched, lengths, Budgets(lengths, spec))
                    : be.Attention(v.AttentionInputs, v.AttendedBatched, lengths, Layout(pattern, spec, layer, lengths, time, qkv));
                computed += result.ComputedPairs;
                be.MatMul(attended, w.OutWeight, x, Accumulate, w.OutBias);
            }

            be.LayerNorm(x, w.Ln2Weight, w.Ln2Bias, eps, h);
            be.Linear(h, w.Ff1Weight, w.Ff1Bias, hidden, Activation.Gelu);
            be.MatMul(hidden, w.Ff2Weight, x, Accumulate, w.Ff2Bias);
        }

        if (fused is not null && _config.Head != HeadKind.Classification)
        {
            fused.LayerNormLinear(x, W("final_ln.weight"), W("final_ln.bias"), eps, W("head.weight"), W("head.bias"), v.Head);
            return computed;
        }

        be.LayerNorm(x, W("final_ln.weight"), W("final_ln.bias"), eps, h);
        if (_config.Head != HeadKind.Classification)
        {
            be.Linear(h, W("head.weight"), W("head.bias"), v.Head);
        }

        return computed;
    }

    /// <summary>
    /// The backend's fused layer where it takes this model and sequence length and the pattern's layout is known before the
    /// layer runs (dense and static block patterns); null to run the layer op by op.
    /// </summary>
    private IFusedEncoderLayer? FusedFor(IAttentionPattern pattern, int time) =>
        _backend is IFusedEncoderLayer fused && pattern.Kind is AttentionPatternKind.Dense or AttentionPatternKind.StaticBlocks
            && fused.SupportsFusedLayer(_config.DModel, _config.NHeads, _config.DFf, time)
            ? fused
            : null;

    private static int[] Budgets(int[] lengths, AttentionSpec spec)
    {
        var budgets = new int[lengths.Length];
        for (int b = 0; b < lengths.Length; b++)
        {
            budgets[b] = PatternMath.Budget(spec.Sparsity, lengths[b]);
        }

        return budgets;
    }

    /// <summary>Classification head: mean of the valid rows of each sequence, then the linear head.</summary>
    private ForwardResult Classify(Tensor h, int batch, int time, int[] lengths, long computed, long densePairs)
    {
        var be = _backend;
        int d = _config.DModel, outDim = _config.OutputDim;
        var y = h.ToArray<float>();
        var pooled = new float[batch * d];
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < lengths[b]; t++)
            {
                for (int j = 0; j < d; j++)
                {
                    pooled[b * d + j] += y[(b * time + t) * d + j];
                }
            }

            for (int j = 0; j < d; j++)
            {
                pooled[b * d + j] /= lengths[b];
            }
        }

        using var pooledTensor = be.FromHost(pooled, batch, d);
        using var logits = be.Allocate(batch, outDim);
        be.Linear(pooledTensor, W("head.weight"), W("head.bias"), logits);
        return new ForwardResult { Output = logits.ToArray<float>(), Shape = [batch, outDim], ComputedPairs = computed, DensePairs = densePairs };
    }

    /// <summary>The block layout of a block pattern over the padded batch; null for dense.</summary>
    private BlockLayout? Layout(IAttentionPattern pattern, AttentionSpec spec, int layer, int[] lengths, int time, Tensor qkv)
    {
        if (pattern.Kind == AttentionPatternKind.Dense)
        {
            return null;
        }

        int batch = lengths.Length, heads = _config.NHeads, blocks = BlockLayout.BlocksFor(time, spec.BlockSize);
        if (pattern is IStaticBlockPattern staticPattern)
        {
            return _batchLayouts.Get(spec, layer, time, lengths, () =>
            {
                var builder = new BlockLayout.Builder(spec.BlockSize, batch, heads, blocks, sharedAcrossHeads: true);
                foreach (int length in lengths)
                {
                    AddRows(builder, _layouts.Get(staticPattern, spec, length, layer), blocks);
                }

                return builder.Build();
            });
        }

        // Dynamic patterns pool q and k per block on the host (the selection is host logic either way); the CPU
        // backend's activations are host memory already and are read in place.
        var dynamicPattern = (IDynamicBlockPattern)pattern;
        ReadOnlySpan<float> host = _backend is CpuBackend cpu ? cpu.HostView(qkv) : qkv.ToArray<float>();
        int d = _config.DModel, dh = _config.DHead;
        var perHead = new BlockLayout.Builder(spec.BlockSize, batch, heads, blocks, sharedAcrossHeads: false);
        for (int b = 0; b < batch; b++)
        {
            var geometry = new BlockGeometry(lengths[b], spec.BlockSize);
            for (int head = 0; head < heads; head++)
            {
                var scores = PooledScores(host, b * time, geometry, d, head, dh);
                AddRows(perHead, dynamicPattern.Select(geometry, spec, layer, head, scores), blocks);
            }
        }

        return perHead.Build();
    }

    private static void AddRows(BlockLayout.Builder builder, KeyBlockSelection selection, int blocks)
    {
        for (int qb = 0; qb < blocks; qb++)
        {
            builder.AddRow(qb < selection.Geometry.Blocks ? selection.KeyBlocks(qb) : []);
        }
    }

    private static float[] PooledScores(ReadOnlySpan<float> qkv, int rowOffset, BlockGeometry geometry, int d, int head, int dh)
    {
        int n = geometry.Blocks;
        var qMean = new float[n * dh];
        var kMean = new float[n * dh];
        float scale = 1f / MathF.Sqrt(dh);
        for (int blk = 0; blk < n; blk++)
        {
            int start = geometry.Start(blk), size = geometry.Size(blk);
            for (int j = 0; j < dh; j++)
            {
                float qs = 0f, ks = 0f;
                for (int t = start; t < start + size; t++)
                {
                    int row = (rowOffset + t) * 3 * d + head * dh + j;
                    qs += qkv[row] * scale;
                    ks += qkv[row + d];
                }

                qMean[blk * dh + j] = qs / size;
                kMean[blk * dh + j] = ks / size;
            }
        }

        var scores = new float[n * n];
        for (int qb = 0; qb < n; qb++)
        {
            for (int kb = 0; kb < n; kb++)
            {
                float s = 0f;
                for (int j = 0; j < dh; j++)
                {
                    s += qMean[qb * dh + j] * kMean[kb * dh + j];
                }

                scores[qb * n + kb] = s;
            }
        }

        return scores;
    }

    /// <summary>Gated sub-layer per sequence: gather active rows, dense attention among them, scaled scatter-add back.</summary>
    private long Gated(string p, Tensor h, Tensor x, int batch, int time, int[] lengths, AttentionSpec spec)
    {
        var be = _backend;
        int d = _config.DModel, heads = _config.NHeads;
        using var gateLogits = be.Allocate(batch * time, 1);
        be.Linear(h, W($"{p}.gate.weight"), W($"{p}.gate.bias"), gateLogits);
        be.Sigmoid(gateLogits, gateLogits);
        var gates = gateLogits.ToArray<float>();
        long computed = 0;
        for (int b = 0; b < batch; b++)
        {
            int length = lengths[b];
            int m = PatternMath.Budget(spec.Sparsity, length);
            var active = new int[m];
            TopSelection.IndicesOfLargest(gates.AsSpan(b * time, length), m, new float[length], active);
            var rowsOfActive = active.Select(t => b * time + t).ToArray();
            var scales = active.Select(t => gates[b * time + t]).ToArray();
            using var index = be.FromHost(rowsOfActive, m);
            using var scale = be.FromHost(scales, m);
            using var compact = be.Allocate(m, d);
            using var qkv = be.Allocate(m, 3 * d);
            using var attended = be.Allocate(m, d);
            using var projected = be.Allocate(m, d);
            be.Gather(h, index, compact);
            be.Linear(compact, W($"{p}.attn.qkv.weight"), W($"{p}.attn.qkv.bias"), qkv);
            using var packed = qkv.Reshape(1, m, 3 * d);
            using var output = attended.Reshape(1, m, d);
            computed += be.Attention(AttentionInputs.Packed(packed, heads), output, [m], null).ComputedPairs;
            be.Linear(attended, W($"{p}.attn.out.weight"), W($"{p}.attn.out.bias"), projected);
            be.ScatterAddRows(projected, index, x, scale);
        }

        return computed;
    }

    public void Dispose()
    {
        // Recordings first: they replay into memory the weights' BF16 copies and the workspaces hold.
        _recorded?.Dispose();
        _workspaces.Dispose();
        foreach (var t in _weights.Values)
        {
            t.Dispose();
        }
    }
}
