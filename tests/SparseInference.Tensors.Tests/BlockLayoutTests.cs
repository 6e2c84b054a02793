namespace SparseInference.Tensors.Tests;

public sealed class BlockLayoutTests
{
    [Fact]
    public void Builder_UnsortedRows_AreSortedAndIndexedByBatchHeadBlock()
    {
        var layout = new BlockLayout.Builder(blockSize: 4, batch: 1, heads: 2, queryBlocks: 3, sharedAcrossHeads: false)
            .AddRow([2, 0]).AddRow([1]).AddRow([0, 1, 2])
            .AddRow([0]).AddRow([2, 1]).AddRow([2])
            .Build();

        Assert.Equal([0, 2], layout.KeyBlocksOf(0, 0, 0).ToArray());
        Assert.Equal([1, 2], layout.KeyBlocksOf(0, 1, 1).ToArray());
        Assert.Equal(6, layout.Rows);
    }

    [Fact]
    public void Constructor_DuplicateKeyBlock_ThrowsNamingIndices()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            new BlockLayout.Builder(4, 1, 1, 2, sharedAcrossHeads: true).AddRow([1, 1]).AddRow([0]).Build());

        Assert.Equal("keyBlockIndices", ex.ParamName);
    }

    [Fact]
    public void Constructor_KeyBlockOutOfRange_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            new BlockLayout(4, 1, 1, 2, true, [0, 1, 2], [0, 2]));

        Assert.Contains("0 ≤ kb < 2", ex.Message);
    }

    [Fact]
    public void Dense_SharedRows_ListEveryBlock()
    {
        var layout = BlockLayout.Dense(batch: 2, heads: 4, seqLen: 33, blockSize: 16);

        Assert.True(layout.SharedAcrossHeads);
        Assert.Equal(3, layout.QueryBlocks);
        Assert.Equal([0, 1, 2], layout.KeyBlocksOf(1, 3, 2).ToArray());
    }
}
