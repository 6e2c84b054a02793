namespace SparseInference.Serving.Variants.Rollout;

/// <summary>
/// Where one replica stands against the shared rollout state: the revision the store holds (as last read), the one
/// this replica serves, and why it does not serve the desired one when it could not build or read it.
/// </summary>
public sealed record RolloutStatus(long DesiredRevision, long AppliedRevision, RolloutApplyError? LastError, DateTimeOffset? CheckedAt)
{
    public bool Converged => DesiredRevision == AppliedRevision && LastError is null;
}

/// <summary>A revision this replica could not apply (or a document it could not read); it keeps serving <see cref="RolloutStatus.AppliedRevision"/>.</summary>
/// <param name="Revision">The revision that failed; 0 when the document itself could not be read.</param>
/// <param name="Reason">One of <see cref="RolloutApplyFailures"/>.</param>
/// <param name="RetryAt">When this replica tries the same revision again (a new revision is tried at once).</param>
public sealed record RolloutApplyError(long Revision, string Reason, string Message, DateTimeOffset At, DateTimeOffset RetryAt);

/// <summary>Values of the <c>reason</c> label of <c>sparseinference_rollout_apply_failures_total</c>.</summary>
public static class RolloutApplyFailures
{
    /// <summary>Loading weights or the warm-up forward of a variant failed.</summary>
    public const string BuildFailed = "build_failed";

    /// <summary>The state does not fit this replica's variants (e.g. the split names a variant its manifest lacks).</summary>
    public const string Invalid = "invalid";

    /// <summary>The document could not be read or parsed.</summary>
    public const string Unreadable = "unreadable";

    public static IReadOnlyList<string> All { get; } = [BuildFailed, Invalid, Unreadable];
}
