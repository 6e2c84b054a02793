using System.Text;

namespace SparseInference.Tensors.Cuda.Attention;

/// <summary>
/// A block-sparse attention layout in CSR form: for each (batch, head, query block), in that
/// order, the sorted ids of the key blocks it attends. Row r = (b·Heads + h)·NumQueryBlocks + qb
/// lists <c>Indices[Offsets[r] .. Offsets[r+1])</c>. The attention kernel walks exactly this list.
/// </summary>
public sealed class CsrBlockLayout
{
    public CsrBlockLayout(int batch, int heads, int numQueryBlocks, int numKeyBlocks, int blockSize, int[] offsets, int[] indices)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numQueryBlocks);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numKeyBlocks);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        ArgumentNullException.ThrowIfNull(offsets);
        ArgumentNullException.ThrowIfNull(indices);
        var rows = batch * heads * numQueryBlocks;
        if (offsets.Length != rows + 1)
        {
            throw new ArgumentException($"offsets: expected {rows + 1} entries (batch·heads·queryBlocks + 1), got {offsets.Length}.", nameof(offsets));
        }

        if (offsets[0] != 0 || offsets[rows] != indices.Length)
        {
            throw new ArgumentException($"offsets: expected to run from 0 to {indices.Length} (indices length), got {offsets[0]} to {offsets[rows]}.", nameof(offsets));
        }

        for (var r = 0; r < rows; r++)
        {
            if (offsets[r + 1] < offsets[r])
            {
                throw new ArgumentException($"offsets[{r + 1}]: expected ≥ offsets[{r}] = {offsets[r]}, got {offsets[r + 1]}.", nameof(offsets));
            }

            for (var i = offsets[r]; i < offsets[r + 1]; i++)
            {
                if ((uint)indices[i] >= (uint)numKeyBlocks || (i > offsets[r] && indices[i] <= indices[i - 1]))
                {
                    throw new ArgumentException($"indices[{i}] (row {r}): expected strictly increasing key block ids in [0, {numKeyBlocks}), got {indices[i]}.", nameof(indices));
                }
            }
        }

        Batch = batch;
        Heads = heads;
        NumQueryBlocks = numQueryBlocks;
        NumKeyBlocks = numKeyBlocks;
        BlockSize = blockSize;
        Offsets = offsets;
        Indices = indices;
    }

    public int Batch { get; }

    public int Heads { get; }

    public int NumQueryBlocks { get; }

    public int NumKeyBlocks { get; }

    public int BlockSize { get; }

    public int[] Offsets { get; }

    public int[] Indices { get; }

    /// <summary>The key blocks of one (batch, head, query block).</summary>
    public ReadOnlySpan<int> KeyBlocks(int b, int h, int qb)
    {
        var r = (b * Heads + h) * NumQueryBlocks + qb;
        return Indices.AsSpan(Offsets[r], Offsets[r + 1] - Offsets[r]);
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
          .Append(",\"offsets\":[").AppendJoin(',', Offsets).Append(']')
          .Append(",\"indices\":[").AppendJoin(',', Indices).Append("]}");
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
