using System.Diagnostics;
using System.Globalization;
using System.Text;
using SparseInference.Models;
using SparseInference.Tensors.Cuda;

namespace SparseInference.CudaSelfTest;

/// <summary>
/// The serving shape: a repository model (the default <c>skab-pump</c>, 64×8 windows) with the server's GPU settings, its
/// forward recorded as CUDA graphs (<see cref="CudaBackendOptions.MaxRecordedForwards"/>) against the same backend with
/// recording off and against the CPU engine, in one process on one device.
/// <list type="number">
/// <item>Checks: recorded forwards equal the unrecorded ones bit for bit at power-of-two batches (same kernels, same
/// shapes) and within the BF16 tolerance of the CPU engine at every batch (other batches replay their bucket's recording
/// padded), on fresh random windows for every call (a stale input staging would repeat the previous output); the computed
/// pairs match; unloading the model (recordings included) gives the driver all its memory back.</item>
/// <item>Timings: the synchronised wall time of <see cref="EncoderModel.Forward(ForwardInput)"/> for a lone window and
/// batches of 8 and 32 (median of many after warm-up), and an op-by-op breakdown of the unrecorded lone window.</item>
/// </list>
/// </summary>
internal sealed class ServingBench(CudaDevice gpu, string modelDir, string outDir, int iterations)
{
    private const double Tolerance = 1e-2;

    public int Passed { get; private set; }

    public int Failed { get; private set; }

    /// <summary>The server's settings (<see cref="CudaBackendProvider.ServingOptions"/>) with recording and fused layers as asked.</summary>
    private static CudaBackendOptions Serving(int recordings, bool fused = false) =>
        CudaBackendProvider.ServingOptions() with { MaxRecordedForwards = recordings, FusedLayers = fused };

