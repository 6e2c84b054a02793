using System.Diagnostics;
using System.Globalization;
using System.Text;
using SparseInference.CudaSelfTest;
using SparseInference.Tensors.Cuda;
using SparseInference.Tensors.Cuda.Attention;
using SparseInference.Tensors.Cuda.Kernels;
using SparseInference.Tensors.Cuda.Memory;

// Self-test and benchmark of the CUDA backend on a real GPU.
//   SparseInference.CudaSelfTest [--out DIR] [--skip-bench] [--iters N] [--model | --model-only | --serving MODEL_DIR]
// 1. Every op runs on fresh random inputs, outputs poisoned with NaN first, and is compared with a
//    double-precision CPU reference by ‖out − ref‖/‖ref‖; NaN never passes.
// 2. Attention is timed with CUDA events after warm-up (median of --iters runs) and the results and
//    block layouts are written under DIR for the PyTorch peer (benchmarks/peers/gpu/attention_peer.py).
// --model-only: the whole encoder against the CPU engine and timed (ModelBench); --serving: a repository model with the
// server's settings, recorded forwards (CUDA graphs) against unrecorded ones and the CPU engine (ServingBench).
// Exit code: 0 all checks passed, 1 a check failed, 2 no usable GPU.

var outDir = "selftest-out";
var skipBench = false;
var iterations = 50;
var model = false;
var modelOnly = false;
string? servingModel = null;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--out": outDir = args[++i]; break;
        case "--skip-bench": skipBench = true; break;
        case "--iters": iterations = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--model": model = true; break;
        case "--model-only": model = modelOnly = true; break;
        case "--serving": servingModel = args[++i]; break;
        default:
            Console.Error.WriteLine($"unknown argument '{args[i]}'; expected --out DIR, --skip-bench, --iters N, --model, --model-only, --serving MODEL_DIR");
            return 64;
    }
}

Directory.CreateDirectory(outDir);
if (!CudaDevice.TryCreate(out var backend, out var reason) || backend is null)
{
    Console.WriteLine(reason);
    return 2;
}

using (backend)
{
    Console.WriteLine($"device: {backend.Describe()}");
    if (servingModel is not null)
    {
        var serving = new ServingBench(backend, servingModel, outDir, iterations);
        serving.Run();
        Console.WriteLine($"serving checks: {serving.Passed} passed, {serving.Failed} failed");
        return serving.Failed == 0 ? 0 : 1;
    }

    if (modelOnly)
    {
        var modelOnlyBench = new ModelBench(backend, outDir, iterations);
        modelOnlyBench.Run(checkBatch: 2, checkTime: 512, batch: 8, time: 4096);
        Console.WriteLine($"model checks: {modelOnlyBench.Passed} passed, {modelOnlyBench.Failed} failed");
        return modelOnlyBench.Failed == 0 ? 0 : 1;
    }

    var checks = new SelfChecks(backend, seed: Environment.TickCount);
    var sw = Stopwatch.StartNew();
    checks.RunAll();
    using (var contract = new CudaComputeBackend(backend, ownsDevice: false))
    {
        new ContractChecks(contract, checks, seed: Environment.TickCount + 1).RunAll();
    }

    Console.WriteLine($"checks: {checks.Passed} passed, {checks.Failed} failed ({sw.Elapsed.TotalSeconds:F1} s, {backend.KernelCompilations} kernel compilations)");
    var stats = backend.Memory.Statistics;
    Console.WriteLine($"memory: in use {stats.InUseBytes >> 20} MiB, reserved {stats.ReservedBytes >> 20} MiB, weights {stats.WeightBytes >> 20} MiB, workspace {stats.WorkspaceBytes >> 20} MiB");

    if (!skipBench)
    {
        var bench = new AttentionBenchmarks(backend, outDir, iterations, checks);
        bench.RunAll();
        Console.WriteLine($"checks after benchmarks: {checks.Passed} passed, {checks.Failed} failed");
    }

    var modelFailed = 0;
    if (model)
    {
        var modelBench = new ModelBench(backend, outDir, iterations);
        modelBench.Run(checkBatch: 2, checkTime: 512, batch: 8, time: 4096);
        Console.WriteLine($"model checks: {modelBench.Passed} passed, {modelBench.Failed} failed");
        modelFailed = modelBench.Failed;
    }

    return checks.Failed == 0 && modelFailed == 0 ? 0 : 1;
}

