using SparseInference.Models.Configuration;
using SparseInference.Models.Formats;
using SparseInference.Models.Tests.Infrastructure;
using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Models.Tests;

/// <summary>
/// The encoder on a backend whose residual stream is BF16 (docs/model-format.md, "Precision"): the workspace stores the
/// residual in the backend's dtype, and the forward, which has one path for both dtypes, stays within the contract's
/// BF16 tolerance of the FP32 CPU reference on every pattern, input kind and head.
/// </summary>
public sealed class ResidualPrecisionTests : IDisposable
{
    /// <summary>The contract's tolerance for a BF16 residual stream: relative L2 error of the whole output.</summary>
    private const double Bf16Tolerance = 1e-2;

    private const int D = 64, Heads = 2, Layers = 2, Dff = 128, Channels = 5, OutDim = 4;
    private readonly TempDirectory _dir = new();
    private readonly CpuBackend _cpu = new();

    public ResidualPrecisionTests()
    {
        RandomModelWriter.Write(_dir.Path, Channels, D, Heads, Layers, Dff, maxSeqLen: 512, OutDim, seed: 5);
    }

    public void Dispose()
    {
        _cpu.Dispose();
        _dir.Dispose();
    }

    [Theory]
    [InlineData("dense", 0.0, 16)]
    [InlineData("window", 0.75, 16)]
    [InlineData("bigbird", 0.8, 32)]
    [InlineData("longformer", 0.7, 16)]
    [InlineData("topk", 0.8, 16)]
    public void Forward_Bf16Residual_WithinBf16ToleranceOfFp32(string pattern, double sparsity, int blockSize)
    {
        var spec = new AttentionSpec(pattern, sparsity, blockSize, 1, 7);
        AssertBf16WithinTolerance(_dir.Path, RandomInput(pattern.Length * 31), spec, Bf16Tolerance);
    }

    /// <summary>
    /// Block selections made from the activations (block-topk's pooled scores) may pick another block where two scores
    /// are within BF16 rounding of each other; the contract then bounds only the selection size (equal computed pairs),
    /// and the output stays close but not within the element-wise tolerance (here 1.7e-2).
    /// </summary>
    [Fact]
    public void Forward_Bf16ResidualBlockTopK_SameSelectionSizeAndCloseOutput()
    {
        var spec = new AttentionSpec("block-topk", 0.7, 16, 1, 7);
        AssertBf16WithinTolerance(_dir.Path, RandomInput("block-topk".Length * 31), spec, tolerance: 5e-2);
    }

    private static ForwardInput RandomInput(int seed)
    {
        var random = new Random(seed);
        const int batch = 2, time = 200;
        return new ForwardInput
        {
            Batch = batch, Time = time, Lengths = [time, 133],
            Values = Enumerable.Range(0, batch * time * Channels).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(),
        };
    }

    [Theory]
    [InlineData("tiny-continuous-sinusoidal", "gated")]
    [InlineData("tiny-continuous-learned", "window")]
    [InlineData("tiny-tokens-classifier", "gated")]
    [InlineData("tiny-tokens-classifier", "dense")]
    public void Forward_Bf16ResidualGoldenModel_WithinBf16ToleranceOfFp32(string model, string pattern)
    {
        var directory = TestModels.GoldenModel(model);
        var config = ModelConfig.Load(Path.Combine(directory, EncoderModel.ConfigFileName));
        var random = new Random(model.Length + pattern.Length);
        const int batch = 3, time = 48;
        var input = config.InputKind == InputKind.Tokens
            ? new ForwardInput { Batch = batch, Time = time, Lengths = [48, 29, 40], TokenIds = Enumerable.Range(0, batch * time).Select(_ => random.Next(config.VocabSize)).ToArray() }
            : new ForwardInput
            {
                Batch = batch, Time = time, Lengths = [48, 29, 40],
                Values = Enumerable.Range(0, batch * time * config.InputChannels).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(),
            };

        AssertBf16WithinTolerance(directory, input, new AttentionSpec(pattern, 0.5, config.Attention.BlockSize, 1, 3), Bf16Tolerance);
    }

    [Fact]
    public void Workspace_Bf16ResidualBackend_StoresOnlyTheResidualInBf16()
    {
        var config = ModelConfig.Load(Path.Combine(_dir.Path, EncoderModel.ConfigFileName));
        var bf16 = new Bf16ResidualCpuBackend(_cpu);
        const int capacity = 300;

        using var half = new EncoderWorkspace(bf16, config, capacity);
        using var full = new EncoderWorkspace(_cpu, config, capacity);

        var h = half.Views(3, 100).Full;
        Assert.Equal(DType.BF16, half.ResidualDType);
        Assert.Equal(DType.BF16, h.X.DType);
        Assert.Equal((long)capacity * D * 2, h.X.Buffer.SizeInBytes);
        Assert.All(new[] { h.H, h.Qkv, h.Attended, h.Hidden, h.Head, h.Values! }, t => Assert.Equal(DType.F32, t.DType));
        Assert.All(h.Sequences, s => Assert.Equal(DType.BF16, s.DType));
        Assert.Equal(100L * D * 2, h.Sequences[1].ByteOffset);
        var f = full.Views(3, 100).Full;
        Assert.Equal(DType.F32, f.X.DType);
        Assert.Equal((long)capacity * D * 2, full.Bytes - half.Bytes);
    }

    [Fact]
    public void WorkspacePool_BackendResidualDTypeChanges_RentsWorkspaceOfTheNewDType()
    {
        var config = ModelConfig.Load(Path.Combine(_dir.Path, EncoderModel.ConfigFileName));
        var backend = new Bf16ResidualCpuBackend(_cpu) { Residual = DType.F32 };
        using var pool = new WorkspacePool(backend, config);

        var first = pool.Rent(64);
        Assert.Equal(DType.F32, first.ResidualDType);
        pool.Return(first);
        backend.Residual = DType.BF16;
        var second = pool.Rent(64);

        Assert.Equal(DType.BF16, second.ResidualDType);
        Assert.Equal(DType.BF16, second.Views(1, 64).Full.X.DType);
        pool.Return(second);
    }

    [Fact]
    public void ResidualDType_CpuBackend_IsTheF32Reference()
    {
        IComputeBackend cpu = _cpu;

        Assert.Equal(DType.F32, cpu.ResidualDType);
    }

    private void AssertBf16WithinTolerance(string directory, ForwardInput input, AttentionSpec spec, double tolerance)
    {
        var bf16 = new Bf16ResidualCpuBackend(_cpu);
        using var reference = EncoderModel.Load(directory, _cpu);
        using var model = EncoderModel.Load(directory, bf16);

        var want = reference.Forward(input, spec);
        var got = model.Forward(input, spec);

        Assert.Equal(want.Shape, got.Shape);
        Assert.Equal(want.ComputedPairs, got.ComputedPairs);
        Assert.DoesNotContain(got.Output, v => !float.IsFinite(v));
        double num = 0, den = 0;
        for (int i = 0; i < want.Output.Length; i++)
        {
            double diff = got.Output[i] - want.Output[i];
            num += diff * diff;
            den += (double)want.Output[i] * want.Output[i];
        }

        double error = Math.Sqrt(num / den);
        Assert.True(bf16.Bf16Stores > 0, "no op stored a BF16 result: the residual stream was not BF16");
        Assert.True(error > 0, "the BF16 residual forward matched the FP32 one exactly: the residual was not rounded");
        Assert.True(error <= tolerance, $"{spec.Pattern}: relative error {error:E2} > {tolerance:E0}");
    }
}
