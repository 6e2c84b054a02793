using Microsoft.Extensions.Options;

namespace SparseInference.Serving.Baselines;

/// <summary>
/// Onboarding through the admin API; bound from "SparseInference:Baselines", a node of the
/// <see cref="Hosting.SparseInferenceOptions"/> tree. Defaults live here and nowhere else.
/// </summary>
public sealed class LineBaselineOptions
{
    public const string SectionName = Hosting.SparseInferenceOptions.SectionName + ":Baselines";

    /// <summary>
    /// Most rows one onboarding may send. The rule was validated on 400 rows (about 7 minutes at one row a second); 10,000
    /// (close to 3 hours) is far beyond any useful stretch and bounds what one request costs: every row is a window through
    /// every variant, about 0.3 s of CPU per 1,000 rows and variant for the shipped model.
    /// </summary>
    public int MaxOnboardingRows { get; set; } = 10_000;

    /// <summary>
    /// Largest onboarding body. 8 MiB holds 10,000 rows of a SKAB export with every column (about 100 bytes a row) with room
    /// to spare, far below the server's general request limit.
    /// </summary>
    public long MaxOnboardingBodyBytes { get; set; } = 8L * 1024 * 1024;

    /// <summary>
    /// Onboardings computed at once on this replica; others wait their turn. Calibration runs the model on the request's
    /// thread pool beside inference, so one at a time keeps it from taking more than a core from serving.
    /// </summary>
    public int MaxConcurrentOnboardings { get; set; } = 1;
}

internal sealed class LineBaselineOptionsValidator : IValidateOptions<LineBaselineOptions>
{
    public ValidateOptionsResult Validate(string? name, LineBaselineOptions options)
    {
        var errors = new List<string>();
        var p = LineBaselineOptions.SectionName;
        if (options.MaxOnboardingRows is < 1 or > 1_000_000)
            errors.Add($"{p}:MaxOnboardingRows: expected 1..1000000, actual {options.MaxOnboardingRows}");
        if (options.MaxOnboardingBodyBytes is < 1024 or > 1L << 30)
            errors.Add($"{p}:MaxOnboardingBodyBytes: expected 1024..1073741824, actual {options.MaxOnboardingBodyBytes}");
        if (options.MaxConcurrentOnboardings is < 1 or > 64)
            errors.Add($"{p}:MaxConcurrentOnboardings: expected 1..64, actual {options.MaxConcurrentOnboardings}");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
