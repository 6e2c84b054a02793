using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SparseInference.Models;

namespace SparseInference.Benchmarks.Models;

/// <summary>
/// Cost per window of a small served model (default models/skab-pump/1) when B windows run as one forward, for a
/// list of batch sizes: what the serving layer's micro-batching can gain. Batch sizes are timed in interleaved
/// rounds so that all of them see the same machine load; each figure is the median over rounds of a round's median.
/// The peer is the model itself at batch 1, measured in the same rounds; nothing is asserted.
/// </summary>
public static class WindowsBenchmark
{
    private sealed record Options(string Model, int[] Batches, int Time, int Rounds, double RoundMilliseconds, string? Pattern);

    public static int Run(string[] args)
    {
        var options = Parse(args);
        var log = Console.Out;
        string modelDir = Path.IsPathRooted(options.Model) ? options.Model : Path.Combine(FindRepositoryRoot(), options.Model);
        using var model = EncoderModel.Load(modelDir);
        int time = options.Time > 0 ? options.Time : WindowLength(modelDir) ?? Math.Min(64, model.Config.MaxSeqLen);
        var spec = options.Pattern is null ? model.Config.Attention : model.Config.Attention with { Pattern = options.Pattern };
        int channels = model.Config.InputChannels;
        log.WriteLine($"# windows benchmark {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; {Environment.ProcessorCount} cores; .NET {Environment.Version}; load avg {LoadAverage()}");
        log.WriteLine($"# model {options.Model}: d_model {model.Config.DModel}, {model.Config.NLayers} layers, {model.Config.NHeads} heads, d_ff {model.Config.DFf}; " +
                      $"window T {time} × {channels} channels; pattern {spec.Pattern}; backend {model.Backend?.Name ?? "built-in"}");

        var inputs = options.Batches.ToDictionary(b => b, b => RandomInput(b, time, channels, seed: 100 + b));
        foreach (var b in options.Batches)
        {
            // Warm-up: JIT, per-shape caches, worker pool start.
            for (int i = 0; i < 3; i++)
            {
                model.Forward(inputs[b], spec);
            }
        }

        var perRound = options.Batches.ToDictionary(b => b, _ => new List<double>());
        for (int round = 0; round < options.Rounds; round++)
        {
            foreach (var b in options.Batches)
            {
                var samples = new List<double>();
                var total = Stopwatch.StartNew();
                while (samples.Count < 5 || total.Elapsed.TotalMilliseconds < options.RoundMilliseconds)
                {
                    long start = Stopwatch.GetTimestamp();
                    model.Forward(inputs[b], spec);
                    samples.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds / b);
                }

                perRound[b].Add(Median(samples));
            }
        }

        log.WriteLine($"# load avg at end {LoadAverage()}");
        log.WriteLine();
        log.WriteLine("| batch | µs per forward | µs per window | per window vs batch 1 | round medians µs/window (min … max) |");
        log.WriteLine("|---:|---:|---:|---:|---|");
        double single = Median(perRound[options.Batches.Contains(1) ? 1 : options.Batches[0]]);
        foreach (var b in options.Batches)
        {
            double perWindow = Median(perRound[b]);
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {b} | {perWindow * b:F0} | {perWindow:F1} | {perWindow / single:F2} | {perRound[b].Min():F1} … {perRound[b].Max():F1} |"));
        }

        return 0;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    }

    /// <summary>The window length a served model was trained on (config metadata.window_length), if it says.</summary>
    private static int? WindowLength(string modelDir)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(modelDir, EncoderModel.ConfigFileName)));
        return doc.RootElement.TryGetProperty("metadata", out var metadata)
               && metadata.ValueKind == JsonValueKind.Object
               && metadata.TryGetProperty("window_length", out var length)
               && length.TryGetInt32(out int value)
            ? value
            : null;
    }

    private static ForwardInput RandomInput(int batch, int time, int channels, int seed)
    {
        var random = new Random(seed);
        var values = new float[batch * time * channels];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = (float)(random.NextDouble() * 2 - 1);
        }

        return new ForwardInput { Batch = batch, Time = time, Values = values };
    }

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Trim();
        }
        catch (IOException)
        {
            return "n/a";
        }
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SparseInference.sln")))
            {
                return dir.FullName;
            }
        }

        return Directory.GetCurrentDirectory();
    }

    private static Options Parse(string[] args)
    {
        var options = new Options("models/skab-pump/1", [1, 2, 3, 4, 5, 8, 16, 32], 0, 7, 150, null);
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            options = args[i] switch
            {
                "--model" => options with { Model = Next() },
                "--batches" => options with { Batches = Next().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray() },
                "--time" => options with { Time = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--rounds" => options with { Rounds = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--round-ms" => options with { RoundMilliseconds = double.Parse(Next(), CultureInfo.InvariantCulture) },
                "--pattern" => options with { Pattern = Next() },
                var other => throw new ArgumentException($"Unknown option '{other}'. Options: --model DIR, --batches 1,2,4,8, --time T, --rounds N, --round-ms MS, --pattern NAME."),
            };
        }

        if (options.Batches.Length == 0 || options.Batches.Any(b => b < 1))
        {
            throw new ArgumentException($"--batches: expected positive batch sizes, got '{string.Join(',', options.Batches)}'.");
        }

        return options;
    }
}
