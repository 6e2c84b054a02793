using SparseInference.Models;
using SparseInference.Models.Formats;
using SparseInference.Tensors.Cuda.Kernels;

namespace SparseInference.Tensors.Cuda.Tests;

/// <summary>
/// Fused small layers (fused_layer.cu): which models they take, and on a GPU a whole encoder through them against the CPU
/// engine within the BF16 tolerance, dense and block-sparse, with a ragged batch.
/// </summary>
public sealed class CudaComputeBackendFusedLayerTests
{
    private const double Bf16Tolerance = 1e-2;

    [Theory]
    [InlineData(32, 4, 64, true)]     // the default sensor model
    [InlineData(128, 4, 512, true)]   // the largest taken: head dim 32, d_ff 512
    [InlineData(64, 1, 128, false)]   // head dim 64
    [InlineData(256, 8, 512, false)]  // d_model 256
    [InlineData(32, 4, 1024, false)]  // d_ff 1024
    [InlineData(30, 4, 64, false)]    // heads do not divide d_model
    public void Takes_SmallModelsOnly(int dModel, int heads, int dFf, bool expected) =>
        Assert.Equal(expected, FusedLayerKernels.Takes(dModel, heads, dFf));

    [GpuTheory]
    [InlineData(32, 4, 64, 64)]
    [InlineData(128, 4, 512, 200)]
    public void Forward_FusedLayers_MatchCpuEngineWithinBf16Tolerance(int dModel, int heads, int dFf, int time)
    {
        Assert.True(CudaComputeBackend.TryCreate(out var gpu, out var reason,
            new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16, FusedLayers = true, MaxRecordedForwards = 0 }), reason);
        var dir = Path.Combine(Path.GetTempPath(), "si-fused-" + Guid.NewGuid().ToString("N"));
        try
        {
            const int channels = 8, layers = 2, batch = 3;
            RandomModelWriter.Write(dir, channels, dModel, heads, layers, dFf, maxSeqLen: 256, channels, seed: 41);
            using (gpu)
            using (var cpuModel = EncoderModel.Load(dir))
            using (var model = EncoderModel.Load(dir, gpu!))
            {
                Assert.True(gpu!.SupportsFusedLayer(dModel, heads, dFf, time));
                var rng = new Random(Environment.TickCount);
                var input = new ForwardInput
                {
                    Batch = batch, Time = time, Lengths = [time, time - 17, time],
                    Values = Enumerable.Range(0, batch * time * channels).Select(_ => (float)((rng.NextDouble() * 4) - 2)).ToArray(),
                };
                foreach (var spec in new[] { new AttentionSpec("dense", 0, 8), new AttentionSpec("window", 0.5, 8), new AttentionSpec("bigbird", 0.75, 16, 1, 2) })
                {
                    var want = cpuModel.Forward(input, spec);
                    var got = model.Forward(input, spec);
                    Assert.Equal(want.ComputedPairs, got.ComputedPairs);
                    Assert.DoesNotContain(got.Output, v => !float.IsFinite(v));
                    double num = 0, den = 0;
                    for (var i = 0; i < want.Output.Length; i++)
                    {
                        num += (got.Output[i] - (double)want.Output[i]) * (got.Output[i] - want.Output[i]);
                        den += want.Output[i] * (double)want.Output[i];
                    }

                    var err = Math.Sqrt(num / den);
                    Assert.True(err <= Bf16Tolerance, $"{spec.Pattern}: relative error {err:E2} > {Bf16Tolerance:E0}");
                }
            }
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}
