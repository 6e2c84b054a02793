using System.Diagnostics;
using System.Net;
using System.Text.Json;
using SparseInference.LoadGen;

namespace SparseInference.Evaluate;

/// <summary>Where the service is and how to drive it.</summary>
public sealed class EvaluationSettings
{
    public string RestUrl { get; set; } = "http://localhost:8000";
    public string GrpcUrl { get; set; } = "http://localhost:8001";
    public string Model { get; set; } = "skab-pump";
    public string? Version { get; set; }
    public IReadOnlyList<Transport> Transports { get; set; } = [Transport.RestBinary];

    /// <summary>Per-line onboarding computed here (the default), held by the service, or the model's own thresholds.</summary>
    public ScoringMode Scoring { get; set; } = ScoringMode.Line;

    /// <summary>The service's admin port, where <see cref="ScoringMode.Service"/> onboards the lines.</summary>
    public string AdminUrl { get; set; } = "http://localhost:8003";

    /// <summary>The admin bearer token for <see cref="ScoringMode.Service"/>.</summary>
    public string? AdminToken { get; set; }

    /// <summary>Prefix of the line keys <see cref="ScoringMode.Service"/> onboards (a file's line is the prefix and e.g. <c>valve2/3</c>).</summary>
    public string LinePrefix { get; set; } = "skab-evaluation/";

    /// <summary>Variant names to evaluate; empty means every variant of serving.json.</summary>
    public IReadOnlyList<string> Variants { get; set; } = [];

    /// <summary>Windows per request.</summary>
    public int Batch { get; set; } = 64;

    /// <summary>Requests in flight at once.</summary>
    public int Concurrency { get; set; } = 4;

    /// <summary>
    /// Passes over every variant; throughput is the median pass, so one disturbed pass on a shared machine does not
    /// decide it. Passes are interleaved (all variants, then all again) to spread load changes over the variants.
    /// </summary>
    public int Rounds { get; set; } = 1;

    /// <summary>Unmeasured requests per variant before the measured pass (connections, JIT tiers, first forwards).</summary>
    public int WarmupRequests { get; set; } = 8;

    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(120);
}

/// <summary>
/// One variant over one transport: detection figures from the service's scores (first pass), and the throughput of
/// the median pass. <see cref="Repeatable"/> tells whether every pass returned bit-identical point scores.
/// </summary>
public sealed record VariantResult(
    string Transport,
    VariantCalibration Variant,
    string Threshold,
    IReadOnlyDictionary<string, double>? LineThresholds,
    double Density,
    IReadOnlyDictionary<string, BinaryScores> Groups,
    IReadOnlyList<float[]> PointScores,
    long Windows,
    long Requests,
    IReadOnlyList<double> PassSeconds,
    bool Repeatable,
    ServerCounters? Server)
{
    /// <summary>Median wall time of a pass.</summary>
    public double Seconds
    {
        get
        {
            var sorted = PassSeconds.Order().ToList();
            return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
        }
    }

    public double WindowsPerSecond => Windows / Seconds;
    public double RequestsPerSecond => Requests / Seconds;
    public double SlowestWindowsPerSecond => Windows / PassSeconds.Max();
    public double FastestWindowsPerSecond => Windows / PassSeconds.Min();
}

/// <summary>A classical detector's figures on the same files with the same onboarding (computed here, not by the service).</summary>
public sealed record ClassicalResult(string Detector, IReadOnlyDictionary<string, BinaryScores> Groups);

/// <summary>The whole run: what was evaluated, where, and a result per variant and transport, with the classical detectors beside them.</summary>
public sealed record EvaluationResult(
    ServingCalibration Calibration,
    IReadOnlyList<SkabExperiment> Experiments,
    EvaluationSettings Settings,
    DateTimeOffset Started,
    IReadOnlyList<VariantResult> Results,
    IReadOnlyList<ClassicalResult> Classical);

/// <summary>
/// Replays the SKAB test parts through the running service: every test row's window, <see cref="EvaluationSettings.Batch"/>
/// windows per request, <see cref="EvaluationSettings.Concurrency"/> requests in flight, one variant at a time, scored
/// by the <see cref="IWindowScorer"/> of the scoring mode; in the line mode the classical detectors are reported beside.
/// </summary>
public sealed class SkabEvaluator(EvaluationSettings settings, ServingCalibration calibration, IReadOnlyList<SkabExperiment> experiments)
{
    private sealed record Chunk(int Experiment, int First, int Count);

