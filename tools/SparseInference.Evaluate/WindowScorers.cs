using System.Collections.Concurrent;
using SparseInference.Models;
using SparseInference.Serving.Baselines;
using SparseInference.Serving.Repository;

namespace SparseInference.Evaluate;

/// <summary>How test rows are scored: with the model's own thresholds, or with per-line baselines.</summary>
public enum ScoringMode
{
    /// <summary>Per-line onboarding: each file's first rows calibrate its baseline (docs/baselines.md); raw readings are scored with it.</summary>
    Line,

    /// <summary>No baseline: inputs standardized here per file, one threshold per variant from serving.json / config.json.</summary>
    Model,
}

/// <summary>The point scores and flags of a chunk of test rows (one window each), and the attention work the service did.</summary>
public sealed record ChunkScores(float[] PointScores, bool[] Flags, long ComputedPairs, long DensePairs, string Variant);

/// <summary>
/// Turns test rows into point scores and flags through the service. One implementation per scoring mode; the mode in
/// which the service holds the baselines itself (onboarding through the admin API, raw readings sent with the line's
/// key, <c>score</c> and <c>anomaly</c> read from the response) is one more implementation of this interface.
/// </summary>
public interface IWindowScorer
{
    /// <summary>Readies every line for the variants (onboarding, in the baseline modes) before any row is scored.</summary>
    Task PrepareAsync(IReadOnlyList<SkabExperiment> lines, IReadOnlyList<VariantCalibration> variants, CancellationToken cancellationToken);

    /// <summary>The windows ending at test rows [first, first + count) of line <paramref name="line"/> through <paramref name="variant"/>.</summary>
    Task<ChunkScores> ScoreAsync(int line, VariantCalibration variant, int first, int count, string requestId, CancellationToken cancellationToken);

    /// <summary>How the threshold is set, for the report: a number, or "per line".</summary>
    string ThresholdText(VariantCalibration variant);

    /// <summary>Each line's threshold for the variant, by line id; null when one threshold serves every line.</summary>
    IReadOnlyDictionary<string, double>? LineThresholds(VariantCalibration variant);
}

/// <summary>Without baselines: standardized windows, the <c>score</c> output, one threshold per variant (as tools/train/eval_model_dir.py).</summary>
public sealed class ModelThresholdScorer(IScoreClient client, SkabDetector detector) : IWindowScorer
{
    private IReadOnlyList<SkabExperiment> _lines = [];

    public Task PrepareAsync(IReadOnlyList<SkabExperiment> lines, IReadOnlyList<VariantCalibration> variants, CancellationToken cancellationToken)
    {
        _lines = lines;
        return Task.CompletedTask;
    }

    public async Task<ChunkScores> ScoreAsync(int line, VariantCalibration variant, int first, int count, string requestId, CancellationToken cancellationToken)
    {
        var batch = await client.ScoreAsync(requestId, variant.Name, detector.TestWindows(_lines[line], first, count), count, false, cancellationToken).ConfigureAwait(false);
        var points = detector.PointScores(batch.Scores, count);
        return new ChunkScores(points, SkabDetector.Flag(points, variant.Threshold), batch.ComputedPairs, batch.DensePairs, batch.Variant);
    }

    public string ThresholdText(VariantCalibration variant) => variant.Threshold.ToString("0.#####", System.Globalization.CultureInfo.InvariantCulture);

    public IReadOnlyDictionary<string, double>? LineThresholds(VariantCalibration variant) => null;
}

/// <summary>
/// Per-line baselines computed here with the service's own library (<see cref="BaselineCalibrator"/>, <see cref="LineScoring"/>)
/// while every forward runs in the service: each line is onboarded on its first <see cref="SkabData.TrainRows"/> raw rows
/// (the service reconstructs the onboarding windows), then its raw test windows are standardized, reconstructed by the
/// service and scored. A row's point score is the mean calibrated score over the last positions of its window, its flag
/// the <c>anomaly</c> the service computes with the same baseline.
/// </summary>
public sealed class ClientBaselineScorer(IScoreClient client, ServingCalibration calibration, TimeProvider time, int concurrency) : IWindowScorer
{
    private readonly ConcurrentDictionary<int, LineBaseline> _baselines = new();
    private IReadOnlyList<SkabExperiment> _lines = [];

