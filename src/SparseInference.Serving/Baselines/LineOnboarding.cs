using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SparseInference.Models;
using SparseInference.Serving.Repository;
using SparseInference.Serving.State;
using SparseInference.Serving.Variants;

namespace SparseInference.Serving.Baselines;

/// <summary>What went wrong with an administrative baseline operation; the transport maps it to a status.</summary>
public enum BaselineRefusal
{
    /// <summary>Bad onboarding data, line key, body or model without a rule (400).</summary>
    Invalid,

    /// <summary>Unknown model, version or line (404).</summary>
    NotFound,

    /// <summary>Another writer stored the line meanwhile (409).</summary>
    Conflict,

    /// <summary>The caller's <c>If-Match</c> revision is not the stored one (412).</summary>
    PreconditionFailed,

    /// <summary>The state store could not be read or written, or the model is not ready (503).</summary>
    Unavailable,
}

/// <summary>An administrative baseline operation was refused and nothing changed; the message is meant for the caller.</summary>
public sealed class BaselineRequestException(BaselineRefusal refusal, string message) : Exception(message)
{
    public BaselineRefusal Refusal { get; } = refusal;
}

/// <summary>What an onboarding is computed against: the model version, its rule and the variants the model serves now.</summary>
public sealed record OnboardingTarget(CalibrationTarget Calibration, int MaxRows)
{
    /// <summary>Channel names in input order (the model's <c>metadata.features</c>); empty when it lists none.</summary>
    public IReadOnlyList<string> Channels => Calibration.Rule.Channels;
}

/// <summary>One line of a recalibration: its new baseline, or why it keeps the one it had.</summary>
public sealed record RecalibrationOutcome(string Line, LineBaseline? Baseline, string? Error);

/// <summary>One line's stored baseline as the list shows it (a line of <c>GET /admin/models/{model}/baselines</c>), with the revision this replica applies.</summary>
public sealed record BaselineSummary(
    string Line,
    long Revision,
    long AppliedRevision,
    DateTimeOffset? CreatedAt,
    string? ModelVersion,
    int? Rows,
    IReadOnlyDictionary<string, double>? Thresholds,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Error);

/// <summary>
/// The administrative side of line baselines (docs/baselines.md, <i>Admin API</i>): onboarding a line from its raw rows
/// (calibrated first, stored only on success, so a refusal keeps the line's existing baseline), storing a baseline
/// computed elsewhere, computing one again from the rows kept in the store, listing, reading and removing. Every write
/// is a compare-and-swap on the line's revision in the shared store; every replica then applies it.
/// </summary>
public sealed partial class LineOnboarding : IDisposable
{
    private readonly ModelRepository _repository;
    private readonly VariantCatalog _catalog;
    private readonly LineBaselines _baselines;
    private readonly BaselineCalibrator _calibrator;
    private readonly ILogger<LineOnboarding> _logger;
    private readonly SemaphoreSlim _calibrations;

    public LineOnboarding(
        ModelRepository repository,
        VariantCatalog catalog,
        LineBaselines baselines,
        IOptions<LineBaselineOptions> options,
        TimeProvider time,
        ILogger<LineOnboarding> logger)
    {
        _repository = repository;
        _catalog = catalog;
        _baselines = baselines;
        _calibrator = new BaselineCalibrator(time);
        _logger = logger;
        Options = options.Value;
        _calibrations = new SemaphoreSlim(Options.MaxConcurrentOnboardings, Options.MaxConcurrentOnboardings);
    }

    public LineBaselineOptions Options { get; }

    private LineBaselineStore Store => _baselines.Store;

    /// <summary>
    /// The model version (<paramref name="version"/>, else the default) and every variant the model serves now, each on
    /// the weights it runs on. Refused for an unknown model or version and for a model that states no baseline rule.
    /// </summary>
    public OnboardingTarget Target(string model, string? version)
    {
        var registry = Registry(model);
        ModelVersion resolved;
        try
        {
            resolved = _repository.Resolve(model, version);
        }
        catch (InferenceException ex)
        {
            throw new BaselineRequestException(ex.Kind == InferenceErrorKind.NotFound ? BaselineRefusal.NotFound : BaselineRefusal.Unavailable, ex.Message);
        }

        var variants = registry.Current.Variants.Values
            .OrderBy(v => v.Name, StringComparer.Ordinal)
            .Select(v => new CalibrationVariant(
                v.Name,
                v.Definition.WeightsDirectory is null ? resolved.Model : new VariantWeights(v.LoadedModel, resolved.Configuration),
                v.Spec))
            .ToList();
        try
        {
            return new OnboardingTarget(CalibrationTarget.For(resolved, variants), Options.MaxOnboardingRows);
        }
        catch (OnboardingException ex)
        {
            throw new BaselineRequestException(BaselineRefusal.Invalid, ex.Message);
        }
    }

