namespace SparseInference.Deploy.Tests.Infrastructure;

/// <summary>Paths inside the repository, found from the test's output directory upwards.</summary>
public static class RepositoryLayout
{
    private static readonly Lazy<string> RootLazy = new(FindRoot);

    public static string Root => RootLazy.Value;

    public static string PathOf(params string[] relative) => Path.Combine([Root, .. relative]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SparseInference.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException(
            $"repository root: expected a directory holding SparseInference.sln above {AppContext.BaseDirectory}, actual none");
    }
}
