using System.Diagnostics;
using System.Text.Json;

namespace SparseInference.Benchmarks.Tensors;

/// <summary>Runs a Python peer script under /usr/bin/python3 and reads its JSON-lines output.</summary>
internal static class PeerRunner
{
    public const string Python = "/usr/bin/python3";

    /// <summary>Runs the script with the arguments; returns one parsed JSON object per output line.</summary>
    public static List<JsonElement> Run(string script, IEnumerable<string> arguments)
    {
        var path = FindScript(script);
        var info = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(path);
        foreach (var a in arguments) info.ArgumentList.Add(a);
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {Python} {path}.");
        var stderr = process.StandardError.ReadToEndAsync();
        var lines = new List<JsonElement>();
        while (process.StandardOutput.ReadLine() is { } line)
        {
            if (line.Length > 0) lines.Add(JsonDocument.Parse(line).RootElement.Clone());
        }
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{Python} {path} exited with {process.ExitCode}: {stderr.Result}");
        return lines;
    }

    /// <summary>benchmarks/peers/&lt;script&gt;, found from the working directory or the build output upwards.</summary>
    private static string FindScript(string script)
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "benchmarks", "peers", script);
                if (File.Exists(candidate)) return candidate;
            }
        }
        throw new FileNotFoundException($"benchmarks/peers/{script} not found above {Environment.CurrentDirectory} or {AppContext.BaseDirectory}.");
    }

    /// <summary>Machine facts printed with every table.</summary>
    public static string MachineLine()
    {
        var model = "unknown";
        if (File.Exists("/proc/cpuinfo"))
        {
            model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? model;
        }
        return $"cpu: {model}, {Environment.ProcessorCount} logical processors, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC";
    }

    /// <summary>The 1-minute load average, or NaN where /proc/loadavg is missing.</summary>
    public static double LoadAverage() =>
        File.Exists("/proc/loadavg") && double.TryParse(File.ReadAllText("/proc/loadavg").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture, out var l) ? l : double.NaN;
}

/// <summary>Times an action: warm-up, then repetitions until both a minimum count and a minimum time are reached.</summary>
internal static class Timing
{
    public static (double MedianSeconds, double BestSeconds, int Reps) Measure(Action action, double minSeconds, int minReps)
    {
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < 0.2) action();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < minReps || total.Elapsed.TotalSeconds < minSeconds)
        {
            var t0 = Stopwatch.GetTimestamp();
            action();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        times.Sort();
        return (times[times.Count / 2], times[0], times.Count);
    }
}
