using System.Globalization;
using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Benchmarks.Tensors;

/// <summary>
/// `attention` mode: the CPU backend's flash-style attention, dense and with block-sparse window layouts and
/// token-level top-k, against PyTorch dense softmax attention (benchmarks/peers/torch_attention.py) on the same
/// [B, H, T, d] shapes and thread count, in the same run. Options: --threads N (2), --min-seconds S (1.0),
/// --seq 256,1024,2048, --batch 4, --heads 4, --head-dim 16, --block 16.
/// </summary>
internal static class AttentionComparison
{
    public static int Run(string[] args)
    {
        int threads = 2, batch = 4, heads = 4, headDim = 16, block = 16;
        var minSeconds = 1.0;
        int[] seqs = [256, 1024, 2048];
        for (var i = 0; i < args.Length; i++)
        {
            var v = i + 1 < args.Length ? args[i + 1] : "";
            switch (args[i])
            {
                case "--threads": threads = Int(v); i++; break;
                case "--min-seconds": minSeconds = double.Parse(v, CultureInfo.InvariantCulture); i++; break;
                case "--seq": seqs = v.Split(',').Select(Int).ToArray(); i++; break;
                case "--batch": batch = Int(v); i++; break;
                case "--heads": heads = Int(v); i++; break;
                case "--head-dim": headDim = Int(v); i++; break;
                case "--block": block = Int(v); i++; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }

        Console.WriteLine(PeerRunner.MachineLine());
        Console.WriteLine($"threads: {threads}, B={batch} H={heads} d_head={headDim} block={block}, min time per case: {minSeconds}s, load average at start: {PeerRunner.LoadAverage():F2}");
        using var backend = new CpuBackend(threads);
        var rows = new List<string[]>();
        foreach (var t in seqs)
        {
            var spec = $"{batch}:{heads}:{t}:{headDim}";
            var peer = PeerRunner.Run("torch_attention.py",
                ["--threads", threads.ToString(CultureInfo.InvariantCulture), "--min-seconds", minSeconds.ToString(CultureInfo.InvariantCulture), spec])[1];
            var torchMs = peer.GetProperty("median_ms").GetDouble();

            var rng = new Random(0);
            float[] Rand(int n) => Enumerable.Range(0, n).Select(_ => rng.NextSingle() * 2 - 1).ToArray();
            var count = batch * heads * t * headDim;
            using var q = backend.FromHost(Rand(count), batch, heads, t, headDim);
            using var k = backend.FromHost(Rand(count), batch, heads, t, headDim);
            using var v = backend.FromHost(Rand(count), batch, heads, t, headDim);
            using var o = backend.Allocate(batch, heads, t, headDim);
            var inputs = AttentionInputs.Separate(q, k, v, heads);

            void Row(string name, Func<AttentionResult> run)
            {
                var result = run();
                var (median, _, _) = Timing.Measure(() => run(), minSeconds, 5);
                var ms = median * 1e3;
                rows.Add([
                    $"T={t}", name, result.Density.ToString("F3", CultureInfo.InvariantCulture), ms.ToString("F2", CultureInfo.InvariantCulture),
                    torchMs.ToString("F2", CultureInfo.InvariantCulture), (torchMs / ms).ToString("F2", CultureInfo.InvariantCulture),
                    (4.0 * result.ComputedPairs * headDim / median / 1e9).ToString("F1", CultureInfo.InvariantCulture)]);
                Console.Error.WriteLine($"  T={t} {name}: {ms:F2} ms (torch dense {torchMs:F2} ms)");
            }

            Row("dense (flash)", () => backend.Attention(inputs, o, [], null));
            foreach (var sparsity in new[] { 0.75, 0.9 })
            {
                var layout = WindowLayout(batch, heads, t, block, sparsity);
                Row($"window s={sparsity}", () => backend.Attention(inputs, o, [], layout));
            }
            var keep = Enumerable.Repeat(Math.Max(1, (int)Math.Floor(0.1 * t + 0.5)), batch).ToArray();
            Row("topk s=0.9", () => backend.TopKAttention(inputs, o, [], keep));
        }
        Console.WriteLine();
        Console.WriteLine("| T | ours | density | ours ms | torch dense ms | speed-up vs torch dense | ours GFLOP/s (computed pairs) |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|");
        foreach (var r in rows) Console.WriteLine("| " + string.Join(" | ", r) + " |");
        Console.WriteLine($"load average at end: {PeerRunner.LoadAverage():F2}");
        return 0;
    }

    private static int Int(string s) => int.Parse(s, CultureInfo.InvariantCulture);

    /// <summary>The model format's window pattern: |kb − qb| ≤ r with r = (K − 1) div 2, K = round((1 − s)·n).</summary>
    private static BlockLayout WindowLayout(int batch, int heads, int t, int block, double sparsity)
    {
        var n = BlockLayout.BlocksFor(t, block);
        var budget = Math.Clamp((int)Math.Floor((1 - sparsity) * n + 0.5), 1, n);
        var r = (budget - 1) / 2;
        var builder = new BlockLayout.Builder(block, batch, heads, n, sharedAcrossHeads: true);
        for (var b = 0; b < batch; b++)
        {
            for (var qb = 0; qb < n; qb++)
            {
                var lo = Math.Max(0, qb - r);
                var hi = Math.Min(n - 1, qb + r);
                builder.AddRow(Enumerable.Range(lo, hi - lo + 1).ToArray());
            }
        }
        return builder.Build();
    }
}
