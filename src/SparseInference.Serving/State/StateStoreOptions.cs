using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace SparseInference.Serving.State;

/// <summary>
/// The shared state store; bound from "SparseInference:State", a node of the <see cref="Hosting.SparseInferenceOptions"/>
/// tree. Defaults live here and nowhere else.
/// </summary>
public sealed class StateStoreOptions
{
    public const string SectionName = Hosting.SparseInferenceOptions.SectionName + ":State";

    /// <summary>
    /// The directory that holds the shared documents. Every replica of a fleet must see the same one: in
    /// Kubernetes a ReadWriteMany volume mounted on every pod. Relative paths resolve against the content root,
    /// so a single process started without further settings keeps its state across restarts in <c>state/</c>.
    /// </summary>
    public string Directory { get; set; } = "state";

    /// <summary>
    /// How often watchers re-read the documents. Polling is what makes a change reach every replica: file-system
    /// notifications do not fire for writes made by another machine on NFS or CephFS. One second keeps the
    /// convergence bound short at the cost of one small read per model and second.
    /// </summary>
    public int PollIntervalMilliseconds { get; set; } = 1000;

    /// <summary>
    /// Also wake watchers on local file-system notifications (inotify), so a change made by this machine applies
    /// at once. An accelerator only: polling goes on whether or not notifications arrive.
    /// </summary>
    public bool WatchFileSystem { get; set; } = true;

    /// <summary>
    /// How long a writer waits for another writer of the same document to finish. Writes take milliseconds; the
    /// bound only matters when a writer hangs on a stalled network file system.
    /// </summary>
    public int LockTimeoutMilliseconds { get; set; } = 5000;

    public TimeSpan PollInterval => TimeSpan.FromMilliseconds(PollIntervalMilliseconds);

    public TimeSpan LockTimeout => TimeSpan.FromMilliseconds(LockTimeoutMilliseconds);

    /// <summary>The directory as an absolute path: relative ones against <paramref name="contentRoot"/>.</summary>
    public string ResolveDirectory(string? contentRoot) =>
        Path.GetFullPath(Path.IsPathRooted(Directory) ? Directory : Path.Combine(contentRoot ?? System.IO.Directory.GetCurrentDirectory(), Directory));
}

/// <summary>
/// Stops the process at start when the store cannot work: intervals out of range, or a directory that cannot be
/// created or written (a read-only root file system without a volume mounted there, a missing mount).
/// </summary>
internal sealed class StateStoreOptionsValidator(IHostEnvironment? environment = null) : IValidateOptions<StateStoreOptions>
{
    public ValidateOptionsResult Validate(string? name, StateStoreOptions options)
    {
        var errors = new List<string>();
        var p = StateStoreOptions.SectionName;
        if (options.PollIntervalMilliseconds is < 50 or > 600_000)
        {
            errors.Add($"{p}:PollIntervalMilliseconds: expected 50..600000, actual {options.PollIntervalMilliseconds}");
        }

        if (options.LockTimeoutMilliseconds is < 100 or > 600_000)
        {
            errors.Add($"{p}:LockTimeoutMilliseconds: expected 100..600000, actual {options.LockTimeoutMilliseconds}");
        }

        if (string.IsNullOrWhiteSpace(options.Directory))
        {
            errors.Add($"{p}:Directory: expected a directory path, actual empty");
        }
        else if (ProbeWritable(options.ResolveDirectory(environment?.ContentRootPath)) is { } problem)
        {
            errors.Add($"{p}:Directory: expected a directory this process can create and write, actual {problem}; mount a writable volume there (every replica the same one) or point the setting elsewhere");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static string? ProbeWritable(string directory)
    {
        var probe = Path.Combine(directory, $".write-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            System.IO.Directory.CreateDirectory(directory);
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"'{directory}' ({ex.Message})";
        }
    }
}
