namespace SparseInference.Tensors.Cuda.Attention;

/// <summary>
/// Host-side planning of a block-sparse attention call: which CTA takes which key blocks of which row. Rows much longer
/// than the mean (BigBird's global query blocks) are split over several CTAs whose partial results attention_combine
/// merges; rows of different lengths are listed longest first.
/// </summary>
public static class AttentionWorkPlanner
{
    /// <summary>
    /// Longest key-block list one CTA takes: twice the mean row length (at least 4), so rows of a
    /// balanced layout (window, dense) are never split and a BigBird global row is spread over a few CTAs.
    /// </summary>
    public static int SplitThreshold(CsrBlockLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var rows = layout.Offsets.Length - 1;
        var mean = rows == 0 ? 0 : (double)layout.Indices.Length / rows;
        return Math.Max(4, (int)Math.Ceiling(2 * mean));
    }

    /// <summary>
    /// The work items of a layout for <paramref name="heads"/> heads: (row, start, end, slot) with
    /// slot −1 for rows done in one piece; null when no row is longer than <see cref="SplitThreshold"/>.
    /// </summary>
    public static (int[] Work, int[] Combine, int Slots)? PlanSplits(CsrBlockLayout layout, int heads)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var cap = SplitThreshold(layout);
        var nqb = layout.NumQueryBlocks;
        var longest = 0;
        for (var r = 0; r < layout.Offsets.Length - 1; r++)
        {
            longest = Math.Max(longest, layout.Offsets[r + 1] - layout.Offsets[r]);
        }

        if (longest <= cap)
        {
            return null;
        }

        var split = new List<int>();
        var whole = new List<int>();
        var combine = new List<int>();
        var slots = 0;
        for (var b = 0; b < layout.Batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var qb = 0; qb < nqb; qb++)
                {
                    var lr = ((b * layout.Heads) + (layout.Heads == 1 ? 0 : h)) * nqb + qb;
                    int start = layout.Offsets[lr], end = layout.Offsets[lr + 1];
                    var row = ((b * heads) + h) * nqb + qb;
                    if (end - start <= cap)
                    {
                        whole.AddRange([row, start, end, -1]);
                        continue;
                    }

                    var parts = (end - start + cap - 1) / cap;
                    combine.AddRange([row, slots, parts]);
                    for (var i = 0; i < parts; i++)
                    {
                        var s0 = start + (int)((long)(end - start) * i / parts);
                        var s1 = start + (int)((long)(end - start) * (i + 1) / parts);
                        split.AddRange([row, s0, s1, slots++]);
                    }
                }
            }
        }

        // The pieces of split rows go first so that the long work starts early.
        return ([.. split, .. whole], [.. combine], slots);
    }

    /// <summary>
    /// The work list the attention kernels take for a layout: <see cref="PlanSplits"/>'s, or, where no row is split
    /// but the rows differ in length, one item per row; either way the whole rows longest first (stable), so that the
    /// last wave of CTAs holds the shortest rows (measured: window 50% at T 16384, 0.70 → 0.65 ms on the wgmma
    /// kernel). Null when every row has the same length: the grid then walks the rows in order.
    /// </summary>
    public static (int[] Work, int[] Combine, int Slots)? PlanWork(CsrBlockLayout layout, int heads)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var (work, combine, slots) = PlanSplits(layout, heads) ?? (WholeRows(layout, heads), [], 0);
        int shortest = int.MaxValue, longest = 0;
        for (var r = 0; r < layout.Offsets.Length - 1; r++)
        {
            var length = layout.Offsets[r + 1] - layout.Offsets[r];
            shortest = Math.Min(shortest, length);
            longest = Math.Max(longest, length);
        }

        if (slots == 0 && shortest == longest)
        {
            return null;
        }

        var firstWhole = 0;
        while (firstWhole < work.Length && work[firstWhole + 3] >= 0)
        {
            firstWhole += 4;
        }

        var whole = Enumerable.Range(0, (work.Length - firstWhole) / 4)
            .Select(i => work.AsSpan(firstWhole + (4 * i), 4).ToArray())
            .OrderByDescending(w => w[2] - w[1])
            .SelectMany(w => w);
        return ([.. work.AsSpan(0, firstWhole).ToArray(), .. whole], combine, slots);
    }

    private static int[] WholeRows(CsrBlockLayout layout, int heads)
    {
        var nqb = layout.NumQueryBlocks;
        var work = new int[layout.Batch * heads * nqb * 4];
        var i = 0;
        for (var b = 0; b < layout.Batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var qb = 0; qb < nqb; qb++)
                {
                    var lr = ((b * layout.Heads) + (layout.Heads == 1 ? 0 : h)) * nqb + qb;
                    work[i++] = ((b * heads) + h) * nqb + qb;
                    work[i++] = layout.Offsets[lr];
                    work[i++] = layout.Offsets[lr + 1];
                    work[i++] = -1;
                }
            }
        }

        return work;
    }
}
