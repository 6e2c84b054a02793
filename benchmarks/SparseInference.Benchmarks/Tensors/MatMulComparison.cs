using System.Globalization;
using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Benchmarks.Tensors;

/// <summary>
/// `matmul` mode: GFLOP/s of the CPU backend's GEMM against PyTorch (torch.matmul / F.linear on its BLAS),
/// both with the same thread count, measured in the same run, case by case (ours, then the peer), so both see
/// the same machine load. Options: --threads N (2), --min-seconds S (1.0), --sizes 256,512,1024,2048, --no-linear.
/// </summary>
internal static class MatMulComparison
{
    public static int Run(string[] args)
    {
        var threads = 2;
        var minSeconds = 1.0;
        int[] sizes = [256, 512, 1024, 2048];
        var linear = true;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--threads": threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--min-seconds": minSeconds = double.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--sizes": sizes = args[++i].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(); break;
                case "--no-linear": linear = false; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }

        var cases = sizes.Select(s => new Case("gemm", s, s, s)).ToList();
        if (linear)
        {
            // Model-shaped Linear layers (x [B·T, in] · Wᵀ + b): qkv and feed-forward of small encoders.
            cases.Add(new Case("linear", 4096, 192, 64));
            cases.Add(new Case("linear", 4096, 256, 64));
            cases.Add(new Case("linear", 2048, 1024, 256));
        }

        Console.WriteLine(PeerRunner.MachineLine());
        Console.WriteLine($"threads: {threads}, min time per case: {minSeconds}s, load average at start: {PeerRunner.LoadAverage():F2}");
        using var backend = new CpuBackend(threads);
        var rows = new List<string[]>();
        string peerInfo = "";
        foreach (var c in cases)
        {
            var ours = MeasureOurs(backend, c, minSeconds);
            var peer = PeerRunner.Run("torch_matmul.py",
                ["--threads", threads.ToString(CultureInfo.InvariantCulture), "--min-seconds", minSeconds.ToString(CultureInfo.InvariantCulture), c.Spec]);
            peerInfo = peer[0].ToString();
            var p = peer[1];
            var peerMedian = p.GetProperty("median_gflops").GetDouble();
            var peerBest = p.GetProperty("best_gflops").GetDouble();
            rows.Add([
                c.Spec, F(ours.Median), F(ours.Best), F(peerMedian), F(peerBest), (ours.Median / peerMedian).ToString("F2", CultureInfo.InvariantCulture),
                PeerRunner.LoadAverage().ToString("F2", CultureInfo.InvariantCulture)]);
            Console.Error.WriteLine($"  {c.Spec}: ours {ours.Median:F1}, torch {peerMedian:F1} GFLOP/s");
        }
        Console.WriteLine($"peer: {peerInfo}");
        Console.WriteLine();
        Console.WriteLine("| case (M:N:K) | ours median GFLOP/s | ours best | torch median GFLOP/s | torch best | ratio (median) | load |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows) Console.WriteLine("| " + string.Join(" | ", r) + " |");
        return 0;
    }

    private static string F(double x) => x.ToString("F1", CultureInfo.InvariantCulture);

    private static (double Median, double Best) MeasureOurs(CpuBackend backend, Case c, double minSeconds)
    {
        var rng = new Random(0);
        float[] Rand(long n) => Enumerable.Range(0, (int)n).Select(_ => rng.NextSingle() * 2 - 1).ToArray();
        using var a = backend.FromHost(Rand((long)c.M * c.K), c.M, c.K);
        using var output = backend.Allocate(c.M, c.N);
        Action action;
        Tensor b, bias;
        if (c.Kind == "gemm")
        {
            b = backend.FromHost(Rand((long)c.K * c.N), c.K, c.N);
            bias = backend.Allocate(1);
            action = () => backend.MatMul(a, b, output, MatMulOptions.Default);
        }
        else
        {
            b = backend.FromHost(Rand((long)c.N * c.K), c.N, c.K);
            bias = backend.FromHost(Rand(c.N), c.N);
            action = () => backend.Linear(a, b, bias, output);
        }
        using (b)
        using (bias)
        {
            var (median, best, _) = Timing.Measure(action, minSeconds, 5);
            var flops = 2.0 * c.M * c.N * c.K;
            return (flops / median / 1e9, flops / best / 1e9);
        }
    }

    private sealed record Case(string Kind, int M, int N, int K)
    {
        public string Spec => $"{Kind}:{M}:{N}:{K}";
    }
}