    public BaselineRule Rule { get; } = calibration.Rule
        ?? throw new InvalidDataException($"model '{calibration.Model}' version {calibration.Version} has no metadata.{BaselineRule.MetadataKey}: it cannot be evaluated with line baselines (use --scoring model).");

    /// <summary>The baseline each line got, by line index.</summary>
    public IReadOnlyDictionary<int, LineBaseline> Baselines => _baselines;

    public async Task PrepareAsync(IReadOnlyList<SkabExperiment> lines, IReadOnlyList<VariantCalibration> variants, CancellationToken cancellationToken)
    {
        _lines = lines;
        var target = new CalibrationTarget(
            calibration.Model,
            calibration.Version,
            Rule,
            calibration.Configuration.InputChannels,
            [.. variants.Select(v => new CalibrationVariant(v.Name, new ServiceModel(client, v.Name, calibration.Configuration, cancellationToken), new AttentionSpec(v.Pattern, v.Sparsity)))]);
        var calibrator = new BaselineCalibrator(time);
        // The calibrator drives the model synchronously: one pool thread per line in calibration.
        await Parallel.ForEachAsync(
            Enumerable.Range(0, lines.Count),
            new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken },
            (i, _) =>
            {
                _baselines[i] = calibrator.Calibrate(lines[i].Id, target, lines[i].RawRows(0, SkabData.TrainRows));
                return ValueTask.CompletedTask;
            }).ConfigureAwait(false);
    }

    public async Task<ChunkScores> ScoreAsync(int line, VariantCalibration variant, int first, int count, string requestId, CancellationToken cancellationToken)
    {
        var detector = calibration.Detector;
        var scoring = LineScoring.With(_baselines[line], calibration.Model, calibration.Version, variant.Name, calibration.Configuration);
        var input = scoring.ModelInput(detector.RawTestWindows(_lines[line], first, count));
        var batch = await client.ScoreAsync(requestId, variant.Name, input, count, true, cancellationToken).ConfigureAwait(false);
        var scores = scoring.Score(input, batch.Output!);
        var anomaly = scoring.Anomaly(scores, detector.Window)!;
        var points = new float[count];
        var flags = new bool[count];
        for (var w = 0; w < count; w++)
        {
            var last = ((w + 1) * detector.Window) - 1;
            double sum = 0;
            for (var p = last - Rule.Positions + 1; p <= last; p++)
                sum += scores[p];
            points[w] = (float)(sum / Rule.Positions);
            flags[w] = anomaly[last];
        }

        return new ChunkScores(points, flags, batch.ComputedPairs, batch.DensePairs, batch.Variant);
    }

    public string ThresholdText(VariantCalibration variant) => "per line";

    public IReadOnlyDictionary<string, double>? LineThresholds(VariantCalibration variant) =>
        _baselines.ToDictionary(b => _lines[b.Key].Id, b => b.Value.Variants[variant.Name].Threshold, StringComparer.Ordinal);

    /// <summary>
    /// The served model as <see cref="IInferenceModel"/>: one variant of it, each forward a request for the <c>output</c>
    /// tensor. Synchronous because the abstraction is; calibration runs on pool threads.
    /// </summary>
    private sealed class ServiceModel(IScoreClient client, string variant, ModelConfiguration configuration, CancellationToken cancellationToken) : IInferenceModel
    {
        private int _requests;

        public ModelConfiguration Configuration => configuration;

        public ForwardResult Forward(ForwardInput input, AttentionSpec attention)
        {
            var id = $"onboarding-{variant}-{Interlocked.Increment(ref _requests)}";
            var batch = client.ScoreAsync(id, variant, input.Values!, input.Batch, true, cancellationToken).GetAwaiter().GetResult();
            if (batch.Variant != variant)
                throw new ServiceCallException($"asked for variant '{variant}', the service answered with variant '{batch.Variant}'.");
            return new ForwardResult
            {
                Output = batch.Output!,
                Shape = [input.Batch, input.Time, configuration.OutputDim],
                ComputedPairs = batch.ComputedPairs,
                DensePairs = batch.DensePairs,
            };
        }
    }
}