    public async Task<EvaluationResult> RunAsync(TextWriter? progress, CancellationToken cancellationToken)
    {
        if (settings.Batch < 1)
            throw new ArgumentException($"--batch must be at least 1, got {settings.Batch}.");
        if (settings.Rounds < 1)
            throw new ArgumentException($"--rounds must be at least 1, got {settings.Rounds}.");
        if (settings.Concurrency < 1)
            throw new ArgumentException($"--concurrency must be at least 1, got {settings.Concurrency}.");
        var started = DateTimeOffset.UtcNow;
        var variants = calibration.Select(settings.Variants);
        var detector = calibration.Detector;
        var chunks = BuildChunks(detector);

        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = Math.Max(settings.Concurrency, 2),
            EnableMultipleHttp2Connections = true,
            PooledConnectionLifetime = TimeSpan.FromMinutes(30),
        };
        using var rest = new HttpClient(handler, disposeHandler: false) { BaseAddress = new Uri(settings.RestUrl), Timeout = settings.RequestTimeout };
        using var grpc = OipGrpc.Channel(settings.GrpcUrl, TimeSpan.FromMinutes(30));
        using var admin = new HttpClient { BaseAddress = new Uri(settings.AdminUrl.TrimEnd('/') + "/"), Timeout = settings.RequestTimeout };
        if (!string.IsNullOrEmpty(settings.AdminToken))
            admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", settings.AdminToken);
        var target = new InferTarget(settings.Model, settings.Version, "input", detector.Channels, new Dictionary<string, string>());

