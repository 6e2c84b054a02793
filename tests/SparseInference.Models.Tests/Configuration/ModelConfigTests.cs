using SparseInference.Models.Configuration;
using SparseInference.Models.Tests.Infrastructure;

namespace SparseInference.Models.Tests.Configuration;

public sealed class ModelConfigTests
{
    private static string GoldenConfigText => File.ReadAllText(Path.Combine(TestModels.GoldenModel(TestModels.Sinusoidal), EncoderModel.ConfigFileName));

    [Fact]
    public void Parse_GoldenConfig_ReadsEveryField()
    {
        var config = ModelConfig.Parse(GoldenConfigText, "config.json");

        Assert.Equal(InputKind.Continuous, config.InputKind);
        Assert.Equal(3, config.InputChannels);
        Assert.Equal(16, config.DModel);
        Assert.Equal(2, config.NHeads);
        Assert.Equal(8, config.DHead);
        Assert.Equal(2, config.NLayers);
        Assert.Equal(32, config.DFf);
        Assert.Equal(64, config.MaxSeqLen);
        Assert.Equal(PositionalKind.Sinusoidal, config.Positional);
        Assert.Equal(1e-5, config.LayerNormEps);
        Assert.Equal(HeadKind.Reconstruction, config.Head);
        Assert.True(config.Gated);
        Assert.Equal(new AttentionSpec("dense", 0.0, 8, 1, 0), config.Attention);
        Assert.Null(config.AnomalyThreshold);
        Assert.Equal(11, config.Metadata!.Value.GetProperty("seed").GetInt32());
    }

    [Fact]
    public void Load_UnknownPattern_ErrorNamesFileFieldAndKnownPatterns()
    {
        using var dir = new TempDirectory();
        TestModels.CopyModel(TestModels.Sinusoidal, dir.Path);
        TestModels.EditConfig(dir.Path, "\"pattern\": \"dense\"", "\"pattern\": \"diagonal\"");

        var error = Assert.Throws<ModelFormatException>(() => EncoderModel.Load(dir.Path));

        Assert.Equal(Path.Combine(dir.Path, EncoderModel.ConfigFileName), error.File);
        Assert.Contains("'attention.pattern'", error.Message);
        Assert.Contains("\"diagonal\"", error.Message);
        Assert.Contains("dense, window, longformer, bigbird, strided, topk, block-topk, hybrid, sampled, gated", error.Message);
    }

    [Theory]
    [InlineData("\"n_heads\": 2", "\"n_heads\": 3", "'n_heads'", "a divisor of d_model (16)", "got 3")]
    [InlineData("\"format_version\": 1", "\"format_version\": 2", "'format_version'", "expected 1", "got 2")]
    [InlineData("\"head\": \"reconstruction\"", "\"head\": \"ranking\"", "'head'", "reconstruction, regression, classification", "\"ranking\"")]
    [InlineData("\"sparsity\": 0.0", "\"sparsity\": 1.0", "'attention.sparsity'", "[0, 1)", "got 1")]
    [InlineData("\"d_model\": 16,", "", "'d_model'", "a value", "missing")]
    [InlineData("\"layer_norm_eps\": 1e-05", "\"layer_norm_eps\": 0", "'layer_norm_eps'", "> 0", "got 0")]
    public void Parse_InvalidField_ErrorNamesFieldExpectedAndActual(string from, string to, string field, string expected, string actual)
    {
        string json = GoldenConfigText.Replace(from, to, StringComparison.Ordinal);
        Assert.NotEqual(GoldenConfigText, json);

        var error = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(json, "models/x/config.json"));