namespace SparseInference.CudaSelfTest
{
    /// <summary>Shared comparison and bookkeeping.</summary>
    internal static class Compare
    {
        /// <summary>‖got − want‖/‖want‖ over the given element indices (all when null); NaN if any compared value is NaN.</summary>
        public static double RelativeError(ReadOnlySpan<float> got, ReadOnlySpan<float> want, IEnumerable<long>? indices = null)
        {
            double num = 0, den = 0;
            if (indices is null)
            {
                for (var i = 0; i < got.Length; i++)
                {
                    if (float.IsNaN(got[i]) || float.IsInfinity(got[i]))
                    {
                        return double.NaN;
                    }

                    num += (got[i] - (double)want[i]) * (got[i] - (double)want[i]);
                    den += want[i] * (double)want[i];
                }
            }
            else
            {
                foreach (var i in indices)
                {
                    if (float.IsNaN(got[(int)i]) || float.IsInfinity(got[(int)i]))
                    {
                        return double.NaN;
                    }

                    num += (got[(int)i] - (double)want[(int)i]) * (got[(int)i] - (double)want[(int)i]);
                    den += want[(int)i] * (double)want[(int)i];
                }
            }

            return den == 0 ? (num == 0 ? 0 : double.PositiveInfinity) : Math.Sqrt(num / den);
        }

        public static int CountNaN(ReadOnlySpan<float> x)
        {
            var n = 0;
            foreach (var v in x)
            {
                if (float.IsNaN(v))
                {
                    n++;
                }
            }

            return n;
        }
    }

    internal sealed class SelfChecks(CudaDevice gpu, int seed)
    {
        private const uint PoisonF32 = 0x7FC00000;
        private const uint PoisonBf16Pair = 0x7FC07FC0;
        private readonly Random rng = new(seed);

        public int Passed { get; private set; }

        public int Failed { get; private set; }

        public void Report(string name, double error, double tolerance, string extra = "")
        {
            var ok = !double.IsNaN(error) && error <= tolerance;
            if (ok)
            {
                Passed++;
            }
            else
            {
                Failed++;
            }

            Console.WriteLine($"{(ok ? "PASS" : "FAIL")} {name,-58} err {error:E2} (tol {tolerance:E0}){extra}");
        }

