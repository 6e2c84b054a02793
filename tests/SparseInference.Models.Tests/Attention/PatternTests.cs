using SparseInference.Models.Attention;

namespace SparseInference.Models.Tests.Attention;

public sealed class PatternTests
{
    private static KeyBlockSelection Static(string pattern, double sparsity, int length, int blockSize, int globalBlocks = 1, ulong seed = 0, int layer = 0)
        => ((IStaticBlockPattern)AttentionPatterns.Get(pattern)).Select(new BlockGeometry(length, blockSize), new AttentionSpec(pattern, sparsity, blockSize, globalBlocks, seed), layer);

    [Fact]
    public void Window_Sparsity75OnL256_BudgetFourGivesRadiusOneAndKnownDensity()
    {
        // n = 16 blocks, K = round(0.25 · 16) = 4, r = (4 − 1) div 2 = 1: three blocks, two at either end.
        var selection = Static("window", 0.75, 256, 16);

        Assert.Equal([0, 1], selection.KeyBlocks(0).ToArray());
        Assert.Equal([6, 7, 8], selection.KeyBlocks(7).ToArray());
        Assert.Equal([14, 15], selection.KeyBlocks(15).ToArray());
        Assert.Equal(16L * 16 * (14 * 3 + 2 * 2), selection.ComputedPairs);
        Assert.Equal(0.1796875, selection.ComputedPairs / (256.0 * 256.0));
    }

    [Fact]
    public void Window_PartialLastBlock_CountsOnlyValidKeys()
    {
        // L = 37, Bk = 8: blocks of 8, 8, 8, 8, 5; K = round(0.5 · 5) = 3 → r = 1.
        var selection = Static("window", 0.5, 37, 8);

        long expected = 8 * (8 + 8) + 8 * 24 + 8 * 24 + 8 * (8 + 8 + 5) + 5 * (8 + 5);
        Assert.Equal(expected, selection.ComputedPairs);
    }

    [Fact]
    public void BigBird_SameSeed_Reproducible()
    {
        var a = Static("bigbird", 0.75, 1024, 16, seed: 42, layer: 1);
        var b = Static("bigbird", 0.75, 1024, 16, seed: 42, layer: 1);

        for (int qb = 0; qb < 64; qb++)
        {
            Assert.Equal(a.KeyBlocks(qb).ToArray(), b.KeyBlocks(qb).ToArray());
        }
    }

    [Fact]
    public void BigBird_DifferentSeedOrLayer_SelectsDifferentRandomBlocks()
    {
        var a = Static("bigbird", 0.75, 1024, 16, seed: 42, layer: 1);
        var otherSeed = Static("bigbird", 0.75, 1024, 16, seed: 43, layer: 1);
        var otherLayer = Static("bigbird", 0.75, 1024, 16, seed: 42, layer: 2);

        Assert.Contains(Enumerable.Range(1, 63), qb => !a.KeyBlocks(qb).SequenceEqual(otherSeed.KeyBlocks(qb)));
        Assert.Contains(Enumerable.Range(1, 63), qb => !a.KeyBlocks(qb).SequenceEqual(otherLayer.KeyBlocks(qb)));
    }

    [Fact]
    public void BigBird_NonGlobalBlocks_HoldExactlyTheBudgetIncludingWindowAndGlobals()
    {
        // n = 64, K = 16: window (3) + global block 0 + 12 random blocks.
        var selection = Static("bigbird", 0.75, 1024, 16, globalBlocks: 1, seed: 5);

        Assert.Equal(64, selection.KeyBlocks(0).Length);
        for (int qb = 2; qb < 63; qb++)
        {
            var blocks = selection.KeyBlocks(qb);
            Assert.Equal(16, blocks.Length);
            Assert.Contains(0, blocks.ToArray());
            Assert.Contains(qb - 1, blocks.ToArray());
            Assert.Contains(qb + 1, blocks.ToArray());
        }
    }

