using SparseInference.Models.Attention;

namespace SparseInference.Models.Configuration;

/// <summary>Turns the raw document into a <see cref="ModelConfig"/>, failing with the file, field, expected and actual value.</summary>
internal static class ModelConfigValidator
{
    // Upper bounds on sizes: far above any model this engine serves (sequences of 16384 are benchmarked), low enough
    // that every buffer derived from them (weights, the positional table, one sequence's activations) stays addressable.
    public const int MaxInputChannels = 1 << 16;
    public const int MaxVocabSize = 1 << 24;
    public const int MaxDModel = 1 << 14;
    public const int MaxHeads = 256;
    public const int MaxLayers = 256;
    public const int MaxDFf = 1 << 16;
    public const int MaxSeqLen = 1 << 17;
    public const int MaxOutputDim = 1 << 16;
    public const int MaxBlockSize = 4096;
    public const int MaxGlobalBlocks = 4096;

    /// <summary>Elements of the positional table (max_seq_len × d_model): 1 GiB of FP32.</summary>
    public const long MaxPositionalElements = 1L << 28;

    public static ModelConfig Validate(ModelConfigDocument doc, string source)
    {
        string format = Required(doc.Format, "format", source);
        if (format != ModelConfig.FormatName)
        {
            throw Field(source, "format", $"\"{ModelConfig.FormatName}\"", $"\"{format}\"");
        }

        int version = Required(doc.FormatVersion, "format_version", source);
        if (version != ModelConfig.FormatVersion)
        {
            throw Field(source, "format_version", ModelConfig.FormatVersion.ToString(), version.ToString());
        }

        var inputKind = Required(doc.InputKind, "input_kind", source) switch
        {
            "continuous" => InputKind.Continuous,
            "tokens" => InputKind.Tokens,
            var other => throw Field(source, "input_kind", "one of continuous, tokens", $"\"{other}\""),
        };

        int channels = doc.InputChannels ?? 0;
        int vocab = doc.VocabSize ?? 0;
        if (inputKind == InputKind.Continuous && channels < 1)
        {
            throw Field(source, "input_channels", "≥ 1 for continuous input", Show(doc.InputChannels));
        }

        if (inputKind == InputKind.Tokens && vocab < 1)
        {
            throw Field(source, "vocab_size", "≥ 1 for token input", Show(doc.VocabSize));
        }

        AtMost(channels, MaxInputChannels, "input_channels", source);
        AtMost(vocab, MaxVocabSize, "vocab_size", source);
        int dModel = Positive(doc.DModel, "d_model", source, MaxDModel);
        int heads = Positive(doc.NHeads, "n_heads", source, MaxHeads);
        if (dModel % heads != 0)
        {
            throw Field(source, "n_heads", $"a divisor of d_model ({dModel})", heads.ToString());
        }

        int layers = Positive(doc.NLayers, "n_layers", source, MaxLayers);
        int dFf = Positive(doc.DFf, "d_ff", source, MaxDFf);
        int maxSeqLen = Positive(doc.MaxSeqLen, "max_seq_len", source, MaxSeqLen);
        if ((long)maxSeqLen * dModel > MaxPositionalElements)
        {
            throw Field(source, "max_seq_len", $"at most {MaxPositionalElements / dModel} with d_model {dModel} (max_seq_len × d_model ≤ {MaxPositionalElements})", maxSeqLen.ToString());
        }

        var positional = Required(doc.Positional, "positional", source) switch
        {
            "sinusoidal" => PositionalKind.Sinusoidal,
            "learned" => PositionalKind.Learned,
            var other => throw Field(source, "positional", "one of sinusoidal, learned", $"\"{other}\""),
        };

        if (positional == PositionalKind.Sinusoidal && dModel % 2 != 0)
        {
            throw Field(source, "d_model", "even for sinusoidal positions", dModel.ToString());
        }

        double eps = Required(doc.LayerNormEps, "layer_norm_eps", source);
        if (!(eps > 0) || double.IsInfinity(eps))
        {
            throw Field(source, "layer_norm_eps", "a finite value > 0", eps.ToString("R"));
        }

        var head = Required(doc.Head, "head", source) switch
        {
            "reconstruction" => HeadKind.Reconstruction,
            "regression" => HeadKind.Regression,
            "classification" => HeadKind.Classification,
            var other => throw Field(source, "head", "one of reconstruction, regression, classification", $"\"{other}\""),
        };

        int outputDim = Positive(doc.OutputDim, "output_dim", source, MaxOutputDim);
        bool gated = doc.Gated ?? false;
        var attentionDoc = doc.Attention ?? throw Field(source, "attention", "an object", "missing");
        string pattern = Required(attentionDoc.Pattern, "attention.pattern", source);
        if (!AttentionPatterns.TryGet(pattern, out _))
        {
            throw Field(source, "attention.pattern", $"one of {string.Join(", ", AttentionPatterns.Names)}", $"\"{pattern}\"");
        }

        double sparsity = attentionDoc.Sparsity ?? 0.0;
        if (!(sparsity >= 0.0 && sparsity < 1.0))
        {
            throw Field(source, "attention.sparsity", "a value in [0, 1)", sparsity.ToString("R"));
        }

        int blockSize = attentionDoc.BlockSize ?? 16;
        if (blockSize < 1 || blockSize > MaxBlockSize)
        {
            throw Field(source, "attention.block_size", $"in 1 … {MaxBlockSize}", blockSize.ToString());
        }

        int globalBlocks = attentionDoc.GlobalBlocks ?? 1;
        if (globalBlocks < 0 || globalBlocks > MaxGlobalBlocks)
        {
            throw Field(source, "attention.global_blocks", $"in 0 … {MaxGlobalBlocks}", globalBlocks.ToString());
        }

        if (pattern == AttentionPatterns.Gated && !gated)
        {
            throw Field(source, "gated", "true for attention.pattern \"gated\"", "false");
        }

        return new ModelConfig
        {
            InputKind = inputKind,
            InputChannels = channels,
            VocabSize = vocab,
            DModel = dModel,
            NHeads = heads,
            NLayers = layers,
            DFf = dFf,
            MaxSeqLen = maxSeqLen,
            Positional = positional,
            LayerNormEps = eps,
            Head = head,
            OutputDim = outputDim,
            Gated = gated,
            Attention = new AttentionSpec(pattern, sparsity, blockSize, globalBlocks, attentionDoc.Seed ?? 0),
            AnomalyThreshold = doc.AnomalyThreshold,
            Metadata = doc.Metadata,
        };
    }

    private static T Required<T>(T? value, string field, string source) where T : class
        => value ?? throw Field(source, field, "a value", "missing");

    private static T Required<T>(T? value, string field, string source) where T : struct
        => value ?? throw Field(source, field, "a value", "missing");

    private static int Positive(int? value, string field, string source, int max)
    {
        int v = Required(value, field, source);
        return v is >= 1 && v <= max ? v : throw Field(source, field, $"in 1 … {max}", v.ToString());
    }

    private static void AtMost(int value, int max, string field, string source)
    {
        if (value > max)
        {
            throw Field(source, field, $"at most {max}", value.ToString());
        }
    }

    private static string Show(int? value) => value?.ToString() ?? "missing";

    private static ModelFormatException Field(string source, string field, string expected, string actual)
        => new(source, $"field '{field}': expected {expected}, got {actual}.");
}