        public void RunAll()
        {
            Guard("layer_norm", () => { LayerNorm(1000, 64); LayerNorm(333, 257); LayerNorm(17, 1024); LayerNorm(500, 512); LayerNorm(64, 384); });
            Guard("bias_gelu", () => { BiasGelu(100_003, 256, withBias: true); BiasGelu(4096, 64, withBias: false); });
            Guard("bias_add/add", () => { BiasAdd(50_000, 100); Add(77_777); });
            Guard("convert", () => { Convert(123_457); Convert(123_456); });
            Guard("matmul", () =>
            {
                MatMul(300, 200, 64, transposeB: true, CudaElementType.Float32, 1);
                MatMul(128, 96, 200, transposeB: false, CudaElementType.Float32, 1);
                MatMul(256, 256, 256, transposeB: true, CudaElementType.BFloat16, 4);
            });
            foreach (var kernel in AttentionBenchmarks.Kernels)
            {
                Guard($"attention [{kernel}]", () =>
                {
                    Attention($"[{kernel}] dense B2 H4 T300 d64 lens{{300,177}}", 2, 4, 300, 64, null, [300, 177], kernel: kernel);
                    Attention($"[{kernel}] window s0.5 bs128 B2 H3 T1000 d64", 2, 3, 1000, 64, CsrBlockLayout.Window(2, 3, 1000, 128, 0.5), null, kernel: kernel);
                    Attention($"[{kernel}] bigbird s0.75 bs64 B1 H2 T1024 d32", 1, 2, 1024, 32, CsrBlockLayout.BigBird(1, 2, 1024, 64, 0.75, 1, 7, 0), null, kernel: kernel);
                    Attention($"[{kernel}] dense B1 H1 T50 d64 (one key tile)", 1, 1, 50, 64, null, null, kernel: kernel);
                    Attention($"[{kernel}] window s0.5 bs64 B1 H2 T200 d64", 1, 2, 200, 64, CsrBlockLayout.Window(1, 2, 200, 64, 0.5), null, kernel: kernel);
                    Attention($"[{kernel}] bigbird s0.75 bs128 B2 H2 T2048 d64 lens{{2048,1500}} (split rows)", 2, 2, 2048, 64,
                        CsrBlockLayout.BigBird(2, 2, 2048, 128, 0.75, 1, 11, 0), [2048, 1500], kernel: kernel);
                    Attention($"[{kernel}] dense B1 H2 T257 d64 fp16", 1, 2, 257, 64, null, null, CudaElementType.Float16, kernel: kernel);
                });
            }

            Guard("attention", () =>
            {
                Attention("dense B2 H4 T300 d64 lens{300,177}", 2, 4, 300, 64, null, [300, 177]);
                Attention("dense B1 H2 T256 d16", 1, 2, 256, 16, null, null);
                Attention("dense B1 H2 T320 d32", 1, 2, 320, 32, null, null);
                Attention("dense B2 H2 T200 d128", 2, 2, 200, 128, null, null);
                Attention("dense B1 H2 T257 d64 fp16", 1, 2, 257, 64, null, null, CudaElementType.Float16);
                Attention("window s0.5 bs128 B2 H3 T1000 d64", 2, 3, 1000, 64, CsrBlockLayout.Window(2, 3, 1000, 128, 0.5), null);
                Attention("bigbird s0.75 bs64 B1 H2 T1024 d64", 1, 2, 1024, 64, CsrBlockLayout.BigBird(1, 2, 1024, 64, 0.75, 1, 7, 0), null);
                Attention("window s0.75 bs64 B2 H2 T700 d32 lens{700,450}", 2, 2, 700, 32, CsrBlockLayout.Window(2, 2, 700, 64, 0.75), [700, 450]);
                var r = new Random(rng.Next());
                var random = CsrBlockLayout.FromPredicate(2, 4, 8, 8, 128, (_, _, qb, kb) => kb == qb || r.NextDouble() < 0.3);
                Attention("random per-head bs128 B2 H4 T1024 d64", 2, 4, 1024, 64, random, null);
            });
            Guard("block-topk", () =>
            {
                BlockTopK(2, 4, 1000, 64, 128, 0.75);
                BlockTopK(1, 8, 4096, 64, 128, 0.9);
                BlockTopK(1, 2, 1024, 32, 64, 0.5);
            });
        }

        private void Guard(string name, Action check)
        {
            try
            {
                check();
            }
            catch (Exception ex) when (ex is CudaException or NotSupportedException or ArgumentException)
            {
                Failed++;
                Console.WriteLine($"FAIL {name}: {ex.GetType().Name}: {ex.Message}");
            }
        }

        private float[] RandomFloats(long n, float scale)
        {
            var x = new float[n];
            for (long i = 0; i < n; i++)
            {
                x[i] = ((rng.NextSingle() * 2) - 1) * scale;
            }

            return x;
        }

        private CudaBuffer UploadFloats(float[] x, MemoryCategory category = MemoryCategory.Activations)
        {
            var buf = gpu.Allocate(x.Length * 4L, category);
            gpu.Upload<float>(x, buf);
            return buf;
        }

        private float[] DownloadFloats(CudaBuffer buf, long n)
        {
            var x = new float[n];
            gpu.Download<float>(buf, x);
            return x;
        }

        private void LayerNorm(int rows, int cols)
        {
            var x = RandomFloats((long)rows * cols, 3);
            for (var i = 0; i < x.Length; i++)
            {
                x[i] += 5; // an offset that a one-pass variance would lose precision on
            }

            var gamma = RandomFloats(cols, 1);
            var beta = RandomFloats(cols, 1);
            using var dx = UploadFloats(x);
            using var dg = UploadFloats(gamma, MemoryCategory.Weights);
            using var db = UploadFloats(beta, MemoryCategory.Weights);
            using var dy = gpu.Allocate(x.Length * 4L);
            gpu.Fill32(dy, PoisonF32);
            gpu.Elementwise.LayerNorm(dx, dg, db, dy, rows, cols, 1e-5f);
            var y = DownloadFloats(dy, x.Length);
            Report($"layer_norm {rows}x{cols}", Compare.RelativeError(y, CpuReference.LayerNorm(x, gamma, beta, rows, cols, 1e-5f)), 1e-5);
        }