    /// <summary>
    /// Onboards <paramref name="line"/>: computes its baseline from <paramref name="rows"/> (raw readings in the model's
    /// channel order), then stores it as the line's next revision and keeps the rows beside it. Bad data is refused with
    /// the calibrator's message and nothing is written.
    /// </summary>
    /// <param name="ifMatch">When set, the revision the caller expects the line to have now (0: none); otherwise the one read before calibrating.</param>
    public async Task<LineBaseline> OnboardAsync(OnboardingTarget target, string line, IReadOnlyList<double[]> rows, long? ifMatch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var model = target.Calibration.Model;
        CheckLine(line);
        var expected = await ExpectedRevisionAsync(model, line, ifMatch, cancellationToken).ConfigureAwait(false);
        var baseline = await CalibrateAsync(target, line, rows, cancellationToken).ConfigureAwait(false);
        var stored = await StoreAsync(model, baseline with { Revision = expected + 1 }, expected, cancellationToken).ConfigureAwait(false);
        try
        {
            await Store.WriteRowsAsync(model, line, stored.Revision, target.Calibration.Rule.Channels, rows, cancellationToken).ConfigureAwait(false);
        }
        catch (StateStoreException ex)
        {
            // The baseline is stored and applies; only computing it again from the store's rows is not possible until the next onboarding.
            Log.RowsNotKept(_logger, model, line, stored.Revision, ex);
        }

        return stored;
    }

    /// <summary>
    /// Stores a baseline computed elsewhere (the offline tool) as the line's next revision, once it is checked against the
    /// model this server serves: same model and line, a loaded version, the model's channel count, and every variant served now.
    /// </summary>
    public async Task<LineBaseline> StoreComputedAsync(string model, string line, ReadOnlyMemory<byte> json, long? ifMatch, CancellationToken cancellationToken)
    {
        var registry = Registry(model);
        CheckLine(line);
        LineBaseline baseline;
        try
        {
            baseline = LineBaseline.FromJson(json.Span, "baseline");
        }
        catch (InvalidDataException ex)
        {
            throw new BaselineRequestException(BaselineRefusal.Invalid, ex.Message);
        }

        if (baseline.Model != model || baseline.Line != line)
        {
            throw new BaselineRequestException(BaselineRefusal.Invalid,
                $"baseline: expected one of model '{model}' line '{line}' (the request's path), actual model '{baseline.Model}' line '{baseline.Line}'.");
        }

        ModelVersion version;
        try
        {
            version = _repository.Resolve(model, baseline.ModelVersion);
        }
        catch (InferenceException ex)
        {
            throw new BaselineRequestException(BaselineRefusal.Invalid, $"baseline: model_version {baseline.ModelVersion}: {ex.Message}");
        }

        if (baseline.Channels != version.Configuration.InputChannels)
            throw new BaselineRequestException(BaselineRefusal.Invalid, $"baseline: expected {version.Configuration.InputChannels} channels (model '{model}' version {version.Version}), actual {baseline.Channels}.");
        var missing = registry.Current.Variants.Keys.Where(v => !baseline.Variants.ContainsKey(v)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0)
        {
            throw new BaselineRequestException(BaselineRefusal.Invalid,
                $"baseline: expected every variant model '{model}' serves [{string.Join(", ", registry.Current.Variants.Keys.Order(StringComparer.Ordinal))}], actual none for [{string.Join(", ", missing)}]; compute it with those variants or onboard the line through this API.");
        }

        var expected = await ExpectedRevisionAsync(model, line, ifMatch, cancellationToken).ConfigureAwait(false);
        var stored = await StoreAsync(model, baseline with { Revision = expected + 1 }, expected, cancellationToken).ConfigureAwait(false);
        // Rows kept for an earlier revision would no longer be this baseline's.
        await Guard(() => Store.DeleteRowsAsync(model, line, cancellationToken)).ConfigureAwait(false);
        return stored;
    }

