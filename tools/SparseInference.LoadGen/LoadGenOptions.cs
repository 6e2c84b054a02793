using System.Globalization;

namespace SparseInference.LoadGen;

public enum Protocol
{
    Rest,
    Grpc,
}

/// <summary>Command-line settings, with perf_analyzer-like names.</summary>
public sealed class LoadGenOptions
{
    public const string Usage = """
        SparseInference.LoadGen: load generator for the Open Inference Protocol endpoints.

          --url URL                REST base address (default http://localhost:8000)
          --grpc-url URL           gRPC base address, cleartext HTTP/2 (default http://localhost:8001)
          --protocol rest|grpc     (default rest)
          --encoding json|binary   REST tensor encoding (default json)
          -m, --model NAME         (default skab-pump)
          --model-version V        (default: the server's choice)
          --input NAME             input tensor name (default input)
          --channels N             sensor channels per time step (default 8)
          --parameter KEY=VALUE    extra request parameter, repeatable (e.g. variant=bigbird-0.75)
          --concurrency LIST       closed-loop sweep, e.g. 1,8,32,128 (default 1)
          --rate LIST              open-loop fixed request rates per second, e.g. 50,200 (replaces --concurrency)
          --duration SECONDS       measured time per level (default 10)
          --warmup SECONDS         unmeasured time before each level (default 2)
          --window N               time steps per request (default 64)
          --stride N               rows between consecutive windows of a line (default: window)
          --csv-dir DIR            replay ';'-separated sensor CSVs, one line per file (e.g. ../shared/data/skab)
          --lines N                use at most N lines (default: all files, or 8 synthetic lines)
          --timeout SECONDS        per-request timeout (default 30)
          --max-in-flight N        open-loop cap on outstanding requests (default 4096)
          --json                   print the results as JSON instead of a table
          -h, --help
        """;

    public string RestUrl { get; set; } = "http://localhost:8000";
    public string GrpcUrl { get; set; } = "http://localhost:8001";
    public Protocol Protocol { get; set; } = Protocol.Rest;
    public bool Binary { get; set; }
    public string Model { get; set; } = "skab-pump";
    public string? Version { get; set; }
    public string InputName { get; set; } = "input";
    public int Channels { get; set; } = 8;
    public Dictionary<string, string> Parameters { get; } = new(StringComparer.Ordinal);
    public IReadOnlyList<int> Concurrency { get; set; } = [1];
    public IReadOnlyList<double> Rates { get; set; } = [];
    public TimeSpan Duration { get; set; } = TimeSpan.FromSeconds(10);
    public TimeSpan Warmup { get; set; } = TimeSpan.FromSeconds(2);
    public int Window { get; set; } = 64;
    public int? Stride { get; set; }
    public string? CsvDirectory { get; set; }
    public int? Lines { get; set; }
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);
    public int MaxInFlight { get; set; } = 4096;
    public bool Json { get; set; }
    public bool Help { get; set; }

    /// <summary>Parses arguments; throws <see cref="ArgumentException"/> naming the option, what it expects and what it got.</summary>
    public static LoadGenOptions Parse(IReadOnlyList<string> args)
    {
        var options = new LoadGenOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            string Value()
            {
                if (i + 1 >= args.Count)
                    throw new ArgumentException($"{name} expects a value, but none was given.");
                return args[++i];
            }

            switch (name)
            {
                case "-h" or "--help": options.Help = true; break;
                case "--url": options.RestUrl = Value(); break;
                case "--grpc-url": options.GrpcUrl = Value(); break;
                case "--protocol": options.Protocol = ParseEnum<Protocol>(name, Value()); break;
                case "--encoding":
                    var encoding = Value();
                    options.Binary = encoding switch
                    {
                        "json" => false,
                        "binary" => true,
                        _ => throw new ArgumentException($"--encoding expects json or binary, but got '{encoding}'."),
                    };
                    break;
                case "-m" or "--model": options.Model = Value(); break;
                case "--model-version": options.Version = Value(); break;
                case "--input": options.InputName = Value(); break;
                case "--channels": options.Channels = PositiveInt(name, Value()); break;
                case "--parameter":
                    var pair = Value();
                    var eq = pair.IndexOf('=');
                    if (eq <= 0)
                        throw new ArgumentException($"--parameter expects KEY=VALUE, but got '{pair}'.");
                    options.Parameters[pair[..eq]] = pair[(eq + 1)..];
                    break;
                case "--concurrency": options.Concurrency = [.. Value().Split(',').Select(v => PositiveInt(name, v))]; break;
                case "--rate": options.Rates = [.. Value().Split(',').Select(v => PositiveDouble(name, v))]; break;
                case "--duration": options.Duration = TimeSpan.FromSeconds(PositiveDouble(name, Value())); break;
                case "--warmup": options.Warmup = TimeSpan.FromSeconds(NonNegativeDouble(name, Value())); break;
                case "--window": options.Window = PositiveInt(name, Value()); break;
                case "--stride": options.Stride = PositiveInt(name, Value()); break;
                case "--csv-dir": options.CsvDirectory = Value(); break;
                case "--lines": options.Lines = PositiveInt(name, Value()); break;
                case "--timeout": options.Timeout = TimeSpan.FromSeconds(PositiveDouble(name, Value())); break;
                case "--max-in-flight": options.MaxInFlight = PositiveInt(name, Value()); break;
                case "--json": options.Json = true; break;
                default: throw new ArgumentException($"Unknown option '{name}'. Run with --help for the list.");
            }
        }
        return options;
    }

    private static T ParseEnum<T>(string name, string value)
        where T : struct, Enum =>
        Enum.TryParse<T>(value, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed)
            ? parsed
            : throw new ArgumentException($"{name} expects one of {string.Join("|", Enum.GetNames<T>()).ToLowerInvariant()}, but got '{value}'.");

    private static int PositiveInt(string name, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) && parsed > 0
            ? parsed
            : throw new ArgumentException($"{name} expects a positive integer, but got '{value}'.");

    private static double PositiveDouble(string name, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed) && parsed > 0 && double.IsFinite(parsed)
            ? parsed
            : throw new ArgumentException($"{name} expects a positive number, but got '{value}'.");

    private static double NonNegativeDouble(string name, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed) && parsed >= 0 && double.IsFinite(parsed)
            ? parsed
            : throw new ArgumentException($"{name} expects a number of 0 or more, but got '{value}'.");
}