    public void Run()
    {
        using var cpu = EncoderModel.Load(modelDir);
        using var recordedBackend = new CudaComputeBackend(gpu, Serving(CudaBackendOptions.DefaultRecordedForwards), ownsDevice: false);
        using var plainBackend = new CudaComputeBackend(gpu, Serving(0), ownsDevice: false);
        using var fusedRecordedBackend = new CudaComputeBackend(gpu, Serving(CudaBackendOptions.DefaultRecordedForwards, fused: true), ownsDevice: false);
        using var fusedBackend = new CudaComputeBackend(gpu, Serving(0, fused: true), ownsDevice: false);
        using var recorded = EncoderModel.Load(modelDir, recordedBackend);
        using var plain = EncoderModel.Load(modelDir, plainBackend);
        using var fusedRecorded = EncoderModel.Load(modelDir, fusedRecordedBackend);
        using var fused = EncoderModel.Load(modelDir, fusedBackend);
        var config = cpu.Config;
        Console.WriteLine($"serving model {modelDir}: d_model {config.DModel}, {config.NHeads} heads, {config.NLayers} layers, d_ff {config.DFf}, {config.InputChannels} channels, pattern {config.Attention.Pattern}");
        var time = Math.Min(64, config.MaxSeqLen);
        var rng = new Random(Environment.TickCount);

        Check("graphs", recorded, plain, cpu, rng, time);
        Check("fused layers + graphs", fusedRecorded, fused, cpu, rng, time);
        UnloadFreesRecordings(rng, time);

        var results = new List<string>();
        foreach (var batch in new[] { 1, 8, 32 })
        {
            var input = Window(rng, batch, time, config.InputChannels);
            foreach (var (label, model) in new[] { ("cpu", cpu), ("gpu", plain), ("gpu-graphs", recorded), ("gpu-fused", fused), ("gpu-fused-graphs", fusedRecorded) })
            {
                var iters = label == "cpu" && batch > 1 ? Math.Max(50, iterations / 10) : iterations;
                var (median, min) = Time(model, input, iters);
                Console.WriteLine(FormattableString.Invariant(
                    $"serving bench {label,-16} B{batch,-2} T{time}: median {median * 1000:F1} µs  min {min * 1000:F1} µs  ({iters} forwards)"));
                results.Add(FormattableString.Invariant(
                    $"  {{\"engine\":\"{label}\",\"batch\":{batch},\"seq_len\":{time},\"us\":{median * 1000:F2},\"us_min\":{min * 1000:F2},\"forwards\":{iters}}}"));
            }
        }

        OpBreakdown(Window(rng, 1, time, config.InputChannels), fused: false);
        OpBreakdown(Window(rng, 1, time, config.InputChannels), fused: true);
        var json = new StringBuilder();
        json.Append(CultureInfo.InvariantCulture, $"{{\"device\":\"{gpu.Describe().Replace("\"", "'", StringComparison.Ordinal)}\",\"model\":\"{Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(modelDir + "/")))}\",\"results\":[\n");
        json.Append(string.Join(",\n", results)).Append("\n]}\n");
        File.WriteAllText(Path.Combine(outDir, "serving_ours.json"), json.ToString());
    }

    private void Check(string label, EncoderModel recorded, EncoderModel plain, EncoderModel cpu, Random rng, int time)
    {
        var channels = cpu.Config.InputChannels;
        foreach (var batch in new[] { 1, 1, 1, 3, 3, 3, 8, 8, 8, 32, 32, 32 })
        {
            var input = Window(rng, batch, time, channels);
            var got = recorded.Forward(input);
            var eager = plain.Forward(input);
            var want = cpu.Forward(input);
            var err = Compare.RelativeError(got.Output, want.Output);
            var exact = got.Output.AsSpan().SequenceEqual(eager.Output);
            var ok = !double.IsNaN(err) && err <= Tolerance && got.ComputedPairs == want.ComputedPairs && got.DensePairs == want.DensePairs
                && (exact || (batch & (batch - 1)) != 0);
            Report(ok, FormattableString.Invariant(
                $"serving check {label} B{batch} T{time}: recorded vs cpu rel err {err:E2} (tol {Tolerance:E0}), vs unrecorded {(exact ? "bit-identical" : $"rel err {Compare.RelativeError(got.Output, eager.Output):E2}")}, pairs {got.ComputedPairs}/{got.DensePairs} vs cpu {want.ComputedPairs}/{want.DensePairs}"));
        }
    }

    /// <summary>A model with recordings, loaded and used and unloaded: the driver's free memory is back to the byte (±2 MiB).</summary>
    private void UnloadFreesRecordings(Random rng, int time)
    {
        using var backend = new CudaComputeBackend(gpu, Serving(CudaBackendOptions.DefaultRecordedForwards), ownsDevice: false);
        void Cycle()
        {
            using var m = EncoderModel.Load(modelDir, backend);
            foreach (var batch in new[] { 1, 1, 1, 8, 8, 8 })
            {
                m.Forward(Window(rng, batch, time, m.Config.InputChannels));
            }
        }

        Cycle();
        backend.ReleaseCachedMemory();
        var (before, _) = gpu.DeviceMemoryInfo();
        Cycle();
        backend.ReleaseCachedMemory();
        var (after, _) = gpu.DeviceMemoryInfo();
        const long Slack = 2L << 20;
        Report(Math.Abs(after - before) <= Slack, FormattableString.Invariant(
            $"serving unload drops recordings: driver free {before >> 20} MiB before, {after >> 20} MiB after load, 6 forwards (2 shapes recorded) and unload (difference {(after - before) / 1024.0:F0} KiB, allowed ±{Slack >> 10} KiB)"));
    }

    /// <summary>The unrecorded lone window op by op (each op synchronised and timed with events): what the launches cost.</summary>
    private void OpBreakdown(ForwardInput input, bool fused)
    {
        using var backend = new CudaComputeBackend(gpu, Serving(0, fused), ownsDevice: false);
        var timing = new OpTimingBackend(backend);
        using var m = EncoderModel.Load(modelDir, timing);
        for (var i = 0; i < 5; i++)
        {
            m.Forward(input);
        }

        timing.Reset();
        m.Forward(input);
        var total = timing.Totals.Values.Sum(t => t.Ms);
        Console.WriteLine(FormattableString.Invariant($"op breakdown lone window B{input.Batch} T{input.Time} (server settings{(fused ? ", fused layers" : "")}, ops timed one by one): sum {total * 1000:F1} µs"));
        foreach (var (op, (ms, calls)) in timing.Totals.OrderByDescending(t => t.Value.Ms))
        {
            Console.WriteLine(FormattableString.Invariant($"  {ms * 1000,8:F1} µs  {calls,3}×  {op}"));
        }
    }

    private static (double Median, double Min) Time(EncoderModel model, ForwardInput input, int iterations)
    {
        for (var i = 0; i < Math.Max(20, iterations / 20); i++)
        {
            model.Forward(input);
        }

        var times = new double[iterations];
        for (var i = 0; i < iterations; i++)
        {
            var sw = Stopwatch.StartNew();
            model.Forward(input);
            times[i] = sw.Elapsed.TotalMilliseconds;
        }

        Array.Sort(times);
        return (times[iterations / 2], times[0]);
    }

    private void Report(bool ok, string line)
    {
        if (ok) { Passed++; } else { Failed++; }
        Console.WriteLine($"{line}: {(ok ? "PASS" : "FAIL")}");
    }

    private static ForwardInput Window(Random rng, int batch, int time, int channels)
    {
        var values = new float[batch * time * channels];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)((rng.NextDouble() * 4) - 2);
        }

        return new ForwardInput { Batch = batch, Time = time, Values = values };
    }
}