        private void BiasGelu(int n, int cols, bool withBias)
        {
            var x = RandomFloats(n, 4);
            var bias = withBias ? RandomFloats(cols, 1) : null;
            using var dx = UploadFloats(x);
            using var db = bias is null ? null : UploadFloats(bias, MemoryCategory.Weights);
            using var dy = gpu.Allocate(n * 4L);
            gpu.Fill32(dy, PoisonF32);
            gpu.Elementwise.BiasGelu(dx, db, dy, n, cols);
            Report($"bias_gelu n{n} cols{cols} bias={withBias}", Compare.RelativeError(DownloadFloats(dy, n), CpuReference.BiasGelu(x, bias, cols)), 1e-5);
        }

        private void BiasAdd(int n, int cols)
        {
            var x = RandomFloats(n, 4);
            var bias = RandomFloats(cols, 1);
            using var dx = UploadFloats(x);
            using var db = UploadFloats(bias, MemoryCategory.Weights);
            using var dy = gpu.Allocate(n * 4L);
            gpu.Fill32(dy, PoisonF32);
            gpu.Elementwise.BiasAdd(dx, db, dy, n, cols);
            var want = new float[n];
            for (var i = 0; i < n; i++)
            {
                want[i] = x[i] + bias[i % cols];
            }

            Report($"bias_add n{n} cols{cols}", Compare.RelativeError(DownloadFloats(dy, n), want), 1e-6);
        }

        private void Add(int n)
        {
            var a = RandomFloats(n, 4);
            var b = RandomFloats(n, 4);
            using var da = UploadFloats(a);
            using var db = UploadFloats(b);
            using var dy = gpu.Allocate(n * 4L);
            gpu.Fill32(dy, PoisonF32);
            gpu.Elementwise.Add(da, db, dy, n);
            var want = new float[n];
            for (var i = 0; i < n; i++)
            {
                want[i] = a[i] + b[i];
            }

            Report($"add n{n}", Compare.RelativeError(DownloadFloats(dy, n), want), 1e-6);
        }

        private void Convert(int n)
        {
            var x = RandomFloats(n, 100);
            using var dx = UploadFloats(x);
            using var dh = gpu.Allocate(((n + 1) / 2 * 2) * 2L);
            using var dy = gpu.Allocate(n * 4L);
            gpu.Fill32(dh, PoisonBf16Pair);
            gpu.Fill32(dy, PoisonF32);
            gpu.Elementwise.ConvertToBFloat16(dx, dh, n);
            gpu.Elementwise.ConvertToFloat32(dh, dy, n);
            var bits = new ushort[n];
            gpu.Download<ushort>(dh, bits);
            var mismatches = 0;
            for (var i = 0; i < n; i++)
            {
                mismatches += bits[i] == Bf16.FromFloat(x[i]) ? 0 : 1;
            }

            Report($"f32->bf16->f32 n{n} ({mismatches} rounding mismatches)", mismatches > 0 ? 1 : Compare.RelativeError(DownloadFloats(dy, n), Bf16.ToFloats(bits)), 0);
        }

        private void MatMul(int m, int n, int k, bool transposeB, CudaElementType type, int batch)
        {
            var a = RandomFloats((long)batch * m * k, 1);
            var b = RandomFloats((long)batch * k * n, 1);
            if (type == CudaElementType.BFloat16)
            {
                a = Bf16.ToFloats(Bf16.FromFloats(a));
                b = Bf16.ToFloats(Bf16.FromFloats(b));
            }

            var want = CpuReference.MatMul(a, b, m, n, k, transposeB, batch);
            var size = type.Size();
            using var da = gpu.Allocate(a.Length * (long)size);
            using var db = gpu.Allocate(b.Length * (long)size, MemoryCategory.Weights);
            using var dc = gpu.Allocate(want.Length * (long)size);
            float[] got;
            if (type == CudaElementType.Float32)
            {
                gpu.Upload<float>(a, da);
                gpu.Upload<float>(b, db);
                gpu.Fill32(dc, PoisonF32);
                gpu.Gemm.MatMulStridedBatched(da, db, dc, m, n, k, transposeB, batch, (long)m * k, (long)k * n, (long)m * n, type);
                got = DownloadFloats(dc, want.Length);
            }
            else
            {
                gpu.Upload<ushort>(Bf16.FromFloats(a), da);
                gpu.Upload<ushort>(Bf16.FromFloats(b), db);
                gpu.Fill32(dc, PoisonBf16Pair);
                gpu.Gemm.MatMulStridedBatched(da, db, dc, m, n, k, transposeB, batch, (long)m * k, (long)k * n, (long)m * n, type);
                var bits = new ushort[want.Length];
                gpu.Download<ushort>(dc, bits);
                got = Bf16.ToFloats(bits);
            }

            Report($"matmul {type} {batch}x[{m}x{k}]·[{k}x{n}]{(transposeB ? "ᵀ" : "")}", Compare.RelativeError(got, want), type == CudaElementType.Float32 ? 1e-5 : 1e-2);
        }

