using System.Diagnostics;
using System.Globalization;
using System.Text;
using SparseInference.Models;
using SparseInference.Models.Formats;
using SparseInference.Tensors.Cuda;

namespace SparseInference.CudaSelfTest;

/// <summary>
/// The whole encoder forward through <see cref="CudaComputeBackend"/>: a random 4-layer d_model 512 model is written
/// as safetensors, its GPU output checked against the fused CPU engine on the same input (smaller batch), then the
/// forward is timed at the benchmark size for dense and block-sparse patterns. Results go to model_ours.json for
/// benchmarks/peers/gpu/model_peer.py, which times PyTorch eager on the same weights and block masks.
/// </summary>
internal sealed class ModelBench(CudaDevice gpu, string outDir, int iterations)
{
    public const int Channels = 8, DModel = 512, Heads = 8, Layers = 4, DFf = 2048, BlockSize = 128;
    private const double Tolerance = 1e-2;

    public int Passed { get; private set; }

    public int Failed { get; private set; }

    public static readonly (string Name, AttentionSpec Spec)[] Cases =
    [
        ("dense", new AttentionSpec("dense", 0.0, BlockSize)),
        ("window75", new AttentionSpec("window", 0.75, BlockSize)),
        ("window90", new AttentionSpec("window", 0.90, BlockSize)),
        ("bigbird90", new AttentionSpec("bigbird", 0.90, BlockSize, GlobalBlocks: 1, Seed: 0)),
    ];

