using System.Globalization;
using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Benchmarks.Tensors;

/// <summary>
/// `threading` mode: per-call latency of small ops (the sizes of a small encoder's forward) with the CPU backend
/// on one thread, on Parallel.For and on its persistent worker pool, measured in the same run.
/// Options: --threads N (2), --min-seconds S (0.5).
/// </summary>
internal static class ThreadingComparison
{
    public static int Run(string[] args)
    {
        var threads = 2;
        var minSeconds = 0.5;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--threads": threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--min-seconds": minSeconds = double.Parse(args[++i], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        Console.WriteLine(PeerRunner.MachineLine());
        Console.WriteLine($"threads: {threads}, load average at start: {PeerRunner.LoadAverage():F2}");
        using var serial = new CpuBackend(1);
        using var parallelFor = new CpuBackend(threads, CpuThreading.ParallelFor);
        using var pool = new CpuBackend(threads, CpuThreading.WorkerPool);
        CpuBackend[] backends = [serial, parallelFor, pool];
        var cases = new (string Name, Func<CpuBackend, Action> Setup)[]
        {
            ("add 256x64", be => Elementwise(be, 256, 64, (b, x, y) => b.Add(x, y, y))),
            ("gelu 256x256", be => Elementwise(be, 256, 256, (b, x, y) => b.Gelu(x, y))),
            ("layernorm 256x64", be => LayerNorm(be, 256, 64)),
            ("linear 256x64 -> 192", be => Linear(be, 256, 64, 192)),
            ("linear 1024x64 -> 256", be => Linear(be, 1024, 64, 256)),
            ("attention B1 H4 T128 d16", be => Attention(be, 1, 4, 128, 16)),
            ("attention B4 H4 T256 d16", be => Attention(be, 4, 4, 256, 16)),
        };
        Console.WriteLine();
        Console.WriteLine("| op | 1 thread µs | Parallel.For µs | worker pool µs | pool / Parallel.For |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var (name, setup) in cases)
        {
            var us = backends.Select(be =>
            {
                var action = setup(be);
                return Timing.Measure(action, minSeconds, 20).MedianSeconds * 1e6;
            }).ToArray();
            Console.WriteLine($"| {name} | {us[0]:F1} | {us[1]:F1} | {us[2]:F1} | {us[2] / us[1]:F2} |");
        }
        Console.WriteLine($"load average at end: {PeerRunner.LoadAverage():F2}");
        return 0;
    }

    private static float[] Rand(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.NextSingle() * 2 - 1).ToArray();
    }

    // The tensors live as long as the process: this mode runs once and exits.
    private static Action Elementwise(CpuBackend be, int rows, int cols, Action<CpuBackend, Tensor, Tensor> op)
    {
        var x = be.FromHost(Rand(rows * cols, 1), rows, cols);
        var y = be.FromHost(Rand(rows * cols, 2), rows, cols);
        return () => op(be, x, y);
    }

    private static Action LayerNorm(CpuBackend be, int rows, int cols)
    {
        var x = be.FromHost(Rand(rows * cols, 1), rows, cols);
        var g = be.FromHost(Rand(cols, 2), cols);
        var b = be.FromHost(Rand(cols, 3), cols);
        var y = be.Allocate(rows, cols);
        return () => be.LayerNorm(x, g, b, 1e-5f, y);
    }

    private static Action Linear(CpuBackend be, int rows, int inF, int outF)
    {
        var x = be.FromHost(Rand(rows * inF, 1), rows, inF);
        var w = be.FromHost(Rand(outF * inF, 2), outF, inF);
        var b = be.FromHost(Rand(outF, 3), outF);
        var y = be.Allocate(rows, outF);
        return () => be.Linear(x, w, b, y);
    }

    private static Action Attention(CpuBackend be, int batch, int heads, int t, int d)
    {
        var qkv = be.FromHost(Rand(batch * t * 3 * heads * d, 1), batch, t, 3 * heads * d);
        var o = be.Allocate(batch, t, heads * d);
        var layout = BlockLayout.Dense(batch, heads, t, 16);
        return () => be.AttentionPacked(qkv, o, heads, [], layout);
    }
}