        var passes = new List<VariantResult>[settings.Transports.Count * variants.Count];
        for (var round = 1; round <= settings.Rounds; round++)
        {
            for (var t = 0; t < settings.Transports.Count; t++)
            {
                var transport = settings.Transports[t];
                var client = ScoreClients.Create(transport, rest, grpc, target, detector.Window);
                var scorer = CreateScorer(client, admin);
                try
                {
                    var onboarding = Stopwatch.StartNew();
                    await scorer.PrepareAsync(experiments, variants, cancellationToken).ConfigureAwait(false);
                    if (settings.Scoring != ScoringMode.Model)
                        progress?.WriteLine(FormattableString.Invariant($"pass {round}/{settings.Rounds} {ScoreClients.Name(transport)}: {experiments.Count} lines onboarded for {variants.Count} variants in {onboarding.Elapsed.TotalSeconds:F1} s"));
                    for (var v = 0; v < variants.Count; v++)
                    {
                        var result = await RunVariantAsync(scorer, ScoreClients.Name(transport), variants[v], chunks, rest, target, cancellationToken).ConfigureAwait(false);
                        (passes[(t * variants.Count) + v] ??= []).Add(result);
                        progress?.WriteLine(FormattableString.Invariant(
                            $"pass {round}/{settings.Rounds} {result.Transport} {variants[v].Name}: all F1 {result.Groups["all"].F1:F3}, {result.Windows} windows in {result.Seconds:F2} s ({result.WindowsPerSecond:F0} windows/s, {result.RequestsPerSecond:F1} requests/s)"));
                    }
                }
                finally
                {
                    if (scorer is IAsyncDisposable onboarded)
                        await onboarded.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
        var classical = settings.Scoring == ScoringMode.Model ? [] : Classical(detector);
        return new EvaluationResult(calibration, experiments, settings, started, [.. passes.Select(Combine)], classical);
    }

    private IWindowScorer CreateScorer(IScoreClient client, HttpClient admin) => settings.Scoring switch
    {
        ScoringMode.Line => new ClientBaselineScorer(client, calibration, TimeProvider.System, settings.Concurrency),
        ScoringMode.Service => new ServiceBaselineScorer(client, calibration, admin, settings.LinePrefix),
        _ => new ModelThresholdScorer(client, calibration.Detector),
    };

    private List<ClassicalResult> Classical(SkabDetector detector)
    {
        var rule = calibration.Rule!;
        return [.. ClassicalDetectors.Names.Select(name => new ClassicalResult(
            name,
            detector.Score(experiments, [.. experiments.Select(e => ClassicalDetectors.Flags(name, e, detector, rule))])))];
    }

    /// <summary>Figures of the first pass; the median pass's time; whether every pass gave the same point scores bit for bit.</summary>
    private static VariantResult Combine(List<VariantResult> passes)
    {
        var first = passes[0];
        var repeatable = passes.All(p => p.PointScores.Zip(first.PointScores).All(pair => pair.First.AsSpan().SequenceEqual(pair.Second)));
        var median = passes.OrderBy(p => p.PassSeconds[0]).ElementAt(passes.Count / 2);
        return first with { PassSeconds = [.. passes.Select(p => p.PassSeconds[0])], Repeatable = repeatable, Server = median.Server };
    }

    private List<Chunk> BuildChunks(SkabDetector detector)
    {
        var chunks = new List<Chunk>();
        for (var e = 0; e < experiments.Count; e++)
        {
            var rows = detector.TestRows(experiments[e]);
            for (var first = 0; first < rows; first += settings.Batch)
            {
                var count = Math.Min(settings.Batch, rows - first);
                chunks.Add(new Chunk(e, first, count));
            }
        }
        if (chunks.Count == 0)
            throw new InvalidDataException("the selected SKAB files have no test rows.");
        return chunks;
    }

    private async Task<VariantResult> RunVariantAsync(
        IWindowScorer scorer, string transport, VariantCalibration variant, List<Chunk> chunks, HttpClient rest, InferTarget target, CancellationToken cancellationToken)
    {
        var detector = calibration.Detector;
        // Unmeasured requests first, concurrently: connections, JIT and the variant's first forwards are not part of the throughput.
        await Task.WhenAll(Enumerable.Range(0, Math.Max(1, settings.WarmupRequests)).Select(i =>
            CallAsync(scorer, variant, chunks[i % chunks.Count], $"warmup-{i}", cancellationToken))).ConfigureAwait(false);

        var points = experiments.Select(e => new float[detector.TestRows(e)]).ToArray();
        var flags = experiments.Select(e => new bool[detector.TestRows(e)]).ToArray();
        long computed = 0, dense = 0;
        var before = await ReadServerAsync(rest, target, cancellationToken).ConfigureAwait(false);
        var next = -1;
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, Math.Min(settings.Concurrency, chunks.Count)).Select(_ => Task.Run(async () =>
        {
            int index;
            while ((index = Interlocked.Increment(ref next)) < chunks.Count)
            {
                var chunk = chunks[index];
                var batch = await CallAsync(scorer, variant, chunk, $"{variant.Name}-{index}", cancellationToken).ConfigureAwait(false);
                batch.PointScores.CopyTo(points[chunk.Experiment], chunk.First);
                batch.Flags.CopyTo(flags[chunk.Experiment], chunk.First);
                Interlocked.Add(ref computed, batch.ComputedPairs);
                Interlocked.Add(ref dense, batch.DensePairs);
            }
        }, cancellationToken)).ToList();
        await Task.WhenAll(workers).ConfigureAwait(false);
        var seconds = clock.Elapsed.TotalSeconds;
        var after = await ReadServerAsync(rest, target, cancellationToken).ConfigureAwait(false);

        return new VariantResult(
            transport,
            variant,
            scorer.ThresholdText(variant),
            scorer.LineThresholds(variant),
            dense == 0 ? 1.0 : (double)computed / dense,
            detector.Score(experiments, flags),
            points,
            chunks.Sum(c => (long)c.Count),
            chunks.Count,
            [seconds],
            true,
            before is { } b && after is { } a ? a.Minus(b) : null);
    }

    private static async Task<ChunkScores> CallAsync(IWindowScorer scorer, VariantCalibration variant, Chunk chunk, string id, CancellationToken cancellationToken)
    {
        var batch = await scorer.ScoreAsync(chunk.Experiment, variant, chunk.First, chunk.Count, id, cancellationToken).ConfigureAwait(false);
        if (batch.Variant != variant.Name)
            throw new ServiceCallException($"asked for variant '{variant.Name}', the service answered with variant '{batch.Variant}'.");
        return batch;
    }

    private static async Task<ServerCounters?> ReadServerAsync(HttpClient rest, InferTarget target, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await rest.GetAsync(target.ModelPath + "/stats", cancellationToken).ConfigureAwait(false);
            return response.IsSuccessStatusCode ? ServerCounters.Parse(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)) : null;
        }
        catch (Exception ex) when (ex is HttpRequestException or JsonException)
        {
            return null;
        }
    }
}
