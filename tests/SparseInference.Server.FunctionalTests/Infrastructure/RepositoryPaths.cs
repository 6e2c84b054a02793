namespace SparseInference.Server.FunctionalTests.Infrastructure;

internal static class RepositoryPaths
{
    /// <summary>The repository root: the first ancestor of the test binaries holding SparseInference.sln.</summary>
    public static string Root { get; } = FindRoot();

    public static string Protos => Path.Combine(Root, "protos");

    public static string PythonPeer => Path.Combine(Root, "tests", "peers", "grpc_client.py");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SparseInference.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no SparseInference.sln above '{AppContext.BaseDirectory}'.");
    }
}
