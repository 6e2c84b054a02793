namespace SparseInference.Benchmarks.Tensors;

internal static class AttentionComparison
{
    public static int Run(string[] args) => 0;
}
