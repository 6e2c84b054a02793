namespace SparseInference.Models;

// The engine's public surface, as the serving layer uses it. The engine work fills in the bodies;
// the shapes of these types are the contract the serving layer codes against.

/// <summary>An attention pattern and its sparsity knob, chosen at run time on the same weights.</summary>
public sealed record AttentionSpec(string Pattern, double Sparsity = 0.0, int BlockSize = 16, int GlobalBlocks = 1, ulong Seed = 0)
{
    public static readonly IReadOnlyList<string> KnownPatterns =
        ["dense", "window", "longformer", "bigbird", "strided", "topk", "block-topk", "hybrid", "sampled", "gated"];
}

/// <summary>A batch for one forward: either continuous values [batch, time, channels] or token ids [batch, time].</summary>
public sealed class ForwardInput
{
    public required int Batch { get; init; }
    public required int Time { get; init; }
    /// <summary>Row-major [Batch, Time, InputChannels] for continuous models.</summary>
    public float[]? Values { get; init; }
    /// <summary>Row-major [Batch, Time] for token models.</summary>
    public int[]? TokenIds { get; init; }
    /// <summary>Valid length of each sequence (≤ Time); null means all are Time long.</summary>
    public int[]? Lengths { get; init; }
}

/// <summary>What a forward returns: the head's output and the attention work it did.</summary>
public sealed class ForwardResult
{
    public required float[] Output { get; init; }
    /// <summary>[Batch, Time, OutputDim] per time step, or [Batch, OutputDim] for classification.</summary>
    public required int[] Shape { get; init; }
    public required long ComputedPairs { get; init; }
    public required long DensePairs { get; init; }
    public double Density => DensePairs == 0 ? 1.0 : (double)ComputedPairs / DensePairs;
}
