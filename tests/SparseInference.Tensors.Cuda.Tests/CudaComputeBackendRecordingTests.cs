using SparseInference.Models;
using SparseInference.Models.Formats;
using SparseInference.Tensors.Cuda.Memory;

namespace SparseInference.Tensors.Cuda.Tests;

/// <summary>
/// Recorded forwards (CUDA graphs): a replay computes what the ops compute one by one, reads each new input, and its
/// memory is its own until the model is unloaded; a recording that meets an op waiting for the device fails cleanly.
/// </summary>
public sealed class CudaComputeBackendRecordingTests
{
    /// <summary>The default sensor model's shape: 8 channels, d_model 32, 4 heads of 8, 2 layers, 64-step windows.</summary>
    private const int Channels = 8, DModel = 32, Heads = 4, Layers = 2, DFf = 64, Time = 64;

    private static CudaBackendOptions Serving(int recordings) => new() { MatMulPrecision = CudaMatMulPrecision.BFloat16, MaxRecordedForwards = recordings };

    [Theory]
    [InlineData(-1)]
    [InlineData(CudaBackendOptions.MaxRecordedForwardsLimit + 1)]
    public void Options_RecordedForwardsOutOfRange_AreRejectedByName(int recordings)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(new CudaBackendOptions { MaxRecordedForwards = recordings }.Validate);

        Assert.Contains("MaxRecordedForwards", ex.Message, StringComparison.Ordinal);
        Assert.Contains(CudaBackendOptions.RecordedForwardsVariable, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(CudaBackendOptions.MaxRecordedForwardsLimit)]
    public void Options_RecordedForwardsInRange_AreAccepted(int recordings) =>
        new CudaBackendOptions { MaxRecordedForwards = recordings }.Validate();

    [GpuFact]
    public void Forward_RecordedWindows_MatchUnrecordedBitForBitAndUnloadReturnsTheMemory()
    {
        Assert.True(CudaDevice.TryCreate(out var device, out var reason), reason);
        var dir = Path.Combine(Path.GetTempPath(), "si-recorded-" + Guid.NewGuid().ToString("N"));
        try
        {
            RandomModelWriter.Write(dir, Channels, DModel, Heads, Layers, DFf, maxSeqLen: 128, Channels, seed: 31);
            using var gpu = device!;
            using var recordedBackend = new CudaComputeBackend(gpu, Serving(8), ownsDevice: false);
            using var plainBackend = new CudaComputeBackend(gpu, Serving(0), ownsDevice: false);
            using var plain = EncoderModel.Load(dir, plainBackend);
            var random = new Random(Environment.TickCount);

            // A first cycle warms modules and library workspaces, so that the second measures the model alone.
            for (var cycle = 0; cycle < 2; cycle++)
            {
                recordedBackend.ReleaseCachedMemory();
                var (before, _) = gpu.DeviceMemoryInfo();
                using (var recorded = EncoderModel.Load(dir, recordedBackend))
                {
                    foreach (var spec in new[] { new AttentionSpec("dense", 0, 8), new AttentionSpec("window", 0.5, 8) })
                    {
                        for (var call = 0; call < 4; call++)
                        {
                            var input = new ForwardInput
                            {
                                Batch = 1, Time = Time,
                                Values = Enumerable.Range(0, Time * Channels).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray(),
                            };
                            var want = plain.Forward(input, spec);
                            var got = recorded.Forward(input, spec);
                            Assert.Equal(want.Output, got.Output);
                            Assert.Equal(want.ComputedPairs, got.ComputedPairs);
                        }
                    }

                    Assert.Equal(2, recordedBackend.RecordedForwards);
                }

                Assert.Equal(0, recordedBackend.RecordedForwards);
                recordedBackend.ReleaseCachedMemory();
                var (after, _) = gpu.DeviceMemoryInfo();
                if (cycle == 1)
                {
                    Assert.True(Math.Abs(after - before) <= 2L << 20, $"driver free memory {before >> 20} MiB before load, {after >> 20} MiB after unload");
                }
            }
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [GpuFact]
    public void Record_OpThatWaitsForTheDevice_ReturnsNullAndTheBackendKeepsWorking()
    {
        Assert.True(CudaComputeBackend.TryCreate(out var gpu, out var reason, Serving(8)), reason);
        using (gpu)
        {
            Assert.NotNull(gpu);
            using var x = gpu.FromHost([1f, 2f, 3f, 4f], 4);
            using var y = gpu.Allocate(new Shape(4), DType.F32);
            var host = new byte[16];

            var recording = gpu.Record(x, y, () =>
            {
                gpu.Scale(x, 2f, y);
                gpu.CopyToHost(y, host); // waits for the device: cannot be recorded
            });

            Assert.Null(recording);
            Assert.NotNull(gpu.LastRecordingFailure);
            Assert.Equal(0, gpu.RecordedForwards);
            gpu.Scale(x, 3f, y);
            Assert.Equal([3f, 6f, 9f, 12f], y.ToArray<float>());
        }
    }

    [GpuFact]
    public void Reservation_BlockReturnedWhileRecorded_IsNotHandedOutUntilTheReservationEnds()
    {
        Assert.True(CudaDevice.TryCreate(out var gpu, out var reason), reason);
        using (gpu)
        {
            const long Bytes = 3 << 20;
            var pool = gpu!.Memory;
            var reservation = pool.BeginReservation();
            var recorded = gpu.Allocate(Bytes);
            var pointer = recorded.Pointer;
            recorded.Dispose();
            pool.EndReservation(reservation);

            using (var other = gpu.Allocate(Bytes))
            {
                Assert.NotEqual(pointer, other.Pointer);
            }

            reservation.Dispose();
            using var reused = gpu.Allocate(Bytes);
            Assert.Equal(pointer, reused.Pointer);
        }
    }
}
