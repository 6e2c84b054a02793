using Microsoft.Extensions.Options;
using SparseInference.Serving.Variants.Guardrails;

namespace SparseInference.Serving.Variants;

/// <summary>
/// Variant routing, shadowing and guardrails; bound from "SparseInference:Variants", a node of the
/// <see cref="Hosting.SparseInferenceOptions"/> tree. Defaults live here and nowhere else.
/// </summary>
public sealed class VariantOptions
{
    public const string SectionName = Hosting.SparseInferenceOptions.SectionName + ":Variants";

    /// <summary>
    /// Shadow requests waiting for a worker. Small on purpose: shadow work is the first thing dropped under
    /// load (a full queue drops and counts), so the queue only needs to absorb short bursts.
    /// </summary>
    public int ShadowQueueCapacity { get; set; } = 64;

    /// <summary>Concurrent shadow forwards. One keeps shadow work from taking more than a core from live traffic.</summary>
    public int ShadowWorkers { get; set; } = 1;

    /// <summary>Request parameter that carries the sticky routing key (a production line, a pump).</summary>
    public string RoutingKeyParameter { get; set; } = "line_id";

    /// <summary>Header read for the key when the parameter is absent.</summary>
    public string RoutingKeyHeader { get; set; } = "X-Routing-Key";

    public GuardrailOptions Guardrails { get; set; } = new();

    /// <summary>
    /// How long a replica waits before it tries again to build a rollout revision it could not build (weights it
    /// cannot load, a warm-up that failed). It keeps serving the last revision it built meanwhile; a new revision
    /// is tried at once.
    /// </summary>
    public TimeSpan ApplyRetryInterval { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>Bounds on a candidate's live behaviour; crossing one over the window rolls the split back.</summary>
public sealed class GuardrailOptions
{
    /// <summary>Off unless asked for: an automatic rollback should be a deliberate choice.</summary>
    public bool Enabled { get; set; }

    /// <summary>Samples older than this are forgotten.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>No verdict on fewer samples than this, so one slow request cannot trip a rollback.</summary>
    public int MinSamples { get; set; } = 100;

    /// <summary>How often the window is evaluated.</summary>
    public TimeSpan EvaluationInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest tolerated share of failed requests (0..1); null disables this bound.</summary>
    public double? MaxErrorRate { get; set; }

    /// <summary>Largest tolerated p99 latency in milliseconds; null disables this bound.</summary>
    public double? MaxP99LatencyMs { get; set; }

    /// <summary>Largest tolerated mean absolute error against the primary (shadowed pairs); null disables.</summary>
    public double? MaxMeanAbsoluteError { get; set; }

    /// <summary>Smallest tolerated anomaly-flag agreement (0..1) against the primary; null disables.</summary>
    public double? MinFlagAgreement { get; set; }

    /// <summary>The bounds as a model's rollout document holds them.</summary>
    public GuardrailSettings ToSettings() => new(Enabled, Window, MinSamples, MaxErrorRate, MaxP99LatencyMs, MaxMeanAbsoluteError, MinFlagAgreement);
}

internal sealed class VariantOptionsValidator : IValidateOptions<VariantOptions>
{
    public ValidateOptionsResult Validate(string? name, VariantOptions options)
    {
        var errors = new List<string>();
        var p = VariantOptions.SectionName;
        if (options.ShadowQueueCapacity is < 1 or > 100_000)
        {
            errors.Add($"{p}:ShadowQueueCapacity: expected 1..100000, actual {options.ShadowQueueCapacity}");
        }

        if (options.ShadowWorkers is < 1 or > 64)
        {
            errors.Add($"{p}:ShadowWorkers: expected 1..64, actual {options.ShadowWorkers}");
        }

        if (string.IsNullOrWhiteSpace(options.RoutingKeyParameter))
        {
            errors.Add($"{p}:RoutingKeyParameter: expected a parameter name, actual empty");
        }

        if (string.IsNullOrWhiteSpace(options.RoutingKeyHeader))
        {
            errors.Add($"{p}:RoutingKeyHeader: expected a header name, actual empty");
        }

        var g = options.Guardrails;
        if (g.EvaluationInterval <= TimeSpan.Zero)
        {
            errors.Add($"{p}:Guardrails:EvaluationInterval: expected a positive duration, actual {g.EvaluationInterval}");
        }

        errors.AddRange(g.ToSettings().Validate($"{p}:Guardrails:"));

        if (options.ApplyRetryInterval <= TimeSpan.Zero)
        {
            errors.Add($"{p}:ApplyRetryInterval: expected a positive duration, actual {options.ApplyRetryInterval}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