        /// <summary>
        /// Checks attention on contiguous [B,H,T,d] inputs. With <paramref name="sampleRows"/> only that
        /// many query rows per (b, h) are compared with the reference, but every output element must
        /// have been written (no NaN left from the poison). A second run must match bit for bit.
        /// </summary>
        public void Attention(string name, int batch, int heads, int seqLen, int d, CsrBlockLayout? layout, int[]? seqLens,
            CudaElementType type = CudaElementType.BFloat16, int sampleRows = 0, AttentionKernel kernel = AttentionKernel.Auto)
        {
            var geometry = AttentionGeometry.Contiguous(batch, heads, seqLen, d);
            var n = geometry.Elements;
            var (qBits, q) = RandomHalfs(n, 1.5f, type);
            var (kBits, k) = RandomHalfs(n, 1.5f, type);
            var (vBits, v) = RandomHalfs(n, 1f, type);
            using var dq = gpu.Allocate(n * 2);
            using var dk = gpu.Allocate(n * 2);
            using var dv = gpu.Allocate(n * 2);
            using var dout = gpu.Allocate(n * 2);
            gpu.Upload<ushort>(qBits, dq);
            gpu.Upload<ushort>(kBits, dk);
            gpu.Upload<ushort>(vBits, dv);
            using var dl = layout is null ? null : gpu.Attention.Upload(layout);
            using var dlens = seqLens is null ? null : gpu.Allocate(seqLens.Length * 4L, MemoryCategory.Workspace);
            if (dlens is not null)
            {
                gpu.Upload<int>(seqLens, dlens);
            }

            var first = new ushort[n];
            var second = new ushort[n];
            gpu.Fill32(dout, PoisonBf16Pair);
            gpu.Attention.Run(dq, dk, dv, dout, geometry, dl, dlens, type, kernel);
            gpu.Download<ushort>(dout, first);
            gpu.Fill32(dout, PoisonBf16Pair);
            gpu.Attention.Run(dq, dk, dv, dout, geometry, dl, dlens, type, kernel);
            gpu.Download<ushort>(dout, second);

            var got = ToFloats(first, type);
            var sample = new Random(rng.Next());
            int[] RowsFor(int b, int h) => sampleRows <= 0
                ? Enumerable.Range(0, seqLen).ToArray()
                : [0, seqLen - 1, .. Enumerable.Range(0, sampleRows).Select(_ => sample.Next(seqLen))];
            var rows = Enumerable.Range(0, batch * heads).Select(bh => RowsFor(bh / heads, bh % heads)).ToArray();
            var want = CpuReference.Attention(q, k, v, batch, heads, seqLen, d, layout, seqLens, (b, h) => rows[(b * heads) + h]);
            var indices = rows.SelectMany((r, bh) => r.Distinct().SelectMany(t => Enumerable.Range(0, d).Select(c => ((((long)bh * seqLen) + t) * d) + c)));
            var err = Compare.RelativeError(got, want, sampleRows > 0 ? indices.ToList() : null);
            var nan = Compare.CountNaN(got);
            var deterministic = first.AsSpan().SequenceEqual(second);
            if (nan > 0 || !deterministic)
            {
                err = double.NaN;
            }

            var density = layout?.Density(seqLen) ?? 1.0;
            Report($"attention {name}", err, 1e-2, $" density {density:F3}{(nan > 0 ? $" {nan} unwritten" : "")}{(deterministic ? "" : " NOT DETERMINISTIC")}");
        }

