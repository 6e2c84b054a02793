using SparseInference.Tensors.Cuda.Attention;

namespace SparseInference.Tensors.Cuda.Tests.Attention;

/// <summary>Which calls the Hopper (wgmma) attention kernel takes, and (on a GPU) that it matches a reference.</summary>
public class WgmmaAttentionTests
{
    private static CudaDeviceInfo Device(int major, int minor) => new(0, "test", major, minor, 132, 80L << 30, 50 << 20, 13000, "13.0", 130100);

    [Fact]
    public void SupportsWgmmaAttention_Hopper_HeadDim64Block128_IsSupported()
    {
        var geometry = AttentionGeometry.Contiguous(2, 8, 4096, 64);

        Assert.True(CudaBackend.SupportsWgmmaAttention(Device(9, 0), geometry, CsrBlockLayout.Window(2, 8, 4096, 128, 0.5), CudaElementType.BFloat16, out var why), why);
        Assert.True(CudaBackend.SupportsWgmmaAttention(Device(9, 0), geometry, null, CudaElementType.Float16, out why), why);
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

        var supported = CudaBackend.SupportsWgmmaAttention(Device(major, minor), geometry, CsrBlockLayout.Window(1, 2, 1024, blockSize, 0.5), CudaElementType.BFloat16, out var why);

        Assert.False(supported);
        Assert.Contains(reason, why, StringComparison.Ordinal);
    }

    [Fact]
    public void SupportsWgmmaAttention_Float32_IsNotSupported() =>
        Assert.False(CudaBackend.SupportsWgmmaAttention(Device(9, 0), AttentionGeometry.Contiguous(1, 1, 256, 64), null, CudaElementType.Float32, out _));

    [Fact]
    public void Hopper_Variant_UsesWgmmaWithTwoStagesAndTwoCtasPerMultiprocessorAndWarpSpecializedDense()
    {
        Assert.True(AttentionKernelVariant.Hopper.Wgmma);
        Assert.True(AttentionKernelVariant.Hopper.WarpSpecializedDense);
        Assert.Equal(2, AttentionKernelVariant.Hopper.Stages);
        Assert.Equal(2, AttentionKernelVariant.Hopper.MinBlocksPerMultiprocessor);
        Assert.False(AttentionKernelVariant.Default.Wgmma);
    }

