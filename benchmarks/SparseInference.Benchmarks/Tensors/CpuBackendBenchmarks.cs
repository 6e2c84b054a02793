using BenchmarkDotNet.Attributes;
using SparseInference.Tensors;
using SparseInference.Tensors.Cpu;

namespace SparseInference.Benchmarks.Tensors;

/// <summary>
/// BenchmarkDotNet microbenchmarks of the CPU backend's hot ops at the shapes of a small encoder
/// (`-- --filter *CpuBackendBenchmarks*`). The peer comparisons live in the `matmul` and `attention` modes.
/// </summary>
[MemoryDiagnoser]
public class CpuBackendBenchmarks
{
    private CpuBackend _backend = null!;
    private Tensor _x = null!, _w = null!, _bias = null!, _y = null!, _qkv = null!, _attended = null!;
    private BlockLayout _window = null!;

    /// <summary>Rows of the activations (batch × time).</summary>
    [Params(256, 2048)]
    public int Rows { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        const int d = 64, heads = 4, batch = 2;
        _backend = new CpuBackend(2);
        var rng = new Random(0);
        float[] Rand(int n) => Enumerable.Range(0, n).Select(_ => rng.NextSingle() * 2 - 1).ToArray();
        _x = _backend.FromHost(Rand(Rows * d), Rows, d);
        _w = _backend.FromHost(Rand(4 * d * d), 4 * d, d);
        _bias = _backend.FromHost(Rand(4 * d), 4 * d);
        _y = _backend.Allocate(Rows, 4 * d);
        var time = Rows / batch;
        _qkv = _backend.FromHost(Rand(Rows * 3 * d), batch, time, 3 * d);
        _attended = _backend.Allocate(batch, time, d);
        var n = BlockLayout.BlocksFor(time, 16);
        var builder = new BlockLayout.Builder(16, batch, heads, n, sharedAcrossHeads: true);
        for (var b = 0; b < batch; b++)
        {
            for (var qb = 0; qb < n; qb++) builder.AddRow(Enumerable.Range(Math.Max(0, qb - 2), Math.Min(n, qb + 3) - Math.Max(0, qb - 2)).ToArray());
        }
        _window = builder.Build();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _x, _w, _bias, _y, _qkv, _attended }) t.Dispose();
        _backend.Dispose();
    }

    [Benchmark(Description = "Linear d→4d + GELU")]
    public void LinearGelu() => _backend.Linear(_x, _w, _bias, _y, Activation.Gelu);

    [Benchmark(Description = "dense attention (packed qkv)")]
    public AttentionResult DenseAttention() => _backend.AttentionPacked(_qkv, _attended, 4, [], null);

    [Benchmark(Description = "window attention (5 blocks of 16)")]
    public AttentionResult WindowAttention() => _backend.AttentionPacked(_qkv, _attended, 4, [], _window);
}
