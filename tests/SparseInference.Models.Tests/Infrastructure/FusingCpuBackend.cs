using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Models.Tests.Infrastructure;

/// <summary>
/// The CPU backend with <see cref="IFusedEncoderLayer"/>: the "fused" layer is the layer's op sequence on the CPU backend
/// (what a fused kernel must compute), so that the model's use of the capability (which patterns and lengths take it, the
/// head through <see cref="LayerNormLinear"/>, the pairs it reports) runs without a GPU. Counts the calls.
/// </summary>
internal sealed class FusingCpuBackend(CpuBackend cpu, int maxSeqLen) : CpuBackendDecorator(cpu), IFusedEncoderLayer
{
    private static readonly MatMulOptions Accumulate = new(TransposeB: true, Beta: 1f);

    public int Layers { get; private set; }

    public int Heads { get; private set; }

    public bool SupportsFusedLayer(int dModel, int heads, int dFf, int seqLen) => seqLen <= maxSeqLen;

    public AttentionResult EncoderLayer(EncoderLayerWeights w, Tensor x, AttentionInputs qkv, ReadOnlySpan<int> validLengths, BlockLayout? layout, float epsilon)
    {
        Layers++;
        int rows = x.Dim(0), d = x.Dim(1);
        using var h = Cpu.Allocate(rows, d);
        using var attended = Cpu.Allocate(qkv.Batch, qkv.SeqLen, d);
        using var attendedRows = attended.Reshape(rows, d);
        using var hidden = Cpu.Allocate(rows, w.Ff1Weight.Dim(0));
        using var packedRows = qkv.Query.Tensor.Reshape(rows, 3 * d);
        Cpu.LayerNorm(x, w.Ln1Weight, w.Ln1Bias, epsilon, h);
        Cpu.Linear(h, w.QkvWeight, w.QkvBias, packedRows);
        var result = Cpu.Attention(qkv, attended, validLengths, layout);
        Cpu.MatMul(attendedRows, w.OutWeight, x, Accumulate, w.OutBias);
        Cpu.LayerNorm(x, w.Ln2Weight, w.Ln2Bias, epsilon, h);
        Cpu.Linear(h, w.Ff1Weight, w.Ff1Bias, hidden, Activation.Gelu);
        Cpu.MatMul(hidden, w.Ff2Weight, x, Accumulate, w.Ff2Bias);
        return result;
    }

    public void LayerNormLinear(Tensor x, Tensor gamma, Tensor beta, float epsilon, Tensor weight, Tensor bias, Tensor output)
    {
        Heads++;
        using var h = Cpu.Allocate(x.Dim(0), x.Dim(1));
        Cpu.LayerNorm(x, gamma, beta, epsilon, h);
        Cpu.Linear(h, weight, bias, output);
    }

    public override string Name => "cpu-fusing";
}
