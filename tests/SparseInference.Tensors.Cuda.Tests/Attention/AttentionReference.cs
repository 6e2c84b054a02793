using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Tests.Attention;

/// <summary>GPU attention against a double-precision softmax: the one reference every kernel test uses.</summary>
internal static class AttentionReference
{
    /// <summary>
    /// Runs <see cref="Kernels.AttentionKernels.Run"/> on BF16-exact random q, k, v (output poisoned with NaN first) and returns
    /// ‖out − ref‖ / ‖ref‖ against a double-precision softmax over the listed key blocks (every key when dense) up to
    /// each sequence's length; queries past it must come back as zeros. <paramref name="checkRow"/> samples the query rows
    /// checked (all by default); q and k are drawn from ±<paramref name="qkScale"/>, v from ±1.
    /// </summary>
    public static double RelativeError(AttentionGeometry geometry, CsrBlockLayout? layout, int[]? lengths, int seed,
        AttentionKernel kernel = AttentionKernel.Auto, float qkScale = 1f, Func<int, bool>? checkRow = null)
    {
        Assert.True(CudaDevice.TryCreate(out var gpu, out var reason), reason);
        using (gpu)
        {
            var (batch, heads, t, d) = (geometry.Batch, geometry.Heads, geometry.SeqLen, geometry.HeadDim);
            var n = (int)geometry.Elements;
            var rng = new Random(seed);
            float Bf16Round(float f) => BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(f) & 0xFFFF0000u);
            float[] Random(float scale) => Enumerable.Range(0, n).Select(_ => Bf16Round((float)(((rng.NextDouble() * 2) - 1) * scale))).ToArray();
            var (q, k, v) = (Random(qkScale), Random(qkScale), Random(1f));
            ushort[] Bits(float[] x) => x.Select(f => (ushort)(BitConverter.SingleToUInt32Bits(f) >> 16)).ToArray();
            using var dq = gpu!.Allocate(n * 2L);
            using var dk = gpu.Allocate(n * 2L);
            using var dv = gpu.Allocate(n * 2L);
            using var dout = gpu.Allocate(n * 2L);
            using var dlengths = gpu.Allocate(batch * 4L);
            gpu.Upload<ushort>(Bits(q), dq);
            gpu.Upload<ushort>(Bits(k), dk);
            gpu.Upload<ushort>(Bits(v), dv);
            if (lengths is not null)
            {
                gpu.Upload<int>(lengths, dlengths);
            }

            using var dl = layout is null ? null : gpu.Attention.Upload(layout);
            gpu.Fill32(dout, 0x7FC07FC0);
            gpu.Attention.Run(dq, dk, dv, dout, geometry, dl, lengths is null ? null : dlengths, kernel: kernel);
            var got = new ushort[n];
            gpu.Download<ushort>(dout, got);

            double num = 0, den = 0;
            for (var b = 0; b < batch; b++)
            {
                var len = lengths?[b] ?? t;
                for (var h = 0; h < heads; h++)
                {
                    var slice = ((b * heads) + h) * t * d;
                    for (var i = 0; i < t; i++)
                    {
                        if (checkRow is not null && !checkRow(i))
                        {
                            continue;
                        }

                        int[] keys = layout is null
                            ? [.. Enumerable.Range(0, len)]
                            : [.. layout.KeyBlocks(b, h, i / layout.BlockSize).ToArray().SelectMany(kb => Enumerable.Range(kb * layout.BlockSize, layout.BlockSize)).Where(j => j < len)];
                        var scores = keys.Select(j => Enumerable.Range(0, d).Sum(c => (double)q[slice + (i * d) + c] * k[slice + (j * d) + c]) / Math.Sqrt(d)).ToArray();
                        var max = scores.Length == 0 ? 0 : scores.Max();
                        var weights = scores.Select(s => Math.Exp(s - max)).ToArray();
                        var sum = weights.Sum();
                        for (var c = 0; c < d; c++)
                        {
                            var actual = BitConverter.UInt32BitsToSingle((uint)got[slice + (i * d) + c] << 16);
                            Assert.False(float.IsNaN(actual), $"output ({b}, {h}, {i}, {c}) was not written");
                            if (i >= len || keys.Length == 0)
                            {
                                Assert.Equal(0f, actual);
                                continue;
                            }

                            var expected = keys.Select((j, m) => weights[m] * v[slice + (j * d) + c]).Sum() / sum;
                            num += (actual - expected) * (actual - expected);
                            den += expected * expected;
                        }
                    }
                }
            }

            return Math.Sqrt(num / den);
        }
    }
}
