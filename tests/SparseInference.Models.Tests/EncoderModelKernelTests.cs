using SparseInference.Models.Attention;
using SparseInference.Models.Formats;
using SparseInference.Models.Tests.Infrastructure;

namespace SparseInference.Models.Tests;

/// <summary>
/// The engine against a plain float64 forward on a model with benchmark-like head size (d_head 32): dense, static
/// block patterns and token top-k, at lengths spanning several key chunks and ending in partial tiles.
/// </summary>
public sealed class EncoderModelKernelTests : IDisposable
{
    private const int D = 64, Heads = 2, Layers = 2, Dff = 96, Channels = 5, OutDim = 4;
    private readonly TempDirectory _dir = new();
    private readonly EncoderModel _model;
    private readonly NaiveEncoder _naive;

    public EncoderModelKernelTests()
    {
        RandomModelWriter.Write(_dir.Path, Channels, D, Heads, Layers, Dff, maxSeqLen: 512, OutDim, seed: 3);
        _model = EncoderModel.Load(_dir.Path);
        _naive = new NaiveEncoder(_dir.Path, D, Heads, Layers, Dff, Channels, OutDim);
    }

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("dense", 0.0, 16, 301)]
    [InlineData("window", 0.75, 16, 301)]
    [InlineData("bigbird", 0.8, 24, 277)]
    [InlineData("longformer", 0.7, 10, 150)]
    [InlineData("strided", 0.6, 32, 260)]
    [InlineData("topk", 0.8, 16, 203)]
    public void Forward_DHead32LongSequence_MatchesFloat64Reference(string pattern, double sparsity, int blockSize, int length)
    {
        var random = new Random(length);
        var input = Enumerable.Range(0, length * Channels).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var spec = new AttentionSpec(pattern, sparsity, blockSize, 1, 11);

        var got = _model.Forward(new ForwardInput { Batch = 1, Time = length, Values = input }, spec).Output;

        if (pattern == "topk")
        {
            AssertClose(_naive.Forward(input, length, (_, _, _, _) => true, PatternMath.Budget(sparsity, length)), got, pattern);
            return;
        }

        var staticPattern = (IStaticBlockPattern)AttentionPatterns.Get(pattern);
        var geometry = new BlockGeometry(length, blockSize);
        var allowed = NaiveEncoder.FromSelection(layer => staticPattern.Select(geometry, spec, layer), blockSize);
        AssertClose(_naive.Forward(input, length, allowed), got, pattern);
    }

    private static void AssertClose(double[] expected, float[] got, string what)
    {
        Assert.Equal(expected.Length, got.Length);
        double maxDiff = 0, maxAbs = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - got[i]));
            maxAbs = Math.Max(maxAbs, Math.Abs(expected[i]));
        }

        Assert.True(maxDiff / maxAbs <= 1e-4, $"{what}: max relative error {maxDiff / maxAbs:E3}");
    }
}
