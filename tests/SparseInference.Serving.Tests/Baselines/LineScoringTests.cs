using SparseInference.Models;
using SparseInference.Serving.Baselines;
using SparseInference.Serving.Protocol;

namespace SparseInference.Serving.Tests.Baselines;

public sealed class LineScoringTests(ShippedSkabModel skab) : IClassFixture<ShippedSkabModel>
{
    private const int Channels = 8;

    [SkippableFact]
    public void Score_RawReadingsAfterOnboarding_MatchOfflineScoresAndFlags()
    {
        var baseline = skab.Baseline;
        var fixture = skab.Fixture;
        var window = (int)fixture["window"]!;
        var ends = fixture["test_ends"]!.AsArray().Select(e => (int)e!).ToArray();
        var raw = RawWindows(ends, window);
        var flagged = 0;

        foreach (var (name, expected) in fixture["variants"]!.AsObject())
        {
            var scoring = LineScoring.With(baseline, ShippedSkabModel.ModelName, skab.Version, name, skab.ModelVersion.Configuration);
            var input = scoring.ModelInput(raw);
            var output = skab.ModelVersion.Model.Forward(new ForwardInput { Batch = ends.Length, Time = window, Values = input }, skab.ModelVersion.Variants[name]).Output;

            var score = scoring.Score(input, output);
            var anomaly = scoring.Anomaly(score, window)!;

            var expectedScores = expected!["scores"]!.AsArray().SelectMany(ShippedSkabModel.Doubles).ToArray();
            BaselineCalibratorTests.AssertClose(expectedScores, [.. score.Select(s => (double)s)], 1e-3);
            var expectedFlags = expected["flags"]!.AsArray().SelectMany(w => w!.AsArray().Select(f => (bool)f!)).ToArray();
            Assert.Equal(expectedFlags, anomaly);
            flagged += anomaly.Count(f => f);
        }

        Assert.True(flagged > 0, "the fixture's windows should include flagged positions (its anomalous rows)");
    }

    [SkippableFact]
    public void ModelInputAndOutput_WithBaseline_StandardizeAndRestoreRawUnits()
    {
        var baseline = skab.Baseline;
        var scoring = LineScoring.With(baseline, ShippedSkabModel.ModelName, skab.Version, "dense", skab.ModelVersion.Configuration);
        var raw = RawWindows([500], 64);

        var input = scoring.ModelInput(raw);
        var restored = scoring.Output(input);

        for (var i = 0; i < raw.Length; i++)
        {
            var c = i % Channels;
            Assert.Equal((float)((raw[i] - baseline.InputMean[c]) / baseline.InputStd[c]), input[i]);
            Assert.Equal(raw[i], restored[i], 1e-3 * Math.Max(1, Math.Abs(raw[i])));
        }
    }

    [SkippableFact]
    public void Parameters_WithBaseline_NameLineRevisionCreationAndThreshold()
    {
        var baseline = skab.Baseline with { Revision = 3 };

        var parameters = LineScoring.With(baseline, ShippedSkabModel.ModelName, skab.Version, "dense", skab.ModelVersion.Configuration).ResponseParameters();

        Assert.Equal("line", parameters["baseline"].Value);
        Assert.Equal("pump-1", parameters["baseline_line"].Value);
        Assert.Equal(3L, parameters["baseline_revision"].Value);
        Assert.Equal("2026-01-01T00:00:00.0000000Z", parameters["baseline_created_at"].Value);
        Assert.Equal(baseline.Variants["dense"].Threshold, parameters["anomaly_threshold"].Value);
    }

