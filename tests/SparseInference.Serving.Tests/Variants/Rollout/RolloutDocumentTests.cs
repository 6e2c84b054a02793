using System.Text.Json;
using SparseInference.Serving.Variants;
using SparseInference.Serving.Variants.Guardrails;
using SparseInference.Serving.Variants.Rollout;

namespace SparseInference.Serving.Tests.Variants.Rollout;

public sealed class RolloutDocumentTests
{
    private static readonly GuardrailSettings Configured = new GuardrailOptions().ToSettings();

    [Theory]
    [InlineData("""{"revision": 2}""", "split: expected {\"weights\": {variant: number}, ...}, actual none")]
    [InlineData("""{"revision": 2, "split": {"shadow": {"variant": "a", "percent": 5}}}""", "split.weights: expected {variant: number}, actual none")]
    [InlineData("""{"revision": 2, "split": {"weights": {"a": 1}, "shadow": {"variant": "a"}}}""", "split.shadow: expected {\"variant\", \"percent\"}, actual variant=a, percent=none")]
    [InlineData("""{"revision": 2, "model": "other", "split": {"weights": {"a": 1}}}""", "model: expected 'pump' (the directory it is stored under) or none, actual 'other'")]
    [InlineData("""{"revision": 2, "variants": [{"name": "b", "pattern": "bigbird", "sparsity": 1.5}], "split": {"weights": {"a": 1}}}""", "variants[0].sparsity: expected a number in [0, 1), actual 1.5")]
    [InlineData("""{"revision": 2, "variants": [{"name": "b"}], "split": {"weights": {"a": 1}}}""", "variants[0]: expected {\"name\", \"pattern\", ...}, actual name=b, pattern=none")]
    [InlineData("""{"revision": 2, "variants": [{"name": "b", "pattern": "dense"}, {"name": "b", "pattern": "window"}], "split": {"weights": {"a": 1}}}""", "variants[1].name: expected each name once, actual 'b' again")]
    [InlineData("""{"revision": 2, "removedVariants": ["Bad Name"], "split": {"weights": {"a": 1}}}""", "removedVariants[0]: expected a variant name, actual 'Bad Name'")]
    [InlineData("""{"revision": 2, "split": {"weights": {"a": 1}}, "history": [{"experiment": "x"}]}""", "history[0].weights: expected {variant: number}, actual none")]
    [InlineData("""{"revision": 2, "split": {"weights": {"a": 1}}, "guardrails": {"enabled": true, "maxErrorRate": 3}}""", "guardrails.maxErrorRate: expected 0..1, actual 3")]
    [InlineData("""{"revision": 2, "split": {"weights": {"a": 1}}, "guardrails": {"enabled": true}}""", "guardrails: expected at least one bound when Enabled is true, actual none")]
    public void ToState_InvalidDocument_NamesFieldExpectedAndActual(string json, string expected)
    {
        var document = JsonSerializer.Deserialize(json, RolloutJsonContext.Relaxed.RolloutDocument)!;

        var state = document.ToState("pump", Configured, out var errors);

        Assert.Null(state);
        Assert.Contains(expected, errors);
    }

    [Fact]
    public void ToState_WrittenState_ReadsBackTheSameState()
    {
        var state = new RolloutState(
            9,
            [new VariantDefinition("cand", "bigbird", 0.75, WeightsDirectory: "weights/v2")],
            ["window-0.5"],
            new SplitConfig([new SplitWeight("dense", 3), new SplitWeight("cand", 1)], new ShadowConfig("cand", 10, 0.4), "exp"),
            [SplitConfig.Single("dense")],
            Configured with { Enabled = true, MaxP99LatencyMs = 200 },
            new GuardrailTripRecord(DateTimeOffset.UnixEpoch, "host/1", "cand", "error_rate", 0.1, 0.5, 8, "cand crossed error_rate"),
            DateTimeOffset.UnixEpoch,
            "split via host/1",
            RolledBack: true);

        var json = JsonSerializer.SerializeToUtf8Bytes(RolloutDocument.From("pump", state), RolloutJsonContext.Relaxed.RolloutDocument);
        var back = JsonSerializer.Deserialize(json, RolloutJsonContext.Relaxed.RolloutDocument)!.ToState("pump", Configured, out var errors)!;

        Assert.Empty(errors);
        Assert.Equal(state.Variants.ToArray(), back.Variants.ToArray());
        Assert.Equal(state.RemovedVariants.ToArray(), back.RemovedVariants.ToArray());
        Assert.Equal(state.Split.Weights.ToArray(), back.Split.Weights.ToArray());
        Assert.Equal((state.Split.Shadow, state.Split.Experiment), (back.Split.Shadow, back.Split.Experiment));
        Assert.Equal(state.History[0].Weights.ToArray(), back.History[0].Weights.ToArray());
        Assert.Equal(state with { Variants = back.Variants, RemovedVariants = back.RemovedVariants, Split = back.Split, History = back.History }, back);
    }

    [Fact]
    public void ToState_UnknownFieldsAndComments_AreSkippedForOlderReplicasDuringAnUpgrade()
    {
        var document = JsonSerializer.Deserialize("""
            {
              // written by a newer version
              "revision": 3,
              "futureField": {"x": 1},
              "split": {"weights": {"dense": 1}, "futureSplitField": true}
            }
            """, RolloutJsonContext.Relaxed.RolloutDocument)!;

        var state = document.ToState("pump", Configured, out var errors);

        Assert.Empty(errors);
        Assert.Equal(3, state!.Revision);
    }
}
