using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Models.Tests.Infrastructure;

/// <summary>
/// The CPU backend with <see cref="IFusedEncoderLayer"/>: the "fused" layer is the layer's op sequence on the CPU backend
/// (what a fused kernel must compute), so that the model's use of the capability (which patterns and lengths take it, the
/// head through <see cref="LayerNormLinear"/>, the pairs it reports) runs without a GPU. Counts the calls.
/// </summary>
internal sealed class FusingCpuBackend(CpuBackend cpu, int maxSeqLen) : IComputeBackend, IFusedEncoderLayer
{
    private static readonly MatMulOptions Accumulate = new(TransposeB: true, Beta: 1f);

    public int Layers { get; private set; }

    public int Heads { get; private set; }

    public bool SupportsFusedLayer(int dModel, int heads, int dFf, int seqLen) => seqLen <= maxSeqLen;

    public AttentionResult EncoderLayer(EncoderLayerWeights w, Tensor x, AttentionInputs qkv, ReadOnlySpan<int> validLengths, BlockLayout? layout, float epsilon)
    {
        Layers++;
        int rows = x.Dim(0), d = x.Dim(1);
        using var h = cpu.Allocate(rows, d);
        using var attended = cpu.Allocate(qkv.Batch, qkv.SeqLen, d);
        using var attendedRows = attended.Reshape(rows, d);
        using var hidden = cpu.Allocate(rows, w.Ff1Weight.Dim(0));
        using var packedRows = qkv.Query.Tensor.Reshape(rows, 3 * d);
        cpu.LayerNorm(x, w.Ln1Weight, w.Ln1Bias, epsilon, h);
        cpu.Linear(h, w.QkvWeight, w.QkvBias, packedRows);
        var result = cpu.Attention(qkv, attended, validLengths, layout);
        cpu.MatMul(attendedRows, w.OutWeight, x, Accumulate, w.OutBias);
        cpu.LayerNorm(x, w.Ln2Weight, w.Ln2Bias, epsilon, h);
        cpu.Linear(h, w.Ff1Weight, w.Ff1Bias, hidden, Activation.Gelu);
        cpu.MatMul(hidden, w.Ff2Weight, x, Accumulate, w.Ff2Bias);
        return result;
    }

    public void LayerNormLinear(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor weight, Tensor bias, Tensor output)
    {
        Heads++;
        using var h = cpu.Allocate(x.Dim(0), x.Dim(1));
        cpu.LayerNorm(x, gamma, beta, epsilon, h);
        cpu.Linear(h, weight, bias, output);
    }

    public string Name => "cpu-fusing";

    public DeviceKind Device => DeviceKind.Cpu;

    public bool Supports(TensorOp op, DType dtype) => cpu.Supports(op, dtype);

    public Tensor Allocate(Shape shape, DType dtype, bool zeroed = true) => cpu.Allocate(shape, dtype, zeroed);

    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination) => cpu.CopyFromHost(source, destination);

    public void CopyToHost(Tensor source, Span<byte> destination) => cpu.CopyToHost(source, destination);

    public void Copy(Tensor source, Tensor destination) => cpu.Copy(source, destination);

    public void Convert(Tensor source, Tensor destination) => cpu.Convert(source, destination);

    public void PrepareWeight(Tensor weight, bool transposed) => cpu.PrepareWeight(weight, transposed);

    public void MatMul(Tensor a, Tensor b, Tensor c, MatMulOptions options, Tensor? bias = null) => cpu.MatMul(a, b, c, options, bias);

    public void BiasAdd(Tensor x, Tensor bias, Tensor output) => cpu.BiasAdd(x, bias, output);

    public void Add(Tensor a, Tensor b, Tensor output) => cpu.Add(a, b, output);

    public void Scale(Tensor x, float alpha, Tensor output) => cpu.Scale(x, alpha, output);

    public void LayerNorm(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor output) => cpu.LayerNorm(x, gamma, beta, epsilon, output);

    public void Gelu(Tensor x, Tensor output) => cpu.Gelu(x, output);

    public void Sigmoid(Tensor x, Tensor output) => cpu.Sigmoid(x, output);

    public void Softmax(Tensor x, Tensor output) => cpu.Softmax(x, output);

    public void Embedding(Tensor table, Tensor ids, Tensor output) => cpu.Embedding(table, ids, output);

    public void Gather(Tensor source, Tensor indices, Tensor output) => cpu.Gather(source, indices, output);

    public void ScatterAddRows(Tensor source, Tensor indices, Tensor destination, Tensor? rowScale = null) =>
        cpu.ScatterAddRows(source, indices, destination, rowScale);

    public void TopK(Tensor x, int k, Tensor values, Tensor indices) => cpu.TopK(x, k, values, indices);

    public AttentionResult Attention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, BlockLayout? layout) =>
        cpu.Attention(inputs, output, validLengths, layout);

    public AttentionResult TopKAttention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, ReadOnlySpan<int> keysPerQuery) =>
        cpu.TopKAttention(inputs, output, validLengths, keysPerQuery);

    public void Dispose()
    {
    }
}
