using SparseInference.Tensors.Cuda.Attention;

namespace SparseInference.Tensors.Cuda.Tests.Attention;

public class CsrBlockLayoutTests
{
    [Fact]
    public void Window_HalfSparsity_SelectsNeighboursWithinRadius()
    {
        // n = 8 blocks, K = round(0.5·8) = 4, r = (4 − 1) div 2 = 1.
        var layout = CsrBlockLayout.Window(batch: 1, heads: 2, seqLen: 1024, blockSize: 128, sparsity: 0.5);

        Assert.Equal(8, layout.NumQueryBlocks);
        Assert.Equal([0, 1], layout.KeyBlocks(0, 0, 0).ToArray());
        Assert.Equal([2, 3, 4], layout.KeyBlocks(0, 1, 3).ToArray());
        Assert.Equal([6, 7], layout.KeyBlocks(0, 1, 7).ToArray());
        Assert.Equal(2 * ((6 * 3) + 2 + 2), layout.Indices.Length);
    }

    [Fact]
    public void Offsets_RowOrder_IsBatchHeadQueryBlock()
    {
        var layout = CsrBlockLayout.FromPredicate(2, 3, 4, 4, 64, (b, h, qb, kb) => kb == (b + h + qb) % 4);

        Assert.Equal(2 * 3 * 4 + 1, layout.Offsets.Length);
        for (var b = 0; b < 2; b++)
        {
            for (var h = 0; h < 3; h++)
            {
                for (var qb = 0; qb < 4; qb++)
                {
                    var row = (b * 3 + h) * 4 + qb;
                    Assert.Equal(row, layout.Offsets[row]);
                    Assert.Equal((b + h + qb) % 4, layout.Indices[layout.Offsets[row]]);
                }
            }
        }
    }

    [Fact]
    public void Window_TwoBlocksNoSparsity_RadiusZeroKeepsDiagonal()
    {
        // K = 2, r = (2 − 1) div 2 = 0: the format's window is symmetric, so an even budget rounds down.
        var layout = CsrBlockLayout.Window(1, 1, 256, 128, 0.0);

        Assert.Equal([0, 1, 2], layout.Offsets.ToArray());
        Assert.Equal([0, 1], layout.Indices.ToArray());
    }

    [Fact]
    public void Dense_Density_IsOne() => Assert.Equal(1.0, CsrBlockLayout.Dense(2, 2, 300, 64).Density(300), 12);

    [Fact]
    public void Density_PartialLastBlock_CountsValidPairsOnly()
    {
        // T = 192, block 128: blocks of 128 and 64 positions; only the diagonal selected.
        var layout = CsrBlockLayout.FromPredicate(1, 1, 2, 2, 128, (_, _, qb, kb) => qb == kb);

        Assert.Equal(((128.0 * 128) + (64 * 64)) / (192.0 * 192), layout.Density(192), 12);
    }

    [Fact]
    public void BigBird_NonGlobalQueryBlock_HasBudgetBlocksIncludingWindowAndGlobal()
    {
        // n = 16, s = 0.5 → K = 8; G = 1.
        var layout = CsrBlockLayout.BigBird(1, 1, 16 * 64, 64, 0.5, globalBlocks: 1, seed: 3, layer: 0);

        Assert.Equal(Enumerable.Range(0, 16), layout.KeyBlocks(0, 0, 0).ToArray());
        for (var qb = 1; qb < 16; qb++)
        {
            var blocks = layout.KeyBlocks(0, 0, qb).ToArray();
            Assert.Equal(8, blocks.Length);
            Assert.Contains(0, blocks);
            Assert.Contains(qb, blocks);
            Assert.Contains(qb - 1, blocks);
            if (qb < 15)
            {
                Assert.Contains(qb + 1, blocks);
            }
        }
    }