    /// <summary>
    /// The wgmma variant (on a non-Hopper GPU: its mma.sync fallback) against a double-precision reference: ragged
    /// lengths (a partial last key tile, a query block past the length) and a BigBird layout whose global row is split
    /// over several CTAs and merged by attention_combine.
    /// </summary>
    [GpuFact]
    public void Attention_WgmmaVariantBigBirdRaggedSplitRows_MatchesReference()
    {
        Assert.True(CudaBackend.TryCreate(out var gpu, out var reason), reason);
        using (gpu)
        {
            const int batch = 2, heads = 2, t = 1536, d = 64, block = 128;
            int[] lens = [1536, 1000];
            var layout = CsrBlockLayout.BigBird(batch, heads, t, block, 0.75, globalBlocks: 1, seed: 3, layer: 0);
            Assert.NotNull(CudaBackend.PlanSplits(layout, heads));
            var geometry = AttentionGeometry.Contiguous(batch, heads, t, d);
            var n = (int)geometry.Elements;
            var rng = new Random(17);
            float Bf16Round(float f) => BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(f) & 0xFFFF0000u);
            float[] Random(float scale) => Enumerable.Range(0, n).Select(_ => Bf16Round((float)(((rng.NextDouble() * 2) - 1) * scale))).ToArray();
            ushort[] Bits(float[] x) => x.Select(f => (ushort)(BitConverter.SingleToUInt32Bits(f) >> 16)).ToArray();
            var q = Random(1.5f);
            var k = Random(1.5f);
            var v = Random(1f);
            using var dq = gpu!.Allocate(n * 2L);
            using var dk = gpu.Allocate(n * 2L);
            using var dv = gpu.Allocate(n * 2L);
            using var dout = gpu.Allocate(n * 2L);
            using var dlens = gpu.Allocate(lens.Length * 4L);
            gpu.Upload<ushort>(Bits(q), dq);
            gpu.Upload<ushort>(Bits(k), dk);
            gpu.Upload<ushort>(Bits(v), dv);
            gpu.Upload<int>(lens, dlens);
            using var dl = gpu.Upload(layout);
            gpu.Fill32(dout, 0x7FC07FC0);
            gpu.Attention(dq, dk, dv, dout, geometry, dl, dlens, variant: AttentionKernelVariant.Hopper);
            var got = new ushort[n];
            gpu.Download<ushort>(dout, got);

            double num = 0, den = 0;
            for (var b = 0; b < batch; b++)
            {
                for (var h = 0; h < heads; h++)
                {
                    // Every query of the split global block 0, and a sample of the others (all of the last block).
                    var rows = Enumerable.Range(0, block).Concat(Enumerable.Range(block, t - block).Where(i => i % 7 == 0 || i >= t - block));
                    foreach (var i in rows)
                    {
                        var baseOffset = ((b * heads) + h) * t;
                        var keys = layout.KeyBlocks(b, h, i / block).ToArray().SelectMany(kb => Enumerable.Range(kb * block, block)).Where(j => j < lens[b]).ToArray();
                        var row = i;
                        var scores = i < lens[b] ? keys.Select(j => Enumerable.Range(0, d).Sum(x => (double)q[((baseOffset + row) * d) + x] * k[((baseOffset + j) * d) + x]) / Math.Sqrt(d)).ToArray() : [0.0];
                        var max = scores.Max();
                        var weights = scores.Select(s => Math.Exp(s - max)).ToArray();
                        var sum = weights.Sum();
                        for (var c = 0; c < d; c++)
                        {
                            var actual = BitConverter.UInt32BitsToSingle((uint)got[((baseOffset + i) * d) + c] << 16);
                            Assert.False(float.IsNaN(actual), $"output ({b}, {h}, {i}, {c}) was not written");
                            if (i >= lens[b])
                            {
                                Assert.Equal(0f, actual);
                                continue;
                            }

                            var column = c;
                            var expected = keys.Select((j, m) => weights[m] * v[((baseOffset + j) * d) + column]).Sum() / sum;
                            num += (actual - expected) * (actual - expected);
                            den += expected * expected;
                        }
                    }
                }
            }

            Assert.True(Math.Sqrt(num / den) <= 1e-2, $"relative error {Math.Sqrt(num / den):E2} > 1e-2");
        }
    }

    /// <summary>
    /// Dense calls of the Hopper variant (the warp-specialised 192-query build on 9.0; elsewhere the mma.sync kernel)
    /// against a double-precision reference: two sequences, the second ending inside a key tile and inside a query tile.
    /// </summary>
    [GpuFact]
    public void Attention_WgmmaVariantDenseRagged_MatchesReference()
    {
        Assert.True(CudaBackend.TryCreate(out var gpu, out var reason), reason);
        using (gpu)
        {
            const int batch = 2, heads = 3, t = 700, d = 64;
            int[] lens = [700, 450];
            var geometry = AttentionGeometry.Contiguous(batch, heads, t, d);
            var n = (int)geometry.Elements;
            var rng = new Random(23);
            float Bf16Round(float f) => BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(f) & 0xFFFF0000u);
            float[] Random(float scale) => Enumerable.Range(0, n).Select(_ => Bf16Round((float)(((rng.NextDouble() * 2) - 1) * scale))).ToArray();
            ushort[] Bits(float[] x) => x.Select(f => (ushort)(BitConverter.SingleToUInt32Bits(f) >> 16)).ToArray();
            var q = Random(1.5f);
            var k = Random(1.5f);
            var v = Random(1f);
            using var dq = gpu!.Allocate(n * 2L);
            using var dk = gpu.Allocate(n * 2L);
            using var dv = gpu.Allocate(n * 2L);
            using var dout = gpu.Allocate(n * 2L);
            using var dlens = gpu.Allocate(lens.Length * 4L);
            gpu.Upload<ushort>(Bits(q), dq);
            gpu.Upload<ushort>(Bits(k), dk);
            gpu.Upload<ushort>(Bits(v), dv);
            gpu.Upload<int>(lens, dlens);
            gpu.Fill32(dout, 0x7FC07FC0);
            gpu.Attention(dq, dk, dv, dout, geometry, null, dlens, variant: AttentionKernelVariant.Hopper);
            var got = new ushort[n];
            gpu.Download<ushort>(dout, got);

            double num = 0, den = 0;
            for (var bh = 0; bh < batch * heads; bh++)
            {
                var len = lens[bh / heads];
                var baseOffset = bh * t;
                for (var i = 0; i < t; i += i < 380 ? 3 : 1)
                {
                    var row = i;
                    var weights = Array.Empty<double>();
                    double sum = 0;
                    if (i < len)
                    {
                        var scores = Enumerable.Range(0, len).Select(j => Enumerable.Range(0, d).Sum(x => (double)q[((baseOffset + row) * d) + x] * k[((baseOffset + j) * d) + x]) / Math.Sqrt(d)).ToArray();
                        var max = scores.Max();
                        weights = scores.Select(s => Math.Exp(s - max)).ToArray();
                        sum = weights.Sum();
                    }

                    for (var c = 0; c < d; c++)
                    {
                        var actual = BitConverter.UInt32BitsToSingle((uint)got[((baseOffset + i) * d) + c] << 16);
                        Assert.False(float.IsNaN(actual), $"output ({bh}, {i}, {c}) was not written");
                        if (i >= len)
                        {
                            Assert.Equal(0f, actual);
                            continue;
                        }

                        var column = c;
                        var expected = weights.Select((w, j) => w * v[((baseOffset + j) * d) + column]).Sum() / sum;
                        num += (actual - expected) * (actual - expected);
                        den += expected * expected;
                    }
                }
            }

            Assert.True(Math.Sqrt(num / den) <= 1e-2, $"relative error {Math.Sqrt(num / den):E2} > 1e-2");
        }
    }

    [GpuFact]
    public void AttentionVariant_OnComputeCapability90_DefaultsToHopper()
    {
        Assert.True(CudaBackend.TryCreate(out var gpu, out var reason), reason);
        using (gpu)
        {
            var expected = CudaBackend.HasWgmma(gpu!.Device) ? AttentionKernelVariant.Hopper : AttentionKernelVariant.Default;
            Assert.Equal(expected, gpu.AttentionVariant);
            if (CudaBackend.HasWgmma(gpu.Device))
            {
                // Two CTAs of 256 threads per multiprocessor leave at most 128 registers per thread.
                var (registers, _) = gpu.AttentionResources(64, 128, AttentionKernelVariant.Hopper);
                Assert.InRange(registers, 1, 128);
            }
        }
    }
}
