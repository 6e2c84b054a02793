namespace SparseInference.Models.Attention;

/// <summary>Picks the <c>count</c> largest values; ties go to the lower index. O(n) via quickselect.</summary>
internal static class TopSelection
{
    /// <summary>
    /// Marks in <paramref name="selected"/> the <paramref name="count"/> largest <paramref name="scores"/> among
    /// indices not already marked. Returns how many were marked.
    /// </summary>
    public static int MarkLargest(ReadOnlySpan<double> scores, Span<bool> selected, int count)
    {
        int n = scores.Length;
        Span<double> candidates = n <= 1024 ? stackalloc double[n] : new double[n];
        int available = 0;
        for (int i = 0; i < n; i++)
        {
            if (!selected[i])
            {
                candidates[available++] = scores[i];
            }
        }

        count = Math.Min(count, available);
        if (count <= 0)
        {
            return 0;
        }

        double threshold = KthLargest(candidates[..available], count);
        int above = 0;
        for (int i = 0; i < n; i++)
        {
            if (!selected[i] && scores[i] > threshold)
            {
                above++;
            }
        }

        int tiesNeeded = count - above;
        for (int i = 0; i < n; i++)
        {
            if (selected[i])
            {
                continue;
            }

            if (scores[i] > threshold)
            {
                selected[i] = true;
            }
            else if (scores[i] == threshold && tiesNeeded > 0)
            {
                selected[i] = true;
                tiesNeeded--;
            }
        }

        return count;
    }

    /// <summary>
    /// Writes to <paramref name="indices"/> (ascending) the <paramref name="count"/> positions of the largest
    /// <paramref name="scores"/>, ties to the lower index. <paramref name="scratch"/> holds at least n values.
    /// </summary>
    public static void IndicesOfLargest(ReadOnlySpan<float> scores, int count, Span<float> scratch, Span<int> indices)
    {
        int n = scores.Length;
        scores.CopyTo(scratch);
        float threshold = KthLargest(scratch[..n], count);
        int above = 0;
        for (int i = 0; i < n; i++)
        {
            if (scores[i] > threshold)
            {
                above++;
            }
        }

        int tiesNeeded = count - above;
        int w = 0;
        for (int i = 0; i < n && w < count; i++)
        {
            float v = scores[i];
            if (v > threshold)
            {
                indices[w++] = i;
            }
            else if (v == threshold && tiesNeeded > 0)
            {
                indices[w++] = i;
                tiesNeeded--;
            }
        }
    }

    /// <summary>The k-th largest value (1-based) of <paramref name="values"/>, which it reorders.</summary>
    private static T KthLargest<T>(Span<T> values, int k) where T : struct, IComparable<T>
    {
        int lo = 0, hi = values.Length - 1, target = k - 1;
        while (lo < hi)
        {
            // Median of three, descending partition.
            int mid = lo + ((hi - lo) >> 1);
            T pivot = MedianOfThree(values[lo], values[mid], values[hi]);
            int i = lo, j = hi;
            while (i <= j)
            {
                while (values[i].CompareTo(pivot) > 0) i++;
                while (values[j].CompareTo(pivot) < 0) j--;
                if (i <= j)
                {
                    (values[i], values[j]) = (values[j], values[i]);
                    i++;
                    j--;
                }
            }

            if (target <= j) hi = j;
            else if (target >= i) lo = i;
            else return values[target];
        }

        return values[target];
    }

    private static T MedianOfThree<T>(T a, T b, T c) where T : IComparable<T>
    {
        if (a.CompareTo(b) > 0) (a, b) = (b, a);
        if (b.CompareTo(c) > 0) (b, c) = (c, b);
        if (a.CompareTo(b) > 0) (a, b) = (b, a);
        return b;
    }
}
