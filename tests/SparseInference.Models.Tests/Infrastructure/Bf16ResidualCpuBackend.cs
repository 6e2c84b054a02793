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
internal sealed class Bf16ResidualCpuBackend(CpuBackend cpu) : CpuBackendDecorator(cpu)
{
    /// <summary>What <see cref="ResidualDType"/> reports (BF16 by default; F32 to test a change of dtype).</summary>
    public DType Residual { get; set; } = DType.BF16;

    /// <summary>Ops that stored a BF16 result.</summary>
    public int Bf16Stores { get; private set; }

    public override string Name => "cpu-bf16-residual";

    public override DType ResidualDType => Residual;

    public override bool Supports(TensorOp op, DType dtype) =>
        (dtype == DType.BF16 && op is TensorOp.Add or TensorOp.LayerNorm or TensorOp.MatMul or TensorOp.Embedding or TensorOp.ScatterAddRows)
        || Cpu.Supports(op, dtype);

    public override void MatMul(Tensor a, Tensor b, Tensor c, MatMulOptions options, Tensor? bias = null) =>
        Store(c, reads: options.Beta != 0, wide => Cpu.MatMul(a, b, wide, options, bias));

    public override void Add(Tensor a, Tensor b, Tensor output)
    {
        using var wa = Widen(a);
        using var wb = Widen(b);
        Store(output, reads: false, wide => Cpu.Add(wa.Tensor, wb.Tensor, wide));
    }

    public override void LayerNorm(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor output)
    {
        using var wx = Widen(x);
        Store(output, reads: false, wide => Cpu.LayerNorm(wx.Tensor, gamma, beta, epsilon, wide));
    }

    public override void Embedding(Tensor table, Tensor ids, Tensor output) => Store(output, reads: false, wide => Cpu.Embedding(table, ids, wide));

    public override void ScatterAddRows(Tensor source, Tensor indices, Tensor destination, Tensor? rowScale = null) =>
        Store(destination, reads: true, wide => Cpu.ScatterAddRows(source, indices, wide, rowScale));

    /// <summary>Runs <paramref name="op"/> into an FP32 output: the tensor itself, or for BF16 a widened temporary rounded back after.</summary>
    private void Store(Tensor output, bool reads, Action<Tensor> op)
    {
        if (output.DType != DType.BF16)
        {
            op(output);
            return;
        }

        using var wide = Cpu.Allocate(output.Shape, DType.F32, zeroed: false);
        if (reads)
        {
            Cpu.Convert(output, wide);
        }

        op(wide);
        Cpu.Convert(wide, output);
        Bf16Stores++;
    }

    private Widened Widen(Tensor t)
    {
        if (t.DType != DType.BF16)
        {
            return new Widened(t, owned: false);
        }

        var wide = Cpu.Allocate(t.Shape, DType.F32, zeroed: false);
        Cpu.Convert(t, wide);
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
