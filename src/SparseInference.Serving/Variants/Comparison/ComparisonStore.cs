using System.Collections.Concurrent;

namespace SparseInference.Serving.Variants.Comparison;

/// <summary>Totals for one (model, primary, candidate) pair since the process started, as the admin API shows them.</summary>
public sealed record ShadowPairSnapshot(
    string Model,
    string Primary,
    string Candidate,
    long Compared,
    double MeanAbsoluteError,
    double MaxError,
    double? FlagAgreementRatio,
    long Dropped,
    long CandidateFailures,
    DateTimeOffset? LastCompared);

/// <summary>Running agreement between primaries and their shadows, queryable by model.</summary>
public sealed class ComparisonStore(TimeProvider timeProvider)
{
    private readonly ConcurrentDictionary<(string Model, string Primary, string Candidate), PairStats> _pairs = new();

    public void Record(string model, string primary, string candidate, ComparisonSample sample)
    {
        var stats = Get(model, primary, candidate);
        lock (stats)
        {
            stats.Compared++;
            stats.SumMae += sample.MeanAbsoluteError;
            stats.MaxError = Math.Max(stats.MaxError, sample.MaxError);
            stats.FlagAgreements += sample.FlagAgreements;
            stats.FlagTotal += sample.FlagTotal;
            stats.LastCompared = timeProvider.GetUtcNow();
        }
    }

    public void RecordDropped(string model, string primary, string candidate)
    {
        var stats = Get(model, primary, candidate);
        lock (stats)
        {
            stats.Dropped++;
        }
    }

    public void RecordCandidateFailure(string model, string primary, string candidate)
    {
        var stats = Get(model, primary, candidate);
        lock (stats)
        {
            stats.CandidateFailures++;
        }
    }

    public IReadOnlyList<ShadowPairSnapshot> Snapshot(string? model = null)
    {
        var result = new List<ShadowPairSnapshot>();
        foreach (var (key, stats) in _pairs)
        {
            if (model is not null && key.Model != model)
            {
                continue;
            }

            lock (stats)
            {
                result.Add(new ShadowPairSnapshot(
                    key.Model,
                    key.Primary,
                    key.Candidate,
                    stats.Compared,
                    stats.Compared == 0 ? 0 : stats.SumMae / stats.Compared,
                    stats.MaxError,
                    stats.FlagTotal == 0 ? null : (double)stats.FlagAgreements / stats.FlagTotal,
                    stats.Dropped,
                    stats.CandidateFailures,
                    stats.LastCompared));
            }
        }

        result.Sort((a, b) => string.CompareOrdinal($"{a.Model}/{a.Primary}/{a.Candidate}", $"{b.Model}/{b.Primary}/{b.Candidate}"));
        return result;
    }

    private PairStats Get(string model, string primary, string candidate) => _pairs.GetOrAdd((model, primary, candidate), static _ => new PairStats());

    private sealed class PairStats
    {
        public long Compared;
        public double SumMae;
        public double MaxError;
        public long FlagAgreements;
        public long FlagTotal;
        public long Dropped;
        public long CandidateFailures;
        public DateTimeOffset? LastCompared;
    }
}
