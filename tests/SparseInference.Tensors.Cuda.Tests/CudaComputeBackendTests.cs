using SparseInference.Tensors.Cpu;

namespace SparseInference.Tensors.Cuda.Tests;

/// <summary>The host-side parts of the contract implementation, which need no GPU.</summary>
public class CudaComputeBackendTests
{
    [Fact]
    public void CountPairs_WindowLayoutWithShortSequence_MatchesCpuBackend()
    {
        // The CPU backend is the reference for computed pairs; run it for real on small inputs.
        using var cpu = new CpuBackend();
        const int batch = 2, seqLen = 100, heads = 3, headDim = 8, block = 16;
        var n = BlockLayout.BlocksFor(seqLen, block);
        var builder = new BlockLayout.Builder(block, batch, heads, n, sharedAcrossHeads: false);
        for (var b = 0; b < batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var qb = 0; qb < n; qb++)
                {
                    builder.AddRow(Enumerable.Range(0, n).Where(kb => Math.Abs(kb - qb) <= h).ToArray());
                }
            }
        }

        var layout = builder.Build();
        int[] lengths = [100, 37];
        var qkv = Enumerable.Range(0, batch * seqLen * 3 * heads * headDim).Select(i => (float)Math.Sin(i)).ToArray();
        using var packed = cpu.FromHost(qkv, batch, seqLen, 3 * heads * headDim);
        using var output = cpu.Allocate(batch, seqLen, heads * headDim);
        var inputs = AttentionInputs.Packed(packed, heads);

        var expected = cpu.Attention(inputs, output, lengths, layout);
        var counted = CudaComputeBackend.CountPairs(inputs, lengths, layout);

        Assert.Equal(expected, counted);
        Assert.True(counted.ComputedPairs < counted.DensePairs);
    }

    [Fact]
    public void CountPairs_Dense_IsHeadsTimesLengthSquared()
    {
        using var cpu = new CpuBackend();
        using var q = cpu.Allocate(2, 2, 10, 4);
        var inputs = AttentionInputs.Separate(q, q, q, heads: 2);

        var result = CudaComputeBackend.CountPairs(inputs, [10, 3], layout: null);

        Assert.Equal(2L * ((10 * 10) + (3 * 3)), result.ComputedPairs);
        Assert.Equal(result.ComputedPairs, result.DensePairs);
    }

    [Fact]
    public void ToCsr_SharedLayout_KeepsOneRowPerQueryBlock()
    {
        var shared = BlockLayout.Dense(batch: 2, heads: 4, seqLen: 256, blockSize: 64);

        var csr = CudaComputeBackend.ToCsr(shared);

        Assert.Equal(1, csr.Heads);
        Assert.Equal(2 * 4 + 1, csr.Offsets.Length);
        Assert.Equal(shared.KeyBlockIndices.ToArray(), csr.Indices.ToArray());
    }
}