        /// <summary>
        /// GPU block-topk selection against the double-precision reference: the same block set per row,
        /// up to near-ties (a swapped pair whose reference scores differ by less than 1e-4 counts as a tie).
        /// </summary>
        public void BlockTopK(int batch, int heads, int seqLen, int d, int blockSize, double sparsity)
        {
            var geometry = AttentionGeometry.Contiguous(batch, heads, seqLen, d);
            var n = geometry.Elements;
            var (qBits, q) = Bf16.Random(rng, n, 1.5f);
            var (kBits, k) = Bf16.Random(rng, n, 1.5f);
            using var dq = gpu.Allocate(n * 2);
            using var dk = gpu.Allocate(n * 2);
            gpu.Upload<ushort>(qBits, dq);
            gpu.Upload<ushort>(kBits, dk);
            var layout = gpu.Selection.SelectBlockTopK(dq, dk, geometry, blockSize, sparsity);
            var scores = CpuReference.PooledScores(q, k, batch, heads, seqLen, d, blockSize);
            var nb = layout.NumQueryBlocks;
            var budget = CsrBlockLayout.Budget(sparsity, nb);
            int mismatches = 0, ties = 0;
            for (var b = 0; b < batch; b++)
            {
                for (var h = 0; h < heads; h++)
                {
                    var s = scores[(b * heads) + h];
                    for (var qb = 0; qb < nb; qb++)
                    {
                        var want = Enumerable.Range(0, nb).Where(kb => kb != qb)
                            .OrderByDescending(kb => s[(qb * nb) + kb]).ThenBy(kb => kb).Take(budget - 1).Append(qb).Order().ToArray();
                        var got = layout.KeyBlocks(b, h, qb).ToArray();
                        if (got.SequenceEqual(want))
                        {
                            continue;
                        }

                        // Near-ties: the lowest wanted score and the highest unwanted one GPU picked.
                        var extra = got.Except(want).Select(kb => s[(qb * nb) + kb]).DefaultIfEmpty(double.NegativeInfinity).Max();
                        var missing = want.Except(got).Select(kb => s[(qb * nb) + kb]).DefaultIfEmpty(double.PositiveInfinity).Min();
                        if (got.Length == want.Length && got.Contains(qb) && Math.Abs(extra - missing) < 1e-4)
                        {
                            ties++;
                        }
                        else
                        {
                            mismatches++;
                        }
                    }
                }
            }

            Report($"block-topk selection s{sparsity} bs{blockSize} B{batch} H{heads} T{seqLen} d{d} ({ties} near-ties)", mismatches, 0, $" rows {batch * heads * nb}, K {budget}");
        }

        private (ushort[] Bits, float[] Values) RandomHalfs(long n, float scale, CudaElementType type)
        {
            if (type == CudaElementType.BFloat16)
            {
                return Bf16.Random(rng, n, scale);
            }

            var bits = new ushort[n];
            var values = new float[n];
            for (long i = 0; i < n; i++)
            {
                var h = (Half)(((rng.NextSingle() * 2) - 1) * scale);
                bits[i] = BitConverter.HalfToUInt16Bits(h);
                values[i] = (float)h;
            }

            return (bits, values);
        }

        public static float[] ToFloats(ushort[] bits, CudaElementType type)
        {
            if (type == CudaElementType.BFloat16)
            {
                return Bf16.ToFloats(bits);
            }

            var r = new float[bits.Length];
            for (var i = 0; i < bits.Length; i++)
            {
                r[i] = (float)BitConverter.UInt16BitsToHalf(bits[i]);
            }

            return r;
        }
    }

    /// <summary>Times dense and block-sparse attention; writes results and layouts for the peer.</summary>
    internal sealed class AttentionBenchmarks(CudaDevice gpu, string outDir, int iterations, SelfChecks checks)
    {
        private const int Heads = 8;
        private const int HeadDim = 64;
        private const int Block = 128;
        private readonly List<string> results = [];

        /// <summary>
        /// The two attention kernels timed side by side (docs/cuda-notes.md): v5, the mma.sync kernel of any GPU of compute
        /// capability 8.0 or newer, and the Hopper kernel (w8 for block-sparse calls, the warp-specialised w11 for dense
        /// ones), which on other devices falls back to v5. The default is timed last, on its own.
        /// </summary>
        public static AttentionKernel[] Kernels { get; } = [AttentionKernel.MmaSync, AttentionKernel.Wgmma];

