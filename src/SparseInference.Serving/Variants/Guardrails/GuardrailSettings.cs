namespace SparseInference.Serving.Variants.Guardrails;

/// <summary>
/// The bounds one model's candidates are held to: from configuration (<see cref="GuardrailOptions"/>) unless the
/// model's rollout document sets its own, so that an experiment carries its guardrails to every replica.
/// </summary>
public sealed record GuardrailSettings(
    bool Enabled,
    TimeSpan Window,
    int MinSamples,
    double? MaxErrorRate,
    double? MaxP99LatencyMs,
    double? MaxMeanAbsoluteError,
    double? MinFlagAgreement)
{
    /// <summary>
    /// Checks every field; each error names the field under <paramref name="prefix"/> (a configuration section ending in
    /// ':' or a JSON path ending in '.'), what was expected and what was given.
    /// </summary>
    public IReadOnlyList<string> Validate(string prefix)
    {
        var errors = new List<string>();
        if (Window <= TimeSpan.Zero)
        {
            errors.Add($"{Field(prefix, "Window")}: expected a positive duration, actual {Window}");
        }

        if (MinSamples < 1)
        {
            errors.Add($"{Field(prefix, "MinSamples")}: expected >= 1, actual {MinSamples}");
        }

        if (MaxErrorRate is { } e && !(e >= 0 && e <= 1))
        {
            errors.Add($"{Field(prefix, "MaxErrorRate")}: expected 0..1, actual {e}");
        }

        if (MinFlagAgreement is { } f && !(f >= 0 && f <= 1))
        {
            errors.Add($"{Field(prefix, "MinFlagAgreement")}: expected 0..1, actual {f}");
        }

        if (MaxP99LatencyMs is { } l && !(l > 0 && double.IsFinite(l)))
        {
            errors.Add($"{Field(prefix, "MaxP99LatencyMs")}: expected a finite number > 0, actual {l}");
        }

        if (MaxMeanAbsoluteError is { } m && !(m >= 0 && double.IsFinite(m)))
        {
            errors.Add($"{Field(prefix, "MaxMeanAbsoluteError")}: expected a finite number >= 0, actual {m}");
        }

        if (Enabled && MaxErrorRate is null && MaxP99LatencyMs is null && MaxMeanAbsoluteError is null && MinFlagAgreement is null)
        {
            errors.Add($"{prefix.TrimEnd(':', '.')}: expected at least one bound when Enabled is true, actual none");
        }

        return errors;
    }

    /// <summary>Configuration keys are PascalCase ("...:Guardrails:Window"), JSON fields camelCase ("guardrails.window").</summary>
    private static string Field(string prefix, string name) =>
        prefix.EndsWith('.') ? prefix + char.ToLowerInvariant(name[0]) + name[1..] : prefix + name;
}
