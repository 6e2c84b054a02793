using System.Globalization;

namespace SparseInference.Evaluate;

/// <summary>Command-line settings and the run: locate data and model directory, evaluate, print and write the report.</summary>
public sealed class EvaluateCommand
{
    public const string Usage = """
        SparseInference.Evaluate: SKAB (valve1, valve2) replayed through the running service, per variant.
        With per-line onboarding (the default), each file is a line onboarded on its first 400 rows; Hotelling T²
        and PCA T²+Q are reported beside the variants with the same onboarding.

          --url URL                 REST base address (default http://localhost:8000)
          --grpc-url URL            gRPC base address, cleartext HTTP/2 (default http://localhost:8001)
          --protocol LIST           rest-json, rest-binary, grpc; comma-separated (default rest-binary)
          --scoring MODE            line: per-line onboarding, baselines computed with the service's library while
                                    the service runs every forward (default); service: each file onboarded through
                                    the service's admin API, raw readings sent with the line's key, the service's
                                    score and anomaly; model: inputs standardized per file, the thresholds of
                                    serving.json / config.json
          --admin-url URL           the admin port, for --scoring service (default http://localhost:8003)
          --admin-token TOKEN       its bearer token (default: SPARSEINFERENCE_ADMIN_TOKEN)
          -m, --model NAME          served model (default skab-pump)
          --model-version V         (default: serving.json default_version)
          --models-dir DIR          repository holding <model>/serving.json and <model>/<version>/config.json,
                                    for the thresholds and the detector (default: models/ of the repository)
          --variants LIST           comma-separated variant names (default: every variant in serving.json)
          --data-dir DIR            SKAB folder with valve1/ and valve2/ (default: SKAB_DIR, else ../shared/data/skab
                                    next to the repository root)
          --groups LIST             experiment folders under the data folder, e.g. valve1,valve2,other (default
                                    valve1,valve2); each file is one line
          --files LIST              only these files, e.g. valve2/3 (default: all)
          --batch N                 windows per request (default 64)
          --concurrency N           requests in flight (default 4)
          --rounds N                passes over all variants; throughput is the median pass (default 1)
          --warmup N                unmeasured requests per variant before the measured pass (default 8)
          --json FILE               also write the results as JSON
          -h, --help
        """;

    public EvaluationSettings Settings { get; } = new();
    public string? ModelsDirectory { get; set; }
    public string? DataDirectory { get; set; }
    public IReadOnlyList<string>? Files { get; set; }
    public IReadOnlyList<string>? Groups { get; set; }
    public string? JsonPath { get; set; }
    public bool Help { get; set; }

    public static EvaluateCommand Parse(IReadOnlyList<string> args)
    {
        var command = new EvaluateCommand();
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{name}: expected a value.");
            switch (name)
            {
                case "--url":
                    command.Settings.RestUrl = Value();
                    break;
                case "--grpc-url":
                    command.Settings.GrpcUrl = Value();
                    break;
                case "--protocol":
                    command.Settings.Transports = [.. List(Value()).Select(ScoreClients.Parse)];
                    break;
                case "--scoring":
                    command.Settings.Scoring = Value() switch
                    {
                        "line" => ScoringMode.Line,
                        "service" => ScoringMode.Service,
                        "model" => ScoringMode.Model,
                        var other => throw new ArgumentException($"--scoring: expected line, service or model, got '{other}'."),
                    };
                    break;
                case "--admin-url":
                    command.Settings.AdminUrl = Value();
                    break;
                case "--admin-token":
                    command.Settings.AdminToken = Value();
                    break;
                case "-m" or "--model":
                    command.Settings.Model = Value();
                    break;
                case "--model-version":
                    command.Settings.Version = Value();
                    break;
                case "--models-dir":
                    command.ModelsDirectory = Value();
                    break;
                case "--variants":
                    command.Settings.Variants = List(Value());
                    break;
                case "--data-dir":
                    command.DataDirectory = Value();
                    break;
                case "--files":
                    command.Files = List(Value());
                    break;
                case "--groups":
                    command.Groups = List(Value());
                    break;
                case "--batch":
                    command.Settings.Batch = Positive(name, Value());
                    break;
                case "--concurrency":
                    command.Settings.Concurrency = Positive(name, Value());
                    break;
                case "--rounds":
                    command.Settings.Rounds = Positive(name, Value());
                    break;
                case "--warmup":
                    command.Settings.WarmupRequests = Positive(name, Value());
                    break;
                case "--json":
                    command.JsonPath = Value();
                    break;
                case "-h" or "--help":
                    command.Help = true;
                    break;
                default:
                    throw new ArgumentException($"unknown argument '{name}'.");
            }
        }
        command.Settings.AdminToken ??= Environment.GetEnvironmentVariable("SPARSEINFERENCE_ADMIN_TOKEN");
        if (command.Settings.Transports.Count == 0)
            throw new ArgumentException("--protocol: expected at least one of rest-json, rest-binary, grpc.");
        return command;
    }

    /// <summary>The name of a scoring mode on the command line and in the report.</summary>
    public static string ScoringName(ScoringMode mode) => mode.ToString().ToLowerInvariant();

    /// <summary>Loads the calibration and the data, runs the evaluation against the service and reports it.</summary>
    public async Task<EvaluationResult> EvaluateAsync(TextWriter? progress, CancellationToken cancellationToken)
    {
        var modelsDirectory = ModelsDirectory ?? Path.Combine(RepositoryRoot(), "models");
        var calibration = ServingCalibration.Read(Path.Combine(modelsDirectory, Settings.Model), Settings.Version);
        var dataDirectory = DataDirectory ?? SkabData.Locate(Directory.GetCurrentDirectory()) ?? SkabData.Locate(AppContext.BaseDirectory)
            ?? throw new DirectoryNotFoundException($"SKAB data not found: set {SkabData.DirectoryVariable} or --data-dir to the folder holding valve1/ and valve2/ (expected ../shared/data/skab next to the repository root).");
        var experiments = SkabData.Load(dataDirectory, Files?.ToHashSet(StringComparer.Ordinal), Groups);
        progress?.WriteLine($"SKAB from {dataDirectory}: {experiments.Count} files; model {calibration.Model} version {calibration.Version}");
        return await new SkabEvaluator(Settings, calibration, experiments).RunAsync(progress, cancellationToken).ConfigureAwait(false);
    }

    public async Task<int> RunAsync(TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        EvaluationResult result;
        try
        {
            result = await EvaluateAsync(error, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException
            or ServiceCallException or HttpRequestException or System.Text.Json.JsonException or InvalidOperationException)
        {
            error.WriteLine(ex.Message);
            return 1;
        }
        output.Write(EvaluationReport.Markdown(result));
        if (JsonPath is not null)
            await File.WriteAllTextAsync(JsonPath, EvaluationReport.Json(result) + "\n", cancellationToken).ConfigureAwait(false);
        return 0;
    }

    private static string RepositoryRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "SparseInference.sln")))
                    return dir.FullName;
            }
        }
        throw new DirectoryNotFoundException("no SparseInference.sln above the working directory: pass --models-dir.");
    }

    private static List<string> List(string value) => [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    private static int Positive(string name, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1
            ? n
            : throw new ArgumentException($"{name}: expected a positive integer, got '{value}'.");
}
