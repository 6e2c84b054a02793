using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Kernels;

namespace SparseInference.Tensors.Cuda.Tests.Attention;

/// <summary>Which calls the Hopper (wgmma) attention kernel takes, and (on a GPU) that it matches a reference.</summary>
public class WgmmaAttentionTests
{
    private static CudaDeviceInfo Device(int major, int minor) => new(0, "test", major, minor, 132, 80L << 30, 50 << 20, 13000, "13.0", 130100);

    [Fact]
    public void SupportsWgmmaAttention_Hopper_HeadDim64Block128_IsSupported()
    {
        var geometry = AttentionGeometry.Contiguous(2, 8, 4096, 64);

        Assert.True(AttentionKernels.SupportsWgmma(Device(9, 0), geometry, CsrBlockLayout.Window(2, 8, 4096, 128, 0.5), CudaElementType.BFloat16, out var why), why);
        Assert.True(AttentionKernels.SupportsWgmma(Device(9, 0), geometry, null, CudaElementType.Float16, out why), why);
    }

    [Theory]
    [InlineData(8, 0, 64, 128, "compute capability 8.0")]
    [InlineData(8, 9, 64, 128, "compute capability 8.9")]
    [InlineData(9, 0, 128, 128, "head dim 128")]
    [InlineData(9, 0, 32, 128, "head dim 32")]
    [InlineData(9, 0, 64, 64, "block size 64")]
    public void SupportsWgmmaAttention_OtherDeviceOrShape_NamesTheReason(int major, int minor, int headDim, int blockSize, string reason)
    {
        var geometry = AttentionGeometry.Contiguous(1, 2, 1024, headDim);

        var supported = AttentionKernels.SupportsWgmma(Device(major, minor), geometry, CsrBlockLayout.Window(1, 2, 1024, blockSize, 0.5), CudaElementType.BFloat16, out var why);

        Assert.False(supported);
        Assert.Contains(reason, why, StringComparison.Ordinal);
    }

    [Fact]
    public void SupportsWgmmaAttention_Float32_IsNotSupported() =>
        Assert.False(AttentionKernels.SupportsWgmma(Device(9, 0), AttentionGeometry.Contiguous(1, 1, 256, 64), null, CudaElementType.Float32, out _));

    [Theory]
    [InlineData(9, 0, true)]
    [InlineData(8, 0, false)]
    [InlineData(8, 9, false)]
    [InlineData(10, 0, false)]
    public void HasWgmma_OnlyComputeCapability90(int major, int minor, bool expected) => Assert.Equal(expected, Device(major, minor).HasWgmma);

    /// <summary>
    /// The wgmma kernel (on a non-Hopper GPU: its mma.sync fallback) against a double-precision reference: ragged
    /// lengths (a partial last key tile, a query block past the length) and a BigBird layout whose global row is split
    /// over several CTAs and merged by attention_combine.
    /// </summary>
    [GpuFact]
    public void Attention_WgmmaBigBirdRaggedSplitRows_MatchesReference()
    {
        const int heads = 2, t = 1536, block = 128;
        var layout = CsrBlockLayout.BigBird(2, heads, t, block, 0.75, globalBlocks: 1, seed: 3, layer: 0);
        Assert.NotNull(AttentionWorkPlanner.PlanSplits(layout, heads));

        // Every query of the split global block 0, and a sample of the others (all of the last block).
        var error = AttentionReference.RelativeError(AttentionGeometry.Contiguous(2, heads, t, 64), layout, lengths: [1536, 1000], seed: 17,
            AttentionKernel.Wgmma, qkScale: 1.5f, checkRow: i => i < block || i % 7 == 0 || i >= t - block);
        Assert.True(error <= 1e-2, $"relative error {error:E2} > 1e-2");
    }

    /// <summary>
    /// Dense calls of the Hopper kernel (the warp-specialised 192-query build on 9.0; elsewhere the mma.sync kernel)
    /// against a double-precision reference: two sequences, the second ending inside a key tile and inside a query tile.
    /// </summary>
    [GpuFact]
    public void Attention_WgmmaDenseRagged_MatchesReference()
    {
        var error = AttentionReference.RelativeError(AttentionGeometry.Contiguous(2, 3, 700, 64), layout: null, lengths: [700, 450], seed: 23,
            AttentionKernel.Wgmma, qkScale: 1.5f, checkRow: i => i >= 380 || i % 3 == 0);
        Assert.True(error <= 1e-2, $"relative error {error:E2} > 1e-2");
    }

    [GpuFact]
    public void Default_OnComputeCapability90_IsWgmma()
    {
        Assert.True(CudaDevice.TryCreate(out var gpu, out var reason), reason);
        using (gpu)
        {
            Assert.Equal(gpu!.Info.HasWgmma ? AttentionKernel.Wgmma : AttentionKernel.MmaSync, gpu.Attention.Default);
            if (gpu.Info.HasWgmma)
            {
                // Two CTAs of 256 threads per multiprocessor leave at most 128 registers per thread.
                var (registers, _) = gpu.Attention.Resources(64, 128, AttentionKernel.Wgmma);
                Assert.InRange(registers, 1, 128);
            }
        }
    }
}