    [Fact]
    public void BigBird_RandomBlocks_AreSmallestSeededUniforms()
    {
        var layout = CsrBlockLayout.BigBird(1, 1, 16 * 64, 64, 0.5, globalBlocks: 1, seed: 3, layer: 2);
        const int qb = 9;
        var fixedBlocks = new[] { 0, 8, 9, 10 };
        var expectedRandom = Enumerable.Range(0, 16).Except(fixedBlocks)
            .OrderBy(kb => SeededUniform.U(3, 2, 0, qb, (ulong)kb)).Take(4);

        Assert.Equal(fixedBlocks.Concat(expectedRandom).Order(), layout.KeyBlocks(0, 0, qb).ToArray());
    }

    [Theory]
    [InlineData(0UL, 0UL, 0UL, 0UL, 0UL, 0.4714104296684803)]
    [InlineData(1234UL, 2UL, 0UL, 5UL, 9UL, 0.24485801716032857)]
    public void SeededUniform_MatchesModelFormatDefinition(ulong seed, ulong layer, ulong head, ulong qb, ulong kb, double expected) =>
        Assert.Equal(expected, SeededUniform.U(seed, layer, head, qb, kb), 15);

    [Theory]
    [InlineData(0.0, 10, 10)]
    [InlineData(0.5, 10, 5)]
    [InlineData(0.75, 10, 3)] // round(2.5) = 3: half rounds up
    [InlineData(0.99, 10, 1)]
    public void Budget_FollowsFormat(double sparsity, int n, int expected) => Assert.Equal(expected, CsrBlockLayout.Budget(sparsity, n));

    [Fact]
    public void Budget_SparsityOne_Throws() => Assert.Throws<ArgumentOutOfRangeException>(() => CsrBlockLayout.Budget(1.0, 4));

    [Fact]
    public void Constructor_UnsortedIndices_ThrowsNamingField()
    {
        var ex = Assert.Throws<ArgumentException>(() => new CsrBlockLayout(1, 1, 4, 4, 64, [0, 2, 2, 2, 2], [2, 1]));

        Assert.Equal("keyBlockIndices", ex.ParamName);
        Assert.Contains("strictly ascending", ex.Message);
    }

    [Fact]
    public void Constructor_WrongOffsetCount_ThrowsWithExpectedAndActual()
    {
        var ex = Assert.Throws<ArgumentException>(() => new CsrBlockLayout(1, 2, 2, 2, 64, [0, 1, 2], [0, 1]));

        Assert.Equal("rowOffsets", ex.ParamName);
        Assert.Contains("expected 5", ex.Message);
        Assert.Contains("got 3", ex.Message);
    }

    [Fact]
    public void Constructor_FewerKeyThanQueryBlocks_ThrowsNamingField()
    {
        var ex = Assert.Throws<ArgumentException>(() => new CsrBlockLayout(1, 1, 1, 4, 64, [0, 1], [0]));

        Assert.Equal("numKeyBlocks", ex.ParamName);
        Assert.Contains("expected 1", ex.Message);
    }

    [Fact]
    public void FromContractLayout_SharesItsArrays()
    {
        var contract = BlockLayout.Dense(batch: 2, heads: 3, seqLen: 300, blockSize: 64);

        var csr = new CsrBlockLayout(contract);

        Assert.Same(contract, csr.Layout);
        Assert.Equal(1, csr.Heads);
        Assert.Equal(contract.RowOffsets.ToArray(), csr.Offsets.ToArray());
        Assert.Equal(contract.KeyBlocksOf(1, 2, 3).ToArray(), csr.KeyBlocks(1, 0, 3).ToArray());
    }

    [Fact]
    public void ToJson_CarriesShapeAndArrays()
    {
        var json = CsrBlockLayout.Dense(1, 1, 256, 128).ToJson();

        Assert.Equal("{\"batch\":1,\"heads\":1,\"num_query_blocks\":2,\"num_key_blocks\":2,\"block_size\":128,\"offsets\":[0,2,4],\"indices\":[0,1,0,1]}", json);
    }
}
