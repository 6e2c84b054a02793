using Microsoft.Extensions.Options;

namespace SparseInference.Serving.Batching;

/// <summary>What happens to a request whose queue timeout passes before it is scheduled.</summary>
public enum TimeoutAction
{
    /// <summary>Fail it with <see cref="DeadlineExceededException"/>; it never reaches the executor.</summary>
    Reject,

    /// <summary>Keep it, but schedule it after every request of its priority level that has not timed out.</summary>
    Delay,
}

/// <summary>
/// Knobs of one variant's dynamic batcher. Names and meanings follow Triton's <c>dynamic_batching</c>
/// block; defaults are chosen for a CPU backend serving short sensor windows.
/// </summary>
public sealed class DynamicBatcherOptions
{
    /// <summary>
    /// When a partial batch goes: <see cref="BatchingPolicies.WorkConserving"/> (default: as soon as a worker is free,
    /// so batching never adds latency at low load) or <see cref="BatchingPolicies.Delay"/> (Triton's: it waits up to
    /// <see cref="MaxQueueDelayMicroseconds"/> for batch-mates).
    /// </summary>
    public string Policy { get; set; } = BatchingPolicies.WorkConserving;

    /// <summary>Largest number of requests executed as one batch. Default 8.</summary>
    public int MaxBatchSize { get; set; } = 8;

    /// <summary>
    /// Delay policy only: how long the oldest queued request may wait for batch-mates before a partial batch is sent.
    /// Default 500 µs: long enough to gather a burst, short next to a CPU forward (milliseconds). The work-conserving
    /// policy never holds a batch back while a worker is free, so it has no use for it.
    /// </summary>
    public long MaxQueueDelayMicroseconds { get; set; } = 500;

    /// <summary>
    /// Batch sizes to prefer. Delay policy: sent as soon as they can be formed, without waiting for the queue delay
    /// (the largest formable one wins); empty, only <see cref="MaxBatchSize"/> is sent at once. Work-conserving policy:
    /// a batch is trimmed to one only where the rest can start at once on another free worker.
    /// </summary>
    public IList<int> PreferredBatchSizes { get; set; } = [];

    /// <summary>Number of priority levels; level 1 is the highest. Default 1 (no priorities).</summary>
    public int PriorityLevels { get; set; } = 1;

    /// <summary>Level given to a request that asks for priority 0 (none). Default 1.</summary>
    public int DefaultPriorityLevel { get; set; } = 1;

    /// <summary>
    /// Hard bound on queued (admitted, not yet dispatched) requests; the request that does not fit is
    /// rejected at once with <see cref="QueueFullException"/>. Default 256.
    /// </summary>
    public int MaxQueueSize { get; set; } = 256;

    /// <summary>Queue timeout applied to every request; 0 means none. A client timeout may only shorten it.</summary>
    public long DefaultTimeoutMicroseconds { get; set; }

    /// <summary>What to do with a request whose queue timeout passes. Default <see cref="TimeoutAction.Reject"/>.</summary>
    public TimeoutAction TimeoutAction { get; set; } = TimeoutAction.Reject;

    /// <summary>Batches of this variant executing concurrently. Default 1 (one forward at a time per variant).</summary>
    public int Workers { get; set; } = 1;

    /// <summary>
    /// Upper bound on padding waste (padded time steps / all time steps) of a batch of variable-length
    /// requests; a request that would push a batch over it waits for a batch of similar lengths.
    /// 1 disables length bucketing. Default 0.5.
    /// </summary>
    public double MaxPaddingWaste { get; set; } = 0.5;

    /// <summary>Lower bound of the retry-after suggested to a rejected client. Default 1 s (HTTP Retry-After has second granularity).</summary>
    public TimeSpan MinRetryAfter { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Returns every problem with these options, each naming the field, the expected and the actual value.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (Policy is null || !BatchingPolicies.All.Contains(Policy))
            errors.Add($"{nameof(Policy)} must be one of {string.Join(", ", BatchingPolicies.All)}, but was {(Policy is null ? "null" : $"'{Policy}'")}.");
        if (MaxBatchSize < 1)
            errors.Add($"{nameof(MaxBatchSize)} must be at least 1, but was {MaxBatchSize}.");
        if (MaxQueueDelayMicroseconds < 0)
            errors.Add($"{nameof(MaxQueueDelayMicroseconds)} must be 0 or more, but was {MaxQueueDelayMicroseconds}.");
        if (PreferredBatchSizes is null)
        {
            errors.Add($"{nameof(PreferredBatchSizes)} must not be null.");
        }
        else
        {
            foreach (var size in PreferredBatchSizes)
            {
                if (size < 1 || size > MaxBatchSize)
                    errors.Add($"{nameof(PreferredBatchSizes)} entries must be between 1 and {nameof(MaxBatchSize)} ({MaxBatchSize}), but one was {size}.");
            }
        }
        if (PriorityLevels < 1)
            errors.Add($"{nameof(PriorityLevels)} must be at least 1, but was {PriorityLevels}.");
        if (DefaultPriorityLevel < 1 || DefaultPriorityLevel > Math.Max(PriorityLevels, 1))
            errors.Add($"{nameof(DefaultPriorityLevel)} must be between 1 and {nameof(PriorityLevels)} ({PriorityLevels}), but was {DefaultPriorityLevel}.");
        if (MaxQueueSize < 1)
            errors.Add($"{nameof(MaxQueueSize)} must be at least 1, but was {MaxQueueSize}.");
        if (DefaultTimeoutMicroseconds < 0)
            errors.Add($"{nameof(DefaultTimeoutMicroseconds)} must be 0 (none) or more, but was {DefaultTimeoutMicroseconds}.");
        if (!Enum.IsDefined(TimeoutAction))
            errors.Add($"{nameof(TimeoutAction)} must be Reject or Delay, but was {(int)TimeoutAction}.");
        if (Workers < 1)
            errors.Add($"{nameof(Workers)} must be at least 1, but was {Workers}.");
        if (double.IsNaN(MaxPaddingWaste) || MaxPaddingWaste < 0 || MaxPaddingWaste > 1)
            errors.Add($"{nameof(MaxPaddingWaste)} must be between 0 and 1, but was {MaxPaddingWaste}.");
        if (MinRetryAfter < TimeSpan.Zero)
            errors.Add($"{nameof(MinRetryAfter)} must not be negative, but was {MinRetryAfter}.");
        return errors;
    }

    /// <summary>Throws <see cref="OptionsValidationException"/> listing every problem, if any.</summary>
    public void ThrowIfInvalid(string name = "")
    {
        var errors = Validate();
        if (errors.Count > 0)
            throw new OptionsValidationException(name, typeof(DynamicBatcherOptions), errors);
    }
}

/// <summary>Options validation for the host's <c>ValidateOnStart()</c>; named options give one batcher per variant.</summary>
public sealed class DynamicBatcherOptionsValidator : IValidateOptions<DynamicBatcherOptions>
{
    public ValidateOptionsResult Validate(string? name, DynamicBatcherOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate();
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
