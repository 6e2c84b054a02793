namespace SparseInference.Models.Tests.Infrastructure;

/// <summary>Locates files of the repository from the test's output folder.</summary>
internal static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    public static string GoldenFixtures => Path.Combine(Root, "tests", "fixtures", "golden");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SparseInference.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"SparseInference.sln not found above {AppContext.BaseDirectory}.");
    }
}