    /// <summary>
    /// Computes baselines again from the onboarding rows the store keeps, for the model's current version (or
    /// <paramref name="version"/>) and the variants it serves now, e.g. after a new version was loaded or a variant added:
    /// each of <paramref name="lines"/>, or every line with a baseline. Each line is stored as its next revision on its
    /// own; one that cannot be computed again (no rows kept, data the new version refuses) keeps its baseline and is
    /// reported with the reason.
    /// </summary>
    public async Task<IReadOnlyList<RecalibrationOutcome>> RecalibrateAsync(string model, IReadOnlyCollection<string>? lines, string? version, CancellationToken cancellationToken)
    {
        var target = Target(model, version);
        var chosen = lines is { Count: > 0 } ? lines : await Guard(() => Store.ListLinesAsync(model, cancellationToken)).ConfigureAwait(false);
        var outcomes = new List<RecalibrationOutcome>(chosen.Count);
        foreach (var line in chosen)
        {
            try
            {
                CheckLine(line);
                var rows = await Guard(() => Store.ReadRowsAsync(model, line, cancellationToken)).ConfigureAwait(false);
                if (rows is null)
                {
                    var exists = await Guard(() => Store.ReadRevisionAsync(model, line, cancellationToken)).ConfigureAwait(false) != 0;
                    throw new BaselineRequestException(BaselineRefusal.NotFound, exists
                        ? $"line '{line}' of model '{model}': its baseline was stored without its onboarding rows (computed elsewhere); onboard it again with its rows."
                        : NoBaseline(model, line));
                }

                outcomes.Add(new RecalibrationOutcome(line, await OnboardAsync(target, line, rows.Rows, null, cancellationToken).ConfigureAwait(false), null));
            }
            catch (BaselineRequestException ex)
            {
                outcomes.Add(new RecalibrationOutcome(line, null, ex.Message));
            }
        }

        return outcomes;
    }

    /// <summary>The stored baseline of the line.</summary>
    public async Task<LineBaseline> GetAsync(string model, string line, CancellationToken cancellationToken)
    {
        Registry(model);
        CheckLine(line);
        return await Guard(() => Store.ReadAsync(model, line, cancellationToken)).ConfigureAwait(false)
            ?? throw new BaselineRequestException(BaselineRefusal.NotFound, NoBaseline(model, line));
    }

    /// <summary>Every stored baseline of the model, with the revision this replica applies; an unreadable document is listed with its error.</summary>
    public async Task<IReadOnlyList<BaselineSummary>> ListAsync(string model, CancellationToken cancellationToken)
    {
        Registry(model);
        var lines = await Guard(() => Store.ListLinesAsync(model, cancellationToken)).ConfigureAwait(false);
        var summaries = new List<BaselineSummary>(lines.Count);
        foreach (var line in lines)
        {
            var applied = _baselines.Find(model, line)?.Revision ?? 0;
            try
            {
                if (await Store.ReadAsync(model, line, cancellationToken).ConfigureAwait(false) is not { } baseline)
                    continue;
                summaries.Add(new BaselineSummary(
                    line, baseline.Revision, applied, baseline.CreatedAt, baseline.ModelVersion, baseline.Rows,
                    baseline.Variants.ToImmutableSortedDictionary(v => v.Key, v => v.Value.Threshold, StringComparer.Ordinal), null));
            }
            catch (StateStoreException ex)
            {
                summaries.Add(new BaselineSummary(line, 0, applied, null, null, null, null, ex.Message));
            }
        }

        return summaries;
    }

    /// <summary>Removes the line's baseline and the rows kept beside it.</summary>
    public async Task DeleteAsync(string model, string line, long? ifMatch, CancellationToken cancellationToken)
    {
        Registry(model);
        CheckLine(line);
        var stored = await Guard(() => Store.ReadRevisionAsync(model, line, cancellationToken)).ConfigureAwait(false);
        if (stored == 0)
            throw new BaselineRequestException(BaselineRefusal.NotFound, NoBaseline(model, line));
        if (ifMatch is { } wanted && wanted != stored)
            throw PreconditionFailed(model, line, wanted, stored);
        var result = await Guard(() => _baselines.DeleteAsync(model, line, stored, cancellationToken)).ConfigureAwait(false);
        if (!result.Written)
            throw Conflict(model, line, stored, result.StoredRevision);
        await Guard(() => Store.DeleteRowsAsync(model, line, cancellationToken)).ConfigureAwait(false);
    }

