using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Models.Tests.Infrastructure;

/// <summary>
/// The contract's BF16 residual stream (<see cref="IComputeBackend.ResidualDType"/> = BF16) over the FP32 CPU backend,
/// as docs/model-format.md ("Precision") defines it: every op computes in FP32, BF16 operands are widened when read and
/// BF16 results rounded to nearest even when stored. Only the places the contract lists take BF16 (Add, LayerNorm,
/// MatMul's C, Embedding's output, ScatterAddRows' destination); anything else reaches the CPU backend, which rejects a
/// BF16 tensor. Lets the model's BF16 path run, and be compared with the FP32 reference, without a GPU.
/// </summary>
internal sealed class Bf16ResidualCpuBackend(CpuBackend cpu) : IComputeBackend
{
    /// <summary>What <see cref="ResidualDType"/> reports (BF16 by default; F32 to test a change of dtype).</summary>
    public DType Residual { get; set; } = DType.BF16;

    /// <summary>Ops that stored a BF16 result.</summary>
    public int Bf16Stores { get; private set; }

    public string Name => "cpu-bf16-residual";

    public DeviceKind Device => DeviceKind.Cpu;

    public DType ResidualDType => Residual;

    public bool Supports(TensorOp op, DType dtype) =>
        (dtype == DType.BF16 && op is TensorOp.Add or TensorOp.LayerNorm or TensorOp.MatMul or TensorOp.Embedding or TensorOp.ScatterAddRows)
        || cpu.Supports(op, dtype);

    public Tensor Allocate(Shape shape, DType dtype, bool zeroed = true) => cpu.Allocate(shape, dtype, zeroed);

    public void CopyFromHost(ReadOnlySpan<byte> source, Tensor destination) => cpu.CopyFromHost(source, destination);

    public void CopyToHost(Tensor source, Span<byte> destination) => cpu.CopyToHost(source, destination);

    public void Copy(Tensor source, Tensor destination) => cpu.Copy(source, destination);

    public void Convert(Tensor source, Tensor destination) => cpu.Convert(source, destination);

    public void PrepareWeight(Tensor weight, bool transposed) => cpu.PrepareWeight(weight, transposed);

    public void MatMul(Tensor a, Tensor b, Tensor c, MatMulOptions options, Tensor? bias = null) =>
        Store(c, reads: options.Beta != 0, wide => cpu.MatMul(a, b, wide, options, bias));

    public void BiasAdd(Tensor x, Tensor bias, Tensor output) => cpu.BiasAdd(x, bias, output);

    public void Add(Tensor a, Tensor b, Tensor output)
    {
        using var wa = Widen(a);
        using var wb = Widen(b);
        Store(output, reads: false, wide => cpu.Add(wa.Tensor, wb.Tensor, wide));
    }

    public void Scale(Tensor x, float alpha, Tensor output) => cpu.Scale(x, alpha, output);

    public void LayerNorm(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor output)
    {
        using var wx = Widen(x);
        Store(output, reads: false, wide => cpu.LayerNorm(wx.Tensor, gamma, beta, epsilon, wide));
    }

    public void Gelu(Tensor x, Tensor output) => cpu.Gelu(x, output);

    public void Sigmoid(Tensor x, Tensor output) => cpu.Sigmoid(x, output);

    public void Softmax(Tensor x, Tensor output) => cpu.Softmax(x, output);

    public void Embedding(Tensor table, Tensor ids, Tensor output) => Store(output, reads: false, wide => cpu.Embedding(table, ids, wide));

    public void Gather(Tensor source, Tensor indices, Tensor output) => cpu.Gather(source, indices, output);

    public void ScatterAddRows(Tensor source, Tensor indices, Tensor destination, Tensor? rowScale = null) =>
        Store(destination, reads: true, wide => cpu.ScatterAddRows(source, indices, wide, rowScale));

    public void TopK(Tensor x, int k, Tensor values, Tensor indices) => cpu.TopK(x, k, values, indices);

    public AttentionResult Attention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, BlockLayout? layout) =>
        cpu.Attention(inputs, output, validLengths, layout);

    public AttentionResult TopKAttention(AttentionInputs inputs, Tensor output, ReadOnlySpan<int> validLengths, ReadOnlySpan<int> keysPerQuery) =>
        cpu.TopKAttention(inputs, output, validLengths, keysPerQuery);

    public void Dispose()
    {
    }

    /// <summary>Runs <paramref name="op"/> into an FP32 output: the tensor itself, or for BF16 a widened temporary rounded back after.</summary>
    private void Store(Tensor output, bool reads, Action<Tensor> op)
    {
        if (output.DType != DType.BF16)
        {
            op(output);
            return;
        }

        using var wide = cpu.Allocate(output.Shape, DType.F32, zeroed: false);
        if (reads)
        {
            cpu.Convert(output, wide);
        }

        op(wide);
        cpu.Convert(wide, output);
        Bf16Stores++;
    }

    private Widened Widen(Tensor t)
    {
        if (t.DType != DType.BF16)
        {
            return new Widened(t, owned: false);
        }

        var wide = cpu.Allocate(t.Shape, DType.F32, zeroed: false);
        cpu.Convert(t, wide);
        return new Widened(wide, owned: true);
    }

    private readonly struct Widened(Tensor tensor, bool owned) : IDisposable
    {
        public Tensor Tensor { get; } = tensor;

        public void Dispose()
        {
            if (owned)
            {
                Tensor.Dispose();
            }
        }
    }
}
