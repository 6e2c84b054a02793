using System.Globalization;

namespace SparseInference.Serving.Tests.Infrastructure;

/// <summary>The shared SKAB folder (never copied into the repository) and its files' raw rows. Also compiled into the functional tests.</summary>
internal static class SkabFiles
{
    /// <summary>The repository root: the first ancestor of the test binaries holding SparseInference.sln.</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    public static readonly string[] Features =
        ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple", "Voltage", "Volume Flow RateRMS"];

    /// <summary>The SKAB folder, or a skip (a failure under CI) saying how to get it; see <see cref="SparseInference.Testing.SkabDataset"/>.</summary>
    public static string Directory() => SparseInference.Testing.SkabDataset.Require(Path.Combine("valve2", "3.csv"));

    /// <summary>Every row's sensor readings (in <see cref="Features"/> order) and its <c>anomaly</c> label.</summary>
    public static (List<double[]> Rows, int[] Labels) Read(string csv)
    {
        var lines = File.ReadAllLines(csv).Where(l => l.Length > 0).ToArray();
        var header = lines[0].Split(';');
        var columns = Features.Select(f => Array.IndexOf(header, f)).ToArray();
        var label = Array.IndexOf(header, "anomaly");
        Assert.DoesNotContain(-1, columns.Append(label));
        var cells = lines.Skip(1).Select(l => l.Split(';')).ToList();
        return (
            [.. cells.Select(row => columns.Select(c => double.Parse(row[c], CultureInfo.InvariantCulture)).ToArray())],
            [.. cells.Select(row => double.Parse(row[label], CultureInfo.InvariantCulture) != 0 ? 1 : 0)]);
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SparseInference.sln")))
                return dir.FullName;
        }

        throw new DirectoryNotFoundException($"no SparseInference.sln above {AppContext.BaseDirectory}");
    }
}
