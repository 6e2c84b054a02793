using SparseInference.Models.Formats;
using SparseInference.Models.Tests.Infrastructure;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Models.Tests;

/// <summary>
/// A backend's fused encoder layer (IFusedEncoderLayer) from the model's side: taken for dense and static block patterns
/// at the lengths the backend accepts, with the final LayerNorm and head as one op, giving the op-by-op result and pairs;
/// patterns whose layout needs the layer's own q and k, and longer sequences, run op by op.
/// </summary>
public sealed class FusedEncoderLayerTests : IDisposable
{
    private const int D = 32, Heads = 4, Layers = 3, Dff = 64, Channels = 8, OutDim = 8;
    private readonly TempDirectory _dir = new();
    private readonly CpuBackend _cpu = new();
    private readonly EncoderModel _reference;

    public FusedEncoderLayerTests()
    {
        RandomModelWriter.Write(_dir.Path, Channels, D, Heads, Layers, Dff, maxSeqLen: 256, OutDim, seed: 17);
        _reference = EncoderModel.Load(_dir.Path, _cpu);
    }

    public void Dispose()
    {
        _reference.Dispose();
        _cpu.Dispose();
        _dir.Dispose();
    }

    [Theory]
    [InlineData("dense", 0.0, 64, true)]
    [InlineData("window", 0.5, 64, true)]
    [InlineData("bigbird", 0.75, 64, true)]
    [InlineData("dense", 0.0, 200, false)]      // longer than the backend takes
    [InlineData("block-topk", 0.5, 64, false)]  // the layout is chosen from the layer's q and k
    public void Forward_FusedWhereTaken_MatchesOpByOp(string pattern, double sparsity, int time, bool fused)
    {
        var backend = new FusingCpuBackend(_cpu, maxSeqLen: 128);
        using var model = EncoderModel.Load(_dir.Path, backend);
        var spec = new AttentionSpec(pattern, sparsity, 16, 1, 3);
        var random = new Random(time + pattern.Length);
        var input = new ForwardInput
        {
            Batch = 2, Time = time, Lengths = [time, time - 13],
            Values = Enumerable.Range(0, 2 * time * Channels).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray(),
        };

        var got = model.Forward(input, spec);
        var want = _reference.Forward(input, spec);

        Assert.Equal(fused ? Layers : 0, backend.Layers);
        Assert.Equal(fused ? 1 : 0, backend.Heads);
        Assert.Equal(want.ComputedPairs, got.ComputedPairs);
        Assert.Equal(want.Shape, got.Shape);
        double num = 0, den = 0;
        for (var i = 0; i < want.Output.Length; i++)
        {
            num += (got.Output[i] - (double)want.Output[i]) * (got.Output[i] - want.Output[i]);
            den += want.Output[i] * (double)want.Output[i];
        }

        Assert.True(Math.Sqrt(num / den) <= 1e-5, $"relative error {Math.Sqrt(num / den):E2}");
    }
}
