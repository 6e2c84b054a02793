namespace SparseInference.Models.Attention;

/// <summary>
/// Selected key blocks per query block, compressed-sparse-row: query block <c>qb</c> attends key blocks
/// <c>Columns[RowStart[qb] .. RowStart[qb + 1])</c>, ascending. Immutable; shared by cached layouts.
/// </summary>
public sealed class KeyBlockSelection
{
    private readonly int[] _rowStart;
    private readonly int[] _columns;

    internal KeyBlockSelection(BlockGeometry geometry, int[] rowStart, int[] columns)
    {
        Geometry = geometry;
        _rowStart = rowStart;
        _columns = columns;
        long pairs = 0;
        for (int qb = 0; qb < geometry.Blocks; qb++)
        {
            long keys = 0;
            for (int i = rowStart[qb]; i < rowStart[qb + 1]; i++)
            {
                keys += geometry.Size(columns[i]);
            }

            pairs += keys * geometry.Size(qb);
        }

        ComputedPairs = pairs;
    }

    public BlockGeometry Geometry { get; }

    /// <summary>(query, key) pairs this selection computes for one head.</summary>
    public long ComputedPairs { get; }

    public ReadOnlySpan<int> KeyBlocks(int queryBlock) => _columns.AsSpan(_rowStart[queryBlock], _rowStart[queryBlock + 1] - _rowStart[queryBlock]);

    public bool Contains(int queryBlock, int keyBlock) => KeyBlocks(queryBlock).BinarySearch(keyBlock) >= 0;

    /// <summary>Builds a selection from a per-row predicate-filled mask, one query block at a time.</summary>
    internal static KeyBlockSelection Build(BlockGeometry geometry, Action<int, Span<bool>> selectRow)
    {
        int n = geometry.Blocks;
        var rowStart = new int[n + 1];
        var columns = new List<int>(n * 4);
        var mask = new bool[n];
        for (int qb = 0; qb < n; qb++)
        {
            Array.Clear(mask);
            selectRow(qb, mask);
            for (int kb = 0; kb < n; kb++)
            {
                if (mask[kb])
                {
                    columns.Add(kb);
                }
            }

            rowStart[qb + 1] = columns.Count;
        }

        return new KeyBlockSelection(geometry, rowStart, [.. columns]);
    }
}