        public void RunAll()
        {
            Ceilings();
            foreach (var kernel in Kernels)
            {
                var (regs, local) = gpu.Attention.Resources(HeadDim, Block, kernel);
                Console.WriteLine($"registers [{kernel}]: {regs} per thread, {local} bytes local memory (spills/stack) (head dim {HeadDim}, query tile {Block})");
            }

            foreach (var (batch, t) in new[] { (8, 4096), (1, 16384) })
            {
                Run($"dense_b{batch}_t{t}", "dense", 0, batch, t, null);
                foreach (var s in new[] { 0.5, 0.75, 0.9 })
                {
                    Run($"window{(int)(s * 100)}_b{batch}_t{t}", "window", s, batch, t, CsrBlockLayout.Window(batch, Heads, t, Block, s));
                }

                Run($"bigbird90_b{batch}_t{t}", "bigbird", 0.9, batch, t, CsrBlockLayout.BigBird(batch, Heads, t, Block, 0.9, 1, 1234, 0));
                Run($"blocktopk90_b{batch}_t{t}", "block-topk", 0.9, batch, t, SelectOnBenchmarkData(batch, t, 0.9));
            }

            var json = new StringBuilder("[\n").AppendJoin(",\n", results).Append("\n]\n").ToString();
            File.WriteAllText(Path.Combine(outDir, "ours.json"), json);
            Console.WriteLine($"wrote {Path.Combine(outDir, "ours.json")}");
        }

        /// <summary>
        /// A block-topk layout selected on the GPU from the q and k that <see cref="Run"/> draws (same seed);
        /// prints how long the selection takes (pooling, scores, top-k and the copy of the picks to the host).
        /// </summary>
        private CsrBlockLayout SelectOnBenchmarkData(int batch, int seqLen, double sparsity)
        {
            var geometry = AttentionGeometry.Contiguous(batch, Heads, seqLen, HeadDim);
            var n = geometry.Elements;
            var rng = new Random(42);
            using var q = gpu.Allocate(n * 2);
            using var k = gpu.Allocate(n * 2);
            gpu.Upload<ushort>(Bf16.Random(rng, n, 1.5f).Bits, q);
            gpu.Upload<ushort>(Bf16.Random(rng, n, 1.5f).Bits, k);
            var layout = gpu.Selection.SelectBlockTopK(q, k, geometry, Block, sparsity);
            var times = new double[10];
            for (var i = 0; i < times.Length; i++)
            {
                var sw = Stopwatch.StartNew();
                gpu.Selection.SelectBlockTopK(q, k, geometry, Block, sparsity);
                times[i] = sw.Elapsed.TotalMilliseconds;
            }

            Array.Sort(times);
            Console.WriteLine(FormattableString.Invariant($"block-topk selection B{batch} T{seqLen} s{sparsity}: median {times[5]:F3} ms wall (GPU pooling + scores + top-k, picks copied to host, CSR built)"));
            return layout;
        }

        /// <summary>The two device ceilings of the notes: a device-to-device copy and a large BF16 cuBLAS product.</summary>
        private void Ceilings()
        {
            const long copyBytes = 1L << 30;
            using var a = gpu.Allocate(copyBytes);
            using var b = gpu.Allocate(copyBytes);
            gpu.Fill32(a, 0x3F803F80);
            var copyMs = Median(() => gpu.Copy(a, b, copyBytes), 10);
            const int n = 8192;
            using var ma = gpu.Allocate((long)n * n * 2);
            using var mb = gpu.Allocate((long)n * n * 2);
            using var mc = gpu.Allocate((long)n * n * 2);
            var rnd = Bf16.Random(new Random(1), (long)n * n, 1).Bits;
            gpu.Upload<ushort>(rnd, ma);
            gpu.Upload<ushort>(rnd, mb);
            var gemmMs = Median(() => gpu.Gemm.MatMul(ma, mb, mc, n, n, n, transposeB: true, CudaElementType.BFloat16), 10);
            Console.WriteLine($"ceilings: d2d copy {2.0 * copyBytes / (copyMs * 1e-3) / 1e12:F2} TB/s (read+write), bf16 cuBLAS {2.0 * n * n * n / (gemmMs * 1e-3) / 1e12:F0} TFLOP/s");
            results.Add(FormattableString.Invariant($"  {{\"name\":\"ceiling_copy\",\"kind\":\"ceiling\",\"ms\":{copyMs:F4},\"tbps\":{2.0 * copyBytes / (copyMs * 1e-3) / 1e12:F3}}}"));
            results.Add(FormattableString.Invariant($"  {{\"name\":\"ceiling_gemm\",\"kind\":\"ceiling\",\"ms\":{gemmMs:F4},\"tflops\":{2.0 * n * n * n / (gemmMs * 1e-3) / 1e12:F1}}}"));
        }

