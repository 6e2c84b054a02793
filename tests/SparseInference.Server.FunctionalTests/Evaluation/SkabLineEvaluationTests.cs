using System.Globalization;
using System.Text.Json.Nodes;
using SparseInference.Evaluate;
using SparseInference.Models;
using SparseInference.Serving.Baselines;
using SparseInference.Serving.Repository;
using SparseInference.Server.FunctionalTests.Infrastructure;
using SparseInference.Serving.Tests.Infrastructure;
using SparseInference.Testing;

namespace SparseInference.Server.FunctionalTests.Evaluation;

/// <summary>
/// The SKAB evaluator with per-line onboarding against the real server: its confusion counts for one SKAB file must
/// equal those computed here in process (the engine for the forwards, the baseline library for onboarding and flags),
/// whether it computes the baselines itself (line) or onboards the file through the admin API and reads the service's
/// scores and flags (service); its classical detectors must equal the offline computation of tools/train
/// (tests/fixtures/baselines).
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class SkabLineEvaluationTests(ServerFixture server)
{
    private const string File = "valve2/3";
    private const int OnboardingRows = 400;
    private const int Batch = 40;

    [SkippableTheory]
    [InlineData("line", "rest-binary", "dense")]
    [InlineData("line", "grpc", "block-topk-0.75")]
    [InlineData("service", "rest-json", "dense")]
    [InlineData("service", "rest-binary", "window-0.75")]
    [InlineData("service", "grpc", "block-topk-0.75")]
    public async Task RunAsync_LineScoring_CountsEqualInProcessBaselineComputation(string scoring, string protocol, string variant)
    {
        var skab = SkabFiles.Directory();
        var output = Directory.CreateTempSubdirectory("si-line-evaluation-");
        var json = Path.Combine(output.FullName, "evaluation.json");
        var command = EvaluateCommand.Parse(
        [
            "--url", $"http://127.0.0.1:{server.RestPort}", "--grpc-url", $"http://127.0.0.1:{server.GrpcPort}", "--scoring", scoring,
            "--admin-url", $"http://127.0.0.1:{server.AdminPort}", "--admin-token", ServerFixture.AdminToken,
            "--protocol", protocol, "--models-dir", server.RepositoryRoot, "--data-dir", skab, "--files", File,
            "--variants", variant, "--batch", Batch.ToString(CultureInfo.InvariantCulture), "--concurrency", "2", "--warmup", "1", "--json", json,
        ]);
        var printed = new StringWriter();
        var errors = new StringWriter();

        var exitCode = await command.RunAsync(printed, errors, CancellationToken.None);

        Assert.True(exitCode == 0, $"evaluator exit code {exitCode}: {errors}");
        var (expected, threshold) = InProcessCounts(Path.Combine(skab, "valve2", "3.csv"), variant);
        Assert.True(expected.Tp > 0 && expected.Fp + expected.Tn > 0, $"{File} should hold both classes among its test rows; got {expected}.");
        var document = JsonNode.Parse(await System.IO.File.ReadAllTextAsync(json))!;
        output.Delete(recursive: true);
        Assert.Equal(scoring, (string?)document["protocol"]!["scoring"]);
        var result = document["results"]!.AsArray().Single()!;
        Assert.Equal("line baseline", (string?)result["threshold_source"]);
        Assert.Equal(threshold, (double)result["line_thresholds"]![File]!, 4);
        var m = result["groups"]!["valve2"]!;
        Assert.Equal(expected, ((long)m["tp"]!, (long)m["fp"]!, (long)m["fn"]!, (long)m["tn"]!));
        var detectors = document["classical"]!.AsArray().Select(c => (string?)c!["detector"]).ToList();
        Assert.Equal(["hotelling-t2", "pca-t2q"], detectors);
        Assert.Contains($"| {variant} | {protocol} | per line |", printed.ToString(), StringComparison.Ordinal);
        Assert.Contains("| hotelling-t2 | – | per line | – |", printed.ToString(), StringComparison.Ordinal);
        // The service mode removes the lines it onboarded.
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await LineBaselineRequests.GetAsync(server.Admin, ServerFixture.ModelName, "skab-evaluation/" + File)).Status);
    }

    [SkippableFact]
    public void ClassicalDetectors_FixtureLine_EqualOfflineComputation()
    {
        var fixture = JsonNode.Parse(System.IO.File.ReadAllText(Path.Combine(RepositoryPaths.Root, "tests", "fixtures", "baselines", "skab-pump-valve1-0.json")))!;
        var line = (string)fixture["line"]!;
        var group = line.Split('/')[0];
        var name = Path.GetFileNameWithoutExtension(line.Split('/')[1]);
        var experiment = SkabData.Load(SkabFiles.Directory(), [$"{group}/{name}"]).Single();
        var calibration = ServingCalibration.Read(Path.Combine(RepositoryPaths.Root, "models", ServerFixture.ModelName));

        foreach (var (detector, expected) in fixture["classical"]!.AsObject())
        {
            var flags = ClassicalDetectors.Flags(detector, experiment, calibration.Detector, calibration.Rule!);
            var counts = calibration.Detector.Score([experiment], [flags])[group];
            Assert.Equal(
                ((long)expected!["tp"]!, (long)expected["fp"]!, (long)expected["fn"]!, (long)expected["tn"]!),
                (counts.TruePositives, counts.FalsePositives, counts.FalseNegatives, counts.TrueNegatives));
        }
    }

    /// <summary>The file onboarded on its first rows with the engine, every test row's raw window scored by the baseline library.</summary>
    private ((long Tp, long Fp, long Fn, long Tn) Counts, double Threshold) InProcessCounts(string csv, string variant)
    {
        using var repository = CpuModelLoader.Repository(server.RepositoryRoot);
        repository.Load(ServerFixture.ModelName);
        var version = repository.Resolve(ServerFixture.ModelName, "1");
        var model = version.Model;
        var (rows, labels) = SkabFiles.Read(csv);
        var baseline = new BaselineCalibrator(TimeProvider.System).Calibrate(File, CalibrationTarget.For(version), rows.Take(OnboardingRows).ToList());
        var scoring = LineScoring.With(baseline, ServerFixture.ModelName, "1", variant, model.Configuration);
        var window = baseline.Rule.Window;
        const int channels = ServerFixture.Channels;
        long tp = 0, fp = 0, fn = 0, tn = 0;
        for (var first = OnboardingRows; first < rows.Count; first += Batch)
        {
            var count = Math.Min(Batch, rows.Count - first);
            var raw = new float[count * window * channels];
            for (var i = 0; i < count; i++)
            {
                for (var t = 0; t < window; t++)
                {
                    for (var c = 0; c < channels; c++)
                        raw[(((i * window) + t) * channels) + c] = (float)rows[first + i - window + 1 + t][c];
                }
            }

            var input = scoring.ModelInput(raw);
            var forward = model.Forward(new ForwardInput { Batch = count, Time = window, Values = input }, version.Variants[variant]);
            var anomaly = scoring.Anomaly(scoring.Score(input, forward.Output), window)!;
            for (var i = 0; i < count; i++)
            {
                var flagged = anomaly[((i + 1) * window) - 1];
                _ = (labels[first + i] == 1, flagged) switch
                {
                    (true, true) => tp++,
                    (false, true) => fp++,
                    (true, false) => fn++,
                    _ => tn++,
                };
            }
        }

        return ((tp, fp, fn, tn), baseline.Variants[variant].Threshold);
    }

}