    [Fact]
    public void Longformer_GlobalQueryBlocksSelectAllOthersSelectGlobalsAndBand()
    {
        // n = 10, K = 5, G = 2: r = (5 − 2 − 1) div 2 = 1.
        var selection = Static("longformer", 0.5, 80, 8, globalBlocks: 2);

        Assert.Equal(Enumerable.Range(0, 10), selection.KeyBlocks(1).ToArray());
        Assert.Equal([0, 1, 5, 6, 7], selection.KeyBlocks(6).ToArray());
    }

    [Fact]
    public void Strided_SummaryBlocksEveryStride()
    {
        // n = 16, K = round(0.25 · 16) = 4, r = 1, S = ceil(16 / (4 − 3)) = 16: only block 15 summarises.
        var selection = Static("strided", 0.75, 256, 16);
        Assert.Equal([4, 5, 6, 15], selection.KeyBlocks(5).ToArray());

        // n = 16, K = 8, r = 1, S = ceil(16 / 5) = 4: summaries 3, 7, 11, 15.
        var half = Static("strided", 0.5, 256, 16);
        Assert.Equal([3, 7, 9, 10, 11, 15], half.KeyBlocks(10).ToArray());
    }

    [Fact]
    public void BlockTopK_TakesOwnBlockAndBestScoresWithTiesToLowerBlock()
    {
        // n = 4, K = 2 at s = 0.5: qb plus the single best other block.
        var pattern = (IDynamicBlockPattern)AttentionPatterns.Get("block-topk");
        var geometry = new BlockGeometry(16, 4);
        float[] scores =
        [
            9f, 1f, 5f, 5f,
            0f, 0f, 3f, 3f,
            7f, 2f, 0f, 7f,
            1f, 1f, 1f, 1f,
        ];

        var selection = pattern.Select(geometry, new AttentionSpec("block-topk", 0.5, 4), 0, 0, scores);

        Assert.Equal([0, 2], selection.KeyBlocks(0).ToArray());
        Assert.Equal([1, 2], selection.KeyBlocks(1).ToArray());
        Assert.Equal([0, 2], selection.KeyBlocks(2).ToArray());
        Assert.Equal([0, 3], selection.KeyBlocks(3).ToArray());
    }

    [Fact]
    public void Sampled_SameSeedReproducibleOtherSeedDiffers()
    {
        var pattern = (IDynamicBlockPattern)AttentionPatterns.Get("sampled");
        var geometry = new BlockGeometry(512, 16);
        var scores = new float[32 * 32];
        KeyBlockSelection Run(ulong seed) => pattern.Select(geometry, new AttentionSpec("sampled", 0.75, 16, 1, seed), 0, 1, scores);

        var a = Run(1);
        var b = Run(1);
        var c = Run(2);

        Assert.All(Enumerable.Range(0, 32), qb => Assert.Equal(a.KeyBlocks(qb).ToArray(), b.KeyBlocks(qb).ToArray()));
        Assert.Contains(Enumerable.Range(0, 32), qb => !a.KeyBlocks(qb).SequenceEqual(c.KeyBlocks(qb)));
        Assert.All(Enumerable.Range(0, 32), qb => Assert.Equal(8, a.KeyBlocks(qb).Length));
    }

    [Fact]
    public void Get_UnknownPattern_ErrorListsKnownPatterns()
    {
        var error = Assert.Throws<ArgumentException>(() => AttentionPatterns.Get("diagonal"));

        Assert.Contains("'diagonal'", error.Message);
        Assert.Contains("dense, window, longformer, bigbird, strided, topk, block-topk, hybrid, sampled, gated", error.Message);
    }

    [Fact]
    public void Registry_HoldsEveryContractPattern()
    {
        foreach (var name in AttentionSpec.KnownPatterns)
        {
            Assert.Equal(name, AttentionPatterns.Get(name).Name);
        }
    }

    [Fact]
    public void IndicesOfLargest_Ties_GoToLowerIndex()
    {
        float[] scores = [1f, 3f, 2f, 3f, 3f, 0f];
        var indices = new int[2];

        TopSelection.IndicesOfLargest(scores, 2, new float[scores.Length], indices);

        Assert.Equal([1, 3], indices);
    }
}
