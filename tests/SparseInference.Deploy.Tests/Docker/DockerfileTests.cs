using System.Text.RegularExpressions;
using SparseInference.Deploy.Tests.Infrastructure;

namespace SparseInference.Deploy.Tests.Docker;

/// <summary>
/// The images' recipes, checked without a Docker engine: lint (dockerfile-utils) and the properties the
/// deployment relies on (non-root, health check, ports, base images, build inputs).
/// </summary>
public sealed partial class DockerfileTests
{
    public static TheoryData<string> Dockerfiles => new(["Dockerfile.cpu", "Dockerfile.cuda"]);

    [Theory]
    [MemberData(nameof(Dockerfiles))]
    public void Lint_Dockerfile_HasNoFindings(string dockerfile)
    {
        var findings = Validators.Dockerfile(PathOf(dockerfile));

        Assert.True(findings.Count == 0, string.Join('\n', findings));
    }

    [Fact]
    public void Lint_SecondHealthcheckInStage_IsReported()
    {
        var broken = Path.Combine(Path.GetTempPath(), $"Dockerfile.{Guid.NewGuid():N}");
        File.WriteAllText(broken, File.ReadAllText(PathOf("Dockerfile.cpu")) + "HEALTHCHECK NONE\n");
        try
        {
            var findings = Validators.Dockerfile(broken);

            Assert.Contains(findings, f => f.Message.Contains("HEALTHCHECK", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(broken);
        }
    }

    [Theory]
    [MemberData(nameof(Dockerfiles))]
    public void FinalStage_Dockerfile_RunsAsNonRootWithHealthCheckAndServerPorts(string dockerfile)
    {
        var final = FinalStage(File.ReadAllLines(PathOf(dockerfile)));

        var user = final.LastOrDefault(l => l.StartsWith("USER ", StringComparison.Ordinal));
        Assert.NotNull(user);
        Assert.DoesNotMatch(@"^USER\s+(root|0)(:|\s|$)", user);
        Assert.Contains(final, l => l.StartsWith("HEALTHCHECK ", StringComparison.Ordinal) && l.Contains("sparseinference-healthcheck", StringComparison.Ordinal));
        var expose = final.Single(l => l.StartsWith("EXPOSE ", StringComparison.Ordinal));
        var exposed = expose["EXPOSE ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).Order();
        Assert.Equal(ServiceDefaults.Current.AllPorts.Order(), exposed);
        Assert.Contains(final, l => l == """ENTRYPOINT ["dotnet", "SparseInference.Server.dll"]""");
    }

    [Fact]
    public void BaseImages_Cpu_BuildOnTheSdkAndRunOnAspNet()
    {
        var froms = FromLines(File.ReadAllLines(PathOf("Dockerfile.cpu")));

        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:", froms[0], StringComparison.Ordinal);
        Assert.StartsWith("mcr.microsoft.com/dotnet/aspnet:", froms[^1], StringComparison.Ordinal);
    }

    [Fact]
    public void BaseImages_Cuda_RunOnTheCudaRuntimeImageThatCarriesCublasAndNvrtc()
    {
        var lines = File.ReadAllLines(PathOf("Dockerfile.cuda"));
        var froms = FromLines(lines);

        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:", froms[0], StringComparison.Ordinal);
        Assert.Matches(@"^nvidia/cuda:\$\{CUDA_VERSION\}-runtime-ubuntu24\.04 AS final$", froms[^1]);
        var text = string.Join('\n', lines);
        Assert.Contains("for lib in libnvrtc libcublas libcublasLt", text, StringComparison.Ordinal);
        Assert.Contains("SparseInference__Device=cuda", text, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Dockerfiles))]
    public void CopySources_Dockerfile_ExistInTheBuildContext(string dockerfile)
    {
        var copies = FinalStageAndBuild(File.ReadAllLines(PathOf(dockerfile)))
            .Where(l => l.StartsWith("COPY ", StringComparison.Ordinal) && !l.Contains("--from=", StringComparison.Ordinal));

        foreach (var copy in copies)
        {
            var parts = copy.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Where(p => !p.StartsWith("--", StringComparison.Ordinal)).ToList();
            foreach (var source in parts.SkipLast(1))
            {
                var path = RepositoryLayout.PathOf(source.TrimEnd('/'));
                Assert.True(source == "." || File.Exists(path) || Directory.Exists(path), $"{dockerfile}: COPY source '{source}' is missing");
                Assert.False(IgnoredByDockerignore(source), $"{dockerfile}: COPY source '{source}' is excluded by .dockerignore");
            }
        }
    }

    [Fact]
    public void DockerIgnore_BuildContext_ExcludesTestsAndBuildOutputs()
    {
        var patterns = File.ReadAllLines(RepositoryLayout.PathOf(".dockerignore"));

        Assert.Contains("tests/", patterns);
        Assert.Contains("**/bin/", patterns);
        Assert.Contains("**/obj/", patterns);
        Assert.Contains(".git/", patterns);
        Assert.False(IgnoredByDockerignore("src/SparseInference.Server/SparseInference.Server.csproj"));
    }

    private static string PathOf(string dockerfile) => RepositoryLayout.PathOf("deploy", "docker", dockerfile);

    /// <summary>Instructions with continuation lines joined, comments and blanks dropped.</summary>
    private static List<string> Instructions(string[] lines)
    {
        var result = new List<string>();
        var current = "";
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (current.Length == 0 && (line.Length == 0 || line.StartsWith('#')))
            {
                continue;
            }

            current += (current.Length > 0 ? " " : "") + line.TrimEnd('\\').Trim();
            if (!line.EndsWith('\\'))
            {
                result.Add(Whitespace().Replace(current, " "));
                current = "";
            }
        }

        return result;
    }

    private static List<string> FromLines(string[] lines) =>
        Instructions(lines).Where(l => l.StartsWith("FROM ", StringComparison.Ordinal)).Select(l => l["FROM ".Length..]).ToList();

    private static List<string> FinalStage(string[] lines)
    {
        var instructions = Instructions(lines);
        var lastFrom = instructions.FindLastIndex(l => l.StartsWith("FROM ", StringComparison.Ordinal));
        return instructions[lastFrom..];
    }

    private static List<string> FinalStageAndBuild(string[] lines) => Instructions(lines);

    /// <summary>Enough of .dockerignore's matching for this repository's patterns: directory prefixes and exceptions.</summary>
    private static bool IgnoredByDockerignore(string path)
    {
        var ignored = false;
        foreach (var raw in File.ReadAllLines(RepositoryLayout.PathOf(".dockerignore")))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var exception = line.StartsWith('!');
            var pattern = (exception ? line[1..] : line).TrimEnd('/');
            var regex = "^" + Regex.Escape(pattern).Replace(@"\*\*/", "(.*/)?", StringComparison.Ordinal).Replace(@"\*", "[^/]*", StringComparison.Ordinal) + "(/.*)?$";
            if (Regex.IsMatch(path.TrimEnd('/'), regex))
            {
                ignored = !exception;
            }
        }

        return ignored;
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