    [SkippableFact]
    public void WithoutBaseline_BehavesAsTheModelAloneAndSaysSo()
    {
        var configuration = skab.ModelVersion.Configuration;
        var values = Enumerable.Range(0, 2 * 64 * Channels).Select(i => MathF.Sin(0.37f * i)).ToArray();
        var output = skab.ModelVersion.Model.Forward(new ForwardInput { Batch = 2, Time = 64, Values = values }, skab.ModelVersion.Variants["dense"]).Output;

        var scoring = LineScoring.WithoutBaseline(configuration);
        var score = scoring.Score(scoring.ModelInput(values), output);
        var anomaly = scoring.Anomaly(score, 64)!;

        Assert.Same(values, scoring.ModelInput(values));
        Assert.Same(output, scoring.Output(output));
        Assert.Equal(InferenceService.ReconstructionScore(values, output, Channels), score);
        Assert.Equal(score.Select(s => s > configuration.AnomalyThreshold!.Value), anomaly);
        Assert.Null(scoring.Baseline);
        var parameters = scoring.ResponseParameters();
        Assert.Equal("none", Assert.Single(parameters).Value.Value);
    }

    [SkippableFact]
    public void With_BaselineOfAnotherVersion_IsRefusedTellingToOnboardAgain()
    {
        var baseline = skab.Baseline with { Revision = 2 };

        var ex = Assert.Throws<InferenceException>(() => LineScoring.With(baseline, ShippedSkabModel.ModelName, "2", "dense", skab.ModelVersion.Configuration));

        Assert.Equal(InferenceErrorKind.InvalidArgument, ex.Kind);
        Assert.Equal(
            $"the baseline of line 'pump-1' (revision 2, created 2026-01-01T00:00:00.0000000Z) was computed with model 'skab-pump' version {skab.Version}, but model 'skab-pump' version 2 serves this request: onboard the line again for it.",
            ex.Message);
    }

    [SkippableFact]
    public void With_VariantTheBaselineLacks_IsRefusedListingItsVariants()
    {
        var baseline = skab.Baseline;

        var ex = Assert.Throws<InferenceException>(() => LineScoring.With(baseline, ShippedSkabModel.ModelName, skab.Version, "hybrid-0.9", skab.ModelVersion.Configuration));

        Assert.Equal(InferenceErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains($"holds variants [{string.Join(", ", baseline.Variants.Keys)}], not variant 'hybrid-0.9'", ex.Message);
    }

    [SkippableFact]
    public void Anomaly_EarlyPositions_AverageOnlyThePositionsSoFar()
    {
        var baseline = skab.Baseline;
        var threshold = baseline.Variants["dense"].Threshold;
        var scoring = LineScoring.With(baseline, ShippedSkabModel.ModelName, skab.Version, "dense", skab.ModelVersion.Configuration);
        var positions = baseline.Rule.Positions;
        // one sequence: a single high score at position 0, zeros after it
        var score = new float[positions + 2];
        score[0] = (float)(threshold * positions * 1.01);

        var flags = scoring.Anomaly(score, score.Length)!;

        Assert.All(flags.Take(positions), Assert.True);       // the mean over [0, t] still holds it
        Assert.All(flags.Skip(positions), Assert.False);      // the window of the last positions has left it
    }

    [SkippableFact]
    public void BaselineAllowed_RequestParameter_LineOrNoneElseRefused()
    {
        Assert.True(LineScoring.BaselineAllowed(new Dictionary<string, InferenceParameter>()));
        Assert.True(LineScoring.BaselineAllowed(new Dictionary<string, InferenceParameter> { ["baseline"] = InferenceParameter.Of("line") }));
        Assert.False(LineScoring.BaselineAllowed(new Dictionary<string, InferenceParameter> { ["baseline"] = InferenceParameter.Of("none") }));

        var ex = Assert.Throws<InferenceException>(() => LineScoring.BaselineAllowed(new Dictionary<string, InferenceParameter> { ["baseline"] = InferenceParameter.Of(true) }));

        Assert.Equal(InferenceErrorKind.InvalidArgument, ex.Kind);
        Assert.Equal("parameter 'baseline' must be the string 'line' or 'none', got bool true.", ex.Message);
    }

    private float[] RawWindows(IReadOnlyList<int> ends, int window)
    {
        var values = new float[ends.Count * window * Channels];
        for (var w = 0; w < ends.Count; w++)
        {
            for (var t = 0; t < window; t++)
            {
                var row = skab.Rows[ends[w] - window + 1 + t];
                for (var c = 0; c < Channels; c++)
                    values[(((w * window) + t) * Channels) + c] = (float)row[c];
            }
        }

        return values;
    }
}
