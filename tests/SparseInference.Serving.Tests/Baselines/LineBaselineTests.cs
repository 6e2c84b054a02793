using System.Text;
using System.Text.Json.Nodes;
using SparseInference.Serving.Baselines;

namespace SparseInference.Serving.Tests.Baselines;

public sealed class LineBaselineTests(ShippedSkabModel skab) : IClassFixture<ShippedSkabModel>
{
    [SkippableFact]
    public void Json_RoundTrip_KeepsEveryValueExactly()
    {
        var baseline = skab.Baseline with { Revision = 4 };

        var json = baseline.ToJson();
        var read = LineBaseline.FromJson(Encoding.UTF8.GetBytes(json), "baseline.json");

        Assert.Equal(json, read.ToJson());
        Assert.Equal(baseline.Line, read.Line);
        Assert.Equal(4, read.Revision);
        Assert.Equal(baseline.CreatedAt, read.CreatedAt);
        Assert.Equal(baseline.InputMean.ToArray(), read.InputMean.ToArray());
        Assert.Equal(baseline.InputStd.ToArray(), read.InputStd.ToArray());
        Assert.Equal(baseline.Rule, read.Rule with { Channels = baseline.Rule.Channels });
        Assert.Equal(baseline.Rule.Channels.ToArray(), read.Rule.Channels.ToArray());
        foreach (var (name, variant) in baseline.Variants)
        {
            Assert.Equal(variant.Threshold, read.Variants[name].Threshold);
            Assert.Equal(variant.ResidualMean.ToArray(), read.Variants[name].ResidualMean.ToArray());
            Assert.Equal(variant.ResidualStd.ToArray(), read.Variants[name].ResidualStd.ToArray());
        }

        var node = JsonNode.Parse(json)!;
        Assert.Equal("sparseinference-line-baseline", (string?)node["format"]);
        Assert.Equal(baseline.Rule.FalseAlarmRate, (double)node["rule"]!["false_alarm_rate"]!);
        Assert.Equal(baseline.Rule.Margin, (double)node["rule"]!["margin"]!);
        Assert.Equal(400, (int)node["rows"]!);
    }

    [SkippableTheory]
    [InlineData("input_std", "[1,1,1,1,1,1,1]", "baseline.json: input_std must list 8 values (one per channel), got 7.")]
    [InlineData("input_std", "[1,1,1,0,1,1,1,1]", "baseline.json: input_std[3] must be a positive number, got 0.")]
    [InlineData("model_version", "\"\"", "baseline.json: model and model_version must be non-empty.")]
    [InlineData("format_version", "2", "baseline.json: format_version must be 1, got 2.")]
    [InlineData("rows", "12", "baseline.json: rows must be at least the rule's minimum_rows 256, got 12.")]
    [InlineData("variants", "{}", "baseline.json: variants must hold at least one variant.")]
    public void FromJson_InconsistentField_IsRefusedNamingIt(string field, string value, string message)
    {
        var node = JsonNode.Parse((skab.Baseline with { Revision = 4 }).ToJson())!;
        node[field] = JsonNode.Parse(value);

        var ex = Assert.Throws<InvalidDataException>(() => LineBaseline.FromJson(Encoding.UTF8.GetBytes(node.ToJsonString()), "baseline.json"));

        Assert.Equal(message, ex.Message);
    }

    [SkippableFact]
    public void FromJson_MissingRequiredField_IsRefused()
    {
        var node = JsonNode.Parse((skab.Baseline with { Revision = 4 }).ToJson())!.AsObject();
        node.Remove("input_mean");

        var ex = Assert.Throws<InvalidDataException>(() => LineBaseline.FromJson(Encoding.UTF8.GetBytes(node.ToJsonString()), "baseline.json"));

        Assert.StartsWith("baseline.json: not a line baseline: ", ex.Message);
        Assert.Contains("input_mean", ex.Message);
    }
}
