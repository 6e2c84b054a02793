using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using SparseInference.Tensors;

namespace SparseInference.Serving.Hosting;

/// <summary>
/// Rejects a configuration the serving library cannot work with (repository, device, drain, memory budget, health), so the
/// process stops at start with a message naming the key. A host adds its own validator for what it reads (listeners, TLS).
/// </summary>
internal sealed class SparseInferenceOptionsValidator(IHostEnvironment environment) : IValidateOptions<SparseInferenceOptions>
{
    public ValidateOptionsResult Validate(string? name, SparseInferenceOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ModelRepository))
        {
            failures.Add($"{SparseInferenceOptions.SectionName}:ModelRepository must name a directory, got an empty value.");
        }
        else
        {
            var candidates = RepositoryPathCandidates(environment, options.ModelRepository);
            if (!candidates.Any(Directory.Exists))
            {
                failures.Add(
                    $"{SparseInferenceOptions.SectionName}:ModelRepository: no directory '{options.ModelRepository}' found; looked at {string.Join(" and ", candidates.Select(c => $"'{c}'"))}.");
            }
        }

        if (!ComputeDevice.TryParse(options.Device, out _))
        {
            failures.Add($"{SparseInferenceOptions.SectionName}:Device must be {ComputeDevice.Expected}, got '{options.Device}'.");
        }

        if (options.Shutdown.DrainDelaySeconds is < 0 or > 3600)
        {
            failures.Add($"{SparseInferenceOptions.SectionName}:Shutdown:DrainDelaySeconds must be in 0..3600, got {options.Shutdown.DrainDelaySeconds}.");
        }

        if (options.Shutdown.TimeoutSeconds is < 1 or > 3600)
        {
            failures.Add($"{SparseInferenceOptions.SectionName}:Shutdown:TimeoutSeconds must be in 1..3600, got {options.Shutdown.TimeoutSeconds}.");
        }

        if (options.Limits.InFlightMemoryBytes != 0 && options.Limits.InFlightMemoryBytes < LimitOptions.MinInFlightMemoryBytes)
        {
            failures.Add(
                $"{SparseInferenceOptions.SectionName}:Limits:InFlightMemoryBytes must be 0 (derived from the memory limit) or at least {LimitOptions.MinInFlightMemoryBytes}, got {options.Limits.InFlightMemoryBytes}.");
        }

        if (options.Health.DeviceFaultThreshold is < 0 or > 100_000)
        {
            failures.Add($"{SparseInferenceOptions.SectionName}:Health:DeviceFaultThreshold must be in 0..100000 (0 turns the check off), got {options.Health.DeviceFaultThreshold}.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>
    /// A relative repository path resolves against the content root first, then against the application's own
    /// directory, where the build copies the repository's <c>models/</c> (so <c>dotnet run</c> and a published
    /// binary both find it).
    /// </summary>
    internal static string ResolveRepositoryPath(IHostEnvironment environment, string configured)
    {
        var candidates = RepositoryPathCandidates(environment, configured);
        return candidates.FirstOrDefault(Directory.Exists) ?? candidates[0];
    }

    private static string[] RepositoryPathCandidates(IHostEnvironment environment, string configured) =>
        Path.IsPathRooted(configured)
            ? [Path.GetFullPath(configured)]
            : [.. new[] { Path.Combine(environment.ContentRootPath, configured), Path.Combine(AppContext.BaseDirectory, configured) }
                .Select(Path.GetFullPath).Distinct(StringComparer.Ordinal)];
}
