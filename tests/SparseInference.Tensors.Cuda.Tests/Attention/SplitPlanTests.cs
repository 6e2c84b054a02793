using SparseInference.Tensors.Cuda.Attention;

namespace SparseInference.Tensors.Cuda.Tests.Attention;

public class SplitPlanTests
{
    [Fact]
    public void PlanSplits_WindowLayout_SplitsNothing() =>
        Assert.Null(AttentionWorkPlanner.PlanSplits(CsrBlockLayout.Window(2, 4, 4096, 128, 0.75), heads: 4));

    [Fact]
    public void PlanSplits_BigBird_CoversEveryRowExactlyOnceAndSplitsOnlyLongRows()
    {
        var layout = CsrBlockLayout.BigBird(2, 3, 4096, 128, 0.9, globalBlocks: 1, seed: 5, layer: 0);
        var cap = AttentionWorkPlanner.SplitThreshold(layout);

        var plan = AttentionWorkPlanner.PlanSplits(layout, heads: 3);

        Assert.NotNull(plan);
        var (work, combine, slots) = plan.Value;
        var covered = new Dictionary<int, List<(int Start, int End)>>();
        for (var i = 0; i < work.Length; i += 4)
        {
            Assert.True(work[i + 2] - work[i + 1] <= cap, $"work item {i / 4} takes {work[i + 2] - work[i + 1]} blocks, more than {cap}");
            if (!covered.TryGetValue(work[i], out var list))
            {
                covered[work[i]] = list = [];
            }

            list.Add((work[i + 1], work[i + 2]));
        }

        Assert.Equal(2 * 3 * layout.NumQueryBlocks, covered.Count);
        foreach (var (row, ranges) in covered)
        {
            var lr = row; // one layout row per (b, h, qb): heads match
            var ordered = ranges.OrderBy(r => r.Start).ToList();
            Assert.Equal(layout.Offsets[lr], ordered[0].Start);
            Assert.Equal(layout.Offsets[lr + 1], ordered[^1].End);
            for (var i = 1; i < ordered.Count; i++)
            {
                Assert.Equal(ordered[i - 1].End, ordered[i].Start);
            }
        }

        // Only the global query block (qb 0) of each (b, h) is long enough to split.
        Assert.Equal(2 * 3, combine.Length / 3);
        Assert.Equal(Enumerable.Range(0, combine.Length / 3).Sum(i => combine[(3 * i) + 2]), slots);
    }

    [Fact]
    public void PlanSplits_SharedLayout_ExpandsToEveryHead()
    {
        var shared = CsrBlockLayout.BigBird(1, 1, 2048, 64, 0.9, globalBlocks: 1, seed: 1, layer: 0);

        var plan = AttentionWorkPlanner.PlanSplits(shared, heads: 4);

        Assert.NotNull(plan);
        var rows = Enumerable.Range(0, plan.Value.Work.Length / 4).Select(i => plan.Value.Work[4 * i]).Distinct().Count();
        Assert.Equal(4 * shared.NumQueryBlocks, rows);
    }

    [Fact]
    public void PlanWork_DenseLayout_IsNull() =>
        Assert.Null(AttentionWorkPlanner.PlanWork(CsrBlockLayout.Dense(2, 4, 1024, 128), heads: 4));

    [Fact]
    public void PlanWork_WindowLayout_ListsEveryRowOnceLongestFirstWithoutSplits()
    {
        var layout = CsrBlockLayout.Window(2, 1, 4096, 128, 0.5);

        var plan = AttentionWorkPlanner.PlanWork(layout, heads: 3);

        Assert.NotNull(plan);
        var (work, combine, slots) = plan.Value;
        Assert.Empty(combine);
        Assert.Equal(0, slots);
        var rows = Enumerable.Range(0, work.Length / 4).Select(i => work.AsSpan(4 * i, 4).ToArray()).ToArray();
        Assert.Equal(2 * 3 * layout.NumQueryBlocks, rows.Length);
        Assert.Equal(rows.Length, rows.Select(w => w[0]).Distinct().Count());
        Assert.All(rows, w => Assert.Equal(-1, w[3]));
        var lengths = rows.Select(w => w[2] - w[1]).ToArray();
        Assert.Equal(lengths.OrderByDescending(l => l), lengths);
        Assert.True(lengths[0] > lengths[^1], "a window layout has shorter rows at the sequence ends");
    }

    [Fact]
    public void PlanWork_BigBird_KeepsSplitPiecesFirstThenWholeRowsLongestFirst()
    {
        var layout = CsrBlockLayout.BigBird(2, 3, 4096, 128, 0.9, globalBlocks: 1, seed: 5, layer: 0);
        var split = AttentionWorkPlanner.PlanSplits(layout, heads: 3);

        var plan = AttentionWorkPlanner.PlanWork(layout, heads: 3);

        Assert.NotNull(split);
        Assert.NotNull(plan);
        Assert.Equal(split.Value.Combine, plan.Value.Combine);
        Assert.Equal(split.Value.Slots, plan.Value.Slots);
        var pieces = split.Value.Work.Length - split.Value.Work.Chunk(4).Count(w => w[3] < 0) * 4;
        Assert.Equal(split.Value.Work.AsSpan(0, pieces).ToArray(), plan.Value.Work.AsSpan(0, pieces).ToArray());
        var whole = plan.Value.Work.Skip(pieces).Chunk(4).ToArray();
        Assert.All(whole, w => Assert.Equal(-1, w[3]));
        Assert.Equal(split.Value.Work.Skip(pieces).Chunk(4).Select(w => w[0]).Order(), whole.Select(w => w[0]).Order());
        var lengths = whole.Select(w => w[2] - w[1]).ToArray();
        Assert.Equal(lengths.OrderByDescending(l => l), lengths);
    }
}
