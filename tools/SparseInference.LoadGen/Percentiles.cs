namespace SparseInference.LoadGen;

/// <summary>Latency percentiles, computed the way perf_analyzer reports them: nearest rank over all samples.</summary>
public static class Percentiles
{
    /// <summary>
    /// Nearest-rank percentile of <paramref name="sorted"/> (ascending): the smallest sample such that at
    /// least <paramref name="percentile"/> percent of samples are at or below it.
    /// </summary>
    public static double NearestRank(IReadOnlyList<double> sorted, double percentile)
    {
        ArgumentNullException.ThrowIfNull(sorted);
        if (sorted.Count == 0)
            throw new ArgumentException("Cannot take a percentile of no samples.", nameof(sorted));
        if (double.IsNaN(percentile) || percentile <= 0 || percentile > 100)
            throw new ArgumentOutOfRangeException(nameof(percentile), percentile, $"percentile must be in (0, 100], but was {percentile}.");
        var rank = (int)Math.Ceiling(percentile / 100d * sorted.Count);
        return sorted[Math.Clamp(rank, 1, sorted.Count) - 1];
    }

    public static LatencySummary Summarize(IEnumerable<double> samplesMs)
    {
        var sorted = samplesMs.ToArray();
        Array.Sort(sorted);
        if (sorted.Length == 0)
            return new LatencySummary(0, 0, 0, 0, 0, 0, 0, 0);
        return new LatencySummary(
            sorted.Length,
            sorted.Average(),
            sorted[0],
            NearestRank(sorted, 50),
            NearestRank(sorted, 90),
            NearestRank(sorted, 95),
            NearestRank(sorted, 99),
            sorted[^1]);
    }
}

/// <summary>Client-side latency of successful requests, in milliseconds.</summary>
public readonly record struct LatencySummary(int Count, double MeanMs, double MinMs, double P50Ms, double P90Ms, double P95Ms, double P99Ms, double MaxMs);
