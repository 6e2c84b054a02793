using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
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

    /// <summary>
    /// Per-line onboarding held by the service: each file's first rows onboarded through the admin API, raw readings sent
    /// with the line's key, <c>score</c> and <c>anomaly</c> read from the response (docs/baselines.md).
    /// </summary>
    Service,
}

/// <summary>The point scores and flags of a chunk of test rows (one window each), and the attention work the service did.</summary>
public sealed record ChunkScores(float[] PointScores, bool[] Flags, long ComputedPairs, long DensePairs, string Variant);

/// <summary>Turns test rows into point scores and flags through the service; one implementation per scoring mode.</summary>
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
        var batch = await client.ScoreAsync(new ScoreRequest(requestId, variant.Name, detector.TestWindows(_lines[line], first, count), count), cancellationToken).ConfigureAwait(false);
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
        var batch = await client.ScoreAsync(new ScoreRequest(requestId, variant.Name, input, count) { WithOutput = true }, cancellationToken).ConfigureAwait(false);
        var scores = scoring.Score(input, batch.Output!);
        return LastPositions(scores, scoring.Anomaly(scores, detector.Window)!, count, detector.Window, Rule.Positions, batch);
    }

    /// <summary>
    /// A window's row is its last position: its point score the mean calibrated score over the rule's last positions, its
    /// flag the <c>anomaly</c> there (the same mean against the line's threshold).
    /// </summary>
    internal static ChunkScores LastPositions(float[] scores, bool[] anomaly, int windows, int window, int positions, ScoreBatch batch)
    {
        var points = new float[windows];
        var flags = new bool[windows];
        for (var w = 0; w < windows; w++)
        {
            var last = ((w + 1) * window) - 1;
            double sum = 0;
            for (var p = last - positions + 1; p <= last; p++)
                sum += scores[p];
            points[w] = (float)(sum / positions);
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
            var batch = client.ScoreAsync(new ScoreRequest(id, variant, input.Values!, input.Batch) { WithOutput = true }, cancellationToken).GetAwaiter().GetResult();
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

/// <summary>
/// Per-line baselines held by the service: each line is onboarded through the admin API on its first
/// <see cref="SkabData.TrainRows"/> raw rows (<c>PUT /admin/models/{model}/baselines/{line}</c>, the service computes and
/// stores the baseline), then its raw test windows are sent with the line's key and the service's calibrated <c>score</c>
/// and <c>anomaly</c> are read back. The point score and flag of a row are those of its window's last position, as in
/// <see cref="ClientBaselineScorer"/>, so both modes must give the same figures. The lines are removed again when the
/// scorer is disposed.
/// </summary>
public sealed class ServiceBaselineScorer(IScoreClient client, ServingCalibration calibration, HttpClient admin, string linePrefix) : IWindowScorer, IAsyncDisposable
{
    private readonly ConcurrentDictionary<int, LineBaseline> _baselines = new();
    private IReadOnlyList<SkabExperiment> _lines = [];

    public BaselineRule Rule { get; } = calibration.Rule
        ?? throw new InvalidDataException($"model '{calibration.Model}' version {calibration.Version} has no metadata.{BaselineRule.MetadataKey}: it cannot be onboarded (use --scoring model).");

    /// <summary>The key a line is onboarded and scored under.</summary>
    public string KeyOf(SkabExperiment line) => linePrefix + line.Id;

    public async Task PrepareAsync(IReadOnlyList<SkabExperiment> lines, IReadOnlyList<VariantCalibration> variants, CancellationToken cancellationToken)
    {
        _lines = lines;
        // One at a time: the service calibrates one onboarding at a time per replica (Baselines:MaxConcurrentOnboardings).
        for (var i = 0; i < lines.Count; i++)
        {
            var body = JsonSerializer.Serialize(lines[i].RawRows(0, SkabData.TrainRows));
            using var content = new StringContent($"{{\"rows\":{body}}}", Encoding.UTF8, "application/json");
            using var response = await admin.PutAsync(PathOf(lines[i]), content, cancellationToken).ConfigureAwait(false);
            var answer = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.OK)
                throw new ServiceCallException($"onboarding line '{KeyOf(lines[i])}' through the admin API returned HTTP {(int)response.StatusCode}: {Encoding.UTF8.GetString(answer)}");
            var baseline = LineBaseline.FromJson(answer, $"the admin API's answer for line '{KeyOf(lines[i])}'");
            var missing = variants.FirstOrDefault(v => !baseline.Variants.ContainsKey(v.Name));
            if (missing is not null)
                throw new ServiceCallException($"line '{KeyOf(lines[i])}': the service onboarded it for [{string.Join(", ", baseline.Variants.Keys)}], not for variant '{missing.Name}'.");
            _baselines[i] = baseline;
        }
    }

    public async Task<ChunkScores> ScoreAsync(int line, VariantCalibration variant, int first, int count, string requestId, CancellationToken cancellationToken)
    {
        var detector = calibration.Detector;
        var key = KeyOf(_lines[line]);
        var raw = detector.RawTestWindows(_lines[line], first, count);
        var batch = await client.ScoreAsync(new ScoreRequest(requestId, variant.Name, raw, count) { WithAnomaly = true, Line = key }, cancellationToken).ConfigureAwait(false);
        if (batch.BaselineLine != key)
            throw new ServiceCallException($"line '{key}': the service scored the request with {(batch.BaselineLine is null ? "no line baseline" : $"the baseline of line '{batch.BaselineLine}'")}; expected the line's own.");
        return ClientBaselineScorer.LastPositions(batch.Scores, batch.Anomaly!, count, detector.Window, Rule.Positions, batch);
    }

    public string ThresholdText(VariantCalibration variant) => "per line";

    public IReadOnlyDictionary<string, double>? LineThresholds(VariantCalibration variant) =>
        _baselines.ToDictionary(b => _lines[b.Key].Id, b => b.Value.Variants[variant.Name].Threshold, StringComparer.Ordinal);

    /// <summary>Removes the lines this scorer onboarded; one that cannot be removed stays (the service keeps serving).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var line in _baselines.Keys)
        {
            try
            {
                using var response = await admin.DeleteAsync(PathOf(_lines[line])).ConfigureAwait(false);
            }
            catch (HttpRequestException)
            {
                // Left in the store: the next evaluation replaces it.
            }
        }
    }

    private string PathOf(SkabExperiment line) =>
        $"admin/models/{Uri.EscapeDataString(calibration.Model)}/baselines/{string.Join('/', KeyOf(line).Split('/').Select(Uri.EscapeDataString))}";
}
