using BenchmarkDotNet.Running;
using SparseInference.Benchmarks.Models;
using SparseInference.Benchmarks.Tensors;

// Peer comparisons run by name (`-- matmul`, `-- forward`); anything else goes to BenchmarkDotNet (`-- --filter *`).
var comparisons = new Dictionary<string, Func<string[], int>>(StringComparer.OrdinalIgnoreCase)
{
    ["matmul"] = MatMulComparison.Run,
    ["attention"] = AttentionComparison.Run,
    ["forward"] = ForwardBenchmark.Run,
    ["threading"] = ThreadingComparison.Run,
    ["windows"] = WindowsBenchmark.Run,
};
if (args.Length > 0 && comparisons.TryGetValue(args[0], out var comparison))
{
    return comparison(args[1..]);
}
BenchmarkSwitcher.FromAssembly(typeof(MatMulComparison).Assembly).Run(args);
return 0;
