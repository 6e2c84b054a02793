using System.Collections.Immutable;
using SparseInference.Serving.Variants.Rollout;

namespace SparseInference.Serving.Variants;

/// <summary>
/// One model's variants and split at one moment, built from one revision of its rollout state. Immutable: a
/// change builds a new table and the registry swaps the reference atomically, so a reader always sees a
/// consistent set.
/// </summary>
public sealed class RoutingTable
{
    private readonly Variant[] _splitVariants;
    private readonly double[] _cumulative;

    internal RoutingTable(string model, RolloutState rollout, ImmutableDictionary<string, Variant> variants)
    {
        var split = rollout.Split;
        Model = model;
        Rollout = rollout;
        Variants = variants;
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

    /// <summary>The rollout state this table serves.</summary>
    public RolloutState Rollout { get; }

    /// <summary>The revision of the rollout state: the same number on every replica that serves the same state.</summary>
    public long Version => Rollout.Revision;

    public ImmutableDictionary<string, Variant> Variants { get; }

    public SplitConfig Split => Rollout.Split;

    /// <summary>Earlier splits, most recent first; rollback restores the first.</summary>
    public ImmutableList<SplitConfig> History => Rollout.History;

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

    /// <summary>
    /// Variants that this split gives more traffic than the previous one did (unless a rollback restored it), plus
    /// the shadow candidate.
    /// </summary>
    public IReadOnlyCollection<string> Candidates()
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        if (Shadow is not null)
        {
            result.Add(Shadow.Name);
        }

        if (!History.IsEmpty && !Rollout.RolledBack)
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
