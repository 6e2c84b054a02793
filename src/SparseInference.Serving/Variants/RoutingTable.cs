using System.Collections.Immutable;

namespace SparseInference.Serving.Variants;

/// <summary>
/// One model's variants and split at one moment. Immutable: a change builds a new table and the registry
/// swaps the reference atomically, so a reader always sees a consistent set.
/// </summary>
public sealed class RoutingTable
{
    private readonly Variant[] _splitVariants;
    private readonly double[] _cumulative;

    internal RoutingTable(string model, long version, ImmutableDictionary<string, Variant> variants, SplitConfig split, ImmutableList<SplitConfig> history)
    {
        Model = model;
        Version = version;
        Variants = variants;
        Split = split;
        History = history;
        Experiment = split.Experiment ?? model;

        var entries = split.Weights.Where(w => w.Weight > 0).ToArray();
        var total = entries.Sum(w => w.Weight);
        _splitVariants = new Variant[entries.Length];
        _cumulative = new double[entries.Length];
        double running = 0;
        for (var i = 0; i < entries.Length; i++)
        {
            _splitVariants[i] = variants[entries[i].Variant];
            running += entries[i].Weight / total;
            _cumulative[i] = running;
        }

        Shadow = split.Shadow is { Percent: > 0 } s ? variants[s.Variant] : null;
    }

    public string Model { get; }

    /// <summary>Increases by one with every applied change.</summary>
    public long Version { get; }

    public ImmutableDictionary<string, Variant> Variants { get; }

    public SplitConfig Split { get; }

    /// <summary>Earlier splits, most recent first; rollback restores the first.</summary>
    public ImmutableList<SplitConfig> History { get; }

    /// <summary>Salt of the sticky hash: the split's experiment name, or the model name.</summary>
    public string Experiment { get; }

    /// <summary>The shadow candidate when shadowing is on (percent above zero).</summary>
    public Variant? Shadow { get; }

    /// <summary>Maps a point in [0, 1) onto the cumulative weights.</summary>
    public Variant PickByPoint(double point)
    {
        for (var i = 0; i < _cumulative.Length; i++)
        {
            if (point < _cumulative[i])
            {
                return _splitVariants[i];
            }
        }

        // Rounding can leave the last cumulative value a hair under 1.
        return _splitVariants[^1];
    }

    /// <summary>Variants that this split gives more traffic than the previous one did, plus the shadow candidate.</summary>
    public IReadOnlyCollection<string> Candidates()
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        if (Shadow is not null)
        {
            result.Add(Shadow.Name);
        }

        if (!History.IsEmpty)
        {
            var previous = History[0];
            foreach (var w in Split.Weights)
            {
                if (Split.WeightOf(w.Variant) > previous.WeightOf(w.Variant) + 1e-12)
                {
                    result.Add(w.Variant);
                }
            }
        }

        return result;
    }
}
