using SparseInference.Tensors;
using SparseInference.Tensors.Cuda;

namespace SparseInference.CudaSelfTest;

/// <summary>
/// Passes every op to a <see cref="CudaComputeBackend"/> and adds up the device time of each op kind (CUDA events
/// around each call, synchronised): where a model forward spends its time. Tensors are the inner backend's.
/// </summary>
internal sealed class OpTimingBackend(CudaComputeBackend inner) : IComputeBackend, IFusedEncoderLayer
{
    private readonly Dictionary<string, (double Ms, int Calls)> totals = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, (double Ms, int Calls)> Totals => totals;

    public void Reset() => totals.Clear();

    private void Time(string op, Action work)
    {
        var ms = inner.Gpu.TimeMilliseconds(work);
        totals[op] = totals.TryGetValue(op, out var t) ? (t.Ms + ms, t.Calls + 1) : (ms, 1);
    }

    private T Time<T>(string op, Func<T> work)
    {
        T result = default!;
        Time(op, () => { result = work(); });
        return result;
    }

    public string Name => inner.Name;

    public DeviceKind Device => DeviceKind.Cuda;

    public bool Supports(TensorOp op, DType dtype) => inner.Supports(op, dtype);

    public DType ResidualDType => inner.ResidualDType;

    public Tensor Allocate(Shape shape, DType dtype, bool zeroed = true) => inner.Allocate(shape, dtype, zeroed);

    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination)
    {
        var copy = source.ToArray();
        Time("copy from host", () => inner.CopyFromHost(copy, destination));
    }

    public void CopyToHost(Tensor source, Span<byte> destination)
    {
        var copy = new byte[destination.Length];
        Time("copy to host", () => inner.CopyToHost(source, copy));
        copy.CopyTo(destination);
    }

    public void Copy(Tensor source, Tensor destination) => Time("copy", () => inner.Copy(source, destination));

    public void Convert(Tensor source, Tensor destination) => Time("convert", () => inner.Convert(source, destination));

    public void MatMul(Tensor a, Tensor b, Tensor c, MatMulOptions options, Tensor? bias = null) =>
        Time($"matmul {(options.Activation == Activation.Gelu ? "+gelu " : "")}[{a.Shape}]x[{b.Shape}] beta {options.Beta}", () => inner.MatMul(a, b, c, options, bias));

    public void BiasAdd(Tensor x, Tensor bias, Tensor output) => Time("bias_add", () => inner.BiasAdd(x, bias, output));

    public void Add(Tensor a, Tensor b, Tensor output) => Time("add", () => inner.Add(a, b, output));

    public void Scale(Tensor x, float alpha, Tensor output) => Time("scale", () => inner.Scale(x, alpha, output));

    public void LayerNorm(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor output) =>
        Time("layer_norm", () => inner.LayerNorm(x, gamma, beta, epsilon, output));

    public void Gelu(Tensor x, Tensor output) => Time("gelu", () => inner.Gelu(x, output));

    public void Sigmoid(Tensor x, Tensor output) => Time("sigmoid", () => inner.Sigmoid(x, output));

    public void Softmax(Tensor x, Tensor output) => Time("softmax", () => inner.Softmax(x, output));

    public void Embedding(Tensor table, Tensor ids, Tensor output) => Time("embedding", () => inner.Embedding(table, ids, output));

    public void Gather(Tensor source, Tensor indices, Tensor output) => Time("gather", () => inner.Gather(source, indices, output));

    public void ScatterAddRows(Tensor source, Tensor indices, Tensor destination, Tensor? rowScale = null) =>
        Time("scatter_add_rows", () => inner.ScatterAddRows(source, indices, destination, rowScale));

    public void TopK(Tensor x, int k, Tensor values, Tensor indices) => Time("top_k", () => inner.TopK(x, k, values, indices));

    public AttentionResult Attention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, BlockLayout? layout)
    {
        var lengths = validLengths.ToArray();
        return Time($"attention {(layout is null ? "dense" : "block-sparse")}", () => inner.Attention(inputs, output, lengths, layout));
    }

    public AttentionResult TopKAttention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, ReadOnlySpan<int> keysPerQuery)
    {
        var lengths = validLengths.ToArray();
        var keys = keysPerQuery.ToArray();
        return Time("topk_attention", () => inner.TopKAttention(inputs, output, lengths, keys));
    }

    public bool SupportsFusedLayer(int dModel, int heads, int dFf, int seqLen) => inner.SupportsFusedLayer(dModel, heads, dFf, seqLen);

    public AttentionResult EncoderLayer(EncoderLayerWeights weights, Tensor x, AttentionInputs qkv, ReadOnlySpan<int> validLengths, BlockLayout? layout, float epsilon)
    {
        var lengths = validLengths.ToArray();
        return Time("fused encoder layer", () => inner.EncoderLayer(weights, x, qkv, lengths, layout, epsilon));
    }

    public void LayerNormLinear(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor weight, Tensor bias, Tensor output) =>
        Time("fused layer_norm + linear", () => inner.LayerNormLinear(x, gamma, beta, epsilon, weight, bias, output));

    public void Dispose()
    {
    }
}