        private float Median(Action work, int count)
        {
            for (var i = 0; i < 3; i++)
            {
                work();
            }

            gpu.Synchronize();
            var times = new float[count];
            for (var i = 0; i < count; i++)
            {
                times[i] = gpu.TimeMilliseconds(work);
            }

            Array.Sort(times);
            return times[count / 2];
        }

        private void Run(string name, string pattern, double sparsity, int batch, int seqLen, CsrBlockLayout? layout)
        {
            // Correctness at the benchmark's own size first, on sampled query rows.
            checks.Attention($"{name} (sampled rows)", batch, Heads, seqLen, HeadDim, layout, null, CudaElementType.BFloat16, sampleRows: 6);

            var geometry = AttentionGeometry.Contiguous(batch, Heads, seqLen, HeadDim);
            var n = geometry.Elements;
            var rng = new Random(42);
            using var q = gpu.Allocate(n * 2);
            using var k = gpu.Allocate(n * 2);
            using var v = gpu.Allocate(n * 2);
            using var o = gpu.Allocate(n * 2);
            gpu.Upload<ushort>(Bf16.Random(rng, n, 1.5f).Bits, q);
            gpu.Upload<ushort>(Bf16.Random(rng, n, 1.5f).Bits, k);
            gpu.Upload<ushort>(Bf16.Random(rng, n, 1f).Bits, v);
            using var dl = layout is null ? null : gpu.Attention.Upload(layout);
            for (var i = 0; i < 10; i++)
            {
                gpu.Attention.Run(q, k, v, o, geometry, dl);
            }

            gpu.Synchronize();
            var density = layout?.Density(seqLen) ?? 1.0;
            var flops = 4.0 * batch * Heads * (double)seqLen * seqLen * HeadDim * density;
            var variantTimes = new StringBuilder();
            foreach (var kernel in Kernels)
            {
                for (var i = 0; i < 5; i++)
                {
                    gpu.Attention.Run(q, k, v, o, geometry, dl, kernel: kernel);
                }

                var vt = new float[iterations];
                for (var i = 0; i < iterations; i++)
                {
                    vt[i] = gpu.TimeMilliseconds(() => gpu.Attention.Run(q, k, v, o, geometry, dl, kernel: kernel));
                }

                Array.Sort(vt);
                variantTimes.Append(FormattableString.Invariant($"  [{kernel}] {vt[iterations / 2]:F4} ms {flops / (vt[iterations / 2] * 1e-3) / 1e12:F0} TF/s;"));
            }

            Console.WriteLine($"variants {name,-22}{variantTimes}");

            // The default kernel, timed last: the figure the peer is compared with.
            var times = new float[iterations];
            for (var i = 0; i < iterations; i++)
            {
                times[i] = gpu.TimeMilliseconds(() => gpu.Attention.Run(q, k, v, o, geometry, dl));
            }

            Array.Sort(times);
            var median = times[iterations / 2];
            var layoutFile = "";
            if (layout is not null)
            {
                layoutFile = $"layout_{name}.json";
                File.WriteAllText(Path.Combine(outDir, layoutFile), layout.ToJson());
            }

            Console.WriteLine(FormattableString.Invariant($"bench {name,-22} [{gpu.Attention.Default}] density {density:F3}  median {median:F4} ms  min {times[0]:F4} ms  {flops / (median * 1e-3) / 1e12:F0} TFLOP/s"));
            results.Add(FormattableString.Invariant(
                $"  {{\"name\":\"{name}\",\"kind\":\"{(layout is null ? "dense" : "sparse")}\",\"pattern\":\"{pattern}\",\"sparsity\":{sparsity},\"density\":{density:F5},\"batch\":{batch},\"heads\":{Heads},\"seq_len\":{seqLen},\"head_dim\":{HeadDim},\"block_size\":{Block},\"ms\":{median:F5},\"ms_min\":{times[0]:F5},\"tflops\":{flops / (median * 1e-3) / 1e12:F1},\"layout\":\"{layoutFile}\"}}"));
        }
    }
}
