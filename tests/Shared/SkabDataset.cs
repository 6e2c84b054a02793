using Xunit;

namespace SparseInference.Testing;

/// <summary>
/// Locates the SKAB data (GPL-3.0, so it is not in the repository) for tests that replay it. Where the data is
/// promised (CI sets <c>CI=true</c>, or <c>SKAB_DIR</c> names a folder) a missing folder fails the test; elsewhere the
/// test is skipped with the instruction to get it.
/// </summary>
internal static class SkabDataset
{
    public const string DirectoryVariable = "SKAB_DIR";

    public const string HowToGet =
        "get it with `git clone https://github.com/waico/SKAB` and set SKAB_DIR to its data/ folder (the one holding valve1/, valve2/ and anomaly-free/), " +
        "or place that folder at shared/data/skab beside the repository root";

    /// <summary>The SKAB folder holding <paramref name="probe"/> (a path relative to it), or a skip/failure saying how to get it.</summary>
    public static string Require(string probe)
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(DirectoryVariable);
        var path = string.IsNullOrEmpty(fromEnvironment) ? BesideRepository() : Path.GetFullPath(fromEnvironment);
        if (path is not null && File.Exists(Path.Combine(path, probe)))
        {
            return path;
        }

        var message = $"SKAB data not found: expected '{probe}' in {(path is null ? "shared/data/skab beside the repository root" : $"'{path}'")}; {HowToGet}.";
        var promised = !string.IsNullOrEmpty(fromEnvironment) || IsContinuousIntegration();
        Skip.IfNot(promised, message);
        Assert.Fail(message);
        return "";
    }

    private static bool IsContinuousIntegration() =>
        Environment.GetEnvironmentVariable("CI") is { } ci && (ci.Equals("true", StringComparison.OrdinalIgnoreCase) || ci == "1");

    // Beside the repository root (../shared/data/skab), or beside an ancestor when the checkout is a worktree further down.
    private static string? BesideRepository()
    {
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "SparseInference.sln")))
        {
            root = root.Parent;
        }

        for (var dir = root?.Parent; dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "data", "skab");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
