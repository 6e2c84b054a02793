using SparseInference.Models.Formats;
using SparseInference.Models.Tests.Infrastructure;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Models.Tests;

/// <summary>
/// Recorded forwards (CUDA graphs on a GPU) from the model's side, on a CPU backend whose recordings run the recorded ops
/// again on replay: which forwards are recorded and when, that a replay reads the new input and gives the unrecorded
/// forward's output and pairs (batches padded to their bucket included), the bound on recordings, and that unloading the
/// model disposes them.
/// </summary>
public sealed class RecordedForwardsTests : IDisposable
{
    private const int D = 32, Heads = 4, Layers = 2, Dff = 64, Channels = 8, OutDim = 8, Time = 64;
    private readonly TempDirectory _dir = new();
    private readonly CpuBackend _cpu = new();
    private readonly EncoderModel _reference;

    public RecordedForwardsTests()
    {
        RandomModelWriter.Write(_dir.Path, Channels, D, Heads, Layers, Dff, maxSeqLen: 128, OutDim, seed: 21);
        _reference = EncoderModel.Load(_dir.Path, _cpu);
    }

    public void Dispose()
    {
        _reference.Dispose();
        _cpu.Dispose();
        _dir.Dispose();
    }

    [Theory]
    [InlineData("dense", 0.0)]
    [InlineData("window", 0.5)]
    public void Forward_RepeatedShape_RecordedOnSecondCallAndReplayedWithEachNewInput(string pattern, double sparsity)
    {
        var backend = new ReplayingCpuBackend(_cpu, maxRecordedForwards: 4);
        using var model = EncoderModel.Load(_dir.Path, backend);
        var spec = new AttentionSpec(pattern, sparsity, 16);
        var random = new Random(3);

        for (var call = 1; call <= 4; call++)
        {
            var input = Window(random, batch: 1);
            var got = model.Forward(input, spec);
            var want = _reference.Forward(input, spec);

            AssertClose(want, got);
            Assert.Equal(call >= 2 ? 1 : 0, backend.Recorded);
            Assert.Equal(Math.Max(0, call - 1), backend.Replays);
        }
    }

    [Fact]
    public void Forward_BatchBetweenPowersOfTwo_ReplaysItsBucketPaddedAndSlices()
    {
        var backend = new ReplayingCpuBackend(_cpu, maxRecordedForwards: 4);
        using var model = EncoderModel.Load(_dir.Path, backend);
        var random = new Random(5);

        // 3 and 4 share the bucket of 4: the second call (batch 4) records it, the third (batch 3) replays it.
        foreach (var batch in new[] { 3, 4, 3 })
        {
            var input = Window(random, batch);
            var got = model.Forward(input);

            AssertClose(_reference.Forward(input), got);
            Assert.Equal([batch, Time, OutDim], got.Shape);
        }

        Assert.Equal(1, backend.Recorded);
        Assert.Equal(2, backend.Replays);
    }

    [Fact]
    public void Forward_ManyShapes_KeepsAtMostTheBoundAndUnloadDisposesThem()
    {
        var backend = new ReplayingCpuBackend(_cpu, maxRecordedForwards: 2);
        var model = EncoderModel.Load(_dir.Path, backend);
        var random = new Random(7);
        foreach (var batch in new[] { 1, 2, 4, 8 })
        {
            model.Forward(Window(random, batch));
            model.Forward(Window(random, batch));
        }

        Assert.Equal(4, backend.Recorded);
        Assert.Equal(2, backend.Alive);

        model.Dispose();

        Assert.Equal(0, backend.Alive);
    }

    [Fact]
    public void Forward_RaggedBatch_RunsOpByOp()
    {
        var backend = new ReplayingCpuBackend(_cpu, maxRecordedForwards: 4);
        using var model = EncoderModel.Load(_dir.Path, backend);
        var random = new Random(9);
        for (var i = 0; i < 3; i++)
        {
            var input = Window(random, batch: 2, lengths: [Time, 40]);
            AssertClose(_reference.Forward(input), model.Forward(input));
        }

        Assert.Equal(0, backend.Recorded);
    }

    [Fact]
    public void Forward_RecordingFails_ShapeRunsOpByOpWithoutRetrying()
    {
        var backend = new ReplayingCpuBackend(_cpu, maxRecordedForwards: 4) { FailRecordings = true };
        using var model = EncoderModel.Load(_dir.Path, backend);
        var random = new Random(11);
        for (var i = 0; i < 4; i++)
        {
            var input = Window(random, batch: 1);
            AssertClose(_reference.Forward(input), model.Forward(input));
        }

        Assert.Equal(1, backend.Recorded);
        Assert.Equal(0, backend.Alive);
    }

    [Fact]
    public void Forward_RecordingOff_NeverRecords()
    {
        var backend = new ReplayingCpuBackend(_cpu, maxRecordedForwards: 0);
        using var model = EncoderModel.Load(_dir.Path, backend);
        var random = new Random(13);
        for (var i = 0; i < 3; i++)
        {
            model.Forward(Window(random, batch: 1));
        }

        Assert.Equal(0, backend.Recorded);
    }

    private static ForwardInput Window(Random random, int batch, int[]? lengths = null) => new()
    {
        Batch = batch,
        Time = Time,
        Lengths = lengths,
        Values = Enumerable.Range(0, batch * Time * Channels).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray(),
    };

    private static void AssertClose(ForwardResult want, ForwardResult got)
    {
        Assert.Equal(want.Shape, got.Shape);
        Assert.Equal(want.ComputedPairs, got.ComputedPairs);
        Assert.Equal(want.DensePairs, got.DensePairs);
        double num = 0, den = 0;
        for (var i = 0; i < want.Output.Length; i++)
        {
            double d = got.Output[i] - want.Output[i];
            num += d * d;
            den += (double)want.Output[i] * want.Output[i];
        }

        Assert.True(Math.Sqrt(num / den) <= 1e-5, $"relative error {Math.Sqrt(num / den):E2} > 1e-5");
    }
}
