using SparseInference.Models;

namespace SparseInference.Benchmarks.Models;

/// <summary>What the model benchmarks share: seeded sensor windows, the machine's load, the repository root.</summary>
internal static class ModelBenchmarkSupport
{
    /// <summary>A [batch, time, channels] continuous input of uniform values in [−1, 1), seeded.</summary>
    public static ForwardInput RandomInput(int batch, int time, int channels, int seed)
    {
        var random = new Random(seed);
        var values = new float[batch * time * channels];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = (float)(random.NextDouble() * 2 - 1);
        }

        return new ForwardInput { Batch = batch, Time = time, Values = values };
    }

    /// <summary>/proc/loadavg as printed there, or "n/a".</summary>
    public static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Trim();
        }
        catch (IOException)
        {
            return "n/a";
        }
    }

    /// <summary>The folder holding SparseInference.sln above the build output, else the working directory.</summary>
    public static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SparseInference.sln")))
            {
                return dir.FullName;
            }
        }

        return Directory.GetCurrentDirectory();
    }
}