        Assert.StartsWith("models/x/config.json: ", error.Message);
        Assert.Contains(field, error.Message);
        Assert.Contains(expected, error.Message);
        Assert.Contains(actual, error.Message);
    }

    [Theory]
    [InlineData("\"max_seq_len\": 64", "\"max_seq_len\": 2147483647", "'max_seq_len'", "in 1 … 131072", "got 2147483647")]
    [InlineData("\"max_seq_len\": 64", "\"max_seq_len\": 4000000", "'max_seq_len'", "in 1 … 131072", "got 4000000")]
    [InlineData("\"d_model\": 16", "\"d_model\": 32768", "'d_model'", "in 1 … 16384", "got 32768")]
    [InlineData("\"n_layers\": 2", "\"n_layers\": 100000", "'n_layers'", "in 1 … 256", "got 100000")]
    [InlineData("\"d_ff\": 32", "\"d_ff\": 2000000000", "'d_ff'", "in 1 … 65536", "got 2000000000")]
    [InlineData("\"input_channels\": 3", "\"input_channels\": 100000", "'input_channels'", "at most 65536", "got 100000")]
    [InlineData("\"block_size\": 8", "\"block_size\": 100000", "'attention.block_size'", "in 1 … 4096", "got 100000")]
    [InlineData("\"global_blocks\": 1", "\"global_blocks\": 100000", "'attention.global_blocks'", "in 0 … 4096", "got 100000")]
    public void Parse_SizeAboveItsBound_ErrorNamesFieldBoundAndValue(string from, string to, string field, string expected, string actual)
    {
        string json = GoldenConfigText.Replace(from, to, StringComparison.Ordinal);
        Assert.NotEqual(GoldenConfigText, json);

        var error = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(json, "models/x/config.json"));

        Assert.Contains(field, error.Message);
        Assert.Contains(expected, error.Message);
        Assert.Contains(actual, error.Message);
    }

    [Fact]
    public void Parse_PositionalTableAboveItsBound_ErrorNamesMaxSeqLenAndTheProduct()
    {
        // Each size within its own bound, the positional table (max_seq_len × d_model = 2^31 values) beyond its.
        string json = GoldenConfigText
            .Replace("\"max_seq_len\": 64", "\"max_seq_len\": 131072", StringComparison.Ordinal)
            .Replace("\"d_model\": 16", "\"d_model\": 16384", StringComparison.Ordinal);

        var error = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(json, "cfg.json"));

        Assert.Equal("cfg.json: field 'max_seq_len': expected at most 16384 with d_model 16384 (max_seq_len × d_model ≤ 268435456), got 131072.", error.Message);
    }

    [Fact]
    public void Load_NonFiniteWeight_RefusedNamingTheTensor()
    {
        using var dir = new TempDirectory();
        TestModels.CopyModel(TestModels.Sinusoidal, dir.Path);
        var weights = Path.Combine(dir.Path, EncoderModel.WeightsFileName);
        var tensors = TestModels.ReadTensors(TestModels.Sinusoidal);
        var poisoned = tensors.FindIndex(t => t.Name == "layers.1.ff2.weight");
        tensors[poisoned].Data[5] = float.PositiveInfinity;
        SparseInference.Models.Formats.SafetensorsFile.WriteFloat32(weights, tensors);

        var error = Assert.Throws<ModelFormatException>(() => EncoderModel.Load(dir.Path));

        Assert.Equal(weights, error.File);
        Assert.Contains("tensor 'layers.1.ff2.weight': element 5 is Infinity", error.Message);
    }

    [Fact]
    public void Parse_WrongJsonType_ErrorNamesFileAndPath()
    {
        string json = GoldenConfigText.Replace("\"d_ff\": 32", "\"d_ff\": \"wide\"", StringComparison.Ordinal);

        var error = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(json, "cfg.json"));

        Assert.Contains("cfg.json", error.Message);
        Assert.Contains("$.d_ff", error.Message);
    }

    [Fact]
    public void Parse_GatedPatternOnUngatedModel_ErrorNamesGatedField()
    {
        string json = GoldenConfigText.Replace("\"gated\": true", "\"gated\": false", StringComparison.Ordinal)
            .Replace("\"pattern\": \"dense\"", "\"pattern\": \"gated\"", StringComparison.Ordinal);

        var error = Assert.Throws<ModelFormatException>(() => ModelConfig.Parse(json, "cfg.json"));

        Assert.Contains("'gated'", error.Message);
    }
}