    public void Run(int checkBatch, int checkTime, int batch, int time)
    {
        var modelDir = Path.Combine(outDir, "model");
        RandomModelWriter.Write(modelDir, Channels, DModel, Heads, Layers, DFf, Math.Max(time, checkTime), Channels, seed: 1234);
        Console.WriteLine($"model: {Layers} layers, d_model {DModel}, {Heads} heads, d_ff {DFf}, {Channels} channels, weights in {modelDir}");

        using var cpu = EncoderModel.Load(modelDir);
        using var backend = new CudaComputeBackend(gpu, new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16Inputs }, ownsDevice: false);
        using var model = EncoderModel.Load(modelDir, backend);
        using var backend32 = new CudaComputeBackend(gpu, ownsDevice: false);
        using var model32 = EncoderModel.Load(modelDir, backend32);
        // BFloat16 products: the earlier paths (FP32 residual stream, exact or epilogue GELU) and the defaults (BF16
        // residual stream, epilogue GELU), plus the BF16 residual with the exact GELU pass.
        using var backendOut16 = new CudaComputeBackend(gpu, new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16, GeluInEpilogue = false, BFloat16Residual = false }, ownsDevice: false);
        using var modelOut16 = EncoderModel.Load(modelDir, backendOut16);
        using var backendGelu = new CudaComputeBackend(gpu, new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16, GeluInEpilogue = true, BFloat16Residual = false }, ownsDevice: false);
        using var modelGelu = EncoderModel.Load(modelDir, backendGelu);
        using var backendRes = new CudaComputeBackend(gpu, new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16 }, ownsDevice: false);
        using var modelRes = EncoderModel.Load(modelDir, backendRes);
        using var backendResExact = new CudaComputeBackend(gpu, new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16, GeluInEpilogue = false }, ownsDevice: false);
        using var modelResExact = EncoderModel.Load(modelDir, backendResExact);
        Console.WriteLine($"residual stream: {backendRes.ResidualDType} with the BFloat16 defaults (GELU in epilogue: {backendRes.GeluInEpilogue}), {backendGelu.ResidualDType} with BFloat16Residual off");
        var stats = gpu.Memory.Statistics;
        Console.WriteLine($"weights on the GPU (six copies: BF16-input, four BF16-output and FP32 products): in use {stats.InUseBytes >> 20} MiB");

        // Correctness: fresh random input, GPU vs the fused CPU engine.
        var rng = new Random(Environment.TickCount);
        var check = Input(rng, checkBatch, checkTime, ragged: true);
        foreach (var (name, spec) in Cases)
        {
            var want = cpu.Forward(check, spec);
            foreach (var (label, m) in new[]
            {
                ("bf16 products", model), ("bf16 outputs, fp32 residual", modelOut16), ("bf16 outputs, fp32 residual, epilogue GELU", modelGelu),
                ("bf16 outputs, bf16 residual, epilogue GELU (default)", modelRes), ("bf16 outputs, bf16 residual, exact GELU", modelResExact), ("fp32 products", model32),
            })
            {
                ForwardResult got;
                try
                {
                    got = m.Forward(check, spec);
                }
                catch (Exception ex) when (ex is NotSupportedException or ArgumentException or CudaException or InvalidOperationException)
                {
                    Failed++;
                    Console.WriteLine($"model check {name,-10} {label}: FAIL, {ex.GetType().Name}: {ex.Message}");
                    continue;
                }

                var err = Compare.RelativeError(got.Output, want.Output);
                var ok = !double.IsNaN(err) && err <= Tolerance;
                if (ok) { Passed++; } else { Failed++; }
                Console.WriteLine(FormattableString.Invariant(
                    $"model check {name,-10} {label} B{checkBatch} T{checkTime} (ragged): rel err {err:E2} (tol {Tolerance:E0}), pairs {got.ComputedPairs} vs cpu {want.ComputedPairs}: {(ok ? "PASS" : "FAIL")}"));
            }
        }

        UnloadFreesDeviceMemory(modelDir, check);

        // Timing: synchronised wall time of the whole forward (input upload and output download included).
        var results = new List<string>();
        var input = Input(new Random(7), batch, time, ragged: false);
        foreach (var (label, m, cases) in new[]
        {
            ("bf16", model, Cases), ("bf16out", modelOut16, Cases), ("bf16gelu", modelGelu, Cases), ("bf16res", modelRes, Cases), ("bf16resx", modelResExact, Cases),
            ("fp32", model32, Cases[..1]),
        })
        {
            foreach (var (name, spec) in cases)
            {
                ForwardResult first;
                try
                {
                    first = m.Forward(input, spec);
                }
                catch (Exception ex) when (ex is NotSupportedException or ArgumentException or CudaException or InvalidOperationException)
                {
                    Failed++;
                    Console.WriteLine($"model bench {label} {name,-10}: FAIL, {ex.GetType().Name}: {ex.Message}");
                    continue;
                }

                var finite = first.Output.All(float.IsFinite);
                if (!finite) { Failed++; }
                for (var i = 0; i < 3; i++)
                {
                    m.Forward(input, spec);
                }

                var times = new double[iterations];
                for (var i = 0; i < iterations; i++)
                {
                    var sw = Stopwatch.StartNew();
                    m.Forward(input, spec);
                    times[i] = sw.Elapsed.TotalMilliseconds;
                }

                Array.Sort(times);
                var median = times[iterations / 2];
                Console.WriteLine(FormattableString.Invariant(
                    $"model bench {label,-8} {name,-10} B{batch} T{time}: density {first.Density:F3}  median {median:F3} ms  min {times[0]:F3} ms  {(finite ? "finite" : "NON-FINITE OUTPUT")}"));
                results.Add(FormattableString.Invariant(
                    $"  {{\"name\":\"{name}\",\"products\":\"{label}\",\"pattern\":\"{spec.Pattern}\",\"sparsity\":{spec.Sparsity},\"block_size\":{spec.BlockSize},\"global_blocks\":{spec.GlobalBlocks},\"seed\":{spec.Seed},\"density\":{first.Density:F5},\"batch\":{batch},\"seq_len\":{time},\"ms\":{median:F4},\"ms_min\":{times[0]:F4}}}"));
            }
        }

        OpBreakdown(modelDir, input);

        var json = new StringBuilder();
        json.Append(CultureInfo.InvariantCulture, $"{{\"device\":\"{gpu.Describe().Replace("\"", "'", StringComparison.Ordinal)}\",\"model_dir\":\"model\",\"results\":[\n");
        json.Append(string.Join(",\n", results)).Append("\n]}\n");
        File.WriteAllText(Path.Combine(outDir, "model_ours.json"), json.ToString());
    }

    /// <summary>
    /// Device time per op kind of one forward at the benchmark size (each op synchronised and timed with events, so the
    /// sum exceeds the pipelined forward slightly): what the forward spends outside products and attention.
    /// </summary>
    private void OpBreakdown(string modelDir, ForwardInput input)
    {
        foreach (var bf16Residual in new[] { false, true })
        {
            using var backend = new CudaComputeBackend(gpu, new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16, BFloat16Residual = bf16Residual }, ownsDevice: false);
            var precision = $"BFloat16, {backend.ResidualDType} residual, GELU in epilogue";
            var timing = new OpTimingBackend(backend);
            using var m = EncoderModel.Load(modelDir, timing);
            foreach (var (name, spec) in new[] { Cases[0], Cases[2] })
            {
                m.Forward(input, spec);
                timing.Reset();
                m.Forward(input, spec);
                var total = timing.Totals.Values.Sum(t => t.Ms);
                Console.WriteLine(FormattableString.Invariant($"op breakdown {name} B{input.Batch} T{input.Time} ({precision}, ops timed one by one): sum {total:F2} ms"));
                foreach (var (op, (ms, calls)) in timing.Totals.OrderByDescending(t => t.Value.Ms))
                {
                    Console.WriteLine(FormattableString.Invariant($"  {ms,8:F3} ms  {calls,3}×  {op}"));
                }
            }
        }
    }

    /// <summary>
    /// Loading a model takes device memory and unloading it (dispose, then <see cref="CudaComputeBackend.ReleaseCachedMemory"/>)
    /// gives all of it back, by the driver's own count (cuMemGetInfo). A first load/forward/unload cycle warms the
    /// one-time allocations (kernel modules, cuBLAS workspaces) so that the second cycle measures the model alone.
    /// </summary>
    private void UnloadFreesDeviceMemory(string modelDir, ForwardInput input)
    {
        using var backend = new CudaComputeBackend(gpu, new CudaBackendOptions { MatMulPrecision = CudaMatMulPrecision.BFloat16Inputs }, ownsDevice: false);
        void Cycle()
        {
            using var m = EncoderModel.Load(modelDir, backend);
            m.Forward(input, Cases[0].Spec);
            m.Forward(input, Cases[^1].Spec);
        }

        Cycle();
        backend.ReleaseCachedMemory();
        var (before, _) = gpu.DeviceMemoryInfo();
        long loaded, inUseLoaded;
        using (var m = EncoderModel.Load(modelDir, backend))
        {
            m.Forward(input, Cases[0].Spec);
            m.Forward(input, Cases[^1].Spec);
            gpu.Synchronize();
            (loaded, _) = gpu.DeviceMemoryInfo();
            inUseLoaded = gpu.Memory.Statistics.InUseBytes;
        }

        var inUseUnloaded = gpu.Memory.Statistics.InUseBytes;
        backend.ReleaseCachedMemory();
        var (after, _) = gpu.DeviceMemoryInfo();
        const long Slack = 2L << 20;
        var weightBytes = 4L * Layers * ((4L * DModel * DModel) + (2L * DModel * DFf));
        var ok = before - loaded >= weightBytes && Math.Abs(after - before) <= Slack;
        if (ok) { Passed++; } else { Failed++; }
        Console.WriteLine(FormattableString.Invariant(
            $"model unload frees device memory: driver free {before >> 20} MiB before load, {loaded >> 20} MiB loaded (after forwards; pool in use {inUseLoaded >> 20} MiB, {inUseUnloaded >> 20} MiB after dispose), {after >> 20} MiB after unload and release (difference {(after - before) / 1024.0:F0} KiB, allowed ±{Slack >> 10} KiB; weights ≥ {weightBytes >> 20} MiB): {(ok ? "PASS" : "FAIL")}"));
    }

    private static ForwardInput Input(Random rng, int batch, int time, bool ragged)
    {
        var values = new float[batch * time * Channels];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        // Ragged: the last sequence is shorter by a non-block-aligned amount, so padding and valid lengths are exercised.
        var lengths = Enumerable.Repeat(time, batch).ToArray();
        if (ragged && batch > 1)
        {
            lengths[^1] = time - (time / 4) - 17;
        }

        return new ForwardInput { Batch = batch, Time = time, Values = values, Lengths = lengths };
    }
}