    public void Dispose() => _calibrations.Dispose();

    private async Task<LineBaseline> CalibrateAsync(OnboardingTarget target, string line, IReadOnlyList<double[]> rows, CancellationToken cancellationToken)
    {
        if (rows.Count > target.MaxRows)
            throw new BaselineRequestException(BaselineRefusal.Invalid, $"onboarding data: {rows.Count} rows, expected at most {target.MaxRows}.");
        await _calibrations.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // The calibrator drives the model synchronously: off the request's thread, one onboarding per permit.
            return await Task.Run(() => _calibrator.Calibrate(line, target.Calibration, rows), cancellationToken).ConfigureAwait(false);
        }
        catch (OnboardingException ex)
        {
            throw new BaselineRequestException(BaselineRefusal.Invalid, ex.Message);
        }
        finally
        {
            _calibrations.Release();
        }
    }

    private async Task<LineBaseline> StoreAsync(string model, LineBaseline baseline, long expected, CancellationToken cancellationToken)
    {
        var result = await Guard(() => _baselines.StoreAsync(model, baseline, expected, cancellationToken)).ConfigureAwait(false);
        return result.Written ? baseline : throw Conflict(model, baseline.Line, expected, result.StoredRevision);
    }

    /// <summary>The revision a write replaces: the caller's <c>If-Match</c>, checked against the store, else the stored one.</summary>
    private async Task<long> ExpectedRevisionAsync(string model, string line, long? ifMatch, CancellationToken cancellationToken)
    {
        var stored = await Guard(() => Store.ReadRevisionAsync(model, line, cancellationToken)).ConfigureAwait(false);
        if (ifMatch is { } wanted && wanted != stored)
            throw PreconditionFailed(model, line, wanted, stored);
        return stored;
    }

    private VariantRegistry Registry(string model) =>
        _catalog.TryGet(model, out var registry)
            ? registry
            : throw new BaselineRequestException(BaselineRefusal.NotFound, $"model: expected one of [{string.Join(", ", _catalog.Models)}], actual '{model}'");

    private static void CheckLine(string line)
    {
        if (LineBaselineStore.LineProblem(line) is { } problem)
            throw new BaselineRequestException(BaselineRefusal.Invalid, problem);
    }

    private static string NoBaseline(string model, string line) => $"line '{line}' of model '{model}' has no baseline; onboard it with PUT.";

    private static BaselineRequestException Conflict(string model, string line, long expected, long stored) =>
        new(BaselineRefusal.Conflict,
            $"line '{line}' of model '{model}': expected revision {expected} in the state store, actual {stored}: another onboarding or removal was stored meanwhile; nothing was written, retry.");

    private static BaselineRequestException PreconditionFailed(string model, string line, long wanted, long stored) =>
        new(BaselineRefusal.PreconditionFailed,
            $"If-Match: expected line '{line}' of model '{model}' at revision {wanted.ToString(CultureInfo.InvariantCulture)}, actual {(stored == 0 ? "no baseline" : $"revision {stored.ToString(CultureInfo.InvariantCulture)}")}; nothing was written.");

    /// <summary>A store failure as a refusal (503): nothing was changed.</summary>
    private async Task<T> Guard<T>(Func<Task<T>> operation)
    {
        try
        {
            return await operation().ConfigureAwait(false);
        }
        catch (StateStoreException ex)
        {
            throw new BaselineRequestException(BaselineRefusal.Unavailable, $"state store {Store.Location}: {ex.Message}");
        }
    }

    private async Task Guard(Func<Task> operation) => await Guard(async () =>
    {
        await operation().ConfigureAwait(false);
        return true;
    }).ConfigureAwait(false);

    /// <summary>A variant on weights of its own as the calibrator sees a model: its forward with the version's configuration.</summary>
    private sealed class VariantWeights(IVariantModel model, ModelConfiguration configuration) : IInferenceModel
    {
        public ModelConfiguration Configuration => configuration;

        public ForwardResult Forward(ForwardInput input, AttentionSpec attention) => model.Forward(input, attention);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.OnboardingRowsNotKept, Level = LogLevel.Warning, Message = "Onboarding rows of line {Line} of {Model} (baseline revision {Revision}) were not kept in the state store; the baseline applies, but cannot be recalibrated from the store until the line is onboarded again")]
        public static partial void RowsNotKept(ILogger logger, string model, string line, long revision, Exception exception);
    }
}
