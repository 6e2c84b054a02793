using System.Reflection;
using System.Text.Json;
using SparseInference.Serving.Protocol;

namespace SparseInference.Serving.Tests;

/// <summary>The serving library stays a plain library: nothing it loads, directly or through its references, is ASP.NET Core or CUDA.</summary>
public sealed class AssemblyBoundaryTests
{
    [Fact]
    public void Serving_ReferencedAssemblies_NeitherAspNetCoreNorTheCudaBackend()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Queue<AssemblyName>([typeof(InferenceService).Assembly.GetName()]);
        while (pending.TryDequeue(out var name))
        {
            if (!seen.Add(name.Name!) || !name.Name!.StartsWith("SparseInference", StringComparison.Ordinal))
            {
                continue;
            }

            foreach (var reference in Assembly.Load(name).GetReferencedAssemblies())
            {
                pending.Enqueue(reference);
            }
        }

        Assert.DoesNotContain(seen, n => n.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal));
        Assert.DoesNotContain("SparseInference.Tensors.Cuda", seen);
        Assert.Contains("SparseInference.Tensors", seen);
    }

    /// <summary>
    /// A framework reference flows to every project that references the library, used or not (the compiler drops unused
    /// assembly references, so the check above would not see one). This project references Serving and Microsoft.Extensions
    /// packages only, so a shared framework beyond .NET's in its runtime configuration came from Serving.
    /// </summary>
    [Fact]
    public void Serving_SharedFrameworks_OnlyDotNet()
    {
        var path = Path.Combine(AppContext.BaseDirectory, $"{typeof(AssemblyBoundaryTests).Assembly.GetName().Name}.runtimeconfig.json");
        using var config = JsonDocument.Parse(File.ReadAllText(path));
        var options = config.RootElement.GetProperty("runtimeOptions");
        var frameworks = options.TryGetProperty("frameworks", out var several)
            ? several.EnumerateArray().Select(f => f.GetProperty("name").GetString()).ToList()
            : [options.GetProperty("framework").GetProperty("name").GetString()];

        Assert.Equal(["Microsoft.NETCore.App"], frameworks);
    }
}
