using System.Text;

namespace SparseInference.Tensors.Cuda.Attention;

/// <summary>
/// The attention kernel's view of a block-sparse layout: the contract's <see cref="BlockLayout"/> (which checks and
/// holds the CSR arrays) seen as rows r = (b·Heads + h)·NumQueryBlocks + qb, with Heads = 1 for a layout shared across
/// heads. The kernel walks <c>Indices[Offsets[r] .. Offsets[r+1])</c>. Key blocks number as many as query blocks.
/// </summary>
public sealed class CsrBlockLayout
{
    /// <summary>Wraps a contract layout; no copy.</summary>
    public CsrBlockLayout(BlockLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        Layout = layout;
    }

    /// <summary>Checks and wraps CSR arrays (one row per (batch, head, query block)); the checks are <see cref="BlockLayout"/>'s.</summary>
    public CsrBlockLayout(int batch, int heads, int numQueryBlocks, int numKeyBlocks, int blockSize, int[] offsets, int[] indices)
        : this(Checked(batch, heads, numQueryBlocks, numKeyBlocks, blockSize, offsets, indices))
    {
    }

    private static BlockLayout Checked(int batch, int heads, int numQueryBlocks, int numKeyBlocks, int blockSize, int[] offsets, int[] indices)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numQueryBlocks);
        if (numKeyBlocks != numQueryBlocks)
        {
            throw new ArgumentException($"numKeyBlocks: expected {numQueryBlocks} (as many key blocks as query blocks), got {numKeyBlocks}.", nameof(numKeyBlocks));
        }

        return new BlockLayout(blockSize, batch, heads, numQueryBlocks, sharedAcrossHeads: false, offsets, indices);
    }

    /// <summary>The contract layout behind this view.</summary>
    public BlockLayout Layout { get; }

    public int Batch => Layout.Batch;

    /// <summary>Heads with a row of their own: 1 when the layout is shared across heads.</summary>
    public int Heads => Layout.SharedAcrossHeads ? 1 : Layout.Heads;

    public int NumQueryBlocks => Layout.QueryBlocks;

    public int NumKeyBlocks => Layout.QueryBlocks;

    public int BlockSize => Layout.BlockSize;

    public ReadOnlySpan<int> Offsets => Layout.RowOffsets;

    public ReadOnlySpan<int> Indices => Layout.KeyBlockIndices;

    /// <summary>The key blocks of one (batch, head, query block); h &lt; <see cref="Heads"/>.</summary>
    public ReadOnlySpan<int> KeyBlocks(int b, int h, int qb)
    {
        var r = (b * Heads + h) * NumQueryBlocks + qb;
        var offsets = Offsets;
        return Indices.Slice(offsets[r], offsets[r + 1] - offsets[r]);
    }

    /// <summary>Builds a layout from a selection predicate (b, h, qb, kb) → attended.</summary>
    public static CsrBlockLayout FromPredicate(int batch, int heads, int numQueryBlocks, int numKeyBlocks, int blockSize, Func<int, int, int, int, bool> selects)
    {
        ArgumentNullException.ThrowIfNull(selects);
        var offsets = new int[batch * heads * numQueryBlocks + 1];
        var indices = new List<int>();
        var row = 0;
        for (var b = 0; b < batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var qb = 0; qb < numQueryBlocks; qb++)
                {
                    for (var kb = 0; kb < numKeyBlocks; kb++)
                    {
                        if (selects(b, h, qb, kb))
                        {
                            indices.Add(kb);
                        }
                    }

                    offsets[++row] = indices.Count;
                }
            }
        }

        return new CsrBlockLayout(batch, heads, numQueryBlocks, numKeyBlocks, blockSize, offsets, [.. indices]);
    }

    /// <summary>Number of blocks for a length: ceil(length / blockSize).</summary>
    public static int BlockCount(int length, int blockSize) => (length + blockSize - 1) / blockSize;

    /// <summary>Key blocks per query block, K = clamp(round((1 − s)·n), 1, n), as model-format.md defines it.</summary>
    public static int Budget(double sparsity, int n)
    {
        if (!(sparsity >= 0 && sparsity < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(sparsity), sparsity, "sparsity: expected a value in [0, 1).");
        }

        return Math.Clamp((int)Math.Floor(((1 - sparsity) * n) + 0.5), 1, n);
    }

    public static CsrBlockLayout Dense(int batch, int heads, int seqLen, int blockSize)
    {
        var n = BlockCount(seqLen, blockSize);
        return FromPredicate(batch, heads, n, n, blockSize, static (_, _, _, _) => true);
    }

    /// <summary>The `window` pattern: |kb − qb| ≤ r, r = (K − 1) div 2.</summary>
    public static CsrBlockLayout Window(int batch, int heads, int seqLen, int blockSize, double sparsity)
    {
        var n = BlockCount(seqLen, blockSize);
        var r = (Budget(sparsity, n) - 1) / 2;
        return FromPredicate(batch, heads, n, n, blockSize, (_, _, qb, kb) => Math.Abs(kb - qb) <= r);
    }

    /// <summary>
    /// The `bigbird` pattern: |kb − qb| ≤ 1, global blocks 0 … G−1 (global query blocks attend all),
    /// plus R = max(0, K − |window ∪ global|) random blocks with the smallest u(seed, layer, 0, qb, kb).
    /// </summary>
    public static CsrBlockLayout BigBird(int batch, int heads, int seqLen, int blockSize, double sparsity, int globalBlocks, ulong seed, int layer)
    {
        var n = BlockCount(seqLen, blockSize);
        var k = Budget(sparsity, n);
        var g = Math.Min(globalBlocks, n);
        var selected = new bool[n, n];
        for (var qb = 0; qb < n; qb++)
        {
            if (qb < g)
            {
                for (var kb = 0; kb < n; kb++)
                {
                    selected[qb, kb] = true;
                }

                continue;
            }

            var count = 0;
            for (var kb = 0; kb < n; kb++)
            {
                if (Math.Abs(kb - qb) <= 1 || kb < g)
                {
                    selected[qb, kb] = true;
                    count++;
                }
            }

            var extra = Math.Max(0, k - count);
            var candidates = Enumerable.Range(0, n).Where(kb => !selected[qb, kb])
                .OrderBy(kb => SeededUniform.U(seed, (ulong)layer, 0, (ulong)qb, (ulong)kb)).ThenBy(kb => kb)
                .Take(extra).ToArray();
            foreach (var kb in candidates)
            {
                selected[qb, kb] = true;
            }
        }

        return FromPredicate(batch, heads, n, n, blockSize, (_, _, qb, kb) => selected[qb, kb]);
    }

    /// <summary>Computed (query, key) pairs over dense pairs for sequences of length <paramref name="seqLen"/>.</summary>
    public double Density(int seqLen)
    {
        double computed = 0;
        for (var b = 0; b < Batch; b++)
        {
            for (var h = 0; h < Heads; h++)
            {
                for (var qb = 0; qb < NumQueryBlocks; qb++)
                {
                    var queries = Math.Max(0, Math.Min(BlockSize, seqLen - (qb * BlockSize)));
                    foreach (var kb in KeyBlocks(b, h, qb))
                    {
                        computed += (double)queries * Math.Max(0, Math.Min(BlockSize, seqLen - (kb * BlockSize)));
                    }
                }
            }
        }

        return computed / ((double)Batch * Heads * seqLen * seqLen);
    }

    /// <summary>The layout as JSON (fields batch, heads, num_query_blocks, num_key_blocks, block_size, offsets, indices).</summary>
    public string ToJson()
    {
        var sb = new StringBuilder();
        sb.Append("{\"batch\":").Append(Batch)
          .Append(",\"heads\":").Append(Heads)
          .Append(",\"num_query_blocks\":").Append(NumQueryBlocks)
          .Append(",\"num_key_blocks\":").Append(NumKeyBlocks)
          .Append(",\"block_size\":").Append(BlockSize)
          .Append(",\"offsets\":[").AppendJoin(',', Offsets.ToArray()).Append(']')
          .Append(",\"indices\":[").AppendJoin(',', Indices.ToArray()).Append("]}");
        return sb.ToString();
    }
}

/// <summary>The seeded uniforms of model-format.md (splitmix64 chained over the coordinates).</summary>
public static class SeededUniform
{
    public static ulong Mix(ulong z)
    {
        unchecked
        {
            z += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>u(seed, layer, head, qb, kb) in (0, 1).</summary>
    public static double U(ulong seed, ulong layer, ulong head, ulong qb, ulong kb)
    {
        var h = Mix(Mix(Mix(Mix(Mix(seed) ^ layer) ^ head) ^ qb) ^ kb);
        return ((h >> 11) + 0.5) * (1.0 / (1UL << 53));
    }
}
