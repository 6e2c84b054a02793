namespace SparseInference.Tensors.Cpu;

/// <summary>
/// Selection of the k largest entries of a row, ordered by value descending and, among equal values,
/// index ascending. NaN counts as smaller than every number.
/// </summary>
internal static class TopKSelect
{
    /// <summary>Writes the k chosen indices, in order, to indices[0..k); indices must hold row.Length entries.</summary>
    public static void Select(ReadOnlySpan<float> row, int k, Span<int> indices)
    {
        var n = row.Length;
        for (var i = 0; i < n; i++) indices[i] = i;
        if (k == 0) return;
        if (k < n) QuickSelect(row, indices[..n], k);
        Sort(row, indices[..k]);
    }

    /// <summary>True when entry a ranks before entry b.</summary>
    public static bool Before(ReadOnlySpan<float> row, int a, int b) => Compare(row[a], a, row[b], b) < 0;

    /// <summary>Negative when (va, a) ranks before (vb, b): larger value first, NaN last, then lower index.</summary>
    public static int Compare(float va, int a, float vb, int b)
    {
        if (va > vb) return -1;
        if (va < vb) return 1;
        var na = float.IsNaN(va);
        var nb = float.IsNaN(vb);
        if (na != nb) return na ? 1 : -1;
        return a.CompareTo(b);
    }

    // Partitions so that the k best come first (in any order).
    private static void QuickSelect(ReadOnlySpan<float> row, Span<int> idx, int k)
    {
        int lo = 0, hi = idx.Length - 1;
        while (lo < hi)
        {
            var pivot = idx[lo + ((hi - lo) >> 1)];
            int i = lo, j = hi;
            while (i <= j)
            {
                while (Before(row, idx[i], pivot)) i++;
                while (Before(row, pivot, idx[j])) j--;
                if (i <= j)
                {
                    (idx[i], idx[j]) = (idx[j], idx[i]);
                    i++;
                    j--;
                }
            }
            // Now [lo..j] rank before-or-equal pivot, [i..hi] after-or-equal.
            if (k - 1 <= j) hi = j;
            else if (k - 1 >= i) lo = i;
            else return;
        }
    }

    private static void Sort(ReadOnlySpan<float> row, Span<int> idx)
    {
        // Insertion sort for short prefixes, else a comparison sort on copies of the keys.
        if (idx.Length <= 32)
        {
            for (var i = 1; i < idx.Length; i++)
            {
                var cur = idx[i];
                var j = i - 1;
                while (j >= 0 && Before(row, cur, idx[j]))
                {
                    idx[j + 1] = idx[j];
                    j--;
                }
                idx[j + 1] = cur;
            }
            return;
        }
        var items = new (float Value, int Index)[idx.Length];
        for (var i = 0; i < idx.Length; i++) items[i] = (row[idx[i]], idx[i]);
        Array.Sort(items, static (a, b) => Compare(a.Value, a.Index, b.Value, b.Index));
        for (var i = 0; i < idx.Length; i++) idx[i] = items[i].Index;
    }
}
