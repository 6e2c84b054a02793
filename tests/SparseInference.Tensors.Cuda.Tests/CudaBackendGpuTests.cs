using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Kernels;
using SparseInference.Tensors.Cuda.Memory;
using SparseInference.Tensors.Cuda.Tests.Attention;

namespace SparseInference.Tensors.Cuda.Tests;

/// <summary>
/// On a GPU machine these run; elsewhere they skip with the backend's reason. The full op-by-op
/// comparison on the device is tools/SparseInference.CudaSelfTest.
/// </summary>
public class CudaBackendGpuTests
{
    [GpuFact]
    public void LayerNorm_RandomRows_MatchesReference()
    {
        Assert.True(CudaDevice.TryCreate(out var gpu, out var reason), reason);
        using (gpu)
        {
            const int rows = 37, cols = 96;
            var rng = new Random(11);
            var x = Enumerable.Range(0, rows * cols).Select(_ => (float)((rng.NextDouble() * 4) - 2)).ToArray();
            var gamma = Enumerable.Range(0, cols).Select(_ => (float)rng.NextDouble()).ToArray();
            var beta = Enumerable.Range(0, cols).Select(_ => (float)rng.NextDouble()).ToArray();
            using var dx = gpu!.Allocate(x.Length * 4L);
            using var dg = gpu.Allocate(cols * 4L, MemoryCategory.Weights);
            using var db = gpu.Allocate(cols * 4L, MemoryCategory.Weights);
            using var dy = gpu.Allocate(x.Length * 4L);
            gpu.Upload<float>(x, dx);
            gpu.Upload<float>(gamma, dg);
            gpu.Upload<float>(beta, db);
            gpu.Fill32(dy, 0x7FC00000);
            gpu.Elementwise.LayerNorm(dx, dg, db, dy, rows, cols, 1e-5f);
            var y = new float[x.Length];
            gpu.Download<float>(dy, y);

            for (var r = 0; r < rows; r++)
            {
                var row = x.AsSpan(r * cols, cols).ToArray();
                var mean = row.Average();
                var variance = row.Select(v => (v - mean) * (v - mean)).Average();
                for (var c = 0; c < cols; c++)
                {
                    var expected = ((row[c] - mean) / Math.Sqrt(variance + 1e-5) * gamma[c]) + beta[c];
                    Assert.Equal(expected, y[(r * cols) + c], 4);
                }
            }
        }
    }

    [GpuFact]
    public void Attention_WindowLayout_MatchesReference()
    {
        var geometry = AttentionGeometry.Contiguous(1, 1, 256, 64);
        var error = AttentionReference.RelativeError(geometry, CsrBlockLayout.Window(1, 1, 256, 64, 0.5), lengths: null, seed: 5);
        Assert.True(error <= 1e-2, $"relative error {error:E2} > 1e-2");
    }

    [GpuFact]
    public void Attention_SmallHeadsDense_MatchesReference()
    {
        // The default sensor model's shape: 4 heads of 8 over 64-step windows; one window shorter than the batch.
        var geometry = AttentionGeometry.Contiguous(3, 4, 64, 8);
        var error = AttentionReference.RelativeError(geometry, layout: null, lengths: [64, 41, 64], seed: 8);
        Assert.True(error <= 1e-2, $"relative error {error:E2} > 1e-2");
    }

    [GpuFact]
    public void Attention_SmallHeadsBlocksOf8_MatchesReference()
    {
        var geometry = AttentionGeometry.Contiguous(2, 4, 64, 8);
        var error = AttentionReference.RelativeError(geometry, CsrBlockLayout.Window(2, 4, 64, 8, 0.75), lengths: [64, 30], seed: 9);
        Assert.True(error <= 1e-2, $"relative error {error:E2} > 1e-2");
    }

    [GpuFact]
    public void Attention_HeadDim48LongBlocks_MatchesReference()
    {
        // Head dim 48 and blocks of 96: neither fits the tensor-core kernel, and a block spans several staged steps.
        var geometry = AttentionGeometry.Contiguous(1, 2, 288, 48);
        var error = AttentionReference.RelativeError(geometry, CsrBlockLayout.Window(1, 2, 288, 96, 0.5), lengths: null, seed: 10);
        Assert.True(error <= 1e-2, $"relative error {error:E2} > 1e-2");
    }


    [GpuFact]
    public void PrepareWeight_LinearWeight_CountsAsWeightsUntilDisposed()
    {
        Assert.True(CudaComputeBackend.TryCreate(out var gpu, out var reason), reason);
        using (gpu)
        {
            var before = gpu!.MemoryStatistics;
            var weight = gpu.FromHost(new float[1024 * 512], 1024, 512);
            Assert.Equal(before.WeightBytes, gpu.MemoryStatistics.WeightBytes);

            gpu.PrepareWeight(weight, transposed: true);
            gpu.PrepareWeight(weight, transposed: true); // preparing twice counts once
            var prepared = gpu.MemoryStatistics;
            Assert.Equal(before.WeightBytes + DeviceMemoryPool.SizeClass(1024 * 512 * 4), prepared.WeightBytes);
            Assert.Equal(before.ActivationBytes, prepared.ActivationBytes);

            weight.Dispose();
            Assert.Equal(before.WeightBytes, gpu.MemoryStatistics.WeightBytes);
        }
    }

