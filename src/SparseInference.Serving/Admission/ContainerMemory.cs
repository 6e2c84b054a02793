using System.Globalization;

namespace SparseInference.Serving.Admission;

/// <summary>
/// The memory the process may use: the container's limit from the cgroup file system (v2 <c>memory.max</c>, else v1
/// <c>memory/memory.limit_in_bytes</c>), and the default in-flight budget derived from it.
/// </summary>
public static class ContainerMemory
{
    /// <summary>Share of a container's memory limit given to requests in flight; the rest holds the runtime, weights and pools.</summary>
    public const double LimitFraction = 0.5;

    /// <summary>Share of physical memory given to requests in flight when no limit is set (the host is shared).</summary>
    public const double PhysicalFraction = 0.25;

    /// <summary>cgroup v1 reports "no limit" as a page-rounded long.MaxValue; anything above this is no limit.</summary>
    private const long UnlimitedAbove = 1L << 60;

    /// <summary>The container's memory limit in bytes, or null when none is set or no cgroup file is readable.</summary>
    public static long? ReadLimitBytes(string cgroupRoot = "/sys/fs/cgroup")
    {
        var v2 = Path.Combine(cgroupRoot, "memory.max");
        if (TryRead(v2, out var text))
        {
            return text == "max" ? null : Parse(text);
        }

        return TryRead(Path.Combine(cgroupRoot, "memory", "memory.limit_in_bytes"), out text) ? Parse(text) : null;
    }

    /// <summary>The default budget: <see cref="LimitFraction"/> of the limit, else <see cref="PhysicalFraction"/> of physical memory.</summary>
    public static long DefaultBudgetBytes(long? limitBytes, long physicalBytes) =>
        limitBytes is { } limit
            ? (long)(limit * LimitFraction)
            : (long)(physicalBytes * PhysicalFraction);

    /// <summary>Physical memory as the runtime sees it (itself bounded by a container limit, when there is one).</summary>
    public static long PhysicalBytes() => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    private static long? Parse(string text) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var bytes) && bytes > 0 && bytes < UnlimitedAbove ? bytes : null;

    private static bool TryRead(string path, out string text)
    {
        try
        {
            text = File.ReadAllText(path).Trim();
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            text = "";
            return false;
        }
    }
}
