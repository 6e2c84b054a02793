using SparseInference.Models.Tests.Infrastructure;

namespace SparseInference.Models.Tests;

public sealed class EncoderModelTests
{
    private static readonly Lazy<EncoderModel> Sinusoidal = new(() => EncoderModel.Load(TestModels.GoldenModel(TestModels.Sinusoidal)));

    private static float[] RandomValues(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    }

    public static TheoryData<string> Patterns()
    {
        var data = new TheoryData<string>();
        foreach (var p in AttentionSpec.KnownPatterns)
        {
            data.Add(p);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Patterns))]
    public void Forward_SequenceInPaddedBatch_EqualsSequenceAloneAndPaddingIsZero(string pattern)
    {
        var model = Sinusoidal.Value;
        const int channels = 3, outDim = 3, length = 29, time = 45;
        var spec = new AttentionSpec(pattern, 0.6, 8, 1, 99);
        var sequence = RandomValues(length * channels, 1);
        var alone = model.Forward(new ForwardInput { Batch = 1, Time = length, Values = sequence }, spec);

        // The same sequence second in a batch of three, with a longer T and garbage padding.
        var values = RandomValues(3 * time * channels, 2).Select(v => v * 1000f).ToArray();
        sequence.CopyTo(values, time * channels);
        // Padding of the first sequence holds non-finite garbage: it must never reach any arithmetic that counts.
        values[40 * channels] = float.NaN;
        values[41 * channels + 1] = float.PositiveInfinity;
        values[44 * channels + 2] = float.NegativeInfinity;
        var batched = model.Forward(new ForwardInput { Batch = 3, Time = time, Values = values, Lengths = [40, length, 12] }, spec);

        var mine = batched.Output.AsSpan(time * outDim, time * outDim);
        for (int i = 0; i < length * outDim; i++)
        {
            Assert.Equal(alone.Output[i], mine[i], 5e-6f);
        }

        Assert.All(mine[(length * outDim)..].ToArray(), v => Assert.Equal(0f, v));
        Assert.All(batched.Output, v => Assert.True(float.IsFinite(v)));
        Assert.Equal(2L * 2 * (40 * 40 + length * length + 12 * 12), batched.DensePairs);
    }

    [Fact]
    public void Forward_ConcurrentCalls_EqualSerialResults()
    {
        var model = Sinusoidal.Value;
        var inputs = Enumerable.Range(0, 12).Select(i => new ForwardInput
        {
            Batch = 2, Time = 64, Values = RandomValues(2 * 64 * 3, 10 + i), Lengths = [64, 20 + i],
        }).ToArray();
        var specs = inputs.Select((_, i) => new AttentionSpec(AttentionSpec.KnownPatterns[i % AttentionSpec.KnownPatterns.Count], 0.75, 8, 1, 3)).ToArray();
        var serial = inputs.Select((input, i) => model.Forward(input, specs[i]).Output).ToArray();

        var parallel = new float[inputs.Length][];
        Parallel.For(0, inputs.Length * 4, new ParallelOptions { MaxDegreeOfParallelism = 8 }, j =>
        {
            int i = j % inputs.Length;
            parallel[i] = model.Forward(inputs[i], specs[i]).Output;
        });

        for (int i = 0; i < inputs.Length; i++)
        {
            Assert.Equal(serial[i], parallel[i]);
        }
    }

    [Fact]
    public void Forward_SparsePatterns_ComputeFewerPairsThanDense()
    {
        var model = Sinusoidal.Value;
        var input = new ForwardInput { Batch = 1, Time = 64, Values = RandomValues(64 * 3, 5) };

        var dense = model.Forward(input, new AttentionSpec("dense"));
        var window = model.Forward(input, new AttentionSpec("window", 0.75, 8));

        Assert.Equal(dense.DensePairs, dense.ComputedPairs);
        Assert.Equal(1.0, dense.Density);
        // n = 8, K = 2, r = 0: the diagonal blocks only.
        Assert.Equal(2L * 2 * 8 * 64, window.ComputedPairs);
        Assert.Equal(0.125, window.Density);
    }

    [Fact]
    public void Forward_GatedOnUngatedModel_ErrorNamesGated()
    {
        using var dir = new TempDirectory();
        TestModels.CopyModel(TestModels.Sinusoidal, dir.Path);
        TestModels.EditConfig(dir.Path, "\"gated\": true", "\"gated\": false");
        var model = EncoderModel.Load(dir.Path);

        var error = Assert.Throws<ArgumentException>(() => model.Forward(new ForwardInput { Batch = 1, Time = 8, Values = new float[24] }, new AttentionSpec("gated", 0.5, 8)));

        Assert.Contains("gated: true", error.Message);
    }

    [Fact]
    public void Forward_LengthBeyondTime_ErrorNamesFieldAndValue()
    {
        var error = Assert.Throws<ArgumentException>(() => Sinusoidal.Value.Forward(
            new ForwardInput { Batch = 2, Time = 8, Values = new float[48], Lengths = [8, 9] }, new AttentionSpec("dense")));

        Assert.Contains("Lengths[1]", error.Message);
        Assert.Contains("got 9", error.Message);
    }

    [Fact]
    public void Forward_UnknownPattern_ErrorListsKnownPatterns()
    {
        var error = Assert.Throws<ArgumentException>(() => Sinusoidal.Value.Forward(
            new ForwardInput { Batch = 1, Time = 8, Values = new float[24] }, new AttentionSpec("diagonal")));

        Assert.Contains("'diagonal'", error.Message);
        Assert.Contains("block-topk", error.Message);
    }

    [Fact]
    public void Forward_TokenIdOutOfVocabulary_ErrorNamesPosition()
    {
        var model = EncoderModel.Load(TestModels.GoldenModel(TestModels.Tokens));
        var ids = new int[6];
        ids[4] = 11;

        var error = Assert.Throws<ArgumentException>(() => model.Forward(new ForwardInput { Batch = 1, Time = 6, TokenIds = ids }, new AttentionSpec("dense")));

        Assert.Contains("TokenIds[0, 4]", error.Message);
        Assert.Contains("got 11", error.Message);
    }

    [Fact]
    public void Load_GoldenModel_ReportsWeightBytes()
    {
        // d = 16, ff = 32, 3 channels → 3 outputs, 2 gated layers.
        long perLayer = 16 * 2 + (48 * 16 + 48) + (16 * 16 + 16) + 16 * 2 + (32 * 16 + 32) + (16 * 32 + 16) + (16 + 1);
        long parameters = (16 * 3 + 16) + 2 * perLayer + 16 * 2 + (3 * 16 + 3);

        Assert.Equal(parameters * 4, Sinusoidal.Value.WeightBytes);
    }
}
