namespace SparseInference.Tensors;

/// <summary>
/// Which key blocks each query block attends to, for every (sequence, head, query block), in CSR form.
/// Row r = (b·H' + h)·QueryBlocks + qb with H' = 1 when <see cref="SharedAcrossHeads"/>, else Heads;
/// its key blocks are <c>KeyBlockIndices[RowOffsets[r] .. RowOffsets[r+1])</c>, strictly ascending.
/// Query block qb holds queries qb·BlockSize … (qb+1)·BlockSize−1; positions ≥ a sequence's valid length
/// are excluded by the kernel, so rows past a short sequence's end may be empty.
/// </summary>
public sealed class BlockLayout
{
    private readonly int[] _rowOffsets;
    private readonly int[] _keyBlocks;

    /// <summary>Wraps CSR arrays after checking them; throws naming the first inconsistency.</summary>
    public BlockLayout(int blockSize, int batch, int heads, int queryBlocks, bool sharedAcrossHeads, int[] rowOffsets, int[] keyBlockIndices)
    {
        ArgumentNullException.ThrowIfNull(rowOffsets);
        ArgumentNullException.ThrowIfNull(keyBlockIndices);
        if (blockSize <= 0) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "blockSize: expected > 0.");
        if (batch < 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "batch: expected ≥ 0.");
        if (heads <= 0) throw new ArgumentOutOfRangeException(nameof(heads), heads, "heads: expected > 0.");
        if (queryBlocks < 0) throw new ArgumentOutOfRangeException(nameof(queryBlocks), queryBlocks, "queryBlocks: expected ≥ 0.");
        BlockSize = blockSize;
        Batch = batch;
        Heads = heads;
        QueryBlocks = queryBlocks;
        SharedAcrossHeads = sharedAcrossHeads;
        var rows = checked(batch * (sharedAcrossHeads ? 1 : heads) * queryBlocks);
        if (rowOffsets.Length != rows + 1)
        {
            throw new ArgumentException($"rowOffsets: expected {rows + 1} entries (rows + 1), got {rowOffsets.Length}.", nameof(rowOffsets));
        }
        if (rowOffsets[0] != 0) throw new ArgumentException($"rowOffsets[0]: expected 0, got {rowOffsets[0]}.", nameof(rowOffsets));
        if (rowOffsets[rows] != keyBlockIndices.Length)
        {
            throw new ArgumentException(
                $"rowOffsets[{rows}]: expected {keyBlockIndices.Length} (the number of key block indices), got {rowOffsets[rows]}.", nameof(rowOffsets));
        }
        for (var r = 0; r < rows; r++)
        {
            var start = rowOffsets[r];
            var end = rowOffsets[r + 1];
            if (end < start) throw new ArgumentException($"rowOffsets[{r + 1}]: expected ≥ rowOffsets[{r}] = {start}, got {end}.", nameof(rowOffsets));
            for (var i = start; i < end; i++)
            {
                var kb = keyBlockIndices[i];
                if ((uint)kb >= (uint)queryBlocks)
                {
                    throw new ArgumentException($"keyBlockIndices[{i}] (row {r}): expected 0 ≤ kb < {queryBlocks}, got {kb}.", nameof(keyBlockIndices));
                }
                if (i > start && kb <= keyBlockIndices[i - 1])
                {
                    throw new ArgumentException(
                        $"keyBlockIndices[{i}] (row {r}): expected strictly ascending, got {kb} after {keyBlockIndices[i - 1]}.", nameof(keyBlockIndices));
                }
            }
        }
        _rowOffsets = rowOffsets;
        _keyBlocks = keyBlockIndices;
    }

    /// <summary>Queries (and keys) per block.</summary>
    public int BlockSize { get; }

    /// <summary>Sequences in the batch.</summary>
    public int Batch { get; }

    /// <summary>Attention heads the layout serves.</summary>
    public int Heads { get; }

    /// <summary>Query blocks per sequence, ceil(T / BlockSize); also the number of key blocks.</summary>
    public int QueryBlocks { get; }

    /// <summary>True when one layout row serves all heads of a (sequence, query block).</summary>
    public bool SharedAcrossHeads { get; }

    /// <summary>Number of CSR rows.</summary>
    public int Rows => _rowOffsets.Length - 1;

    /// <summary>CSR row offsets (Rows + 1 entries).</summary>
    public ReadOnlySpan<int> RowOffsets => _rowOffsets;

    /// <summary>CSR key block indices.</summary>
    public ReadOnlySpan<int> KeyBlockIndices => _keyBlocks;

    /// <summary>Row index of (sequence b, head h, query block qb).</summary>
    public int RowIndex(int b, int h, int qb) => ((b * (SharedAcrossHeads ? 1 : Heads)) + (SharedAcrossHeads ? 0 : h)) * QueryBlocks + qb;

    /// <summary>Key blocks that query block qb of head h of sequence b attends to.</summary>
    public ReadOnlySpan<int> KeyBlocksOf(int b, int h, int qb)
    {
        var r = RowIndex(b, h, qb);
        return _keyBlocks.AsSpan(_rowOffsets[r], _rowOffsets[r + 1] - _rowOffsets[r]);
    }

    /// <summary>Blocks needed for <paramref name="seqLen"/> positions.</summary>
    public static int BlocksFor(int seqLen, int blockSize) => (seqLen + blockSize - 1) / blockSize;

    /// <summary>All key blocks for every query block, shared across heads.</summary>
    public static BlockLayout Dense(int batch, int heads, int seqLen, int blockSize)
    {
        var n = BlocksFor(seqLen, blockSize);
        var builder = new Builder(blockSize, batch, heads, n, sharedAcrossHeads: true);
        var all = Enumerable.Range(0, n).ToArray();
        for (var b = 0; b < batch; b++)
        {
            for (var qb = 0; qb < n; qb++) builder.AddRow(all);
        }
        return builder.Build();
    }

    /// <summary>Builds a layout row by row, in row order (b, then h unless shared, then qb).</summary>
    public sealed class Builder
    {
        private readonly int _blockSize;
        private readonly int _batch;
        private readonly int _heads;
        private readonly int _queryBlocks;
        private readonly bool _shared;
        private readonly List<int> _offsets = [0];
        private readonly List<int> _keyBlocks = [];

        public Builder(int blockSize, int batch, int heads, int queryBlocks, bool sharedAcrossHeads)
        {
            _blockSize = blockSize;
            _batch = batch;
            _heads = heads;
            _queryBlocks = queryBlocks;
            _shared = sharedAcrossHeads;
        }

        /// <summary>Rows added so far.</summary>
        public int RowCount => _offsets.Count - 1;

        /// <summary>Appends the next row; the key blocks are sorted here, duplicates are an error at Build.</summary>
        public Builder AddRow(ReadOnlySpan<int> keyBlocks)
        {
            var start = _keyBlocks.Count;
            foreach (var kb in keyBlocks) _keyBlocks.Add(kb);
            _keyBlocks.Sort(start, keyBlocks.Length, Comparer<int>.Default);
            _offsets.Add(_keyBlocks.Count);
            return this;
        }

        /// <summary>Checks and returns the layout.</summary>
        public BlockLayout Build() =>
            new(_blockSize, _batch, _heads, _queryBlocks, _shared, [.. _offsets], [.. _keyBlocks]);
    }
}
