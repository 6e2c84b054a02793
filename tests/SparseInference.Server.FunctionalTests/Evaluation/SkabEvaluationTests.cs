using System.Globalization;
using System.Text.Json.Nodes;
using SparseInference.Evaluate;
using SparseInference.Models;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Testing;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Server.FunctionalTests.Evaluation;

/// <summary>
/// The SKAB evaluator against the real server: its F1/FAR/MAR for one SKAB file must equal a computation done here
/// with the engine directly (same windows, same batches) and confusion counts of our own, without line baselines
/// (the model's thresholds) and with them (the file onboarded on its first rows).
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class SkabEvaluationTests(ServerFixture server)
{
    private const string File = "valve2/3";
    private const int TrainRows = 400;
    private const int Batch = 50;


    [SkippableTheory]
    [InlineData("rest-binary", "dense")]
    [InlineData("grpc", "block-topk-0.75")]
    [InlineData("rest-json", "window-0.75")]
    public async Task RunAsync_OneSkabFileThroughServer_MetricsEqualEngineComputation(string protocol, string variant)
    {
        var skab = SkabDataset.Require(Path.Combine("valve2", "3.csv"));
        var output = Directory.CreateTempSubdirectory("si-evaluation-");
        var json = Path.Combine(output.FullName, "evaluation.json");
        var command = EvaluateCommand.Parse(
        [
            "--url", $"http://127.0.0.1:{server.RestPort}", "--grpc-url", $"http://127.0.0.1:{server.GrpcPort}", "--scoring", "model",
            "--protocol", protocol, "--models-dir", server.RepositoryRoot, "--data-dir", skab, "--files", File,
            "--variants", variant, "--batch", Batch.ToString(CultureInfo.InvariantCulture), "--concurrency", "3", "--warmup", "1", "--json", json,
        ]);
        var printed = new StringWriter();
        var errors = new StringWriter();

        var exitCode = await command.RunAsync(printed, errors, CancellationToken.None);

        Assert.True(exitCode == 0, $"evaluator exit code {exitCode}: {errors}");
        var expected = EngineCounts(Path.Combine(skab, "valve2", "3.csv"), variant, out var threshold);
        Assert.True(expected.Tp > 0 && expected.Fp + expected.Tn > 0, $"{File} should hold both classes among its test rows; got {expected}.");

        var result = JsonNode.Parse(await System.IO.File.ReadAllTextAsync(json))!["results"]!.AsArray().Single()!;
        output.Delete(recursive: true);
        Assert.Equal(variant, (string?)result["variant"]);
        Assert.Equal(protocol, (string?)result["protocol"]);
        Assert.Equal(threshold, (double)result["threshold"]!);
        foreach (var group in new[] { "valve2", "all" })
        {
            var m = result["groups"]![group]!;
            Assert.Equal((expected.Tp, expected.Fp, expected.Fn, expected.Tn), ((long)m["tp"]!, (long)m["fp"]!, (long)m["fn"]!, (long)m["tn"]!));
            Assert.Equal(expected.F1, (double)m["f1"]!, 12);
            Assert.Equal(expected.Far, (double)m["far"]!, 12);
            Assert.Equal(expected.Mar, (double)m["mar"]!, 12);
        }
        Assert.Null(result["groups"]!["valve1"]);
        Assert.Equal(expected.Tp + expected.Fp + expected.Fn + expected.Tn, (long)result["throughput"]!["windows"]!);

        var row = FormattableString.Invariant($"| {variant} | {protocol} | {threshold:0.#####} |");
        var printedRow = printed.ToString().Split('\n').Single(l => l.StartsWith(row, StringComparison.Ordinal));
        Assert.EndsWith(FormattableString.Invariant($" {expected.F1:F3} | {100 * expected.Far:F2} | {100 * expected.Mar:F2} |"), printedRow.TrimEnd());
    }

    /// <summary>The protocol computed here: scaler on the first rows, every test row's window through the engine, mean of the last positions' scores.</summary>
    private (long Tp, long Fp, long Fn, long Tn, double F1, double Far, double Mar) EngineCounts(string csv, string variant, out double threshold)
    {
        var modelDirectory = Path.Combine(server.RepositoryRoot, ServerFixture.ModelName, "1");
        var config = JsonNode.Parse(System.IO.File.ReadAllText(Path.Combine(modelDirectory, "config.json")))!;
        var window = (int)config["metadata"]!["window_length"]!;
        var positions = (int)config["metadata"]!["score_positions"]!;
        var serving = JsonNode.Parse(System.IO.File.ReadAllText(Path.Combine(server.RepositoryRoot, ServerFixture.ModelName, "serving.json")))!;
        var entry = serving["variants"]!.AsArray().Single(v => (string?)v!["name"] == variant)!;
        threshold = (double)entry["anomaly_threshold"]!;
        var attention = config["attention"]!;
        var spec = new AttentionSpec((string)entry["pattern"]!, (double)entry["sparsity"]!, (int)attention["block_size"]!, (int)attention["global_blocks"]!, (ulong)attention["seed"]!);

        var (z, labels) = Standardized(csv);
        const int channels = 8;
        var rows = labels.Length;
        var flags = new List<bool>();
        using var model = EncoderModel.Load(modelDirectory);
        for (var first = TrainRows; first < rows; first += Batch)
        {
            var count = Math.Min(Batch, rows - first);
            var values = new float[count * window * channels];
            for (var i = 0; i < count; i++)
                Array.Copy(z, (first + i - window + 1) * channels, values, i * window * channels, window * channels);
            var output = model.Forward(new ForwardInput { Batch = count, Time = window, Values = values }, spec).Output;
            for (var i = 0; i < count; i++)
            {
                double point = 0;
                for (var t = window - positions; t < window; t++)
                {
                    double squares = 0;
                    for (var c = 0; c < channels; c++)
                    {
                        var at = (((i * window) + t) * channels) + c;
                        double d = output[at] - values[at];
                        squares += d * d;
                    }
                    point += (float)(squares / channels);
                }
                flags.Add((float)(point / positions) > (float)threshold);
            }
        }

        long tp = 0, fp = 0, fn = 0, tn = 0;
        for (var i = 0; i < flags.Count; i++)
        {
            var truth = labels[TrainRows + i] == 1;
            _ = (truth, flags[i]) switch
            {
                (true, true) => tp++,
                (false, true) => fp++,
                (true, false) => fn++,
                _ => tn++,
            };
        }
        return (tp, fp, fn, tn, 2.0 * tp / ((2.0 * tp) + fp + fn), (double)fp / (fp + tn), (double)fn / (fn + tp));
    }

    private static (float[] Z, int[] Labels) Standardized(string csv)
    {
        var (rows, labels) = SkabFiles.Read(csv);
        var channels = SkabFiles.Features.Length;
        var z = new float[rows.Count * channels];
        for (var c = 0; c < channels; c++)
        {
            var column = rows.Select(r => r[c]).ToArray();
            var mean = column.Take(TrainRows).Average();
            var std = Math.Sqrt(column.Take(TrainRows).Select(v => (v - mean) * (v - mean)).Average());
            std = std == 0 ? 1 : std;
            for (var r = 0; r < column.Length; r++)
                z[(r * channels) + c] = (float)((column[r] - mean) / std);
        }
        return (z, labels);
    }
}