    [GpuFact]
    public void Linear_BFloat16InputsWithGelu_MatchesCpuBackend()
    {
        Assert.True(CudaComputeBackend.TryCreate(out var gpu, out var reason, new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16Inputs }), reason);
        using (gpu)
        using (var cpu = new SparseInference.Tensors.Cpu.CpuBackend())
        {
            Assert.NotNull(gpu);
            const int rows = 200, inFeatures = 128, outFeatures = 96;
            var rng = new Random(17);
            float[] Random(int n, float scale) => Enumerable.Range(0, n).Select(_ => (float)(((rng.NextDouble() * 2) - 1) * scale)).ToArray();
            var x = Random(rows * inFeatures, 2f);
            var w = Random(outFeatures * inFeatures, 0.2f);
            var b = Random(outFeatures, 1f);
            using var gx = gpu.FromHost(x, rows, inFeatures);
            using var gw = gpu.FromHost(w, outFeatures, inFeatures);
            using var gb = gpu.FromHost(b, outFeatures);
            using var gy = gpu.FromHost(Enumerable.Repeat(float.NaN, rows * outFeatures).ToArray(), rows, outFeatures);
            using var cx = cpu.FromHost(x, rows, inFeatures);
            using var cw = cpu.FromHost(w, outFeatures, inFeatures);
            using var cb = cpu.FromHost(b, outFeatures);
            using var cy = cpu.Allocate(rows, outFeatures);

            // Twice, the weight re-uploaded in between: the second product must not reuse the first weight's BF16 copy.
            gpu.Linear(gx, gw, gb, gy, Activation.Gelu);
            var w2 = Random(outFeatures * inFeatures, 0.2f);
            gw.Upload<float>(w2);
            cw.Upload<float>(w2);
            gpu.Linear(gx, gw, gb, gy, Activation.Gelu);
            cpu.Linear(cx, cw, cb, cy, Activation.Gelu);

            var got = gy.ToArray<float>();
            var want = cy.ToArray<float>();
            Assert.DoesNotContain(got, float.IsNaN);
            var err = Math.Sqrt(got.Zip(want, (g, e) => (double)(g - e) * (g - e)).Sum() / want.Sum(e => (double)e * e));
            Assert.True(err <= 1e-2, $"relative error {err:E2} > 1e-2");
        }
    }

    [GpuFact]
    public void ReleaseCachedMemory_AfterTensorsDisposed_ReturnsDeviceMemoryToDriver()
    {
        Assert.True(CudaComputeBackend.TryCreate(out var gpu, out var reason), reason);
        using (gpu)
        {
            gpu!.ReleaseCachedMemory();
            var (before, _) = gpu.Gpu.DeviceMemoryInfo();
            const int Rows = 64 << 10, Cols = 1024;
            using (var t = gpu.Allocate(new Shape(Rows, Cols), DType.F32))
            {
                gpu.Scale(t, 2f, t);
                gpu.Gpu.Synchronize();
                var (held, _) = gpu.Gpu.DeviceMemoryInfo();
                Assert.True(before - held >= 4L * Rows * Cols, $"allocating {4L * Rows * Cols >> 20} MiB lowered free memory by {(before - held) >> 20} MiB only");
            }

            gpu.ReleaseCachedMemory();
            var (after, _) = gpu.Gpu.DeviceMemoryInfo();
            Assert.True(Math.Abs(after - before) <= 2L << 20, $"free memory {before >> 20} MiB before, {after >> 20} MiB after dispose and release");
        }
    }

    [Fact]
    public void SupportsAttention_HeadDim128BlockSize48_IsReportedUnsupportedByBothKernels()
    {
        var geometry = AttentionGeometry.Contiguous(1, 1, 240, 128);
        var layout = CsrBlockLayout.Dense(1, 1, 240, 48);

        Assert.False(AttentionKernels.Supports(geometry, layout, out var why));
        Assert.Contains("block size 48 (supported: 16, 32, 64, 128) for the tensor-core kernel", why);
        Assert.Contains("head dim 128 (supported: 1 to 64) for the small-head kernel", why);
    }

    [Fact]
    public void SupportsAttention_HeadDim8BlockSize8_IsTakenBySmallHeadKernel()
    {
        var geometry = AttentionGeometry.Contiguous(2, 4, 64, 8);

        Assert.True(AttentionKernels.Supports(geometry, CsrBlockLayout.Dense(2, 4, 64, 8), out var why), why);
        Assert.False(AttentionKernels.TensorCoreKernelTakes(geometry, null, out _));
    }

    [Fact]
    public void SupportsAttention_HeadDim96_IsReportedUnsupported()
    {
        Assert.False(AttentionKernels.Supports(AttentionGeometry.Contiguous(1, 1, 64, 96), null, out var why));
        Assert.Contains("head dim 96", why);
    }
}
